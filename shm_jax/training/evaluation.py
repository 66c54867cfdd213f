"""Evaluate agents on fresh episodes from an act function, an environment and parameters.

The evaluator knows nothing of the algorithm: a ``shm_jax.algorithms.base.Policy`` is ``initialize_carry(n)`` and
``act(params, obs, carry, start, rng) -> (action, carry)``. ``evaluate`` plays N fresh episodes (the
first episode of each of N parallel environments) for every agent of batched parameters (leaves
``[G, S, ...]``) and reports, per agent and per setting (mean +- std over seeds), the mean undiscounted
return and, where the task defines success (``info["success"]``), the success rate.

``task_params`` (env params with a leading task axis, e.g. the held-out tasks of a meta-RL split)
plays one episode per task, repeated ``ceil(N / num_tasks)`` times with fresh start states, instead of
N episodes of the training distribution.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from shm_jax.algorithms.base import Policy
from shm_jax.options import ConfigError
from shm_jax.training.metrics import run_label, setting_label

DEFAULT_MAX_STEPS = 100_000  # cap for environments that declare no episode limit


def reports_success(env: Any, env_params: Any) -> bool:
    """Whether the environment's step info has a ``success`` entry (checked on shapes only)."""

    def one_step():
        key = jax.random.PRNGKey(0)
        _, state = env.reset(key, env_params)
        action = env.action_space(env_params).sample(key)
        return env.step(key, state, action, env_params)[5]

    return "success" in jax.eval_shape(one_step)


def _episode_params(env_params: Any, episodes: int, task_params: Any) -> tuple[Any, int, int | None]:
    """(params to reset/step with, number of episodes, their vmap axis or None when shared)."""
    if task_params is None:
        return env_params, episodes, None
    num_tasks = int(jax.tree.leaves(task_params)[0].shape[0])
    rounds = max(1, math.ceil(episodes / num_tasks))
    tiled = jax.tree.map(lambda x: jnp.concatenate([x] * rounds, axis=0), task_params)
    return tiled, num_tasks * rounds, 0


def make_episode_runner(
    policy: Policy, env: Any, env_params: Any, episodes: int, *, task_params: Any = None, max_steps: int | None = None
):
    """A pure ``run(params, rng) -> dict`` playing the episodes of one agent, and their number E.

    The dict holds per-episode arrays: return float32[E], length int32[E], success bool[E] (False when
    the task defines no success), finished bool[E] (False if the step cap cut the episode), has_success.
    """
    params_b, num_episodes, params_axis = _episode_params(env_params, episodes, task_params)
    declared = getattr(env_params, "max_steps_in_episode", None)
    limit = max_steps or (int(declared) + 1 if isinstance(declared, (int, np.integer)) else DEFAULT_MAX_STEPS)
    reset = jax.vmap(env.reset, in_axes=(0, params_axis))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, params_axis))
    has_success = reports_success(env, env_params)

    def run(params, rng):
        rng, k_reset = jax.random.split(rng)
        obs, env_state = reset(jax.random.split(k_reset, num_episodes), params_b)
        zeros_f = jnp.zeros(num_episodes, jnp.float32)
        zeros_b = jnp.zeros(num_episodes, bool)
        init = dict(
            obs=obs,
            env_state=env_state,
            carry=policy.initialize_carry(num_episodes),
            start=jnp.ones(num_episodes, bool),
            rng=rng,
            t=jnp.int32(0),
            ret=zeros_f,
            length=jnp.zeros(num_episodes, jnp.int32),
            success=zeros_b,
            done=zeros_b,
        )

        def cond(c):
            return (~jnp.all(c["done"])) & (c["t"] < limit)

        def body(c):
            rng, k_act, k_step = jax.random.split(c["rng"], 3)
            action, carry = policy.act(params, c["obs"], c["carry"], c["start"], k_act)
            obs, env_state, reward, terminated, truncated, info = step(
                jax.random.split(k_step, num_episodes), c["env_state"], action, params_b
            )
            ended = jnp.logical_or(terminated, truncated)
            active = ~c["done"]
            success = c["success"]
            if has_success:
                success = jnp.where(active & ended, jnp.asarray(info["success"], bool), success)
            return dict(
                obs=obs,
                env_state=env_state,
                carry=carry,
                start=ended,
                rng=rng,
                t=c["t"] + 1,
                ret=c["ret"] + jnp.where(active, reward.astype(jnp.float32), 0.0),
                length=c["length"] + active.astype(jnp.int32),
                success=success,
                done=c["done"] | ended,
            )

        final = jax.lax.while_loop(cond, body, init)
        return {
            "return": final["ret"],
            "length": final["length"],
            "success": final["success"],
            "finished": final["done"],
            "has_success": jnp.bool_(has_success),
        }

    return run, num_episodes


