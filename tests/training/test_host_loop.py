"""The host loop with a tiny fake Trainer: files, resume equivalence, non-finite stop, resume errors."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from fake_trainer import fake_config, fake_program

from shm_jax import api
from shm_jax.config import ConfigError, with_overrides
from shm_jax.training import loop, rundir
from shm_jax.training.checkpoint import Checkpointer
from tests.helpers import assert_trees_equal

HERE = Path(__file__).parent


def _run(config, **kwargs):
    return api.train(config, program=fake_program(config), progress=False, **kwargs)


def _restore(run_dir, config, step=None):
    program = fake_program(config)
    checkpointer = Checkpointer(run_dir, create=False)
    try:
        return checkpointer.restore(program.abstract_state(), step)
    finally:
        checkpointer.close()


def _jsonl(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_run_writes_a_self_describing_directory(tmp_path):
    config = fake_config(
        out_dir=str(tmp_path), sweep=(("lr", (0.01, 0.05)),), num_seeds=2, num_updates=4, tensorboard=True
    )
    run_dir = _run(config)
    # TensorBoard logs only when tensorboardX is importable; otherwise the run goes on without them
    assert (run_dir / "tensorboard").is_dir() == (importlib.util.find_spec("tensorboardX") is not None)
    assert run_dir.parent == tmp_path and run_dir.name.startswith("Fake-none-")
    for name in ("config.json", "versions.json", "devices.json", "metrics.jsonl", "summary.json", "learning_curve.png"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "config.json").read_text())["run"]["sweep"] == [["lr", [0.01, 0.05]]]
    assert json.loads((run_dir / "versions.json").read_text())["jax"] == jax.__version__
    # one CSV per (setting, seed), one jsonl record per (update, run)
    assert sorted(p.name for p in (run_dir / "csv").iterdir()) == [
        "lr=0.01_seed0.csv",
        "lr=0.01_seed1.csv",
        "lr=0.05_seed0.csv",
        "lr=0.05_seed1.csv",
    ]
    records = _jsonl(run_dir)
    assert len(records) == 4 * 4 and {r["update"] for r in records} == {1, 2, 3, 4}
    assert all(r["mean_return"] == pytest.approx(r["episode_return_sum"] / r["episode_count"]) for r in records)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["updates"] == 4
    assert [s["label"] for s in summary["per_setting"]] == ["lr=0.01", "lr=0.05"]
    # MMER of a run is the max of its per-update mean returns
    for entry in summary["per_run"]:
        returns = [r["mean_return"] for r in records if r["run"] == entry["run"]]
        assert entry["mmer"] == pytest.approx(max(returns))
    mmers = [e["mmer"] for e in summary["per_run"][:2]]
    assert summary["per_setting"][0]["mmer"]["mean"] == pytest.approx(np.mean(mmers))
    assert summary["per_setting"][0]["mmer"]["std"] == pytest.approx(np.std(mmers))
    # the two sweep settings really trained with different learning rates, seeds differ too
    by_run = {e["run"]: e["final_return"] for e in summary["per_run"]}
    assert len(set(by_run.values())) == 4
    # checkpoints every chunk, the last few kept, the last one at the end
    assert Checkpointer(run_dir, create=False).all_steps() == [2, 4]


def test_resume_continues_exactly(tmp_path):
    config = fake_config(out_dir=str(tmp_path / "a"), num_seeds=2, num_updates=6, updates_per_chunk=2)
    straight = _run(config)
    halves = _run(with_overrides(config, out_dir=str(tmp_path / "b")), stop_after_updates=2)
    assert json.loads((halves / "summary.json").read_text())["status"] == "interrupted"
    resumed = _run(config, resume_dir=halves)
    assert resumed == halves
    state_a, hist_a, meta_a = _restore(straight, config)
    state_b, hist_b, meta_b = _restore(resumed, config)
    assert meta_a["updates_done"] == meta_b["updates_done"] == 6
    assert_trees_equal(state_a, state_b)
    for key in hist_a:
        np.testing.assert_array_equal(hist_a[key], hist_b[key])
    assert _jsonl(straight) == _jsonl(resumed)


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    # lr 1e30: update 1 is finite (params ~1e30), update 2 overflows: the run is frozen at its update-1 state
    config = fake_config(out_dir=str(tmp_path), lr=1e30, num_seeds=1, num_updates=6, updates_per_chunk=1)
    with pytest.raises(
        loop.NonFiniteLossError,
        match=r"non-finite loss in every run \(seed0 at update 2\).*last good checkpoint: update 2",
    ):
        _run(config)
    (run_dir,) = tmp_path.iterdir()
    assert Checkpointer(run_dir, create=False).all_steps() == [1, 2]
    state_1, _, _ = _restore(run_dir, config, step=1)
    state, _, meta = _restore(run_dir, config)
    assert meta["updates_done"] == 2 and meta["diverged"] == [{"run": "seed0", "at_update": 2}]
    assert_trees_equal(state_1, state)  # rolled back: the update-1 state
    assert all(np.isfinite(np.asarray(leaf, dtype=np.float64)).all() for leaf in jax.tree.leaves(state))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "nonfinite" and summary["diverged"] == [{"run": "seed0", "at_update": 2}]
    records = _jsonl(run_dir)
    assert [(r["update"], r["active"]) for r in records] == [(1, True), (2, False)]
    assert records[1]["total_loss" if "total_loss" in records[1] else "loss"] is None  # NaN: not a result


def test_resume_from_missing_or_corrupted_directory_is_one_line_error(tmp_path):
    config = fake_config(out_dir=str(tmp_path), num_seeds=1, num_updates=2, updates_per_chunk=2)
    with pytest.raises(ConfigError, match=r"^resume: run directory .* does not exist$"):
        rundir.load_config(tmp_path / "nope")
    run_dir = _run(config)
    assert rundir.load_config(run_dir) == config
    # damage every file of the saved state
    for path in (run_dir / "checkpoints").rglob("*"):
        if path.is_file() and "state" in path.parts:
            path.write_bytes(b"garbage")
    with pytest.raises(ConfigError, match=r"^resume: no readable checkpoint in .*: 2 \(") as info:
        _run(config, resume_dir=run_dir)
    assert "\n" not in str(info.value)
    (run_dir / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"^resume: .*config.json is corrupted"):
        rundir.load_config(run_dir)


SIGINT_SCRIPT = """
import sys
from fake_trainer import fake_config, fake_program
from shm_jax import api
from shm_jax.training import loop
config = fake_config(out_dir=sys.argv[1], num_seeds=1, num_updates=100000, updates_per_chunk=1, checkpoint_every=0)
api.train(config, program=fake_program(config), progress=False)
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_finishes_the_chunk_saves_and_resume_works(tmp_path, signum):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parents[1])]), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGINT_SCRIPT, str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob("*/metrics.jsonl")):
        time.sleep(0.2)
    time.sleep(0.5)  # a few chunks in
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"{signal.Signals(signum).name} received" in err and "Resume with: python train.py --resume" in err
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    done = summary["updates"]
    assert summary["status"] == "interrupted" and 0 < done < 100000
    assert summary["stop_signal"] == signal.Signals(signum).name
    assert Checkpointer(run_dir, create=False).latest_step() == done
    config = fake_config(
        out_dir=str(tmp_path), num_seeds=1, num_updates=100000, updates_per_chunk=1, checkpoint_every=0
    )
    _run(config, resume_dir=run_dir, stop_after_updates=done + 3)
    assert Checkpointer(run_dir, create=False).latest_step() == done + 3
    assert [r["update"] for r in _jsonl(run_dir)] == list(range(1, done + 4))
