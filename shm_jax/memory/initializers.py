"""Initialisers that stay safe under ``vmap`` on CPU.

Flax's ``orthogonal`` initialiser calls ``jnp.linalg.qr``. Under ``vmap`` (seeds and sweeps initialised in
one program) that becomes a batched LAPACK call, which on jaxlib 0.10.2's CPU backend can deadlock its own
thread pool on a 2-core machine (observed with gdb in about 3 of 4 tries). ``orthogonal`` here computes the
same thing but turns any batch of QRs into a sequential ``lax.map`` of unbatched ones.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_batching.custom_vmap
def _qr(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    q, r = jnp.linalg.qr(a)
    return q, r


@_qr.def_vmap
def _qr_batched(axis_size, in_batched, a):
    del axis_size, in_batched  # a is batched along axis 0
    # Calling _qr (not jnp.linalg.qr) inside the map keeps nested vmaps on this rule too.
    return jax.lax.map(_qr, a), (True, True)


def orthogonal(scale: float = 1.0):
    """Haar-orthogonal matrices times ``scale``, equal to ``flax.linen.initializers.orthogonal(scale)``
    (column axis -1) for the same key, and vmap-safe."""

    def init(key, shape, dtype=jnp.float32):
        if len(shape) < 2:
            raise ValueError(f"orthogonal: shape must have rank >= 2, got {shape}")
        n_cols = shape[-1]
        n_rows = 1
        for dim in shape[:-1]:
            n_rows *= dim
        matrix_shape = (n_cols, n_rows) if n_rows < n_cols else (n_rows, n_cols)
        q, r = _qr(jax.random.normal(key, matrix_shape, dtype))
        q = q * jnp.sign(jnp.diag(r))  # Haar measure: fix the sign ambiguity of QR
        if n_rows < n_cols:
            q = q.T
        return scale * jnp.reshape(q, shape).astype(dtype)

    return init
