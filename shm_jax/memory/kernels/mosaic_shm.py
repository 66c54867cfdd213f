"""The fused SHM kernel, TPU structure (Mosaic), forward and backward.

Mosaic loads and stores vectors in (8, 128) tiles and must prove at compile time that a dynamic index on the
lane (last) axis is a multiple of 128, so the GPU kernel's one-column read at a dynamic time step cannot
compile. Here time is a grid axis: grid (batch, time block, row block), the last two sequential ("arbitrary"),
and each program sees one time block of L steps (L = 128, or the whole sequence when T <= 128):

- row-side vectors (a, w, dh, starts; [B, H, T']) arrive as a [rows, L] block; step i's column is a masked lane
  sum of the block (no dynamic lane index), and per-step row-side results (h, da, dw) are merged into a
  [rows, L] register block with a lane mask and stored whole;
- column-side vectors (b, k, q; [B, T', H]) arrive as an [L, H] block and step i reads or writes row i: a
  dynamic index on the sublane axis, which Mosaic supports for 32-bit data;
- M (forward) and dL/dM (backward) live in an [R, rows, H] VMEM scratch (every row block's tile) across time
  blocks; the backward grid walks the time blocks in reverse through its index maps and recomputes each block's
  memories from the stored boundary into an [L, rows, H] VMEM workspace;
- row blocks are the innermost grid axis, so a time block's column-side inputs are fetched once for all row
  blocks and the column-side gradients (sums over rows) accumulate in one resident [L, H] output block.

Blocks are a few hundred KiB whatever T is, so VMEM use does not grow with the sequence.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from shm_jax.memory.kernels.common import step_forward

_SQ = pl.squeezed
LANES = 128
# Elements of one [rows, H] tile of M: 4096 float32 = four (8, 128) vregs, so the backward step's ~10 live
# tiles fit the 64 vector registers.
_TILE_ELEMENTS = 4096


def time_block(length: int) -> int:
    """L, steps per time block: the whole sequence up to 128 steps (a block equal to the array is always
    legal), else 128 (the lane width; T is padded to a multiple)."""
    return length if length <= LANES else LANES


def default_block_rows(hsz: int) -> int:
    """Rows of M per program: the largest divisor of H that is a multiple of 8 (the sublane tile) or H itself,
    with rows x (H padded to 128 lanes) <= 4096 elements; at least the smallest legal divisor."""
    lanes = -(-hsz // LANES) * LANES
    legal = [d for d in range(1, hsz + 1) if hsz % d == 0 and (d % 8 == 0 or d == hsz)]
    fitting = [d for d in legal if d * lanes <= _TILE_ELEMENTS]
    return max(fitting) if fitting else min(legal)


def check_block_rows(hsz: int, rows: int) -> None:
    if hsz % rows or (rows % 8 and rows != hsz):
        raise ValueError(
            f"fused_shm_scan: block_rows on TPU must divide H = {hsz} and be a multiple of 8 or H itself, got {rows}"
        )


def _column(block, lanes, i):
    """Column i of a [n, L] block as [n, 1], by a masked lane sum (exact: one non-zero term per row)."""
    return jnp.sum(jnp.where(lanes == i, block, 0.0), axis=1, keepdims=True)


def _forward_kernel(start_ref, a_ref, b_ref, w_ref, k_ref, q_ref, m0_ref, h_ref, m_final_ref, boundary_ref, memory_ref):
    """One (sequence, time block, row block r). Refs: start [1, L]; a, w, h [rows, L]; b, k, q [L, H];
    m0, m_final [rows, H]; memory (scratch) [R, rows, H]; boundary [rows, H] (M before this time block)."""
    r = pl.program_id(2)

    @pl.when(pl.program_id(1) == 0)
    def _():
        memory_ref[r] = m0_ref[...]

    boundary_ref[...] = memory_ref[r]
    starts, a, w = start_ref[...], a_ref[...], w_ref[...]
    lanes = jax.lax.broadcasted_iota(jnp.int32, a.shape, 1)
    start_lanes = jax.lax.broadcasted_iota(jnp.int32, starts.shape, 1)

    def step(i, carry):
        memory, h = carry
        row = pl.ds(i, 1)
        memory, _, _ = step_forward(
            memory,
            _column(starts, start_lanes, i),
            _column(a, lanes, i),
            b_ref[row, :],
            _column(w, lanes, i),
            k_ref[row, :],
        )
        h_i = jnp.sum(memory * q_ref[row, :], axis=1, keepdims=True)
        return memory, jnp.where(lanes == i, h_i, h)

    memory, h = jax.lax.fori_loop(0, a.shape[1], step, (memory_ref[r], jnp.zeros_like(a)))
    h_ref[...] = h
    memory_ref[r] = memory
    m_final_ref[...] = memory  # written whole at every time block: the last one's value is what remains


def _backward_kernel(
    start_ref,
    a_ref,
    b_ref,
    w_ref,
    k_ref,
    q_ref,
    boundary_ref,
    dh_ref,
    dm_final_ref,
    da_ref,
    dw_ref,
    db_ref,
    dk_ref,
    dq_ref,
    dm0_ref,
    grad_ref,
    prev_ref,
):
    """Adjoint of ``_forward_kernel`` for one (sequence, time block, row block r), time blocks in reverse.

    Outputs: da, dw [rows, L]; db, dk, dq [L, H] (summed over the row blocks: resident while r runs);
    dm0 [rows, H]. Scratch: grad [R, rows, H] (dL/dM carried across time blocks); prev [L, rows, H]
    (M_{t-1} after the reset).
    """
    r = pl.program_id(2)

    @pl.when(pl.program_id(1) == 0)
    def _():
        grad_ref[r] = dm_final_ref[...]

    @pl.when(r == 0)
    def _():
        for ref in (db_ref, dk_ref, dq_ref):
            ref[...] = jnp.zeros_like(ref)

    starts, a, w, dh = start_ref[...], a_ref[...], w_ref[...], dh_ref[...]
    lanes = jax.lax.broadcasted_iota(jnp.int32, a.shape, 1)
    start_lanes = jax.lax.broadcasted_iota(jnp.int32, starts.shape, 1)
    steps = a.shape[1]

    def recompute(i, memory):
        row = pl.ds(i, 1)
        memory, prev, _ = step_forward(
            memory,
            _column(starts, start_lanes, i),
            _column(a, lanes, i),
            b_ref[row, :],
            _column(w, lanes, i),
            k_ref[row, :],
        )
        prev_ref[i] = prev
        return memory

    jax.lax.fori_loop(0, steps, recompute, boundary_ref[...])

    def step(r, carry):
        grad, da, dw = carry
        i = steps - 1 - r
        row = pl.ds(i, 1)
        a_i, w_i, dh_i = _column(a, lanes, i), _column(w, lanes, i), _column(dh, lanes, i)  # [rows, 1]
        b_i, k_i, q_i = b_ref[row, :], k_ref[row, :], q_ref[row, :]  # [1, H]
        prev = prev_ref[i]
        tanh = jnp.tanh(a_i * b_i)
        calibration = 1.0 + tanh
        memory = prev * calibration + w_i * k_i
        dq_ref[row, :] += jnp.sum(dh_i * memory, axis=0, keepdims=True)
        grad = grad + dh_i * q_i
        d_logits = grad * prev * (1.0 - tanh * tanh)  # dL/d(a ⊗ b)
        db_ref[row, :] += jnp.sum(d_logits * a_i, axis=0, keepdims=True)
        dk_ref[row, :] += jnp.sum(grad * w_i, axis=0, keepdims=True)
        da = jnp.where(lanes == i, jnp.sum(d_logits * b_i, axis=1, keepdims=True), da)
        dw = jnp.where(lanes == i, jnp.sum(grad * k_i, axis=1, keepdims=True), dw)
        start = _column(starts, start_lanes, i)
        return jnp.where(start > 0, jnp.zeros_like(grad), grad * calibration), da, dw

    zeros = jnp.zeros_like(a)
    grad, da, dw = jax.lax.fori_loop(0, steps, step, (grad_ref[r], zeros, zeros))
    da_ref[...] = da
    dw_ref[...] = dw
    grad_ref[r] = grad
    dm0_ref[...] = grad


def _compiler_params(interpret: bool):
    if interpret:
        return None
    return pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary", "arbitrary"))


def _specs(hsz: int, rows: int, block: int, num_blocks: int, reverse: bool):
    """BlockSpecs for the grid (batch, time block, row block); ``reverse`` walks time blocks last to first."""
    when = (lambda c: num_blocks - 1 - c) if reverse else (lambda c: c)
    row_side = pl.BlockSpec((_SQ, rows, block), lambda b, c, r: (b, r, when(c)))  # [B, H, T']
    col_side = pl.BlockSpec((_SQ, block, hsz), lambda b, c, r: (b, when(c), 0))  # [B, T', H]
    starts = pl.BlockSpec((_SQ, 1, block), lambda b, c, r: (b, 0, when(c)))  # [B, 1, T']
    tile = pl.BlockSpec((_SQ, rows, hsz), lambda b, c, r: (b, r, 0))  # [B, H, H]
    boundary = pl.BlockSpec((_SQ, _SQ, rows, hsz), lambda b, c, r: (b, when(c), r, 0))  # [B, N, H, H]
    return row_side, col_side, starts, tile, boundary


def forward_call(carry, starts, a, b, w, k, q, *, chunk, rows, interpret):
    """Batch-major padded inputs -> (h [B, H, T'], M_T [B, H, H], boundaries [B, T'/L, H, H]).

    carry [B, H, H]; starts [B, 1, T']; a, w [B, H, T']; b, k, q [B, T', H]; ``chunk`` = L = time_block(T),
    T' a multiple of it.
    """
    batch, hsz, steps = a.shape
    num_blocks = steps // chunk
    row_blocks = hsz // rows
    row_side, col_side, start_spec, tile, boundary = _specs(hsz, rows, chunk, num_blocks, reverse=False)
    return pl.pallas_call(
        _forward_kernel,
        grid=(batch, num_blocks, row_blocks),
        in_specs=[start_spec, row_side, col_side, row_side, col_side, col_side, tile],
        out_specs=[row_side, tile, boundary],
        out_shape=[
            jax.ShapeDtypeStruct((batch, hsz, steps), carry.dtype),
            jax.ShapeDtypeStruct((batch, hsz, hsz), carry.dtype),
            jax.ShapeDtypeStruct((batch, num_blocks, hsz, hsz), carry.dtype),
        ],
        scratch_shapes=[pltpu.VMEM((row_blocks, rows, hsz), carry.dtype)],
        interpret=interpret,
        compiler_params=_compiler_params(interpret),
        name="shm_fused_forward_tpu",
    )(starts, a, b, w, k, q, carry)


def backward_call(starts, a, b, w, k, q, boundaries, dh, dm_final, *, chunk, rows, interpret):
    """-> (da, dw [B, H, T'], db, dk, dq [B, T', H], dM_0 [B, H, H]); dh [B, H, T'], dm_final [B, H, H]."""
    batch, hsz, steps = a.shape
    num_blocks = steps // chunk
    row_blocks = hsz // rows
    row_side, col_side, start_spec, tile, boundary = _specs(hsz, rows, chunk, num_blocks, reverse=True)
    dtype = dm_final.dtype
    row_out = jax.ShapeDtypeStruct((batch, hsz, steps), dtype)  # da, dw
    col_out = jax.ShapeDtypeStruct((batch, steps, hsz), dtype)  # db, dk, dq
    return tuple(
        pl.pallas_call(
            _backward_kernel,
            grid=(batch, num_blocks, row_blocks),
            in_specs=[start_spec, row_side, col_side, row_side, col_side, col_side, boundary, row_side, tile],
            out_specs=[row_side, row_side, col_side, col_side, col_side, tile],
            out_shape=[row_out, row_out, col_out, col_out, col_out, jax.ShapeDtypeStruct((batch, hsz, hsz), dtype)],
            scratch_shapes=[pltpu.VMEM((row_blocks, rows, hsz), dtype), pltpu.VMEM((chunk, rows, hsz), dtype)],
            interpret=interpret,
            compiler_params=_compiler_params(interpret),
            name="shm_fused_backward_tpu",
        )(starts, a, b, w, k, q, boundaries, dh, dm_final)
    )
