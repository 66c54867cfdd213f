"""LayerNorm over the last axis, the same function and parameters as ``flax.linen.LayerNorm`` with its defaults
(learned ``scale`` and ``bias``, variance E[x^2] - E[x]^2 clipped at 0, statistics in float32), written as one
multiply-add per element: ``x * a + b`` with ``a = scale / sqrt(var + eps)`` and ``b = bias - mean * a`` per row.

Why not flax's: on the CPU its extra casts and the separate centring cost PQN's Q head, whose LayerNorm runs on
every step of every minibatch, a few percent of the whole update (``benchmarks/learner_throughput.py``)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class LayerNorm(nn.Module):
    """x [..., F] -> LayerNorm(x) [..., F] in ``dtype`` (None: x's dtype); params scale, bias float32[F]."""

    epsilon: float = 1e-5
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
        x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.maximum(jnp.mean(x32 * x32, axis=-1, keepdims=True) - mean * mean, 0.0)
        multiplier = jax.lax.rsqrt(var + self.epsilon) * scale
        return (x32 * multiplier + (bias - mean * multiplier)).astype(self.dtype or x.dtype)
