"""The recurrent actor-critic: observation encoder -> memory core -> actor and critic heads.

Layout (the paper's POPGym agent when configured as in ``config.PRESETS["paper-popgym"]``):

1. observation flattened to float32[D]; the first ``pixel_features`` features (uint8 pixels, which
   ``envs``' flatten puts before any appended previous action / start flag) are divided by 255;
2. feature map Linear(D -> feature_size), then LayerNorm without affine (``feature_norm``) or ReLU;
3. optional sinusoidal encoding of the within-episode step t, blended as (1 - s) x + s PE(t) with a
   learnable s (init 0.5) kept in [0, 1] as the official code keeps it: ``project_params`` clips the parameter
   after every optimiser update (PPO calls it), so the blend never sees s outside [0, 1] and its gradient is
   never cut (the forward clip below is an identity on projected params, with a pass-through gradient);
4. pre Linear(feature_size -> pre_size) + ReLU;
5. memory core (any ``shm_jax.memory`` core), called on [T, B, pre_size];
6. post Linear(core.output_size -> post_size) + ReLU (the shared trunk);
7. actor Linear(post -> head_hidden) -> Linear(head_hidden -> n) and critic Linear -> Linear(-> 1),
   no activation between the two layers of a head.

Init (``init_scheme``): "orthogonal" (default): orthogonal weights, gain 1 for the feature map and head bodies and
sqrt(2) for pre/post, zero biases, final actor and critic layers orthogonal with scale 0.01. "official": the
official POPGym agent (thaihungle/SHM ``base_model.py``): orthogonal gain 1 for feature map, pre, post and head
bodies, final actor and critic weights N(0, 0.01), and every bias PyTorch's default U(±1/sqrt(fan_in)).

Precision: ``dtype`` (None / "float32", or "bfloat16") is the compute dtype of the Dense layers, the feature
LayerNorm and the time-encoding blend; parameters stay float32, and the actor output and the value are cast
back to float32, so log-probabilities, the loss and the optimiser work in float32. The memory core has its own
``dtype`` (``shm_jax.ppo.make_network`` sets both from ``TrainConfig.precision``).

The agent's recurrent state is ``AgentCarry(memory=<core carry>, step=int32[B])`` where ``step`` is the
within-episode index of the last processed observation (-1 before any). Start flags reset both.

Action distributions are plain functions over the actor output (``ActionSpec`` says which kind):
Discrete (logits), MultiDiscrete (independent categoricals, logits concatenated), Box (Gaussian with
a state-independent log-std; the sample is stored unclipped for log-probs, the env gets it clipped).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces

from shm_jax.config import NETWORK_INITS
from shm_jax.initializers import orthogonal
from shm_jax.memory.precision import compute_dtype
from shm_jax.memory.projection import AffineOutput, Linear


# ----------------------------------------------------------------------------------------------
# Action distributions


@dataclasses.dataclass(frozen=True)
class ActionSpec:
    """Static description of the action space.

    kind: "discrete" | "multidiscrete" | "box"; sizes: (n,) for Discrete, nvec for MultiDiscrete,
    (dim,) for Box; low/high: per-dimension bounds for Box (empty otherwise).
    """

    kind: str
    sizes: tuple[int, ...]
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    @property
    def num_outputs(self) -> int:
        """Width of the actor's final layer: logits (summed over components) or Gaussian means."""
        return int(sum(self.sizes)) if self.kind == "multidiscrete" else int(self.sizes[0])


def action_spec_from_space(space: Any) -> ActionSpec:
    """ActionSpec for a gymnax Discrete / Box or an ``envs.spaces.MultiDiscrete`` space."""
    if isinstance(space, spaces.Discrete):
        return ActionSpec("discrete", (int(space.n),))
    if hasattr(space, "nvec"):
        return ActionSpec("multidiscrete", tuple(int(n) for n in space.nvec))
    if isinstance(space, spaces.Box):
        shape = tuple(space.shape)
        dim = int(np.prod(shape)) if shape else 1
        low = np.broadcast_to(np.asarray(space.low, np.float32), (dim,))
        high = np.broadcast_to(np.asarray(space.high, np.float32), (dim,))
        return ActionSpec("box", (dim,), tuple(float(v) for v in low), tuple(float(v) for v in high))
    raise ValueError(f"action_space: unsupported action space {space!r}; allowed: Discrete, MultiDiscrete, Box")


def _split_logits(spec: ActionSpec, logits: jax.Array) -> list[jax.Array]:
    bounds = np.cumsum(spec.sizes)[:-1].tolist()
    return jnp.split(logits, bounds, axis=-1)


