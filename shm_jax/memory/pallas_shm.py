"""A fused Pallas kernel for the SHM recurrence, forward and backward.

    C_t = 1 + tanh(a_t ⊗ b_t),   U_t = w_t ⊗ k_t,   M_t = M_{t-1} ⊙ C_t + U_t,   h_t = M_t q_t

with a_t = θ_t (rows), b_t = v_c,t (columns), w_t = η_t v_t, and M reset to 0 before a step whose start flag
is set. The kernel keeps a [rows, H] tile of M on chip, builds C_t and U_t from the per-step vectors as it
goes and never writes a [T, H, H] tensor: the forward pass stores M only at chunk boundaries
([T/L, H, H] per sequence); the backward pass re-runs one chunk at a time from its boundary into a
[L, rows, H] workspace and walks it in reverse with the adjoint recurrence

    G_t = dL/dM_t = dh_t ⊗ q_t + G_{t+1} ⊙ C_{t+1}   (cut at resets)
    dC_t = G_t ⊙ M_{t-1},  dU_t = G_t,  dq_t = M_tᵀ dh_t.

Rows of M are independent (C, U and the read act row by row), so the grid is (batch, row blocks): each
program owns ``block_rows`` rows of one sequence's memory. Column-side gradients (b, k, q) are summed over
rows, so each row block writes a partial [T, H] and the wrapper adds them.

Layouts inside the kernel: row-side vectors (a, w, h and their gradients) are [B, H, T] so a step reads an
[rows, 1] column; column-side vectors (b, k, q) are [B, T, H] so a step reads a [1, H] row. Both broadcast
to the [rows, H] tile without a transpose in the kernel.

On CPU the kernel runs in Pallas' interpret mode (correct, slow: for tests). On GPUs it is lowered to Triton,
on TPUs to Mosaic; the tests check from a CPU host that forward and gradient lower for both, but neither
has been compiled or run on a device: no accelerator was available when this was written.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pl_triton

from shm_jax.memory.scan import pad_time

_SQ = pl.squeezed


def _step_forward(memory, start, a, b, w, k):
    """One step on a [rows, H] tile: reset, then M ⊙ C + U. Returns (M_t, M_{t-1} after the reset, tanh)."""
    prev = jnp.where(start > 0, jnp.zeros_like(memory), memory)
    tanh = jnp.tanh(a * b)  # [rows, 1] * [1, H]
    return prev * (1.0 + tanh) + w * k, prev, tanh


def _forward_kernel(start_ref, a_ref, b_ref, w_ref, k_ref, q_ref, m0_ref,
                    h_ref, m_final_ref, boundary_ref, *, chunk: int, num_chunks: int):
    """One (sequence, row block). Refs: start [1, T]; a, w, h [rows, T]; b, k, q [T, H];
    m0, m_final [rows, H]; boundary [num_chunks, rows, H] (M before each chunk)."""

    def chunk_body(c, memory):
        boundary_ref[c] = memory

        def step(i, memory):
            t = c * chunk + i
            col = pl.ds(t, 1)
            memory, _, _ = _step_forward(memory, start_ref[:, col], a_ref[:, col], b_ref[col, :],
                                         w_ref[:, col], k_ref[col, :])
            h_ref[:, col] = jnp.sum(memory * q_ref[col, :], axis=1, keepdims=True)
            return memory

        return jax.lax.fori_loop(0, chunk, step, memory)

    m_final_ref[...] = jax.lax.fori_loop(0, num_chunks, chunk_body, m0_ref[...])


def _backward_kernel(start_ref, a_ref, b_ref, w_ref, k_ref, q_ref, boundary_ref, dh_ref, dm_final_ref,
                     da_ref, dw_ref, db_ref, dk_ref, dq_ref, dm0_ref, prev_ref, *, chunk: int, num_chunks: int):
    """Adjoint of ``_forward_kernel`` for one (sequence, row block).

    Outputs: da, dw [rows, T]; db, dk, dq [T, H] (partial sums over this block's rows); dm0 [rows, H].
    prev_ref [chunk, rows, H] is workspace: M_{t-1} (after the reset) for every step of the current chunk.
    """

    def chunk_body(j, grad):
        c = num_chunks - 1 - j

        def recompute(i, memory):
            t = c * chunk + i
            col = pl.ds(t, 1)
            memory, prev, _ = _step_forward(memory, start_ref[:, col], a_ref[:, col], b_ref[col, :],
                                            w_ref[:, col], k_ref[col, :])
            prev_ref[i] = prev
            return memory

        jax.lax.fori_loop(0, chunk, recompute, boundary_ref[c])

        def step(r, grad):
            i = chunk - 1 - r
            t = c * chunk + i
            col = pl.ds(t, 1)
            a, b, w, k, q = a_ref[:, col], b_ref[col, :], w_ref[:, col], k_ref[col, :], q_ref[col, :]
            prev = prev_ref[i]
            tanh = jnp.tanh(a * b)
            calibration = 1.0 + tanh
            memory = prev * calibration + w * k
            dh = dh_ref[:, col]  # [rows, 1]
            dq_ref[col, :] = jnp.sum(dh * memory, axis=0, keepdims=True)
            grad = grad + dh * q
            d_logits = grad * prev * (1.0 - tanh * tanh)  # dL/d(a ⊗ b)
            da_ref[:, col] = jnp.sum(d_logits * b, axis=1, keepdims=True)
            db_ref[col, :] = jnp.sum(d_logits * a, axis=0, keepdims=True)
            dw_ref[:, col] = jnp.sum(grad * k, axis=1, keepdims=True)
            dk_ref[col, :] = jnp.sum(grad * w, axis=0, keepdims=True)
            return jnp.where(start_ref[:, col] > 0, jnp.zeros_like(grad), grad * calibration)

        return jax.lax.fori_loop(0, chunk, step, grad)

    dm0_ref[...] = jax.lax.fori_loop(0, num_chunks, chunk_body, dm_final_ref[...])


def _compiler_params(interpret: bool):
    """Triton on GPUs (this kernel's loads are [rows, 1] / [1, H] slices, which Mosaic GPU's 128-element
    granularity rejects); None elsewhere (interpret mode, TPU)."""
    if interpret or jax.default_backend() == "tpu":
        return None
    return pl_triton.CompilerParams(num_warps=4, num_stages=1)


def _specs(batch: int, hsz: int, steps: int, rows: int, num_chunks: int):
    """BlockSpecs shared by both kernels, for the grid (batch, row block)."""
    row_side = pl.BlockSpec((_SQ, rows, steps), lambda b, r: (b, r, 0))        # [B, H, T]
    col_side = pl.BlockSpec((_SQ, steps, hsz), lambda b, r: (b, 0, 0))         # [B, T, H]
    starts = pl.BlockSpec((_SQ, 1, steps), lambda b, r: (b, 0, 0))             # [B, 1, T]
    tile = pl.BlockSpec((_SQ, rows, hsz), lambda b, r: (b, r, 0))              # [B, H, H]
    boundary = pl.BlockSpec((_SQ, num_chunks, rows, hsz), lambda b, r: (b, 0, r, 0))
    partial = pl.BlockSpec((_SQ, _SQ, steps, hsz), lambda b, r: (b, r, 0, 0))  # [B, R, T, H]
    return row_side, col_side, starts, tile, boundary, partial


def _forward_call(carry, starts, a, b, w, k, q, *, chunk, rows, interpret):
    """Batch-major padded inputs -> (h [B, H, T'], M_T [B, H, H], boundaries [B, T'/L, H, H])."""
    batch, hsz, steps = a.shape
    num_chunks = steps // chunk
    row_side, col_side, start_spec, tile, boundary, _ = _specs(batch, hsz, steps, rows, num_chunks)
    kernel = functools.partial(_forward_kernel, chunk=chunk, num_chunks=num_chunks)
    return pl.pallas_call(
        kernel,
        grid=(batch, hsz // rows),
        in_specs=[start_spec, row_side, col_side, row_side, col_side, col_side, tile],
        out_specs=[row_side, tile, boundary],
        out_shape=[
            jax.ShapeDtypeStruct((batch, hsz, steps), carry.dtype),
            jax.ShapeDtypeStruct((batch, hsz, hsz), carry.dtype),
            jax.ShapeDtypeStruct((batch, num_chunks, hsz, hsz), carry.dtype),
        ],
        interpret=interpret,
        compiler_params=_compiler_params(interpret),
        name="shm_fused_forward",
    )(starts, a, b, w, k, q, carry)


def _backward_call(starts, a, b, w, k, q, boundaries, dh, dm_final, *, chunk, rows, interpret):
    batch, hsz, steps = a.shape
    num_chunks = steps // chunk
    num_blocks = hsz // rows
    row_side, col_side, start_spec, tile, boundary, partial = _specs(batch, hsz, steps, rows, num_chunks)
    workspace = pl.BlockSpec((_SQ, _SQ, chunk, rows, hsz), lambda b_, r: (b_, r, 0, 0, 0))
    kernel = functools.partial(_backward_kernel, chunk=chunk, num_chunks=num_chunks)
    dtype = dm_final.dtype
    outs = pl.pallas_call(
        kernel,
        grid=(batch, num_blocks),
        in_specs=[start_spec, row_side, col_side, row_side, col_side, col_side, boundary, row_side, tile],
        out_specs=[row_side, row_side, partial, partial, partial, tile, workspace],
        out_shape=[
            jax.ShapeDtypeStruct((batch, hsz, steps), dtype),               # da
            jax.ShapeDtypeStruct((batch, hsz, steps), dtype),               # dw
            jax.ShapeDtypeStruct((batch, num_blocks, steps, hsz), dtype),   # db (partial)
            jax.ShapeDtypeStruct((batch, num_blocks, steps, hsz), dtype),   # dk (partial)
            jax.ShapeDtypeStruct((batch, num_blocks, steps, hsz), dtype),   # dq (partial)
            jax.ShapeDtypeStruct((batch, hsz, hsz), dtype),                 # dM_0
            # Workspace as an output, not scratch_shapes: portable across interpret, Triton and Mosaic.
            jax.ShapeDtypeStruct((batch, num_blocks, chunk, rows, hsz), dtype),
        ],
        interpret=interpret,
        compiler_params=_compiler_params(interpret),
        name="shm_fused_backward",
    )(starts, a, b, w, k, q, boundaries, dh, dm_final)
    da, dw, db, dk, dq, dm0, _ = outs
    return da, dw, db.sum(axis=1), dk.sum(axis=1), dq.sum(axis=1), dm0


def _row_side(x, length: int):
    """[T, B, H] -> [B, H, T'] zero-padded to T' steps."""
    return jnp.transpose(pad_time(x, length), (1, 2, 0))


def _col_side(x, length: int):
    """[T, B, H] -> [B, T', H] zero-padded to T' steps."""
    return jnp.transpose(pad_time(x, length), (1, 0, 2))


def _to_kernel_layout(starts, a, b, w, k, q, chunk):
    """Time-major [T, B, H] -> padded batch-major kernel layouts. Padded steps are identities (a = w = 0)."""
    steps = -(-starts.shape[0] // chunk) * chunk
    starts_k = jnp.transpose(pad_time(starts.astype(a.dtype), steps))[:, None, :]  # [B, 1, T']
    return (starts_k, _row_side(a, steps), _col_side(b, steps), _row_side(w, steps), _col_side(k, steps),
            _col_side(q, steps))


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8, 9))
def _fused(carry, starts, a, b, w, k, q, chunk, rows, interpret):
    return _fused_fwd(carry, starts, a, b, w, k, q, chunk, rows, interpret)[0]


def _fused_fwd(carry, starts, a, b, w, k, q, chunk, rows, interpret):
    length = starts.shape[0]
    kernel_inputs = _to_kernel_layout(starts, a, b, w, k, q, chunk)
    h, final, boundaries = _forward_call(carry, *kernel_inputs, chunk=chunk, rows=rows, interpret=interpret)
    h = jnp.transpose(h, (2, 0, 1))[:length]  # [T, B, H]
    return (final, h), (kernel_inputs, boundaries)


def _fused_bwd(chunk, rows, interpret, residuals, cotangents):
    kernel_inputs, boundaries = residuals
    d_final, d_h = cotangents
    length = d_h.shape[0]
    dh_k = _row_side(d_h, kernel_inputs[1].shape[-1])
    da, dw, db, dk, dq, d_carry = _backward_call(*kernel_inputs, boundaries, dh_k, d_final,
                                                 chunk=chunk, rows=rows, interpret=interpret)
    row_back = lambda x: jnp.transpose(x, (2, 0, 1))[:length]  # noqa: E731  [B, H, T'] -> [T, B, H]
    col_back = lambda x: jnp.transpose(x, (1, 0, 2))[:length]  # noqa: E731  [B, T', H] -> [T, B, H]
    return d_carry, None, row_back(da), col_back(db), row_back(dw), col_back(dk), col_back(dq)


_fused.defvjp(_fused_fwd, _fused_bwd)


def default_block_rows(hsz: int) -> int:
    """Rows of M per program: the largest of 32, 16, 8, ... dividing H (a [32, H] fp32 tile fits on chip)."""
    rows = 32
    while hsz % rows:
        rows //= 2
    return max(rows, 1)


def fused_shm_scan(carry, starts, a, b, w, k, q, *, chunk_size: int = 64, block_rows: int | None = None,
                   interpret: bool | None = None, pad_hidden: bool | None = None):
    """The SHM recurrence and read-out by the fused kernel, with a custom gradient.

    Args:
      carry: M_0, float32[B, H, H].
      starts: bool[T, B]; M is reset to 0 before a step whose flag is set.
      a: θ_t, float[T, B, H] (rows of C);  b: v_c,t, float[T, B, H] (columns of C).
      w: η_t v_t, float[T, B, H];  k: keys [T, B, H];  q: queries [T, B, H].
      chunk_size: L, steps between stored memories (peak extra memory B·(T/L)·H² forward, B·L·H² backward).
      block_rows: rows of M per program; must divide the (padded) H (default: ``default_block_rows``).
      interpret: run Pallas in interpret mode; None = only on CPU, where nothing else exists.
      pad_hidden: zero-pad H to a power of two (Triton tiles need one); None = whenever compiled. Padded rows
        and columns have a = b = w = k = q = 0, so C = 1, U = 0 there and nothing leaks into the real entries.

    Returns:
      (M_T float32[B, H, H], h float32[T, B, H]).
    """
    if interpret is None:
        interpret = jax.default_backend() == "cpu"
    hsz = carry.shape[-1]
    padded = 1 << (hsz - 1).bit_length() if (not interpret if pad_hidden is None else pad_hidden) else hsz
    rows = default_block_rows(padded) if block_rows is None else block_rows
    if not isinstance(rows, int) or isinstance(rows, bool) or rows <= 0 or padded % rows:
        raise ValueError(f"fused_shm_scan: block_rows must be a positive divisor of H = {padded}, got {block_rows!r}")
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size <= 0:
        raise ValueError(f"fused_shm_scan: chunk_size must be a positive integer, got {chunk_size!r}")
    chunk = min(chunk_size, starts.shape[0])
    dtype = carry.dtype
    extra = padded - hsz
    vectors = [jnp.pad(jnp.asarray(x, dtype), [(0, 0), (0, 0), (0, extra)]) for x in (a, b, w, k, q)]
    carry_p = jnp.pad(carry, [(0, 0), (0, extra), (0, extra)])
    final, h = _fused(carry_p, starts.astype(bool), *vectors, chunk, rows, bool(interpret))
    return final[:, :hsz, :hsz], h[..., :hsz]
