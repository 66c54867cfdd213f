"""Evaluate trained agents on fresh episodes: mean return and success rate, greedy or sampled actions.

``evaluate(run_dir_or_state, episodes=N, greedy=True)`` runs N fresh episodes (their first episode
each, in N parallel environments) for every (sweep setting, seed) of a run and reports, per run and per
setting (mean +- std over seeds), the mean undiscounted return and, where the task defines success
(``info["success"]``), the success rate. ``python train.py eval RUN_DIR`` calls it for greedy and
sampled actions and writes ``RUN_DIR/eval.json``.

Meta-RL tasks (registry family "meta": Wind, Point Robot) are evaluated on the HELD-OUT test tasks:
one trial per test task (``envs.meta.navigation.held_out_params``), repeated ``ceil(N / num_test)``
times with fresh start states, instead of N trials on training tasks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_MAX_STEPS = 100_000  # cap for environments that declare no episode limit


def _is_meta(config: Any) -> bool:
    env_id = getattr(config, "env_id", "")
    if ":" in env_id:  # probe: / gymnax: ids are never meta tasks
        return False
    import envs

    return envs.resolve(env_id).family == "meta"


def episode_params(env_params: Any, episodes: int, meta: bool) -> tuple[Any, int, Any]:
    """(per-episode env params or the shared ones, number of episodes, vmap axis of the params)."""
    if not meta:
        return env_params, episodes, None
    from envs.meta.navigation import held_out_params

    held_out = held_out_params(env_params)  # leaves [num_test, ...], one test task each
    num_test = int(np.asarray(env_params.test_task_ids).shape[0])
    rounds = max(1, math.ceil(episodes / num_test))
    tiled = jax.tree.map(lambda x: jnp.concatenate([x] * rounds, axis=0), held_out)
    return tiled, num_test * rounds, 0


def reports_success(env: Any, env_params: Any) -> bool:
    """Whether the environment's step info has a ``success`` entry (checked on shapes only)."""
    def one_step():
        key = jax.random.PRNGKey(0)
        _, state = env.reset(key, env_params)
        action = env.action_space(env_params).sample(key)
        return env.step(key, state, action, env_params)[5]

    return "success" in jax.eval_shape(one_step)


def make_episode_runner(trainer: Any, episodes: int, greedy: bool, *, meta: bool = False,
                        max_steps: int | None = None):
    """A pure ``run(params, rng) -> dict`` playing ``episodes`` episodes of one agent.

    Returns per-episode arrays: return float32[E], length int32[E], success bool[E] (False when the
    task defines no success), finished bool[E] (False if the step cap cut the episode).
    """
    env = trainer.env
    params_b, num_episodes, params_axis = episode_params(trainer.env_params, episodes, meta)
    declared = getattr(trainer.env_params, "max_steps_in_episode", None)
    limit = max_steps or (int(declared) + 1 if isinstance(declared, (int, np.integer)) else DEFAULT_MAX_STEPS)
    reset = jax.vmap(env.reset, in_axes=(0, params_axis))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, params_axis))

    has_success = reports_success(env, trainer.env_params)

    def run(params, rng):
        rng, k_reset = jax.random.split(rng)
        obs, env_state = reset(jax.random.split(k_reset, num_episodes), params_b)
        zeros_f = jnp.zeros(num_episodes, jnp.float32)
        zeros_b = jnp.zeros(num_episodes, bool)
        init = dict(obs=obs, env_state=env_state, carry=trainer.initialize_carry(num_episodes),
                    start=jnp.ones(num_episodes, bool), rng=rng, t=jnp.int32(0), ret=zeros_f,
                    length=jnp.zeros(num_episodes, jnp.int32), success=zeros_b, done=zeros_b)

        def cond(c):
            return (~jnp.all(c["done"])) & (c["t"] < limit)

        def body(c):
            rng, k_noise, k_act, k_step = jax.random.split(c["rng"], 4)
            noise = trainer.sample_noise(k_noise, 1, num_episodes)
            action, carry = trainer.act(params, c["obs"], c["carry"], c["start"], noise, k_act, greedy)
            obs, env_state, reward, terminated, truncated, info = step(
                jax.random.split(k_step, num_episodes), c["env_state"], action, params_b)
            ended = jnp.logical_or(terminated, truncated)
            active = ~c["done"]
            success = c["success"]
            if has_success:
                success = jnp.where(active & ended, jnp.asarray(info["success"], bool), success)
            return dict(obs=obs, env_state=env_state, carry=carry, start=ended, rng=rng, t=c["t"] + 1,
                        ret=c["ret"] + jnp.where(active, reward.astype(jnp.float32), 0.0),
                        length=c["length"] + active.astype(jnp.int32), success=success,
                        done=c["done"] | ended)

        final = jax.lax.while_loop(cond, body, init)
        return {"return": final["ret"], "length": final["length"], "success": final["success"],
                "finished": final["done"], "has_success": jnp.bool_(has_success)}

    return run, num_episodes


