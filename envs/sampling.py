"""Uniform choice of a True entry of a mask by inverse CDF: one uniform draw, the k-th True entry.

A cumulative sum lowers to a reduce_window that XLA:CPU evaluates in O(n^2), so a mask of more than a
few dozen entries is searched row by row (two short sums). Both functions pick the same entry for the same
draw (the k-th True entry in row-major order), so the episodes an environment generates do not depend on
which one it calls.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def uniform_true_index(u: jax.Array, mask: jax.Array) -> jax.Array:
    """Index of the True entry of bool[n] ``mask`` chosen by the uniform draw ``u`` in [0, 1): the k-th True
    entry, k = floor(u * count). For short masks (n up to a few dozen); longer ones: :func:`uniform_true_cell`."""
    k = jnp.floor(u * jnp.sum(mask)).astype(jnp.int32)
    return jnp.argmax(jnp.cumsum(mask) > k)


def uniform_true_cell(u: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(row, col) of the True entry of bool[h, w] ``mask`` chosen by the uniform draw ``u`` in [0, 1).

    The same entry as ``uniform_true_index(u, mask.reshape(-1))``: the row by its count, then the column
    within it.
    """
    row_counts = jnp.sum(mask, axis=1)
    k = jnp.floor(u * jnp.sum(row_counts)).astype(jnp.int32)
    row = jnp.argmax(jnp.cumsum(row_counts) > k)
    rows = jnp.arange(mask.shape[0])
    in_row = jnp.any(mask & (rows[:, None] == row), axis=0)  # mask[row] without a gather
    k_in_row = k - jnp.sum(jnp.where(rows < row, row_counts, 0))
    col = jnp.argmax(jnp.cumsum(in_row) > k_in_row)
    return row, col
