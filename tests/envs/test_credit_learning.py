"""PPO learns a reduced Visual Match with SHM and cannot without memory; the trainer runs a continuous meta-RL task.

Visual Match (envs.credit.visual_match) with a short distractor, D = 5: episode T = 15 + 5 + 10 = 30 steps.
The colour is only visible in the first 15 steps; after the distractor room the agent must walk to the door of
that colour (4 moves to the middle door, 7 to a side door, within 10 steps). Nothing seen in the reward room
depends on the target, so an agent without memory succeeds at most 1/3 of the time.

Budget: 64 envs x 30 steps (one whole episode per env per rollout), 200 updates = 384,000 env steps (150 left a GRU on
the 2/3 plateau on a Zen 3 CPU), 4 epochs x 4 minibatches, ent_coef 0.01, gamma 0.99, lambda 0.95, sizes 64 (features,
pre, post, heads), seed PRNGKey(0). Evaluation: 64 fresh episodes, greedy actions, shm_jax.training.evaluation (seed 1).

What is asserted: the best success rate over 10 consecutive updates of training (640 episodes, sampled actions)
reaches 0.85 with SHM and stays below it without memory (the negative control, an MLP agent: at most 1/3 can be
reached without remembering the colour). The final parameters' greedy evaluation is checked above chance only: near
the end of this budget, success oscillates between 1.0 and the 2/3 plateau from one update to the next (a GRU run's
last five updates: training success 1.0, 1.0, 0.63, 0.77, 0.64, greedy evaluation 0.66 after them), so which update
is last decides the final number. A GRU learns this task too at lr 3e-3 (not run here: the suite's GRU learning tests
are tests/algorithms/*/test_*_learning.py).
A common failure mode is a plateau at about 2/3 (greedy 0.61): the agent serves two colours' doors and has not
found the third. Seen with D = 10 and 15, GRU at lr 1e-3, SHM at lr 3e-3 with D = 15, and SHM with the time
encoding on (time_encoding=True) at this exact budget; hence every learning-relevant field is pinned below.
The threshold (0.85) excludes that plateau as well as chance (1/3).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from shm_jax.build import build
from shm_jax.presets import from_preset
from shm_jax.training.evaluation import evaluate

pytestmark = [pytest.mark.slow, pytest.mark.optimized]  # learning runs: outside the quick tier, fully optimised compile

DISTRACTOR_LEN = 5
EPISODE_LEN = 15 + DISTRACTOR_LEN + 10  # explore + distractor + reward chapters
VISUAL_MATCH = dict(
    env_id="VisualMatch-Short",
    env_overrides={"distractor_len": DISTRACTOR_LEN},
    feature_size=64,
    feature_norm=True,
    time_encoding=False,
    pre_size=64,
    post_size=64,
    head_hidden_size=64,
    num_envs=64,
    num_steps=EPISODE_LEN,
    num_minibatches=4,
    update_epochs=4,
    anneal_lr=False,
    adam_eps=1e-5,
    ent_coef=0.01,
    gamma=0.99,
    gae_lambda=0.95,
    clip_eps=0.2,
    clip_value_loss=True,
    vf_coef=0.5,
    max_grad_norm=0.5,
    normalize_advantages=True,
)  # every field that shapes learning is pinned: the results below must not move with TrainConfig's defaults
UPDATES = 200
EVAL_EPISODES = 64


def _batched(tree):
    """Add the [G=1, S=1] leading axes the evaluation API expects."""
    return jax.tree.map(lambda x: x[None, None], tree)


@pytest.mark.parametrize(
    "memory, memory_kwargs, lr",
    [
        ("shm", {"memory_size": 32, "shortcut": True}, 1e-3),
        ("mlp", {}, 1e-3),  # the negative control: no memory
    ],
)
def test_visual_match_colour_is_remembered(memory, memory_kwargs, lr):
    """Budget, threshold and why in the module docstring: a memory reaches 0.85 success, no memory does not."""
    config = from_preset(
        "default",
        memory=memory,
        memory_kwargs=memory_kwargs,
        lr=lr,
        total_timesteps=VISUAL_MATCH["num_envs"] * EPISODE_LEN * UPDATES,
        **VISUAL_MATCH,
    )
    built = build(config)
    trainer = built.algorithm
    assert trainer.num_updates == UPDATES
    state, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0), built.hyperparameters)
    metrics = jax.tree.map(np.asarray, metrics)
    assert metrics["finite"].all()
    # Rollouts of T steps from a reset hold exactly one whole episode per environment.
    np.testing.assert_array_equal(metrics["episode_count"], config.ppo.num_envs)

    result = evaluate(
        built.policy(greedy=True),
        built.env,
        built.env_params,
        _batched(state.params),
        episodes=EVAL_EPISODES,
        seed=1,
        task_params=built.eval_tasks,
    )
    run = result["per_run"][0]
    assert result["episodes"] == EVAL_EPISODES and run["unfinished"] == 0 and run["mean_length"] == EPISODE_LEN
    window = np.ones(10)
    rolling = np.convolve(metrics["success_sum"], window, "valid") / np.convolve(
        metrics["episode_count"], window, "valid"
    )
    best = float(rolling.max())
    if memory == "mlp":
        assert best < 0.85, (best, run)
    else:
        assert best >= 0.85, (memory, best, run)
        assert run["success_rate"] >= 0.5, (memory, run, best)  # above chance (1/3; 64 episodes: sd 0.06)


def test_meta_task_trains():
    """A few updates of a Gaussian-policy agent on Wind (continuous, meta-RL); evaluated on held-out tasks."""
    config = from_preset(
        "default",
        env_id="Wind-50-150",
        memory="gru",
        memory_kwargs={"hidden_size": 16},
        time_encoding=False,
        feature_size=16,
        pre_size=16,
        post_size=16,
        head_hidden_size=16,
        num_envs=4,
        num_steps=100,
        num_minibatches=2,
        update_epochs=2,
        lr=3e-4,
        total_timesteps=4 * 100 * 3,
    )
    built = build(config)
    trainer = built.algorithm
    assert trainer.action_spec.kind == "box" and trainer.action_spec.sizes == (2,)  # Gaussian policy
    state, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0), built.hyperparameters)
    metrics = jax.tree.map(np.asarray, metrics)
    assert metrics["finite"].all() and metrics["finite"].shape == (3,)
    for name in ("total_loss", "policy_loss", "value_loss", "entropy", "grad_norm", "approx_kl"):
        assert np.isfinite(metrics[name]).all(), name
    # Wind trials are 100 steps: every rollout of 100 steps ends one trial per environment.
    np.testing.assert_array_equal(metrics["episode_count"], config.ppo.num_envs)
    assert (metrics["grad_norm"] > 0).all() and int(state.update) == 3  # three real updates happened

    result = evaluate(
        built.policy(greedy=True),
        built.env,
        built.env_params,
        _batched(state.params),
        episodes=8,
        task_params=built.eval_tasks,
    )

    run = result["per_run"][0]
    assert result["task_split"] == "held-out test tasks" and result["episodes"] == 150  # one trial per test task
    assert run["unfinished"] == 0 and run["mean_length"] == 100
    assert 0.0 <= run["success_rate"] <= 1.0 and 0.0 <= run["mean_return"] <= 100.0
