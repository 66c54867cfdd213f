"""PQN's losses as pure functions: Q(lambda) targets with truncation bootstrapping, and the squared TD error."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def q_lambda_targets(
    q_max: jax.Array,
    rewards: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    bootstrap_values: jax.Array,
    last_q_max: jax.Array,
    gamma: jax.Array,
    q_lambda: jax.Array,
) -> jax.Array:
    """Q(lambda) returns G float32[T, N], computed backwards over the rollout.

    q_max: float32[T, N], max_a Q(h_t, a) at acting time; rewards, bootstrap_values: float32[T, N];
    terminated, truncated: bool[T, N]; last_q_max: float32[N] = max_a Q(h_T, a) after the rollout.
    With V'_{t+1} = q_max[t + 1] (last_q_max at the end), replaced by bootstrap_values[t] where truncated[t]:

        G_t = r_t + gamma (1 - terminated_t) [V'_{t+1} + lambda c_t (G_{t+1} - V'_{t+1})],

    c_t = 0 where the episode ends at t (terminated or truncated: the trace never crosses into the next
    episode), and G_T = last_q_max (so the last row is one-step TD). lambda = 0 is one-step TD; lambda = 1
    the discounted return up to the next episode end or bootstrap.
    """
    next_values = jnp.concatenate([q_max[1:], last_q_max[None]], axis=0)
    next_values = jnp.where(truncated, bootstrap_values, next_values)
    not_terminated = 1.0 - terminated.astype(jnp.float32)
    continues = 1.0 - jnp.logical_or(terminated, truncated).astype(jnp.float32)

    def backward(next_return, inputs):
        reward, next_value, not_term, cont = inputs
        ret = reward + gamma * not_term * (next_value + q_lambda * cont * (next_return - next_value))
        return ret, ret

    _, returns = jax.lax.scan(backward, last_q_max, (rewards, next_values, not_terminated, continues), reverse=True)
    return returns


def q_loss(q_taken: jax.Array, targets: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """0.5 * mean((Q(h_t, a_t) - G_t)^2) over float32[T, n] (targets carry no gradient): (loss, diagnostics)."""
    error = q_taken - jax.lax.stop_gradient(targets)
    loss = 0.5 * jnp.mean(jnp.square(error))
    return loss, {"loss": loss, "q_mean": jnp.mean(q_taken), "td_abs": jnp.mean(jnp.abs(error))}
