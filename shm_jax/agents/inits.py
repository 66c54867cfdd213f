"""Linear layers under the agent's two init schemes.

"orthogonal" (default): orthogonal weights, gain 1 for the feature map and head bodies and sqrt(2) for the
ReLU layers (pre/post), zero biases, final layers orthogonal with scale 0.01. "official": the official POPGym
agent (thaihungle/SHM ``base_model.py``): orthogonal gain 1 for feature map, pre, post and head bodies, final
weights N(0, 0.01), and every bias PyTorch's default U(±1/sqrt(fan_in)).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from shm_jax.memory.initializers import orthogonal

INITS = ("orthogonal", "official")


def torch_bias_init(fan_in: int):
    """PyTorch's default Linear bias init, U(±1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def dense(
    features: int, fan_in: int, role: str, init: str, name: str, dtype: Any = None, layer: type[nn.Module] = nn.Dense
) -> nn.Module:
    """Linear layer ``name`` of a ``role`` ("body", "relu": pre/post, "final": a head's output) under ``init``.

    layer: ``nn.Dense`` or ``memory.projection.Linear`` (the same layer, able to fold a deferred core output).
    """
    if init == "official":
        kernel = nn.initializers.normal(0.01) if role == "final" else orthogonal(1.0)
        return layer(features, kernel_init=kernel, bias_init=torch_bias_init(fan_in), dtype=dtype, name=name)
    scale = {"body": 1.0, "relu": math.sqrt(2.0), "final": 0.01}[role]
    return layer(features, kernel_init=orthogonal(scale), bias_init=nn.initializers.zeros, dtype=dtype, name=name)
