"""PPO's losses as pure functions: GAE with truncation bootstrapping, and the clipped objective."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from shm_jax.algorithms.ppo.config import PPOHyperparameters


def compute_gae(
    values: jax.Array,
    rewards: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    bootstrap_values: jax.Array,
    last_value: jax.Array,
    gamma: jax.Array,
    gae_lambda: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Advantages and value targets, float32[T, N] each.

    values, rewards, bootstrap_values: float32[T, N]; terminated, truncated: bool[T, N];
    last_value: float32[N] = V(o_T). Row t uses V(o_{t+1}) = values[t + 1] (last_value at the end),
    replaced by bootstrap_values[t] where truncated[t]; no bootstrap where terminated[t];
    the lambda trace is cut where terminated[t] or truncated[t].
    """
    next_values = jnp.concatenate([values[1:], last_value[None]], axis=0)
    next_values = jnp.where(truncated, bootstrap_values, next_values)
    not_terminated = 1.0 - terminated.astype(jnp.float32)
    continues = 1.0 - jnp.logical_or(terminated, truncated).astype(jnp.float32)
    deltas = rewards + gamma * not_terminated * next_values - values

    def backward(gae, inputs):
        delta, cont = inputs
        gae = delta + gamma * gae_lambda * cont * gae
        return gae, gae

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(last_value), (deltas, continues), reverse=True)
    return advantages, advantages + values


def ppo_loss(
    new_log_prob: jax.Array,
    new_value: jax.Array,
    entropy: jax.Array,
    old: Any,
    advantages: jax.Array,
    targets: jax.Array,
    hp: PPOHyperparameters,
    *,
    normalize_advantages: bool,
    clip_value_loss: bool,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The clipped PPO objective on re-computed log-probs, values and entropies (all float32[T, n]).

    total = -mean(min(r A, clip(r, 1 +- clip_eps) A)) + vf_coef * 0.5 mean(value error) - ent_coef * mean(entropy),
    r = exp(new - old log-prob), A optionally standardised; value error (V - target)^2, with clip_value_loss the
    max of that and (V_old + clip(V - V_old, +-clip_eps) - target)^2. Returns (total, diagnostics).
    """
    log_ratio = new_log_prob - old.log_prob
    ratio = jnp.exp(log_ratio)
    adv = advantages
    if normalize_advantages:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    clip_eps = hp.clip_eps
    policy_loss = -jnp.mean(jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * adv))
    value_error = jnp.square(new_value - targets)
    if clip_value_loss:
        clipped = old.value + jnp.clip(new_value - old.value, -clip_eps, clip_eps)
        value_error = jnp.maximum(value_error, jnp.square(clipped - targets))
    value_loss = 0.5 * jnp.mean(value_error)
    mean_entropy = jnp.mean(entropy)
    total = policy_loss + hp.vf_coef * value_loss - hp.ent_coef * mean_entropy
    aux = {
        "total_loss": total,
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": mean_entropy,
        "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
        "clip_frac": jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32)),
    }
    return total, aux
