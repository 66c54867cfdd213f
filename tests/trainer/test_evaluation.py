"""evaluation: held-out meta-RL tasks, success rates, greedy vs sampled on a fresh agent."""

from __future__ import annotations

import numpy as np

import envs
from shm_jax import evaluation
from shm_jax import trainer as trainer_lib
from shm_jax.config import from_preset


def test_meta_tasks_are_evaluated_on_the_held_out_split():
    _, params = envs.make("Wind-50-150")
    per_episode, count, axis = evaluation.episode_params(params, episodes=200, meta=True)
    test_ids = np.asarray(params.test_task_ids)
    assert axis == 0 and count == 2 * len(test_ids) == 300  # ceil(200 / 150) rounds over the 150 test tasks
    np.testing.assert_array_equal(np.asarray(per_episode.task_id), np.concatenate([test_ids, test_ids]))
    assert not set(test_ids) & set(np.asarray(params.train_task_ids).tolist())
    shared, count, axis = evaluation.episode_params(params, episodes=7, meta=False)
    assert shared is params and count == 7 and axis is None


def test_evaluate_a_fresh_meta_agent_reports_return_and_success():
    config = from_preset("default", env_id="Wind-10-190", memory="gru", memory_kwargs={"hidden_size": 8},
                         num_envs=2, num_steps=8, num_minibatches=1, update_epochs=1, feature_size=8,
                         pre_size=8, post_size=8, head_hidden_size=8, total_timesteps=16, num_seeds=2,
                         eval_episodes=4)
    assert evaluation._is_meta(config)
    trainer, hparams = trainer_lib._build(config)
    program = trainer_lib.BatchedTrain(trainer, hparams, seed=0, num_seeds=2, num_envs=2)
    state = program.init()
    result = evaluation.evaluate(state, episodes=4, greedy=True, trainer=trainer, config=config,
                                 settings=program.settings, seeds=program.seeds)
    assert result["task_split"] == "held-out test tasks" and result["episodes"] == 190
    assert [r["run"] for r in result["per_run"]] == ["seed0", "seed1"]
    for run in result["per_run"]:
        # Wind: one 100-step trial per test task, reward 1 per step inside the goal radius
        assert run["unfinished"] == 0 and run["mean_length"] == 100
        assert 0.0 <= run["mean_return"] <= 100.0 and 0.0 <= run["success_rate"] <= 1.0
    assert "success_rate" in result["per_setting"][0]
