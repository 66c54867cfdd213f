"""Action distributions as plain functions over a policy head's output.

``ActionSpec`` says which kind: Discrete (logits), MultiDiscrete (independent categoricals, logits
concatenated), Box (Gaussian with a state-independent log-std; the sample is stored unclipped for
log-probs, the env gets it clipped by :func:`env_action`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces


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
            total = total + jnp.take_along_axis(logp, action[..., i : i + 1].astype(jnp.int32), axis=-1)[..., 0]
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
