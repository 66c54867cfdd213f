"""envs.sampling: the row-by-row search picks the same entry as the flat inverse CDF, always a True one,
and uniformly among them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shm_jax.envs.sampling import uniform_true_cell, uniform_true_index


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 24), w=st.integers(1, 12), density=st.floats(0.05, 1.0), seed=st.integers(0, 2**16))
def test_cell_search_is_the_flat_inverse_cdf(h, w, density, seed):
    key_mask, key_u = jax.random.split(jax.random.key(seed))
    masks = jax.random.bernoulli(key_mask, density, (64, h, w)).at[:, 0, 0].set(True)  # at least one True
    draws = jax.random.uniform(key_u, (64,)).at[0].set(0.0).at[1].set(np.nextafter(np.float32(1), 0))
    flat = jax.vmap(lambda u, m: uniform_true_index(u, m.reshape(-1)))(draws, masks)
    rows, cols = jax.vmap(uniform_true_cell)(draws, masks)
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
