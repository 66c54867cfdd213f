"""Recurrent SAC learns: SAC-Discrete solves Recall with a memory and stays at chance without one; SAC (Box
actions, autotuned temperature) learns a continuous one-step target."""

import jax
import numpy as np
import pytest

from shm_jax.build import build
from shm_jax.presets import from_preset
from shm_jax.training.evaluation import play_episodes

pytestmark = [pytest.mark.slow, pytest.mark.optimized]  # learning runs: outside the quick tier, fully optimised compile

TINY = dict(
    time_encoding=False,
    feature_size=32,
    pre_size=32,
    post_size=32,
    head_hidden_size=32,
    num_envs=16,
    warmup_episodes=5,
    lr=3e-3,
    tau=0.05,
)
LAST = 10  # iterations the training returns are averaged over (LAST x num_envs episodes)
EVAL_EPISODES = 256  # greedy episodes played with the final actor


def _train(algo, env_id, env_overrides, episode_length, iterations, **overrides):
    """One jitted run of exactly ``iterations`` iterations (seed 0): (built, final state, numpy metrics)."""
    config = from_preset(
        "default",
        algo=algo,
        env_id=env_id,
        env_overrides=env_overrides,
        total_timesteps=(TINY["warmup_episodes"] + iterations * TINY["num_envs"]) * episode_length,
        **TINY,
        **overrides,
    )
    built = build(config)
    assert built.algorithm.episode_length == episode_length  # found automatically (episode_length=0)
    assert built.algorithm.num_updates == iterations
    state, metrics = jax.jit(built.algorithm.train)(jax.random.PRNGKey(0), built.hyperparameters)
    metrics = jax.tree.map(np.asarray, metrics)
    assert metrics["finite"].all()
    assert (metrics["episode_count"] == TINY["num_envs"]).all()  # every collected episode ends within T steps
    return built, state, metrics


def _training_return(metrics):
    """Mean return of the stochastic policy's episodes over the last LAST iterations."""
    return float(metrics["episode_return_sum"][-LAST:].sum() / metrics["episode_count"][-LAST:].sum())


def _greedy_return(built, state):
    """Mean return of EVAL_EPISODES fresh episodes played by the final actor's greedy policy."""
    algorithm = built.algorithm
    params = jax.tree.map(lambda x: x[None, None], algorithm.agent_params(state))  # one setting, one seed
    out = play_episodes(
        algorithm.policy(greedy=True), built.env, built.env_params, params, episodes=EVAL_EPISODES, seed=1
    )
    assert out["finished"].all()
    return float(out["return"].mean())


RECALL = dict(delay=8, num_symbols=4)  # T = delay + 1 = 9 steps, reward 1 at the query step when the cue is named


def _recall(memory, memory_kwargs):
    built, state, metrics = _train(
        "sacd",
        "probe:Recall",
        RECALL,
        episode_length=RECALL["delay"] + 1,
        iterations=40,
        memory=memory,  # both the actor's and the critic's core (actor_memory / critic_memory default to it)
        memory_kwargs=memory_kwargs,
        updates_per_iter=16,
        gamma=0.9,
    )
    return _training_return(metrics), _greedy_return(built, state)


def test_sacd_learns_recall_with_memory_and_not_without():
    # Chance is 1 / num_symbols = 0.25: at the query step a memoryless agent sees the same observation whatever the
    # cue was, so any memoryless policy, stochastic or greedy, gets 0.25 in expectation (std over the 160 training
    # episodes ~0.034, over the 256 greedy ones ~0.027); a perfect agent gets 1.
    with_memory = _recall("gru", {"hidden_size": 32})
    without = _recall("mlp", {"features": 32})
    assert with_memory[0] > 0.9 and with_memory[1] > 0.95, with_memory
    assert without[0] < 0.45 and without[1] < 0.45, without  # the negative control: the cue is gone by the query


def test_sac_learns_a_continuous_target():
    # ContinuousTarget: target t ~ U(-1, 1) observed, reward 1 - |a - t|. A uniformly random action gets
    # 1 - E|a - t| = 1/3, the best policy that ignores the target (a = 0) gets 0.5, a perfect one 1.
    built, state, metrics = _train(
        "sac",
        "probe:ContinuousTarget",
        {},
        episode_length=1,
        iterations=48,
        memory="gru",
        memory_kwargs={"hidden_size": 32},
        updates_per_iter=32,
        alpha=0.1,  # autotuned (sac's default) from 0.1 towards the target entropy -1
    )
    training, greedy = _training_return(metrics), _greedy_return(built, state)
    assert training > 0.85 and greedy > 0.9, (training, greedy)
    # the temperature did its job: the policy's entropy settled at the target, -target_entropy_scale * action_dim
    assert abs(metrics["entropy"][-LAST:].mean() + 1.0) < 0.25, metrics["entropy"][-LAST:]
