"""The recurrent trunk every agent shares: observation -> features -> time encoding -> pre -> memory -> post.

Layout (the paper's POPGym agent when configured as in ``presets.PRESETS["paper-popgym"]``):

1. observation flattened to float32[D]; the first ``pixel_features`` features (uint8 pixels, which
   ``envs``' flatten puts before any appended previous action / start flag) are divided by 255;
2. feature map Linear(D -> feature_size), then LayerNorm without affine (``feature_norm``) or ReLU;
3. optional sinusoidal encoding of the within-episode step t, blended as (1 - s) x + s PE(t) with a
   learnable s (init 0.5) kept in [0, 1] as the official code keeps it: ``project_params`` clips the parameter
   after every optimiser update, so the blend never sees s outside [0, 1] and its gradient is never cut (the
   forward clip below is an identity on projected params, with a pass-through gradient);
4. pre Linear(feature_size -> pre_size) + ReLU;
5. memory core (any ``shm_jax.memory`` core), called on [T, B, pre_size];
6. optional LayerNorm without affine parameters on the memory's output (``memory_norm``), an optional fixed gain
   (``readout_scale``), then post
   Linear(core.output_size -> post_size) + ReLU: the features every head reads.

A head module (``shm_jax.agents.heads``) IS a trunk with heads on top (a subclass that calls
:meth:`RecurrentTrunk.features` in its own ``__call__``), built from a trunk with ``Head.on(trunk, ...)``: the
trunk's parameters sit at the top of the head's parameter tree, named as above.

Precision: ``dtype`` (None / "float32", or "bfloat16") is the compute dtype of the Dense layers, the feature
LayerNorm and the time-encoding blend; parameters stay float32. The memory core has its own ``dtype``
(``shm_jax.build`` sets both from the ``precision`` option).

The recurrent state is ``AgentCarry(memory=<core carry>, step=int32[B])`` where ``step`` is the
within-episode index of the last processed observation (-1 before any). Start flags reset both.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from shm_jax.agents.inits import INITS, dense
from shm_jax.memory.precision import compute_dtype
from shm_jax.memory.projection import AffineOutput, Linear


class AgentCarry(struct.PyTreeNode):
    """memory: the core's carry (leading axis B); step: int32[B], within-episode index of the last obs."""

    memory: Any
    step: jax.Array


def sinusoidal_encoding(step: jax.Array, size: int, max_len: int) -> jax.Array:
    """PE(t): float32[..., size]; even dims sin(t w_i), odd dims cos(t w_i), w_i = max_len^(-2i/size).

    t is clipped to [0, max_len - 1], as a table of max_len rows would be indexed.
    """
    t = jnp.clip(step, 0, max_len - 1).astype(jnp.float32)[..., None]
    freqs = jnp.exp(-jnp.arange(0, size, 2, dtype=jnp.float32) * (math.log(max_len) / size))
    angles = t * freqs
    pe = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1).reshape(*angles.shape[:-1], -1)
    return pe[..., :size]


def episode_steps(prev_step: jax.Array, starts: jax.Array) -> jax.Array:
    """Within-episode index of each step: int32[T, B] from prev_step int32[B] and starts bool[T, B].

    t = 0 at a start, else previous + 1 (carried across calls through ``prev_step``).
    """
    T = starts.shape[0]
    idx = jnp.arange(T, dtype=jnp.int32)[:, None]
    last_start = jax.lax.cummax(jnp.where(starts, idx, -1), axis=0)
    return jnp.where(last_start >= 0, idx - last_start, prev_step[None, :] + 1 + idx).astype(jnp.int32)


class PatchConv(nn.Module):
    """A 2x2 convolution, stride 1, no padding, as one matmul over the four shifted views of the image: the function
    and parameters (``kernel`` [2, 2, C_in, C_out], ``bias``) of ``nn.Conv(features, (2, 2), padding="VALID")``,
    without XLA's CPU convolution, slower on such small images. x [N, H, W, C_in] -> [N, H-1, W-1, C_out]."""

    features: int
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = 4 * x.shape[-1]
        kernel = self.param(
            "kernel", nn.initializers.orthogonal(math.sqrt(2.0)), (2, 2, x.shape[-1], self.features), jnp.float32
        )
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        H, W = x.shape[1:3]
        patches = jnp.concatenate([x[:, i : i + H - 1, j : j + W - 1] for i in (0, 1) for j in (0, 1)], axis=-1)
        dtype = self.dtype or x.dtype
        y = patches.astype(dtype) @ kernel.reshape(fan_in, self.features).astype(dtype)
        return y + bias.astype(dtype)


