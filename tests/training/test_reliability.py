"""Long runs that survive (fake algorithm, real host loop and orbax): checkpoints by time, SIGKILL at any moment,
a diverging run frozen while the others go on, damaged and half-written checkpoints, a full disk, resume rules."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from fake_trainer import fake_config, fake_program

from shm_jax import api, cli_parse
from shm_jax.config import ConfigError, with_overrides
from shm_jax.training import rundir
from shm_jax.training.checkpoint import Checkpointer, CheckpointWriteError
from tests.helpers import assert_trees_equal

HERE = Path(__file__).parent


def _run(config, **kwargs):
    work = kwargs.pop("work", 0)
    return api.train(config, program=fake_program(config, work=work), progress=False, **kwargs)


def _checkpointer(run_dir):
    return Checkpointer(run_dir, create=False)


def _restore(run_dir, config, step=None):
    checkpointer = _checkpointer(run_dir)
    try:
        return checkpointer.restore(fake_program(config).abstract_state(), step)
    finally:
        checkpointer.close()


def test_default_saves_after_the_first_chunk_and_then_by_time(tmp_path):
    """checkpoint_every 0 (the default): one checkpoint after the first chunk, the next after checkpoint_minutes."""
    quick = fake_config(out_dir=str(tmp_path / "a"), num_updates=6, updates_per_chunk=1, checkpoint_every=0)
    assert quick.run.checkpoint_minutes == 10.0  # the default
    assert _checkpointer(_run(quick)).all_steps() == [1, 6]  # ten minutes never passed in this run
    often = with_overrides(quick, out_dir=str(tmp_path / "b"), checkpoint_minutes=1e-9)  # due after every chunk
    assert _checkpointer(_run(often)).all_steps() == [4, 5, 6]  # keep_checkpoints = 3
    kept = with_overrides(often, out_dir=str(tmp_path / "c"), keep_checkpoints=2)
    assert _checkpointer(_run(kept)).all_steps() == [5, 6]


def test_a_diverging_setting_is_frozen_while_the_others_finish(tmp_path):
    config = fake_config(
        out_dir=str(tmp_path),
        sweep=(("lr", (0.05, 1e30)),),
        num_seeds=2,
        num_updates=6,
        updates_per_chunk=1,
        checkpoint_minutes=1e-9,
        keep_checkpoints=10,
    )
    run_dir = _run(config)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["diverged"] == [{"run": "lr=1e+30_seed0", "at_update": 2}, {"run": "lr=1e+30_seed1", "at_update": 2}]
    # no checkpoint ever holds a non-finite number
    for step in _checkpointer(run_dir).all_steps():
        state, _, _ = _restore(run_dir, config, step)
        assert all(np.isfinite(np.asarray(x, np.float64)).all() for x in jax.tree.leaves(state)), step
    state, history, _ = _restore(run_dir, config)
    np.testing.assert_array_equal(np.asarray(state.update), [[6, 6], [1, 1]])  # healthy runs trained on
    assert history["active"][0].all() and not history["active"][1, :, 1:].any()
    assert np.isfinite(summary["per_setting"][0]["final_return"]["mean"])


def test_a_finished_run_is_left_alone_by_resume(tmp_path, capsys):
    config = fake_config(out_dir=str(tmp_path), num_updates=4)
    run_dir = _run(config)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert _run(config, resume_dir=run_dir) == run_dir
    assert "already finished all 4 updates; nothing to do" in capsys.readouterr().err
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before


def test_a_damaged_newest_checkpoint_is_skipped_and_leftovers_are_removed(tmp_path, capfd):
    config = fake_config(
        out_dir=str(tmp_path / "a"), num_seeds=2, num_updates=8, updates_per_chunk=1, checkpoint_minutes=1e-9
    )
    straight = _run(config)
    halves = _run(with_overrides(config, out_dir=str(tmp_path / "b")), stop_after_updates=5)
    assert _checkpointer(halves).all_steps() == [3, 4, 5]
    for path in (halves / "checkpoints" / "5").rglob("*"):  # a truncated newest checkpoint
        if path.is_file():
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    (halves / "checkpoints" / "6.orbax-checkpoint-tmp-1700000000").mkdir()  # what a kill mid-save leaves
    capfd.readouterr()
    _run(with_overrides(config, out_dir=str(tmp_path / "b")), resume_dir=halves)
    err = capfd.readouterr().err
    assert "skipped damaged checkpoint(s) 5 (" in err and "using checkpoint 4" in err and "moved to 5.damaged-" in err
    assert "removed unfinished checkpoint folder(s) 6.orbax-checkpoint-tmp-1700000000" in err
    assert "Traceback" not in err and "json parse" not in err.lower()
    assert len([line for line in err.splitlines() if line.strip()]) <= 6, err
    assert_trees_equal(_restore(straight, config)[0], _restore(halves, config)[0])  # resumed from 4: same result


def test_a_full_disk_is_one_line_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    config = fake_config(out_dir=str(tmp_path), num_updates=6, updates_per_chunk=1, checkpoint_minutes=1e-9)
    real_save, calls = ocp.CheckpointManager.save, []

    def save(self, step, *args, **kwargs):
        calls.append(step)
        if len(calls) > 2:
            raise OSError(28, "No space left on device")
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", save)
    with pytest.raises(CheckpointWriteError) as info:
        _run(config)
    message = str(info.value)
    assert "\n" not in message and "No space left on device" in message
    assert "checkpoint 3 was not written" in message and "the last good checkpoint is update 2" in message
    (run_dir,) = tmp_path.iterdir()
    monkeypatch.setattr(ocp.CheckpointManager, "save", real_save)
    assert _checkpointer(run_dir).all_steps() == [1, 2]
    assert not [p for p in (run_dir / "checkpoints").iterdir() if "tmp" in p.name]


def test_resume_may_change_hyperparameters_and_records_it(tmp_path, capsys):
    config = fake_config(out_dir=str(tmp_path), num_updates=6, updates_per_chunk=1)
    run_dir = _run(config, stop_after_updates=3)
    command = cli_parse.parse_train_args(argv := ["--resume", str(run_dir), "--lr", "0.01", "--keep-checkpoints", "5"])
    resumed, changes = cli_parse.resume_config(command, argv)
    assert changes == {"lr": (0.05, 0.01), "keep_checkpoints": (3, 5)}
    assert resumed.ppo.lr == 0.01 and resumed.run.keep_checkpoints == 5 and resumed.env == config.env
    rundir.record_resume(run_dir, resumed, changes)
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["ppo"]["lr"] == 0.01 and saved["resumed"][0]["changed"]["lr"] == [0.05, 0.01]
    assert rundir.load_config(run_dir) == resumed  # the record does not get in the way of loading
    _run(resumed, resume_dir=run_dir)
    state, _, _ = _restore(run_dir, resumed)
    # the same three updates with the old learning rate end elsewhere: the new value really trained
    reference = _run(with_overrides(config, out_dir=str(tmp_path / "ref")), stop_after_updates=3)
    _run(config, resume_dir=reference)
    assert not np.allclose(np.asarray(_restore(reference, config)[0].params["w"]), np.asarray(state.params["w"]))
    for argv, field in (
        (["--resume", str(run_dir), "--num-envs", "8"], "num_envs"),
        (["--resume", str(run_dir), "--memory", "gru"], "memory"),
        (["--resume", str(run_dir), "--preset", "paper-popgym"], "preset"),
    ):
        with pytest.raises(ConfigError, match=f"^{field}: "):
            cli_parse.resume_config(cli_parse.parse_train_args(argv), argv)


def test_a_swept_hyperparameter_cannot_change_on_resume(tmp_path):
    config = fake_config(out_dir=str(tmp_path), num_updates=2, sweep=(("lr", (0.01, 0.05)),))
    run_dir = _run(config, stop_after_updates=1)
    argv = ["--resume", str(run_dir), "--lr", "0.5"]
    with pytest.raises(ConfigError, match="^lr: is swept in this run"):
        cli_parse.resume_config(cli_parse.parse_train_args(argv), argv)


KILL_SCRIPT = """
import sys
from pathlib import Path
from fake_trainer import fake_config, fake_program
from shm_jax import api
from shm_jax.training import loop
out, work = sys.argv[1], int(sys.argv[2])
config = fake_config(out_dir=out, run_name="run", num_seeds=2, num_updates=40, updates_per_chunk=1,
                     checkpoint_minutes=1e-9, keep_checkpoints=2)