def play_episodes(
    policy: Policy,
    env: Any,
    env_params: Any,
    params: Any,
    *,
    episodes: int = 32,
    seed: int = 0,
    task_params: Any = None,
    max_steps: int | None = None,
) -> dict[str, np.ndarray]:
    """Play ``episodes`` episodes with every agent of batched ``params`` (leaves [G, S, ...]).

    Returns numpy per-episode arrays [G, S, E] (return, length, success, finished) and has_success.
    """
    run, _ = make_episode_runner(policy, env, env_params, episodes, task_params=task_params, max_steps=max_steps)
    lead = jax.tree.leaves(params)[0].shape[:2]
    keys = jax.random.split(jax.random.PRNGKey(seed), lead[0] * lead[1]).reshape(*lead, -1)
    first = jax.tree.leaves(params)[0]
    placement = {}
    if not getattr(first, "is_fully_addressable", True):  # several processes: every one reads the (small) results
        replicated = NamedSharding(first.sharding.mesh, PartitionSpec())
        placement["out_shardings"] = replicated
        keys = jax.device_put(np.asarray(keys), replicated)
    out = jax.device_get(jax.jit(jax.vmap(jax.vmap(run)), **placement)(params, keys))
    result = {k: np.asarray(v) for k, v in out.items()}
    result["has_success"] = bool(np.asarray(out["has_success"]).all())
    return result


def summarize_episodes(
    raw: dict[str, np.ndarray], settings: list[dict], seeds: list[int], *, policy_name: str, task_split: str
) -> dict[str, Any]:
    """JSON-ready per-run and per-setting (mean +- std over seeds) return / success rate."""
    per_run, per_setting = [], []
    for g, setting in enumerate(settings):
        returns, successes = [], []
        for s, seed in enumerate(seeds):
            entry = {
                "run": run_label(setting, seed),
                "mean_return": float(raw["return"][g, s].mean()),
                "mean_length": float(raw["length"][g, s].mean()),
                "unfinished": int((~raw["finished"][g, s]).sum()),
            }
            returns.append(entry["mean_return"])
            if raw["has_success"]:
                entry["success_rate"] = float(raw["success"][g, s].mean())
                successes.append(entry["success_rate"])
            per_run.append(entry)
        agg = {
            "setting": setting,
            "label": setting_label(setting),
            "mean_return": {"mean": float(np.mean(returns)), "std": float(np.std(returns))},
        }
        if successes:
            agg["success_rate"] = {"mean": float(np.mean(successes)), "std": float(np.std(successes))}
        per_setting.append(agg)
    return {
        "policy": policy_name,
        "episodes": int(raw["return"].shape[-1]),
        "task_split": task_split,
        "per_setting": per_setting,
        "per_run": per_run,
    }


def evaluate(
    policy: Policy,
    env: Any,
    env_params: Any,
    params: Any,
    *,
    episodes: int = 32,
    seed: int = 0,
    task_params: Any = None,
    settings: list[dict] | None = None,
    seeds: list[int] | None = None,
    policy_name: str = "policy",
    task_split: str | None = None,
) -> dict[str, Any]:
    """Play and summarise (see :func:`play_episodes` and :func:`summarize_episodes`); params leaves [G, S, ...]."""
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes <= 0:
        raise ConfigError("episodes", f"must be a positive integer, got {episodes!r}")
    raw = play_episodes(policy, env, env_params, params, episodes=episodes, seed=seed, task_params=task_params)
    lead = raw["return"].shape[:2]
    split = task_split or ("held-out test tasks" if task_params is not None else "training distribution")
    return summarize_episodes(
        raw, settings or [{}] * lead[0], seeds or list(range(lead[1])), policy_name=policy_name, task_split=split
    )