class MatmulConv(nn.Module):
    """A k x k convolution with stride s, no padding, as one matmul over the k*k strided views of the image: the
    function, parameters (``kernel`` [k, k, C_in, C_out], ``bias``) and initialisation of ``nn.Conv(features, (k,
    k), strides=s, padding="VALID")``. Why: inside a ``lax.scan`` (PPO's epochs and minibatches), XLA's CPU
    convolution computes the kernel gradient about 20x slower than outside one; a matmul's gradient is a matmul.
    x [N, H, W, C_in] -> [N, (H-k)//s + 1, (W-k)//s + 1, C_out]."""

    features: int
    kernel_size: int
    stride: int = 1
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s, channels = self.kernel_size, self.stride, x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, channels, self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        H, W = x.shape[1:3]
        Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
        views = [x[:, i : i + s * (Ho - 1) + 1 : s, j : j + s * (Wo - 1) + 1 : s] for i in range(k) for j in range(k)]
        patches = views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)  # features ordered (i, j, c)
        dtype = self.dtype or x.dtype
        y = patches.astype(dtype) @ kernel.reshape(k * k * channels, self.features).astype(dtype)
        return y + bias.astype(dtype)


class ArcadeCNN(nn.Module):
    """POPGym Arcade's baseline CNN torso (its PPO-RNN / PQN-RNN models at obs_size 128): Conv(64, 5x5, stride 2),
    max-pool 2/2, Conv(128, 3x3, stride 2), max-pool 2/2, Conv(256, 3x3, stride 2), max-pool 3/1, Conv(512, 1x1), every
    conv VALID and followed by a leaky ReLU (slope 0.01), flattened; the convolutions are :class:`MatmulConv` (nn.Conv's
    function and parameters). x [N, H, W, C] in [0, 1] (the trunk divides uint8 pixels by 255 first) -> [N, D]; a
    128x128 frame gives D = 512."""

    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = self.dtype or x.dtype
        layers = ((64, 5, 2, (2, 2)), (128, 3, 2, (2, 2)), (256, 3, 2, (3, 1)), (512, 1, 1, None))
        for i, (features, kernel, stride, pool) in enumerate(layers):
            x = MatmulConv(features, kernel, stride, dtype=dtype, name=f"conv{i}")(x)
            x = nn.leaky_relu(x, negative_slope=0.01)
            if pool is not None:
                x = nn.max_pool(x, (pool[0], pool[0]), strides=(pool[1], pool[1]), padding="VALID")
        return x.reshape(x.shape[0], -1)


CONV_TORSOS = ("patch", "arcade")