def sample_action(spec: ActionSpec, dist: Any, rng: jax.Array) -> jax.Array:
    """Draw a raw action: int32[...] (discrete), int32[..., k] (multidiscrete), float32[..., k] (box, unclipped)."""
    if spec.kind == "discrete":
        return jax.random.categorical(rng, dist, axis=-1).astype(jnp.int32)
    if spec.kind == "multidiscrete":
        parts = _split_logits(spec, dist)
        keys = jax.random.split(rng, len(parts))
        return jnp.stack([jax.random.categorical(k, p, axis=-1) for k, p in zip(keys, parts)], -1).astype(jnp.int32)
    mean, log_std = dist
    return mean + jnp.exp(log_std) * jax.random.normal(rng, mean.shape, mean.dtype)


def mode_action(spec: ActionSpec, dist: Any) -> jax.Array:
    """The most likely raw action (argmax per component, or the Gaussian mean)."""
    if spec.kind == "discrete":
        return jnp.argmax(dist, axis=-1).astype(jnp.int32)
    if spec.kind == "multidiscrete":
        return jnp.stack([jnp.argmax(p, axis=-1) for p in _split_logits(spec, dist)], -1).astype(jnp.int32)
    return dist[0]


def log_prob(spec: ActionSpec, dist: Any, action: jax.Array) -> jax.Array:
    """log pi(action): float32[...] (summed over components / dimensions)."""
    if spec.kind == "discrete":
        logp = jax.nn.log_softmax(dist, axis=-1)
        return jnp.take_along_axis(logp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]
    if spec.kind == "multidiscrete":
        total = 0.0
        for i, part in enumerate(_split_logits(spec, dist)):
            logp = jax.nn.log_softmax(part, axis=-1)
            total = total + jnp.take_along_axis(logp, action[..., i:i + 1].astype(jnp.int32), axis=-1)[..., 0]
        return total
    mean, log_std = dist
    z = (action - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi), axis=-1)


def entropy(spec: ActionSpec, dist: Any) -> jax.Array:
    """Entropy of the policy: float32[...] (summed over components / dimensions)."""
    if spec.kind in ("discrete", "multidiscrete"):
        parts = [dist] if spec.kind == "discrete" else _split_logits(spec, dist)
        total = 0.0
        for part in parts:
            logp = jax.nn.log_softmax(part, axis=-1)
            total = total - jnp.sum(jnp.exp(logp) * logp, axis=-1)
        return total
    mean, log_std = dist
    return jnp.sum(jnp.broadcast_to(log_std + 0.5 * math.log(2 * math.pi * math.e), mean.shape), axis=-1)


def env_action(spec: ActionSpec, raw: jax.Array) -> jax.Array:
    """What the environment receives: the raw action, clipped to the Box bounds for continuous actions."""
    if spec.kind == "box":
        return jnp.clip(raw, jnp.asarray(spec.low), jnp.asarray(spec.high))
    return raw


# ----------------------------------------------------------------------------------------------
# The network


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


INITS = NETWORK_INITS


