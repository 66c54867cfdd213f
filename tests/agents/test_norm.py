"""shm_jax.agents.norm.LayerNorm is flax's LayerNorm (defaults) to float32 rounding, with the same parameters."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.agents.norm import LayerNorm


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("offset", [0.0, 3.0])  # rows far from zero mean: the E[x^2] - E[x]^2 variance path
def test_equals_flax_layer_norm_with_the_same_parameters(dtype, offset):
    x = (jax.random.normal(jax.random.key(0), (7, 5, 64)) * 2.0 + offset).astype(dtype)
    ours, theirs = LayerNorm(epsilon=1e-5, dtype=dtype), nn.LayerNorm(epsilon=1e-5, dtype=dtype)
    params = theirs.init(jax.random.key(1), x)
    assert jax.tree.map(lambda p: (p.shape, p.dtype), ours.init(jax.random.key(1), x)) == jax.tree.map(
        lambda p: (p.shape, p.dtype), params
    )
    # trained-looking affine parameters, so scale and bias enter the comparison
    keys = jax.random.split(jax.random.key(2), 2)
    params = {"params": {"scale": 1.0 + jax.random.normal(keys[0], (64,)), "bias": jax.random.normal(keys[1], (64,))}}
    got, want = ours.apply(params, x), theirs.apply(params, x)
    assert got.dtype == want.dtype == dtype
    tol = 1e-5 if dtype == jnp.float32 else 2e-2
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32), rtol=tol, atol=tol)
    # gradients too: the Q head trains through it
    loss = lambda m, p: jnp.sum(jnp.sin(m.apply(p, x).astype(jnp.float32)))  # noqa: E731
    g_ours, g_theirs = jax.grad(lambda p: loss(ours, p))(params), jax.grad(lambda p: loss(theirs, p))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3), g_ours, g_theirs)
