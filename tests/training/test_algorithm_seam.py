"""A second algorithm plugs in through the registry alone: ``fake_trainer`` registers ``--algo fake`` (its own
config section, typed hyperparameters and factory) and trains end to end through ``shm_jax.train`` and
``python train.py`` (build, memory check, batched program, checkpoints, resume, evaluation)."""

from __future__ import annotations

import json

import pytest
from fake_trainer import FakeConfig, FakeHyperparameters

import train as cli
from shm_jax import TrainConfig, api
from shm_jax.algorithms import base
from shm_jax.config import ConfigError, field_names, from_dict, resumable, sweepable, with_overrides

FAKE = dict(
    algo="fake",
    env_id="probe:MatchObservation",
    memory="mlp",
    memory_kwargs={"features": 4},
    num_envs=4,
    num_steps=8,
    total_timesteps=4 * 8 * 4,
    num_seeds=2,
    eval_episodes=4,
    progress=None,
)


def _config(tmp_path, **overrides):
    values = {**FAKE, "out_dir": str(tmp_path), **overrides}
    values.pop("progress")
    return with_overrides(TrainConfig(), **values)


def test_the_fake_is_registered_with_its_own_options():
    assert "fake" in base.names() and base.get("fake").config_type is FakeConfig
    assert sweepable("fake") == ("lr",) == tuple(vars(FakeHyperparameters(lr=0.1)))
    assert set(resumable("fake")) >= {"lr", "eval_episodes"}
    # option names are unique within an algorithm, not across: fake and ppo both have lr, num_envs
    assert {"lr", "num_envs", "num_steps"} <= set(field_names("fake")) & set(field_names("ppo"))
    assert "update_epochs" in field_names("ppo") and "update_epochs" not in field_names("fake")
    with pytest.raises(ConfigError, match="^update_epochs: unknown config field"):
        with_overrides(TrainConfig(), algo="fake", update_epochs=2)
    with pytest.raises(ConfigError, match="^algo: unknown algorithm 'nope'"):
        with_overrides(TrainConfig(), algo="nope")


def test_the_fake_trains_through_train_and_resumes(tmp_path):
    config = _config(tmp_path, run_name="fake", sweep=(("lr", (0.01, 0.05)),))
    assert config.algo == "fake" and config.fake.lr == 0.05
    run_dir = api.train(config, progress=False, stop_after_updates=2)
    saved = json.loads((run_dir / "config.json").read_text())
    assert set(saved) == {"env", "agent", "fake", "run"} and from_dict(saved) == config
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    api.train(config, progress=False, resume_dir=run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["updates"] == 4
    assert [s["label"] for s in summary["per_setting"]] == ["lr=0.01", "lr=0.05"]
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert len(evaluation[0]["per_run"]) == 4  # 2 settings x 2 seeds, played in the probe environment


def test_the_fake_runs_from_the_command_line(tmp_path, capsys):
    argv = [
        "--algo",
        "fake",
        "--env",
        "probe:MatchObservation",
        "--memory",
        "mlp",
        "--num-envs",
        "4",
        "--num-steps",
        "8",
        "--total-timesteps",
        str(4 * 8 * 2),
        "--eval-episodes",
        "2",
        "--out-dir",
        str(tmp_path),
        "--run-name",
        "cli",
    ]
    assert cli.main(argv) == 0
    saved = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert saved["fake"]["total_timesteps"] == 64 and "ppo" not in saved
    assert cli.main(["--algo", "fake", "--update-epochs", "2"]) == 2  # a PPO option is not the fake's
    assert "update-epochs" in capsys.readouterr().err
