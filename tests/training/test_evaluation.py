"""evaluation: held-out meta-RL tasks, success rates, greedy vs sampled on a fresh agent."""

from __future__ import annotations

import numpy as np
import pytest

from shm_jax import envs
from shm_jax.build import build
from shm_jax.config import ConfigError
from shm_jax.presets import from_preset
from shm_jax.training import evaluation, loop


def test_meta_tasks_are_evaluated_on_the_held_out_split():
    _, params = envs.make("Wind-50-150")
    held_out = envs.resolve("Wind-50-150").eval_tasks(params)  # the split comes from the environment's spec
    per_episode, count, axis = evaluation._episode_params(params, episodes=200, task_params=held_out)
    test_ids = np.asarray(params.test_task_ids)
    assert axis == 0 and count == 2 * len(test_ids) == 300  # ceil(200 / 150) rounds over the 150 test tasks
    np.testing.assert_array_equal(np.asarray(per_episode.task_id), np.concatenate([test_ids, test_ids]))
    assert not set(test_ids) & set(np.asarray(params.train_task_ids).tolist())
    shared, count, axis = evaluation._episode_params(params, episodes=7, task_params=None)
    assert shared is params and count == 7 and axis is None
    assert envs.resolve("RepeatPreviousEasy").eval_tasks is None  # POPGym tasks evaluate on their own distribution


@pytest.mark.slow
def test_evaluate_a_fresh_meta_agent_reports_return_and_success():
    config = from_preset(
        "default",
        env_id="Wind-10-190",
        memory="gru",
        memory_kwargs={"hidden_size": 8},
        num_envs=2,
        num_steps=8,
        num_minibatches=1,
        update_epochs=1,
        feature_size=8,
        pre_size=8,
        post_size=8,
        head_hidden_size=8,
        total_timesteps=16,
        num_seeds=2,
        eval_episodes=4,
    )
    built = build(config)
    assert built.eval_tasks is not None
    program = built.program()
    state = program.init()
    result = loop.evaluate_agents(built, program, state, episodes=4, greedy=True)
    assert result["task_split"] == "held-out test tasks" and result["episodes"] == 190
    assert [r["run"] for r in result["per_run"]] == ["seed0", "seed1"]
    for run in result["per_run"]:
        # Wind: one 100-step trial per test task, reward 1 per step inside the goal radius
        assert run["unfinished"] == 0 and run["mean_length"] == 100
        assert 0.0 <= run["mean_return"] <= 100.0 and 0.0 <= run["success_rate"] <= 1.0
    assert "success_rate" in result["per_setting"][0]


def test_evaluate_rejects_a_non_positive_episode_count():
    policy = evaluation.Policy(initialize_carry=lambda n: None, act=lambda *args: None)
    with pytest.raises(ConfigError, match="^episodes: must be a positive integer, got 0$"):
        evaluation.evaluate(policy, None, None, None, episodes=0)