class RecurrentTrunk(nn.Module):
    """Encoder -> memory core -> post layer (see the module docstring).

    ``__call__(carry: AgentCarry, obs[T, B, ...], starts bool[T, B], noise)`` -> ``(carry, features[T, B,
    post_size])`` in the compute dtype.
    """

    memory: nn.Module
    feature_size: int = 128
    feature_norm: bool = True
    time_encoding: bool = False
    time_encoding_max_len: int = 1024
    pre_size: int = 64
    post_size: int = 64
    memory_norm: bool = False
    readout_scale: float = 1.0  # a fixed gain on the memory's output (after memory_norm)
    pixel_features: int = 0
    image_shape: tuple[int, ...] = ()  # non-empty: a conv encoder reads the leading prod(shape) features as this image
    channels_first: bool = False  # image_shape is (C, H, W) (else (H, W, C))
    conv_torso: str = "patch"  # with image_shape: "patch" (two 2x2 PatchConvs) or "arcade" (ArcadeCNN)
    dtype: Any = None  # compute dtype: None / "float32" or "bfloat16"
    init_scheme: str = "orthogonal"  # one of INITS (``shm_jax.agents.inits``)

    def __post_init__(self):
        compute_dtype("RecurrentTrunk", self.dtype)
        if self.conv_torso not in CONV_TORSOS:
            valid = ", ".join(map(repr, CONV_TORSOS))
            raise ValueError(f"RecurrentTrunk: conv_torso must be one of {valid}, got {self.conv_torso!r}")
        if self.init_scheme not in INITS:
            raise ValueError(
                f"RecurrentTrunk: init_scheme must be one of {', '.join(map(repr, INITS))}, got {self.init_scheme!r}"
            )
        super().__post_init__()

    def project_params(self, params: Any) -> Any:
        """Params projected back onto their allowed set: the time-encoding blend s clipped to [0, 1].

        Learners apply it after every optimiser update (the official code clamps s the same way), so s keeps
        its gradient at the edges instead of sticking outside [0, 1]. Works on an unbound module, on the
        parameters of any head that shares this trunk's scope.
        """
        if not self.time_encoding:
            return params
        inner = dict(params["params"])
        inner["time_mix"] = jnp.clip(inner["time_mix"], 0.0, 1.0)
        return {**params, "params": inner}

    def initialize_carry(self, batch_size: int) -> AgentCarry:
        """The state before any observation. Works on an unbound module."""
        return AgentCarry(memory=self.memory.initialize_carry(batch_size), step=jnp.full((batch_size,), -1, jnp.int32))

    def sample_noise(self, rng: jax.Array, length: int, batch_size: int):
        """The core's per-step noise for [length, batch_size] steps (None for deterministic cores)."""
        return self.memory.sample_noise(rng, length, batch_size)

    @nn.compact
    def __call__(self, carry: AgentCarry, obs: jax.Array, starts: jax.Array, noise=None):
        return self.features(carry, obs, starts, noise)

    def flat_observation(self, obs: jax.Array) -> jax.Array:
        """obs [T, B, ...] -> float32[T, B, D], the leading ``pixel_features`` divided by 255."""
        T, B = obs.shape[:2]
        x = obs.reshape(T, B, -1).astype(jnp.float32)
        if self.pixel_features:
            # Divide (not multiply by 1/255): x / 255 is the exact pixel scaling; dividing by 1.0 is exact too.
            x = x / jnp.where(jnp.arange(x.shape[-1]) < self.pixel_features, 255.0, 1.0)
        return x

    def encode(self, x: jax.Array) -> jax.Array:
        """The conv encoder when ``image_shape`` is set, then the features after the image: x float32[T, B, D] ->
        float32[T, B, D']. ``conv_torso`` "patch": pomdp-baselines' image encoder, Conv(C -> 8, 2x2, stride 1) + ReLU,
        Conv(8 -> 16, 2x2, stride 1) + ReLU, flattened; "arcade": :class:`ArcadeCNN`. Identity without an image. Made
        in the calling module's scope."""
        if not self.image_shape:
            return x
        T, B = x.shape[:2]
        size = math.prod(self.image_shape)
        image = x[..., :size].reshape(T * B, *self.image_shape)
        if self.channels_first:
            image = jnp.moveaxis(image, 1, -1)  # (C, H, W) -> (H, W, C), flax's layout
        dtype = compute_dtype("RecurrentTrunk", self.dtype)
        if self.conv_torso == "arcade":
            image = ArcadeCNN(dtype=dtype, name="arcade_cnn")(image)
        else:
            for i, channels in enumerate((8, 16)):
                image = nn.relu(PatchConv(channels, dtype=dtype, name=f"conv{i}")(image))
        return jnp.concatenate([image.reshape(T, B, -1).astype(x.dtype), x[..., size:]], axis=-1)

    def features(self, carry: AgentCarry, obs: jax.Array, starts: jax.Array, noise=None, with_encoding: bool = False):
        """The trunk's layers, made in this module's scope: call it from a compact ``__call__`` (a head's too).

        with_encoding: also return the observation encoding (the feature map's output after its norm or ReLU,
        [T, B, feature_size]), for heads that read the current observation beside the memory."""
        x = self.encode(self.flat_observation(obs))
        steps = episode_steps(carry.step, starts.astype(bool))
        dtype = compute_dtype("RecurrentTrunk", self.dtype)

        init = self.init_scheme
        x = dense(self.feature_size, x.shape[-1], "body", init, "feature_map", dtype)(x)
        if self.feature_norm:
            x = nn.LayerNorm(use_bias=False, use_scale=False, epsilon=1e-5, dtype=dtype, name="feature_norm")(x)
        else:
            x = nn.relu(x)
        encoding = x
        if self.time_encoding:
            s = self.param("time_mix", nn.initializers.constant(0.5), ())
            # Identity on projected params; a pass-through gradient, so an edge value (s = 0 or 1) still learns.
            s = (s + jax.lax.stop_gradient(jnp.clip(s, 0.0, 1.0) - s)).astype(dtype)
            pe = sinusoidal_encoding(steps, self.feature_size, self.time_encoding_max_len).astype(dtype)
            x = (1.0 - s) * x + s * pe
        x = nn.relu(dense(self.pre_size, self.feature_size, "relu", init, "pre", dtype)(x))

        # A core whose output ends in a linear projection (SHM's W_o to 1024) hands it over unapplied and the post
        # layer folds into it: the same function and gradients, without the wide activations (projection.py).
        defer = {"defer_projection": True} if getattr(self.memory, "can_defer_projection", False) else {}
        memory_carry, y = self.memory(carry.memory, x, starts.astype(bool), noise, **defer)
        if self.memory_norm:
            y = y.materialize() if isinstance(y, AffineOutput) else y
            # epsilon 1e-6: below SHM's first-step read-out variance (~1e-5 at H = 128), which 1e-5 would damp
            y = nn.LayerNorm(use_bias=False, use_scale=False, epsilon=1e-6, dtype=dtype, name="memory_norm")(y)
        if self.readout_scale != 1.0:
            y = y.materialize() if isinstance(y, AffineOutput) else y
            y = y * jnp.asarray(self.readout_scale, y.dtype)
        width = y.features if isinstance(y, AffineOutput) else y.shape[-1]
        features = nn.relu(dense(self.post_size, width, "relu", init, "post", dtype, layer=Linear)(y))
        carry = AgentCarry(memory=memory_carry, step=steps[-1])
        return (carry, features, encoding) if with_encoding else (carry, features)


def trunk_options(trunk: RecurrentTrunk) -> dict[str, Any]:
    """The fields of ``trunk`` (memory core included), to build a head on the same trunk."""
    return {
        f.name: getattr(trunk, f.name) for f in dataclasses.fields(RecurrentTrunk) if f.name not in ("parent", "name")
    }
