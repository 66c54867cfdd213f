"""What the partially observed control tasks share (CartPole, Pendulum): a time limit that also scales the
reward, observation noise, and the checks of both in the constructor."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment


@struct.dataclass
class EnvParams(environment.EnvParams):
    """max_steps_in_episode: L (time limit and reward scale 1/L); noise_sigma: observation noise std."""

    max_steps_in_episode: int = 200
    noise_sigma: float = 0.0


def checked_params(max_steps_in_episode: int, noise_sigma: float) -> EnvParams:
    """The constructor's default params; ValueError naming the argument when it is out of range."""
    if max_steps_in_episode < 1:
        raise ValueError(f"max_steps_in_episode: must be >= 1, got {max_steps_in_episode}")
    if noise_sigma < 0:
        raise ValueError(f"noise_sigma: must be >= 0, got {noise_sigma}")
    return EnvParams(max_steps_in_episode=int(max_steps_in_episode), noise_sigma=float(noise_sigma))


def noisy(key: jax.Array, clean: jax.Array, noise_sigma, high) -> jax.Array:
    """``clean`` plus N(0, noise_sigma^2) noise clipped to [-high, high], or ``clean`` when noise_sigma is 0;
    float32 like ``clean``'s shape."""
    perturbed = jnp.clip(clean + noise_sigma * jax.random.normal(key, clean.shape), -high, high)
    return jnp.where(noise_sigma > 0, perturbed, clean).astype(jnp.float32)
