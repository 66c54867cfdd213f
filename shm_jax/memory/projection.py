"""A linear layer whose output can be handed on unapplied, so that the next linear layer folds into it.

The paper's POPGym agent projects SHM's read-out (H = 128) to 1024 features, and the agent's trunk maps those
to 64 with no nonlinearity in between:

    (x W_o + b_o) W_p + b_p  =  x (W_o W_p) + (b_o W_p + b_p)

Folded, a step costs H x 64 multiply-adds instead of H x 1024 + 1024 x 64 (16x fewer at H = 128), in the
forward and in the backward; the two weight products are per update, not per step. The parameters, their
initialisation and their gradients are those of the two separate layers (the order of the float additions
differs, nothing else).

:class:`Linear` is ``flax.linen.Dense`` (same parameter names, shapes, initialisers, dtype promotion) with two
additions: ``defer=True`` returns :class:`AffineOutput` instead of applying the layer, and an ``AffineOutput``
input is folded into the kernel instead of being materialised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct
from flax.linen.dtypes import promote_dtype


def _affine(x: jax.Array, kernel: jax.Array, bias: jax.Array | None) -> jax.Array:
    y = jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))
    return y if bias is None else y + jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))


class AffineOutput(struct.PyTreeNode):
    """``x @ kernel + bias``, not computed yet. x [..., K], kernel float32[K, F], bias float32[F] or None."""

    x: jax.Array
    kernel: jax.Array
    bias: jax.Array | None
    dtype: Any = struct.field(pytree_node=False, default=None)  # compute dtype (None: from the operands)

    @property
    def features(self) -> int:
        """F, the width of the output this stands for."""
        return self.kernel.shape[-1]

    def materialize(self) -> jax.Array:
        """The output [..., F], computed as ``flax.linen.Dense`` computes it."""
        return _affine(*promote_dtype(self.x, self.kernel, self.bias, dtype=self.dtype))


class Linear(nn.Module):
    """``flax.linen.Dense`` that can defer its output and fold a deferred input (see the module docstring).

    ``__call__(inputs, defer=False)``: inputs [..., K] or an :class:`AffineOutput` of width K; returns
    [..., features], or an :class:`AffineOutput` of width ``features`` when ``defer``.
    """

    features: int
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    kernel_init: Callable = nn.linear.default_kernel_init
    bias_init: Callable = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, inputs, defer: bool = False):
        folding = isinstance(inputs, AffineOutput)
        in_features = inputs.features if folding else jnp.shape(inputs)[-1]
        kernel = self.param("kernel", self.kernel_init, (in_features, self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        if folding:
            # (x K1 + b1) K2 + b2 = x (K1 K2) + (b1 K2 + b2), the products in the parameters' float32
            x, previous = inputs.x, inputs
            folded_bias = None if previous.bias is None else previous.bias @ kernel
            if bias is not None:
                folded_bias = bias if folded_bias is None else folded_bias + bias
            kernel, bias = previous.kernel @ kernel, folded_bias
        else:
            x = inputs
        out = AffineOutput(x, kernel, bias, self.dtype)
        return out if defer else out.materialize()