def evaluate_params(trainer: Any, params: Any, *, episodes: int = 32, greedy: bool = True, seed: int = 0,
                    meta: bool = False, max_steps: int | None = None) -> dict[str, np.ndarray]:
    """Play ``episodes`` episodes with every agent of batched ``params`` (leaves [G, S, ...]).

    Returns numpy per-episode arrays [G, S, E] (return, length, success, finished) and has_success.
    """
    run, num_episodes = make_episode_runner(trainer, episodes, greedy, meta=meta, max_steps=max_steps)
    lead = jax.tree.leaves(params)[0].shape[:2]
    keys = jax.random.split(jax.random.PRNGKey(seed), lead[0] * lead[1]).reshape(*lead, -1)
    batched = jax.jit(jax.vmap(jax.vmap(run)))
    out = jax.device_get(batched(params, keys))
    result = {k: np.asarray(v) for k, v in out.items()}
    result["has_success"] = bool(np.asarray(out["has_success"]).all())
    return result


def summarize_episodes(raw: dict[str, np.ndarray], settings: list[dict], seeds: list[int], *,
                       greedy: bool, meta: bool) -> dict[str, Any]:
    """JSON-ready per-run and per-setting (mean +- std over seeds) return / success rate."""
    from shm_jax.metrics import run_label, setting_label

    per_run, per_setting = [], []
    for g, setting in enumerate(settings):
        returns, successes = [], []
        for s, seed in enumerate(seeds):
            entry = {"run": run_label(setting, seed), "mean_return": float(raw["return"][g, s].mean()),
                     "mean_length": float(raw["length"][g, s].mean()),
                     "unfinished": int((~raw["finished"][g, s]).sum())}
            returns.append(entry["mean_return"])
            if raw["has_success"]:
                entry["success_rate"] = float(raw["success"][g, s].mean())
                successes.append(entry["success_rate"])
            per_run.append(entry)
        agg = {"setting": setting, "label": setting_label(setting),
               "mean_return": {"mean": float(np.mean(returns)), "std": float(np.std(returns))}}
        if successes:
            agg["success_rate"] = {"mean": float(np.mean(successes)), "std": float(np.std(successes))}
        per_setting.append(agg)
    return {"policy": "greedy" if greedy else "sampled", "episodes": int(raw["return"].shape[-1]),
            "task_split": "held-out test tasks" if meta else "training distribution",
            "per_setting": per_setting, "per_run": per_run}


def load_run(run_dir: Path | str) -> tuple[Any, Any, Any, Any]:
    """(config, trainer, batched runner state, BatchedTrain) restored from ``run_dir``'s latest checkpoint."""
    from shm_jax.checkpoint import Checkpointer
    from shm_jax.config import TrainConfig
    from shm_jax.ppo import hparams_from_config, make_train
    from shm_jax.trainer import BatchedTrain, load_run_config

    config = load_run_config(run_dir, TrainConfig, purpose="eval")
    trainer = make_train(config)  # validates the config
    program = BatchedTrain(trainer, hparams_from_config(config), sweep=config.sweep, seed=config.seed,
                           num_seeds=config.num_seeds, num_envs=config.num_envs)
    checkpointer = Checkpointer(run_dir, create=False)
    try:
        state, _, _ = checkpointer.restore(program.abstract_state(), purpose="eval")
    finally:
        checkpointer.close()
    return config, trainer, state, program


def evaluate(source: Any, *, episodes: int = 32, greedy: bool = True, seed: int = 0, trainer: Any = None,
             config: Any = None, settings: list[dict] | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    """Evaluate a run directory or a batched runner state (then pass ``trainer`` and ``config``).

    source: a run directory (path/str), or a runner state with leaves [G, S, ...] (``state.params`` is used).
    Returns the JSON-ready summary of :func:`summarize_episodes`.
    """
    if isinstance(source, (str, Path)):
        config, trainer, state, program = load_run(source)
        settings, seeds = program.settings, program.seeds
    else:
        if trainer is None:
            raise ValueError("evaluate: pass trainer= (and config=) when evaluating a runner state")
        state = source
    if not isinstance(episodes, int) or episodes <= 0:
        raise ValueError(f"episodes: must be a positive integer, got {episodes!r}")
    meta = _is_meta(config) if config is not None else False
    raw = evaluate_params(trainer, state.params, episodes=episodes, greedy=greedy, seed=seed, meta=meta)
    lead = raw["return"].shape[:2]
    settings = settings or [{}] * lead[0]
    seeds = seeds or list(range(lead[1]))
    return summarize_episodes(raw, settings, seeds, greedy=greedy, meta=meta)
