"""The default preset is what `python train.py` runs: valid, SHM on a task it learns in minutes, any --memory works.

Cheap: validation, CLI parsing and environment/memory construction only; nothing is compiled or trained.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

from shm_jax.build import build, make_env
from shm_jax.config import TrainConfig, validate
from shm_jax.memory import memory_names
from shm_jax.presets import from_preset

TRAIN_PY = Path(__file__).resolve().parents[3] / "train.py"


def _train_cli():
    spec = importlib.util.spec_from_file_location("train_cli_for_default_preset", TRAIN_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def test_default_preset_is_shm_on_repeat_first_easy_with_time_encoding():
    config = validate(from_preset("default"))
    assert config == TrainConfig()  # the dataclass defaults are the default preset
    assert (config.env.env_id, config.agent.memory, config.agent.memory_kwargs) == ("RepeatFirstEasy", "shm", {})
    # RepeatFirstEasy shows no start flag, so SHM (keys from the current input only) needs the time encoding
    # to single out the first card; the task default must not be silently adding a flag instead.
    assert config.agent.time_encoding and config.env.prev_action is None
    env, params = make_env(config.env)
    assert env.observation_space(params).shape == (4,)  # one-hot suit only: no start flag, no previous action


class _Started(Exception):
    """Raised by the stand-in trainer: carries the config ``python train.py`` would have trained."""


def test_bare_train_py_runs_the_default_preset(monkeypatch):
    from shm_jax import cli_run

    def fake_train(config, resume_dir=None):
        raise _Started(config, resume_dir)

    monkeypatch.setattr(cli_run.api, "train", fake_train)
    with pytest.raises(_Started) as started:
        _train_cli().main([])  # train.py -> shm_jax.cli -> the training command, as `python train.py` runs
    assert started.value.args == (from_preset("default"), None)


def test_default_run_is_small_and_compiles_one_chunk_program():
    config = from_preset("default")
    steps_per_update = config.ppo.num_envs * config.ppo.num_steps
    updates = config.ppo.total_timesteps // steps_per_update
    assert updates * steps_per_update == config.ppo.total_timesteps  # no partial update dropped
    assert updates % config.run.updates_per_chunk == 0  # equal chunks: a single compiled program
    assert config.ppo.total_timesteps <= 250_000  # minutes on a 2-core CPU, not hours
    # lr 1e-3 annealed to 0: held constant it overshot late and ended some seeds below 0.95
    # (benchmarks/results/agent/default_run.md)
    assert config.ppo.anneal_lr and config.ppo.lr == 1e-3


@pytest.mark.parametrize("memory", memory_names())
def test_any_memory_switches_from_the_default(memory):
    # `python train.py --memory gru` must not inherit SHM-only constructor arguments from the preset.
    config = from_preset("default", memory=memory)
    build(config)  # the memory kwargs and the environment are checked by the build step
    assert config.agent.memory == memory and config.env.env_id == "RepeatFirstEasy"


@pytest.mark.slow
def test_a_whole_run_builds_the_environment_and_the_memory_core_once(monkeypatch, tmp_path):
    """build(config) is the one place things are built: CLI parse, validation, training and evaluation reuse it."""
    from shm_jax import build as build_module
    from shm_jax import envs

    counts = {"env": 0, "memory": 0}

    def counting(key, fn):
        def wrapped(*args, **kwargs):
            counts[key] += 1
            return fn(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(envs, "make", counting("env", envs.make))
    monkeypatch.setattr(build_module, "make_memory", counting("memory", build_module.make_memory))
    argv = [
        "--memory-kwargs",
        "memory_size",
        "4",
        "--feature-size",
        "8",
        "--pre-size",
        "8",
        "--post-size",
        "8",
        "--head-hidden-size",
        "8",
        "--num-envs",
        "2",
        "--num-steps",
        "4",
        "--num-minibatches",
        "1",
        "--update-epochs",
        "1",
        "--total-timesteps",
        "8",
        "--eval-episodes",
        "1",
        "--out-dir",
        str(tmp_path),
    ]
    assert _train_cli().main(argv) == 0
    assert counts == {"env": 1, "memory": 1}