run_dir = Path(out) / "run"
resume = run_dir if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()) else None
api.train(config, program=fake_program(config, work=work), progress=False, resume_dir=resume)
"""


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_result(tmp_path):
    """kill -9 at random times (mid-update, mid-save), resume each time: the final state and history equal an
    uninterrupted run's, bit for bit, and each restart resumes from a checkpoint at most a few updates old."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parents[1])]), "JAX_PLATFORMS": "cpu"}
    out, work, rng = tmp_path / "killed", 300, random.Random(0)
    run_dir = out / "run"
    kills = 0
    for attempt in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_SCRIPT, str(out), str(work)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if kills < 3:
            deadline = time.time() + 300
            # wait until a checkpoint is on disk (a run killed before its first one has nothing to resume)
            while (
                time.time() < deadline
                and proc.poll() is None
                and not (
                    (run_dir / "checkpoints").is_dir()
                    and any(p.name.isdigit() for p in (run_dir / "checkpoints").iterdir())
                )
            ):
                time.sleep(0.05)
            start_lines = len((run_dir / "metrics.jsonl").read_text().splitlines())
            while time.time() < deadline and proc.poll() is None:
                lines = len((run_dir / "metrics.jsonl").read_text().splitlines())
                if lines > start_lines + 1:
                    break
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.4))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        _, err = proc.communicate(timeout=600)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err[-2000:]
    assert kills == 3 and proc.returncode == 0, err[-2000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    config = fake_config(
        out_dir=str(tmp_path / "straight"),
        num_seeds=2,
        num_updates=40,
        updates_per_chunk=1,
        checkpoint_minutes=1e-9,
        keep_checkpoints=2,
    )
    straight = _run(config, work=work)
    (state_a, hist_a, _), (state_b, hist_b, _) = _restore(straight, config), _restore(run_dir, config)
    assert_trees_equal(state_a, state_b)
    assert set(hist_a) == set(hist_b)
    for key in hist_a:
        np.testing.assert_array_equal(hist_a[key], hist_b[key])
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in records] == [u for u in range(1, 41) for _ in range(2)]  # no gap, no repeat
