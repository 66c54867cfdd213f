"""The SHM step both kernels share, on a [rows, H] tile of M."""

from __future__ import annotations

import jax.numpy as jnp


def step_forward(memory, start, a, b, w, k):
    """Reset, then M ⊙ C + U, with C = 1 + tanh(a ⊗ b) and U = w ⊗ k.

    memory [rows, H]; start [1, 1] (> 0 resets); a, w [rows, 1]; b, k [1, H].
    Returns (M_t, M_{t-1} after the reset, tanh(a ⊗ b)), each [rows, H].
    """
    prev = jnp.where(start > 0, jnp.zeros_like(memory), memory)
    tanh = jnp.tanh(a * b)
    return prev * (1.0 + tanh) + w * k, prev, tanh
