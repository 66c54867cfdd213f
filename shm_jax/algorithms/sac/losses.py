"""SAC-Discrete and SAC losses over whole episodes, time-major, as pomdp-baselines computes them.

Shapes: T steps, B episodes, A discrete actions. ``mask`` bool[T, B] marks the steps that belong to the
episode; every mean is sum(mask * x) / max(1, sum(mask)). Index t of an output "next_*" is the value at step
t + 1 (the network pass over T + 1 observations, shifted by one).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """sum(mask * x) / max(1, sum(mask)) over every axis."""
    mask = mask.astype(x.dtype)
    return jnp.sum(x * mask) / jnp.maximum(1.0, jnp.sum(mask))


def categorical(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(probs, log probs) float32[..., A] of a categorical policy; log p = log(max(p, 1e-8)) as pomdp-baselines'
    CategoricalPolicy, so a vanishing probability gives a finite log."""
    probs = jax.nn.softmax(logits, axis=-1)
    return probs, jnp.log(jnp.maximum(probs, 1e-8))


def tanh_gaussian(mean: jax.Array, log_std: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A reparameterised tanh-Gaussian sample and its log-density: (a float32[..., k], log pi float32[...]).

    u = mean + exp(log_std) * eps, a = tanh(u), log pi = sum_i [log N(u_i; mean_i, std_i) - log(1 - a_i^2 + 1e-6)]
    (pomdp-baselines' TanhNormal, the 1e-6 included).
    """
    eps = jax.random.normal(rng, mean.shape, mean.dtype)
    u = mean + jnp.exp(log_std) * eps
    action = jnp.tanh(u)
    normal = -0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi)
    return action, jnp.sum(normal - jnp.log(1.0 - action**2 + 1e-6), axis=-1)


def sacd_target(
    reward: jax.Array,
    done: jax.Array,
    next_probs: jax.Array,
    next_log_probs: jax.Array,
    next_q1: jax.Array,
    next_q2: jax.Array,
    alpha: jax.Array,
    gamma: jax.Array,
) -> jax.Array:
    """y_t = r_t + (1 - d_t) gamma sum_a pi_{t+1}(a) [min(Q1', Q2')(h_{t+1}, a) - alpha log pi_{t+1}(a)]: float32[T, B].

    reward, done [T, B]; next_* [T, B, A] (the target critic's and the current actor's outputs at t + 1).
    """
    soft_value = jnp.sum(next_probs * (jnp.minimum(next_q1, next_q2) - alpha * next_log_probs), axis=-1)
    return reward + (1.0 - done.astype(jnp.float32)) * gamma * soft_value


def sac_target(
    reward: jax.Array,
    done: jax.Array,
    next_log_prob: jax.Array,
    next_q1: jax.Array,
    next_q2: jax.Array,
    alpha: jax.Array,
    gamma: jax.Array,
) -> jax.Array:
    """y_t = r_t + (1 - d_t) gamma [min(Q1', Q2')(h_{t+1}, a~_{t+1}) - alpha log pi(a~_{t+1})]: float32[T, B]
    (a~ a fresh sample of the current actor; every argument [T, B])."""
    return reward + (1.0 - done.astype(jnp.float32)) * gamma * (jnp.minimum(next_q1, next_q2) - alpha * next_log_prob)


def critic_loss(q1: jax.Array, q2: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """Twin masked MSE, summed over the two heads: mean (Q1 - y)^2 + mean (Q2 - y)^2 (q1, q2 at the stored action,
    [T, B]; the target is held fixed)."""
    target = jax.lax.stop_gradient(target)
    return masked_mean((q1 - target) ** 2, mask) + masked_mean((q2 - target) ** 2, mask)


def sacd_actor_loss(
    probs: jax.Array, log_probs: jax.Array, q1: jax.Array, q2: jax.Array, alpha: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(mean sum_a pi(a) [alpha log pi(a) - min(Q1, Q2)(a)], mean sum_a pi(a) log pi(a)): the actor loss and the
    mean log-probability (minus the entropy) the temperature tunes on. probs, log_probs, q [T, B, A]; the Q values
    are held fixed."""
    q = jax.lax.stop_gradient(jnp.minimum(q1, q2))
    loss = masked_mean(jnp.sum(probs * (alpha * log_probs - q), axis=-1), mask)
    return loss, masked_mean(jnp.sum(probs * log_probs, axis=-1), mask)


def sac_actor_loss(
    log_prob: jax.Array, q1: jax.Array, q2: jax.Array, alpha: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(mean [alpha log pi(a~) - min(Q1, Q2)(a~)], mean log pi(a~)) with a~ reparameterised: every argument [T, B]; the
    gradient reaches the actor through log pi and through a~ in Q."""
    return masked_mean(alpha * log_prob - jnp.minimum(q1, q2), mask), masked_mean(log_prob, mask)


def alpha_loss(log_alpha: jax.Array, mean_log_prob: jax.Array, target_entropy: jax.Array) -> jax.Array:
    """-exp(log alpha) (mean log pi + target entropy), with the log-probability held fixed (pomdp-baselines)."""
    return -jnp.exp(log_alpha) * jax.lax.stop_gradient(mean_log_prob + target_entropy)


def polyak(target, online, tau: jax.Array):
    """tau * online + (1 - tau) * target, leaf by leaf."""
    return jax.tree.map(lambda t, o: tau * o + (1.0 - tau) * t, target, online)
