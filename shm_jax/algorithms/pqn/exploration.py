"""Epsilon-greedy acting on Q values and PQN's linear epsilon schedule."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def epsilon_greedy(rng: jax.Array, q: jax.Array, epsilon: jax.Array | float) -> jax.Array:
    """int32[...]: argmax_a q[..., a], replaced with probability ``epsilon`` by a uniform action (q float32[..., A])."""
    k_explore, k_random = jax.random.split(rng)
    batch = q.shape[:-1]
    greedy = jnp.argmax(q, axis=-1)
    uniform = jax.random.randint(k_random, batch, 0, q.shape[-1])
    return jnp.where(jax.random.uniform(k_explore, batch) < epsilon, uniform, greedy).astype(jnp.int32)


def linear_epsilon(
    update: jax.Array, num_updates: int, eps_start: jax.Array, eps_finish: jax.Array, eps_decay: jax.Array
) -> jax.Array:
    """float32 epsilon of update ``update`` (int32): eps_start at 0, falling linearly to eps_finish after
    eps_decay * num_updates updates, flat afterwards (eps_decay = 0: eps_finish from the start)."""
    decay_updates = eps_decay * num_updates
    progress = jnp.clip(update.astype(jnp.float32) / jnp.maximum(decay_updates, 1e-6), 0.0, 1.0)
    progress = jnp.where(decay_updates > 0, progress, 1.0)
    return eps_start + (eps_finish - eps_start) * progress
