"""envs.sampling: the row-by-row search picks the same entry as the flat inverse CDF, always a True one,
and uniformly among them."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shm_jax.envs.sampling import uniform_true_cell, uniform_true_index

# Mask shapes (h, w) up to 24 x 12: a single cell, a single row or column, the largest, odd ones in between. A fixed
# set: each shape compiles its own program (about 1 s), so 30 random shapes cost 30 compiles; densities and seeds vary.
SHAPES = [(1, 1), (1, 12), (24, 1), (3, 11), (7, 5), (24, 12)]


@functools.partial(jax.jit, static_argnums=(0, 1))
def _flat_and_cell_search(h, w, density, seed):
    """64 masks of shape (h, w) and 64 draws (including 0 and the largest float below 1): both searches' picks.

    One compiled program per shape (run eagerly, every primitive compiles on its own for each new shape)."""
    key_mask, key_u = jax.random.split(jax.random.key(seed))
    masks = jax.random.bernoulli(key_mask, density, (64, h, w)).at[:, 0, 0].set(True)  # at least one True
    draws = jax.random.uniform(key_u, (64,)).at[0].set(0.0).at[1].set(np.nextafter(np.float32(1), 0))
    flat = jax.vmap(lambda u, m: uniform_true_index(u, m.reshape(-1)))(draws, masks)
    rows, cols = jax.vmap(uniform_true_cell)(draws, masks)
    return masks, flat, rows, cols


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(shape=st.sampled_from(SHAPES), density=st.floats(0.05, 1.0), seed=st.integers(0, 2**16))
def test_cell_search_is_the_flat_inverse_cdf(shape, density, seed):
    h, w = shape
    masks, flat, rows, cols = _flat_and_cell_search(h, w, density, seed)
    np.testing.assert_array_equal(np.asarray(rows * w + cols), np.asarray(flat))
    assert bool(jnp.all(masks[jnp.arange(64), rows, cols]))


def test_cell_search_is_uniform_over_true_entries():
    mask = np.zeros((24, 12), bool)
    mask[[0, 0, 5, 11, 23, 23], [0, 11, 3, 7, 0, 11]] = True
    rows, cols = jax.vmap(uniform_true_cell, in_axes=(0, None))(
        jax.random.uniform(jax.random.key(0), (6000,)), jnp.asarray(mask)
    )
    picked = np.asarray(rows) * 12 + np.asarray(cols)
    counts = np.bincount(picked, minlength=mask.size)
    assert counts[~mask.reshape(-1)].sum() == 0
    # 1000 expected per entry; SD ~29: a wrong inverse CDF moves whole rows' worth of mass
    np.testing.assert_allclose(counts[mask.reshape(-1)], 1000, atol=150)