def _torch_bias_init(fan_in: int):
    """PyTorch's default Linear bias init, U(±1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _dense(features: int, fan_in: int, role: str, init: str, name: str, dtype: Any = None,
           layer: type[nn.Module] = nn.Dense) -> nn.Module:
    """Linear layer ``name`` of a ``role`` ("body", "relu": pre/post, "final": actor/critic out) under ``init``.

    layer: ``nn.Dense`` or ``projection.Linear`` (the same layer, able to fold a deferred core output)."""
    if init == "official":
        kernel = nn.initializers.normal(0.01) if role == "final" else orthogonal(1.0)
        return layer(features, kernel_init=kernel, bias_init=_torch_bias_init(fan_in), dtype=dtype, name=name)
    scale = {"body": 1.0, "relu": math.sqrt(2.0), "final": 0.01}[role]
    return layer(features, kernel_init=orthogonal(scale), bias_init=nn.initializers.zeros, dtype=dtype, name=name)


class ActorCritic(nn.Module):
    """Encoder -> memory core -> actor/critic heads (see the module docstring).

    ``__call__(carry: AgentCarry, obs[T, B, ...], starts bool[T, B], noise)``
    -> ``(carry, dist, value float32[T, B])`` with ``dist`` the actor output for ``action_spec``
    (logits float32[T, B, n] or (mean, log_std) float32[T, B, k]); float32 whatever ``dtype`` is.
    """

    memory: nn.Module
    action_spec: ActionSpec
    feature_size: int = 128
    feature_norm: bool = True
    time_encoding: bool = False
    time_encoding_max_len: int = 1024
    pre_size: int = 64
    post_size: int = 64
    head_hidden_size: int = 64
    pixel_features: int = 0
    dtype: Any = None  # compute dtype of the encoder and heads: None / "float32" or "bfloat16"
    init_scheme: str = "orthogonal"  # one of INITS (see the module docstring)

    def __post_init__(self):
        compute_dtype("ActorCritic", self.dtype)
        if self.init_scheme not in INITS:
            raise ValueError(f"ActorCritic: init_scheme must be one of {', '.join(map(repr, INITS))}, "
                             f"got {self.init_scheme!r}")
        super().__post_init__()

    def project_params(self, params: Any) -> Any:
        """Params projected back onto their allowed set: the time-encoding blend s clipped to [0, 1].

        PPO applies it after every optimiser update (the official code clamps s the same way), so s keeps
        its gradient at the edges instead of sticking outside [0, 1]. Works on an unbound module.
        """
        if not self.time_encoding:
            return params
        inner = dict(params["params"])
        inner["time_mix"] = jnp.clip(inner["time_mix"], 0.0, 1.0)
        return {**params, "params": inner}

    def initialize_carry(self, batch_size: int) -> AgentCarry:
        """The state before any observation. Works on an unbound module."""
        return AgentCarry(memory=self.memory.initialize_carry(batch_size),
                          step=jnp.full((batch_size,), -1, jnp.int32))

    def sample_noise(self, rng: jax.Array, length: int, batch_size: int):
        """The core's per-step noise for [length, batch_size] steps (None for deterministic cores)."""
        return self.memory.sample_noise(rng, length, batch_size)

    @nn.compact
    def __call__(self, carry: AgentCarry, obs: jax.Array, starts: jax.Array, noise=None):
        T, B = starts.shape
        x = obs.reshape(T, B, -1).astype(jnp.float32)
        if self.pixel_features:
            # Divide (not multiply by 1/255): x / 255 is the exact pixel scaling; dividing by 1.0 is exact too.
            x = x / jnp.where(jnp.arange(x.shape[-1]) < self.pixel_features, 255.0, 1.0)
        steps = episode_steps(carry.step, starts.astype(bool))
        dtype = compute_dtype("ActorCritic", self.dtype)

        init = self.init_scheme
        x = _dense(self.feature_size, x.shape[-1], "body", init, "feature_map", dtype)(x)
        if self.feature_norm:
            x = nn.LayerNorm(use_bias=False, use_scale=False, epsilon=1e-5, dtype=dtype, name="feature_norm")(x)
        else:
            x = nn.relu(x)
        if self.time_encoding:
            s = self.param("time_mix", nn.initializers.constant(0.5), ())
            # Identity on projected params; a pass-through gradient, so an edge value (s = 0 or 1) still learns.
            s = (s + jax.lax.stop_gradient(jnp.clip(s, 0.0, 1.0) - s)).astype(dtype)
            pe = sinusoidal_encoding(steps, self.feature_size, self.time_encoding_max_len).astype(dtype)
            x = (1.0 - s) * x + s * pe
        x = nn.relu(_dense(self.pre_size, self.feature_size, "relu", init, "pre", dtype)(x))

        # A core whose output ends in a linear projection (SHM's W_o to 1024) hands it over unapplied and the post
        # layer folds into it: the same function and gradients, without the wide activations (projection.py).
        defer = {"defer_projection": True} if getattr(self.memory, "can_defer_projection", False) else {}
        memory_carry, y = self.memory(carry.memory, x, starts.astype(bool), noise, **defer)
        width = y.features if isinstance(y, AffineOutput) else y.shape[-1]
        trunk = nn.relu(_dense(self.post_size, width, "relu", init, "post", dtype, layer=Linear)(y))

        hidden = self.head_hidden_size
        actor = _dense(hidden, self.post_size, "body", init, "actor_hidden", dtype)(trunk)
        # Log-probabilities, the value loss and the optimiser work in float32.
        actor = _dense(self.action_spec.num_outputs, hidden, "final", init, "actor_out", dtype)(actor)
        actor = actor.astype(jnp.float32)
        if self.action_spec.kind == "box":
            log_std = self.param("log_std", nn.initializers.zeros, (self.action_spec.num_outputs,))
            dist = (actor, jnp.broadcast_to(log_std, actor.shape))
        else:
            dist = actor
        critic = _dense(hidden, self.post_size, "body", init, "critic_hidden", dtype)(trunk)
        value = _dense(1, hidden, "final", init, "critic_out", dtype)(critic)[..., 0].astype(jnp.float32)
        return AgentCarry(memory=memory_carry, step=steps[-1]), dist, value
