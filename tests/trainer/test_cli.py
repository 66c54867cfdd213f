"""train.py end to end with the real trainer (tiny sizes): run directory, eval subcommand, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import train
from shm_jax import trainer as trainer_lib
from shm_jax.checkpoint import Checkpointer
from shm_jax.build import build
from shm_jax.config import from_preset, with_overrides

REPO = Path(__file__).parents[2]
TINY = ["--num-envs", "4", "--num-steps", "8", "--num-minibatches", "2", "--update-epochs", "1",
        "--feature-size", "8", "--pre-size", "8", "--post-size", "8", "--head-hidden-size", "8",
        "--updates-per-chunk", "2"]


def test_cli_smoke_run_writes_everything_and_eval_subcommand_works(tmp_path):
    args = ["--env", "RepeatPreviousEasy", "--memory", "gru", "--memory-kwargs", "hidden_size", "8",
            "--num-seeds", "2", "--sweep", "lr=1e-3,3e-4", "--total-timesteps", str(4 * 32), *TINY,
            "--eval-episodes", "2", "--out-dir", str(tmp_path)]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.startswith("RepeatPreviousEasy-gru-")
    assert f"Run directory: {run_dir}" in result.stdout and "MMER" in result.stdout
    png = run_dir / "learning_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    config = json.loads((run_dir / "config.json").read_text())
    assert config["agent"]["memory_kwargs"] == {"hidden_size": 8}
    assert config["run"]["sweep"] == [["lr", [0.001, 0.0003]]]
    assert {d["platform"] for d in json.loads((run_dir / "devices.json").read_text())["devices"]} == {"cpu"}
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 4 * 4  # 4 updates x (2 settings x 2 seeds)
    assert {r["run"] for r in records} == {"lr=0.001_seed0", "lr=0.001_seed1", "lr=0.0003_seed0", "lr=0.0003_seed1"}
    assert len(list((run_dir / "csv").glob("*.csv"))) == 4
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["env_steps_per_run"] == 4 * 32
    assert [s["label"] for s in summary["per_setting"]] == ["lr=0.001", "lr=0.0003"]
    assert "final_success_rate" not in summary["per_setting"][0]  # RepeatPrevious defines no success
    assert [e["policy"] for e in summary["evaluation"]] == ["greedy", "sampled"]
    assert Checkpointer(run_dir, create=False).latest_step() == 4

    # the eval subcommand reads the run back (in-process: same code path as `python train.py eval`)
    assert train.main(["eval", str(run_dir), "--episodes", "3", "--policy", "greedy"]) == 0
    (greedy,) = json.loads((run_dir / "eval.json").read_text())
    assert greedy["policy"] == "greedy" and greedy["episodes"] == 3 and len(greedy["per_run"]) == 4
    # RepeatPrevious-Easy returns lie in [-1, 1]; every evaluation episode finished
    assert all(-1.0 <= r["mean_return"] <= 1.0 and r["unfinished"] == 0 for r in greedy["per_run"])


@pytest.mark.parametrize("args, message", [
    (["--env", "NoSuchEnv"], "env_id: unknown environment id 'NoSuchEnv'"),
    (["--memory", "lstm"], "memory: unknown memory 'lstm'"),
    (["--preset", "paper-popgm"], "preset: unknown preset 'paper-popgm'; valid: default, paper-popgym"),
    (["--sweep", "learning_rate=1e-4,3e-4"], "sweep: unknown sweep name 'learning_rate'"),
    (["--sweep", "lr=fast"], "sweep: values of 'lr' must be numbers"),
    (["--num-envs", "6", "--num-minibatches", "4"], "num_minibatches: must divide num_envs=6"),
    (["--no-such-flag", "1"], "Unrecognized options: --no-such-flag"),
    (["--resume", "/nonexistent/run"], "resume: run directory '/nonexistent/run' does not exist"),
    (["eval", "/nonexistent/run"], "eval: run directory '/nonexistent/run' does not exist"),
])
def test_bad_input_is_a_one_line_error_before_compiling(tmp_path, capsys, args, message):
    start = time.perf_counter()
    assert train.main([*args, "--out-dir", str(tmp_path)] if args[0] != "eval" else args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not list(tmp_path.iterdir())  # no run directory: it failed before building anything
    assert time.perf_counter() - start < 30


def test_exit_code_and_message_of_a_bad_option_in_a_fresh_process():
    result = subprocess.run([sys.executable, str(REPO / "train.py"), "--env", "RepeatPreviousEasyy"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip()] and "closest valid ids: RepeatPreviousEasy" in result.stderr


def test_real_trainer_resume_is_exact(tmp_path):
    """4 updates straight == 2 + save + restore + 2 (full runner state: params, Adam, env, SHM carry, RNG)."""
    config = from_preset("default", env_id="RepeatFirstEasy", memory="shm",
                         memory_kwargs={"memory_size": 4, "projection_size": 8}, num_envs=4, num_steps=8,
                         num_minibatches=2, update_epochs=1, feature_size=8, pre_size=8, post_size=8,
                         head_hidden_size=8, total_timesteps=4 * 32, updates_per_chunk=2, num_seeds=2,
                         eval_episodes=0, out_dir=str(tmp_path / "straight"))
    built = build(config)
    program = built.program()
    straight = trainer_lib.run(config, built=built, program=program, progress=False)
    halves_config = with_overrides(config, out_dir=str(tmp_path / "halves"))
    halves = trainer_lib.run(halves_config, built=built, program=program, progress=False, stop_after_updates=2)
    assert Checkpointer(halves, create=False).all_steps() == [2]
    trainer_lib.run(halves_config, built=built, program=program, progress=False, resume_dir=halves)

    def final(run_dir):
        checkpointer = Checkpointer(run_dir, create=False)
        try:
            return checkpointer.restore(program.abstract_state())
        finally:
            checkpointer.close()

    (state_a, hist_a, _), (state_b, hist_b, _) = final(straight), final(halves)
    leaves_a, leaves_b = jax.tree.leaves(state_a), jax.tree.leaves(state_b)
    assert len(leaves_a) == len(leaves_b) > 10
    for a, b in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for key in hist_a:
        np.testing.assert_array_equal(hist_a[key], hist_b[key])
    assert int(np.asarray(state_b.update).max()) == 4
