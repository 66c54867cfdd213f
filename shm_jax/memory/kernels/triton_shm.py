"""The fused SHM kernel, GPU structure (Triton), forward and backward; also CPU's interpret-mode kernel.

Grid (batch, row block): each program owns ``rows`` rows of one sequence's memory for the whole sequence and
walks time in a loop, reading one step's vectors at a dynamic position: a [rows, 1] column of the row-side
vectors (a, w, h and their gradients, [B, H, T]) and a [1, H] row of the column-side ones (b, k, q, [B, T, H]).
Triton accepts these 1-wide dynamic loads; Mosaic (TPU) does not, hence ``mosaic_shm``.

The forward pass stores M at chunk boundaries ([T/L, rows, H] per program); the backward pass re-runs one chunk
from its boundary into a [L, rows, H] workspace and walks it in reverse with the adjoint recurrence. Column-side
gradients are partial sums over this program's rows ([B, R, T, H]); the caller adds them.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pl_triton

from shm_jax.memory.kernels.common import step_forward

_SQ = pl.squeezed


def _forward_kernel(
    start_ref,
    a_ref,
    b_ref,
    w_ref,
    k_ref,
    q_ref,
    m0_ref,
    h_ref,
    m_final_ref,
    boundary_ref,
    *,
    chunk: int,
    num_chunks: int,
):
    """One (sequence, row block). Refs: start [1, T]; a, w, h [rows, T]; b, k, q [T, H];
    m0, m_final [rows, H]; boundary [num_chunks, rows, H] (M before each chunk)."""

    def chunk_body(c, memory):
        boundary_ref[c] = memory

        def step(i, memory):
            t = c * chunk + i
            col = pl.ds(t, 1)
            memory, _, _ = step_forward(
                memory, start_ref[:, col], a_ref[:, col], b_ref[col, :], w_ref[:, col], k_ref[col, :]
            )
            h_ref[:, col] = jnp.sum(memory * q_ref[col, :], axis=1, keepdims=True)
            return memory

        return jax.lax.fori_loop(0, chunk, step, memory)

    m_final_ref[...] = jax.lax.fori_loop(0, num_chunks, chunk_body, m0_ref[...])


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
    prev_ref,
    *,
    chunk: int,
    num_chunks: int,
):
    """Adjoint of ``_forward_kernel`` for one (sequence, row block).

    Outputs: da, dw [rows, T]; db, dk, dq [T, H] (partial sums over this block's rows); dm0 [rows, H].
    prev_ref [chunk, rows, H] is workspace: M_{t-1} (after the reset) for every step of the current chunk.
    """

    def chunk_body(j, grad):
        c = num_chunks - 1 - j

        def recompute(i, memory):
            t = c * chunk + i
            col = pl.ds(t, 1)
            memory, prev, _ = step_forward(
                memory, start_ref[:, col], a_ref[:, col], b_ref[col, :], w_ref[:, col], k_ref[col, :]
            )
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


def _compiler_params(warps: int, interpret: bool):
    """One pipeline stage: the loops carry M through registers, there is nothing to prefetch across steps."""
    return None if interpret else pl_triton.CompilerParams(num_warps=warps, num_stages=1)


def _specs(hsz: int, steps: int, rows: int, num_chunks: int):
    """BlockSpecs shared by both kernels, for the grid (batch, row block)."""
    row_side = pl.BlockSpec((_SQ, rows, steps), lambda b, r: (b, r, 0))  # [B, H, T]
    col_side = pl.BlockSpec((_SQ, steps, hsz), lambda b, r: (b, 0, 0))  # [B, T, H]
    starts = pl.BlockSpec((_SQ, 1, steps), lambda b, r: (b, 0, 0))  # [B, 1, T]
    tile = pl.BlockSpec((_SQ, rows, hsz), lambda b, r: (b, r, 0))  # [B, H, H]
    boundary = pl.BlockSpec((_SQ, num_chunks, rows, hsz), lambda b, r: (b, 0, r, 0))
    partial = pl.BlockSpec((_SQ, _SQ, steps, hsz), lambda b, r: (b, r, 0, 0))  # [B, R, T, H]
    return row_side, col_side, starts, tile, boundary, partial


def forward_call(carry, starts, a, b, w, k, q, *, chunk, rows, warps, interpret):
    """Batch-major padded inputs -> (h [B, H, T'], M_T [B, H, H], boundaries [B, T'/L, H, H]).

    carry [B, H, H]; starts [B, 1, T']; a, w [B, H, T']; b, k, q [B, T', H]; T' a multiple of ``chunk``.
    """
    batch, hsz, steps = a.shape
    num_chunks = steps // chunk
    row_side, col_side, start_spec, tile, boundary, _ = _specs(hsz, steps, rows, num_chunks)
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
        compiler_params=_compiler_params(warps, interpret),
        name="shm_fused_forward",
    )(starts, a, b, w, k, q, carry)


def backward_call(starts, a, b, w, k, q, boundaries, dh, dm_final, *, chunk, rows, warps, interpret):
    """-> (da, dw [B, H, T'], db, dk, dq [B, T', H], dM_0 [B, H, H]); dh [B, H, T'], dm_final [B, H, H]."""
    batch, hsz, steps = a.shape
    num_chunks = steps // chunk
    num_blocks = hsz // rows
    row_side, col_side, start_spec, tile, boundary, partial = _specs(hsz, steps, rows, num_chunks)
    workspace = pl.BlockSpec((_SQ, _SQ, chunk, rows, hsz), lambda b_, r: (b_, r, 0, 0, 0))
    kernel = functools.partial(_backward_kernel, chunk=chunk, num_chunks=num_chunks)
    dtype = dm_final.dtype
    outs = pl.pallas_call(
        kernel,
        grid=(batch, num_blocks),
        in_specs=[start_spec, row_side, col_side, row_side, col_side, col_side, boundary, row_side, tile],
        out_specs=[row_side, row_side, partial, partial, partial, tile, workspace],
        out_shape=[
            jax.ShapeDtypeStruct((batch, hsz, steps), dtype),  # da
            jax.ShapeDtypeStruct((batch, hsz, steps), dtype),  # dw
            jax.ShapeDtypeStruct((batch, num_blocks, steps, hsz), dtype),  # db (partial)
            jax.ShapeDtypeStruct((batch, num_blocks, steps, hsz), dtype),  # dk (partial)
            jax.ShapeDtypeStruct((batch, num_blocks, steps, hsz), dtype),  # dq (partial)
            jax.ShapeDtypeStruct((batch, hsz, hsz), dtype),  # dM_0
            # Workspace as an output, not scratch_shapes: portable across interpret mode and Triton.
            jax.ShapeDtypeStruct((batch, num_blocks, chunk, rows, hsz), dtype),
        ],
        interpret=interpret,
        compiler_params=_compiler_params(warps, interpret),
        name="shm_fused_backward",
    )(starts, a, b, w, k, q, boundaries, dh, dm_final)
    da, dw, db, dk, dq, dm0, _ = outs
    return da, dw, db.sum(axis=1), dk.sum(axis=1), dq.sum(axis=1), dm0
