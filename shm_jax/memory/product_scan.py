"""The SHM recurrence in its product form, as a plain XLA loop with a hand-written lean gradient.

    C_t = 1 + tanh(a_t ⊗ b_t),   U_t = w_t ⊗ k_t,   M_t = M_{t-1} ⊙ C_t + U_t,   h_t = M_t q_t

(a = θ_t, b = v_c,t, w = η_t v_t), M reset to 0 before a step whose start flag is set. The same math as
the Pallas kernel (``pallas_shm``) written for XLA: this is SHM's "sequential" path on CPU.

Why not the generic lean scan of ``scan.py``: its backward pulls cotangents back through ``make_cu`` with
``jax.vjp``, so the outer products' gradients become broadcast-multiply-reduce ops, and XLA:CPU runs those
reductions over [B, H, H] several times slower than the same contractions written as batched
matrix-vector products. Here every reduction is an einsum. The backward computes a chunk's C_t in one batched
pass, recomputes its M_t from the stored boundary (keeping them, and d_q = M_t^T dh_t), and runs the adjoint
on those: it evaluates no tanh (1 - tanh² = 1 - (C_t - 1)²) and rebuilds no memory. Keeping M_t rather than
M_{t-1} ⊙ (1 - tanh²) matters on XLA:CPU: a value that needs M_{t-1} next to the in-place update of the carry
makes XLA copy the [B, H, H] carry every step (benchmarks/results/memory_speed.md).

Memory: the forward keeps M at chunk boundaries only ([T/L, B, H, H]); the backward recomputes one chunk
at a time ([L, B, H, H] for C_t and for M_t), as in ``scan._sequential``. Padded steps (T not a
multiple of L) are zeros: a = w = 0 makes them identities, no reset.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from shm_jax.memory.scan import from_chunks, to_chunks


def _reset(start: jax.Array, memory: jax.Array) -> jax.Array:
    """Zero the memories whose sequence starts an episode at this step. start: bool[B]; memory [B, H, H]."""
    return jnp.where(start[:, None, None], jnp.zeros_like(memory), memory)


def _outer(x: jax.Array, y: jax.Array) -> jax.Array:
    return x[:, :, None] * y[:, None, :]


def _forward(carry, starts, a, b, w, k, q, chunk):
    def chunk_body(memory, xs):
        def step(memory, xs_t):
            start, a_t, b_t, w_t, k_t, q_t = xs_t
            memory = _reset(start, memory) * (1.0 + jnp.tanh(_outer(a_t, b_t))) + _outer(w_t, k_t)
            return memory, jnp.einsum("bij,bj->bi", memory, q_t)

        boundary = memory
        memory, h = jax.lax.scan(step, memory, xs)
        return memory, (h, boundary)

    xs = tuple(to_chunks(x, chunk) for x in (starts, a, b, w, k, q))
    final, (h, boundaries) = jax.lax.scan(chunk_body, carry, xs)
    return final, from_chunks(h, starts.shape[0]), boundaries


@functools.partial(jax.custom_vjp, nondiff_argnums=(7,))
def _scan(carry, starts, a, b, w, k, q, chunk):
    final, h, _ = _forward(carry, starts, a, b, w, k, q, chunk)
    return final, h


def _scan_fwd(carry, starts, a, b, w, k, q, chunk):
    final, h, boundaries = _forward(carry, starts, a, b, w, k, q, chunk)
    return (final, h), (boundaries, starts, a, b, w, k, q)


def _scan_bwd(chunk, residuals, cotangents):
    boundaries, starts, a, b, w, k, q = residuals
    d_final, d_h = cotangents
    xs = tuple(to_chunks(x, chunk) for x in (starts, a, b, w, k, q, d_h))

    def chunk_body(grad, xs_chunk):
        boundary, (starts_c, a_c, b_c, w_c, k_c, q_c, dh_c) = xs_chunk[0], xs_chunk[1:]

        # C_t of the whole chunk in one batched pass ([L, B, H, H], written once), then forward again from the
        # chunk's stored memory, keeping M_t (written after the in-place update, so XLA needs no copy of
        # M_{t-1}) and computing d_q, which needs M_t only.
        calibrations = 1.0 + jnp.tanh(a_c[..., :, None] * b_c[..., None, :])

        def recompute(memory, xs_t):
            start, calibration, w_t, k_t, dh_t = xs_t
            memory = _reset(start, memory) * calibration + _outer(w_t, k_t)
            d_q = jnp.einsum("bij,bi->bj", memory, dh_t)
            return memory, (memory, d_q)

        _, (memories, d_q) = jax.lax.scan(recompute, boundary, (starts_c, calibrations, w_c, k_c, dh_c))

        def adjoint(grad, xs_t):
            # grad = dL/dM_t from the future (already through C_{t+1}); add this step's read-out.
            t, start, a_t, b_t, w_t, k_t, q_t, dh_t, calibration = xs_t
            grad = grad + _outer(dh_t, q_t)
            # M_{t-1}: the chunk's stored memory at t = 0, else the recomputed one (read in place, never copied)
            prev = _reset(start, jnp.where(t == 0, boundary, memories[jnp.maximum(t - 1, 0)]))
            tanh = calibration - 1.0
            d_logits = grad * prev * (1.0 - tanh * tanh)  # dL/d(a ⊗ b): M_{t-1} ⊙ (1 - tanh²) ⊙ dL/dM_t
            d_a = jnp.einsum("bij,bj->bi", d_logits, b_t)
            d_b = jnp.einsum("bij,bi->bj", d_logits, a_t)
            d_w = jnp.einsum("bij,bj->bi", grad, k_t)
            d_k = jnp.einsum("bij,bi->bj", grad, w_t)
            return _reset(start, grad * calibration), (d_a, d_b, d_w, d_k)

        steps = jnp.arange(starts_c.shape[0])
        grad, (d_a, d_b, d_w, d_k) = jax.lax.scan(
            adjoint, grad, (steps, starts_c, a_c, b_c, w_c, k_c, q_c, dh_c, calibrations), reverse=True
        )
        return grad, (d_a, d_b, d_w, d_k, d_q)

    d_carry, grads = jax.lax.scan(chunk_body, d_final, (boundaries,) + xs, reverse=True)
    d_a, d_b, d_w, d_k, d_q = (from_chunks(g, starts.shape[0]) for g in grads)
    return d_carry, None, d_a, d_b, d_w, d_k, d_q


_scan.defvjp(_scan_fwd, _scan_bwd)


def product_form_scan(carry, starts, a, b, w, k, q, *, chunk_size: int = 64):
    """The SHM recurrence and read-out with the lean gradient; same contract as ``pallas_shm.fused_shm_scan``.

    Args:
      carry: M_0, float32[B, H, H].  starts: bool[T, B].
      a, b: rows and columns of the calibration logits, [T, B, H];  w = η v, k, q: [T, B, H].
      chunk_size: L, steps between stored memories (``shm.sequential_chunk_size`` is SHM's default).

    Returns:
      (M_T float32[B, H, H], h float32[T, B, H]).
    """
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size <= 0:
        raise ValueError(f"product_form_scan: chunk_size must be a positive integer, got {chunk_size!r}")
    chunk = min(chunk_size, starts.shape[0])
    dtype = carry.dtype
    a, b, w, k, q = (jnp.asarray(x, dtype) for x in (a, b, w, k, q))
    return _scan(carry, starts.astype(bool), a, b, w, k, q, chunk)
