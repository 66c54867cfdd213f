"""Spaces gymnax 1.0 lacks. ``MultiDiscrete`` matches gymnasium's: one integer per component.

Battleship and MineSweeper act with a (row, column) pair, as in the original popgym.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from gymnax.environments import spaces


class MultiDiscrete(spaces.Space):
    """Vector of ``len(nvec)`` integers, component i in ``[0, nvec[i])``.

    Attributes: nvec (tuple[int, ...]), shape ``(len(nvec),)``, dtype int32.
    """

    def __init__(self, nvec: Sequence[int]):
        nvec = tuple(int(n) for n in nvec)
        if not nvec or any(n <= 0 for n in nvec):
            raise ValueError(f"MultiDiscrete: nvec must be non-empty positive integers, got {nvec}")
        self.nvec = nvec
        self.shape = (len(nvec),)
        self.dtype = jnp.int32

    def __repr__(self) -> str:
        return f"MultiDiscrete({list(self.nvec)})"

    def sample(self, key: jax.Array) -> jax.Array:
        """Uniform over every component independently. Returns int32[len(nvec)]."""
        u = jax.random.uniform(key, self.shape)
        return jnp.floor(u * jnp.asarray(self.nvec, jnp.float32)).astype(jnp.int32)

    def contains(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        return jnp.all((x >= 0) & (x < jnp.asarray(self.nvec)))
