"""What the rollout-based learners (PPO, PQN) share: the runner state, one vmapped environment step, the value of a
truncated episode's final observation, the running episode totals and their statistics, and the fresh start.

Alignment (both learners): the transition stored at step t holds the start flag s_t of its own observation o_t;
s_{t+1} = terminated_t OR truncated_t. A truncation bootstraps from the final observation with the carry that
processed the ending episode; a termination does not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from shm_jax.agents.trunk import AgentCarry


class RunnerState(struct.PyTreeNode):
    """Everything a run needs to continue bit-exactly (leading axis N = num_envs where per-env).

    params, opt_state: network parameters and optimiser state; env_state: vmapped env state;
    last_obs: float32[N, ...] the next observation to act on; last_start: bool[N] its start flag;
    carry: AgentCarry (memory carry [N, ...], step int32[N]) before last_obs;
    episode_return: float32[N], episode_length: int32[N] running totals of the current episodes;
    rng: PRNG key; update: int32 number of updates done.
    """

    params: Any
    opt_state: Any
    env_state: Any
    last_obs: jax.Array
    last_start: jax.Array
    carry: AgentCarry
    episode_return: jax.Array
    episode_length: jax.Array
    rng: jax.Array
    update: jax.Array


def fresh_state(network: Any, optimizer: Any, env: Any, env_params: Any, num_envs: int, rng: jax.Array) -> RunnerState:
    """Fresh params (``network.init`` on the first observations), optimiser, envs and carry."""
    n = num_envs
    rng, k_params, k_reset, k_noise = jax.random.split(rng, 4)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, n), env_params)
    starts = jnp.ones((n,), bool)
    carry = network.initialize_carry(n)
    noise = network.sample_noise(k_noise, 1, n)
    params = network.init(k_params, carry, obs[None], starts[None], noise)
    return RunnerState(
        params=params,
        opt_state=optimizer.init(params),
        env_state=env_state,
        last_obs=obs,
        last_start=starts,
        carry=carry,
        episode_return=jnp.zeros((n,), jnp.float32),
        episode_length=jnp.zeros((n,), jnp.int32),
        rng=rng,
        update=jnp.int32(0),
    )


class EnvStep(NamedTuple):
    """One vmapped environment step: next obs (the last observation's shape and dtype), env state, reward float32[N],
    terminated / truncated / done bool[N], info, and final_obs (the ending episode's last observation where done)."""

    obs: jax.Array
    env_state: Any
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    done: jax.Array
    info: dict
    final_obs: jax.Array


def step_envs(env: Any, env_params: Any, rng: jax.Array, state: RunnerState, action: jax.Array) -> EnvStep:
    """Step every environment of ``state`` with ``action`` (the environments' own action) using ``rng``."""
    n = state.last_obs.shape[0]
    obs, env_state, reward, terminated, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
        jax.random.split(rng, n), state.env_state, action, env_params
    )
    terminated, truncated = terminated.astype(bool), truncated.astype(bool)
    like = lambda x: x.reshape(state.last_obs.shape).astype(state.last_obs.dtype)  # noqa: E731
    return EnvStep(
        obs=like(obs),
        env_state=env_state,
        reward=reward.astype(jnp.float32),
        terminated=terminated,
        truncated=truncated,
        done=jnp.logical_or(terminated, truncated),
        info=info,
        final_obs=like(info["final_observation"]),
    )


def truncation_bootstrap(truncated: jax.Array, final_value: Callable[[], jax.Array]) -> jax.Array:
    """float32[N]: ``final_value()`` (the value of each final observation, [N]) where truncated, 0 elsewhere; the
    network runs only when some environment truncated."""
    n = truncated.shape[0]
    return jax.lax.cond(jnp.any(truncated), lambda: jnp.where(truncated, final_value(), 0.0), lambda: jnp.zeros((n,)))


def advance(state: RunnerState, step: EnvStep, carry: AgentCarry, rng: jax.Array) -> tuple[RunnerState, dict]:
    """The state after ``step`` (next observation and start flag, carry, running totals reset where done) and the
    step's episode statistics (sums over environments of finished episodes' returns, lengths, successes; rewards)."""
    episode_return = state.episode_return + step.reward
    episode_length = state.episode_length + 1
    done = step.done
    success = step.info.get("success")
    stats = {
        "episode_return_sum": jnp.sum(jnp.where(done, episode_return, 0.0)),
        "episode_length_sum": jnp.sum(jnp.where(done, episode_length, 0)),
        "episode_count": jnp.sum(done),
        "success_sum": jnp.sum(jnp.logical_and(done, success)) if success is not None else jnp.int32(0),
        "reward_sum": jnp.sum(step.reward),
    }
    state = state.replace(
        env_state=step.env_state,
        last_obs=step.obs,
        last_start=done,
        carry=carry,
        episode_return=jnp.where(done, 0.0, episode_return),
        episode_length=jnp.where(done, 0, episode_length),
        rng=rng,
    )
    return state, stats


def per_env_leaves(state: RunnerState) -> RunnerState:
    """True for the leaves with a leading environment axis: env state, last observation and start flag, memory
    carry, running episode totals; parameters, optimiser state, key and counter are per run."""

    def mark(tree, value):
        return jax.tree.map(lambda _: value, tree)

    return RunnerState(
        params=mark(state.params, False),
        opt_state=mark(state.opt_state, False),
        env_state=mark(state.env_state, True),
        last_obs=True,
        last_start=True,
        carry=mark(state.carry, True),
        episode_return=True,
        episode_length=True,
        rng=False,
        update=False,
    )


def epochs_of_minibatches(
    minibatch_step: Callable, carry: Any, rng: jax.Array, num_envs: int, num_minibatches: int, update_epochs: int
):
    """``update_epochs`` passes over a rollout, each a fresh permutation of the environments split into
    ``num_minibatches`` groups of whole sequences: ``minibatch_step(carry, env_indices int32[n])`` -> (carry, metrics).
    Returns (carry, metrics [update_epochs, num_minibatches])."""
    per_minibatch = num_envs // num_minibatches

    def epoch(carry, key):
        order = jax.random.permutation(key, num_envs).reshape(num_minibatches, per_minibatch)
        return jax.lax.scan(minibatch_step, carry, order)

    return jax.lax.scan(epoch, carry, jax.random.split(rng, update_epochs))
