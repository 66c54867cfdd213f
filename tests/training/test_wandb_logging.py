"""Logging: the logger protocol (a user's own logger, TensorBoard's writer) and W&B (--wandb offline|online).

The W&B tests train tiny real PPO runs with ``--wandb offline`` into tmp_path (no network, nothing in the home
directory) and read the ``.wandb`` files back after the runs finished (the live run's summary lags behind the file).

How the files are read: a ``.wandb`` file is wandb's transaction log, the one ``wandb sync`` uploads and
``wandb leet inspect`` prints. Its framing is LevelDB's log format: a 7-byte header (``:W&B``, magic 0xBEE1, version 0),
then 32 KiB blocks of chunks, each a 7-byte header (CRC-32 of the type byte and the data, little-endian length, type
FULL / FIRST / MIDDLE / LAST) and its data; a block's tail shorter than a header is zero padding. Each record is a
``wandb.proto.wandb_internal_pb2.Record`` protobuf. wandb's own Python reader of the framing
(``wandb.sdk.internal.datastore``) is gone from current releases (wandb-core, in Go, reads and writes the log now), so
:func:`wandb_records` reads the framing itself, checks every chunk's CRC, and decodes the records with wandb's own
protobuf classes: only the (stable, versioned) file format is assumed, no wandb internals. On wandb 0.31 it gives the
same records as ``wandb leet inspect --json``.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import struct
import sys
import zlib
from pathlib import Path

import pytest

import train
from shm_jax import api, cli_parse
from shm_jax.config import ConfigError, flat_view, resumable, validate, with_overrides
from shm_jax.presets import from_preset
from shm_jax.training import loggers, rundir
from shm_jax.training.metrics import json_safe
from shm_jax.training.tensorboard import TensorBoardLog
from tests.helpers import TINY_AGENT

UPDATES = 4


@pytest.fixture(autouse=True)
def _offline_wandb(tmp_path, monkeypatch):
    """Whatever wandb does, it does offline, quietly, and under tmp_path (never the network or the home directory)."""
    home = tmp_path / "wandb-home"
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(home / name.lower()))


@pytest.fixture
def wandb():
    return pytest.importorskip("wandb")  # installed by the dev extra (CI); skipped where the test stack lacks it


def _tiny(out_dir, **overrides):
    """A tiny real PPO run: 2 seeds of a GRU agent on a probe task (episodes end every update), 4 one-update chunks."""
    values = dict(
        env_id="probe:MatchObservation",
        memory="gru",
        memory_kwargs={"hidden_size": 4},
        num_envs=4,
        num_steps=8,
        num_minibatches=2,
        update_epochs=1,
        total_timesteps=UPDATES * 4 * 8,
        num_seeds=2,
        updates_per_chunk=1,
        eval_episodes=0,
        out_dir=str(out_dir),
        wandb="offline",
        **TINY_AGENT,
    )
    return with_overrides(from_preset("default"), **{**values, **overrides})


class Recorder:
    """A user's logger: keeps every row it is given; ``fail_at``: raise at the first row of that update (a crash)."""

    def __init__(self, fail_at: int | None = None):
        self.rows, self.steps, self.closed, self.fail_at = [], [], 0, fail_at

    def log(self, row, step):
        if row["update"] == self.fail_at:
            raise SimulatedCrash(f"crash at update {self.fail_at}")
        self.rows.append(copy.deepcopy(row))
        self.steps.append(step)

    def close(self):
        self.closed += 1


class SimulatedCrash(RuntimeError):
    pass


# ----------------------------------------------------------------------------------------------------
# Reading a run directory back


def wandb_records(path: Path) -> list:
    """Every record of a ``.wandb`` transaction log, CRC-checked, as ``wandb_internal_pb2.Record`` (see the top)."""
    from wandb.proto import wandb_internal_pb2

    block, header = 32768, 7
    data = Path(path).read_bytes()
    assert struct.unpack("<4sHB", data[:header]) == (b":W&B", 0xBEE1, 0), "not a version-0 W&B transaction log"
    records, pending, pos = [], b"", header
    while pos + header <= len(data):
        if block - pos % block < header:  # zero padding at the end of a block
            pos += block - pos % block
            continue
        checksum, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        chunk = data[pos + header : pos + header + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == checksum, f"{path}: bad chunk at byte {pos}"
        pos += header + length
        pending += chunk
        if kind in (1, 4):  # FULL, or the LAST chunk of a record split over blocks
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    assert pos == len(data) and not pending, f"{path}: truncated"
    return records


def _items(items) -> dict:
    return {item.key or ".".join(item.nested_key): json.loads(item.value_json) for item in items}


def wandb_sessions(run_dir: Path) -> dict[str, list[dict]]:
    """W&B run id -> one entry per session (a .wandb file) in start order: its run record's fields and history."""
    sessions: dict[str, list[dict]] = {}
    for path in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        records = wandb_records(path)
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        history = {}
        for record in records:
            if record.WhichOneof("record_type") == "history":
                row = _items(record.history.item)
                assert record.history.step.num not in history and row["_step"] == record.history.step.num
                history[record.history.step.num] = {k: v for k, v in row.items() if not k.startswith("_")}
        sessions.setdefault(run.run_id, []).append(
            {
                "start": run.start_time.ToNanoseconds(),
                "name": run.display_name,
                "group": run.run_group,
                "project": run.project,
                "tags": list(run.tags),
                "config": _items(run.config.update),
                "history": history,
                "path": path,
            }
        )
    return {run_id: sorted(found, key=lambda s: s["start"]) for run_id, found in sessions.items()}


def _csv_rows(path: Path) -> dict[int, dict]:
    """env_steps -> the CSV's row, with its values parsed back (True/False, ints, floats, nan and inf)."""

    def parse(text):
        if text in ("True", "False"):
            return text == "True"
        try:
            return int(text)
        except ValueError:
            return float(text)

    with open(path, newline="") as f:
        rows = [{k: parse(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return {row["env_steps"]: row for row in rows}


def _same(a, b) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b


def _assert_history_is_the_csv(history: dict[int, dict], csv_path: Path) -> None:
    expected = _csv_rows(csv_path)
    assert sorted(history) == sorted(expected) == [(u + 1) * 32 for u in range(UPDATES)]  # env steps on the x-axis
    for step, row in expected.items():
        assert set(history[step]) == set(row), step
        assert all(_same(history[step][k], row[k]) for k in row), (step, history[step], row)


# ----------------------------------------------------------------------------------------------------
# The tests


def test_wandb_options_parse_check_and_may_change_on_resume(tmp_path):
    command = cli_parse.parse_train_args(
        ["--wandb", "online", "--wandb-project", "p", "--wandb-entity", "me", "--wandb-group", "g"]
        + ["--wandb-tags", "gru", "tiny"]
    )
    run = command.config.run
    assert (run.wandb, run.wandb_project, run.wandb_entity, run.wandb_group, run.wandb_tags) == (
        "online",
        "p",
        "me",
        "g",
        ("gru", "tiny"),
    )
    default = from_preset("default").run
    assert (default.wandb, default.wandb_project, default.wandb_entity, default.wandb_group, default.wandb_tags) == (
        "off",
        "shm-jax",
        None,
        None,
        (),
    )
    with pytest.raises(ConfigError, match=r"^wandb: must be one of 'off', 'offline', 'online', got 'maybe'$"):
        validate(with_overrides(from_preset("default"), wandb="maybe"))
    with pytest.raises(ConfigError, match="^wandb_tags: each tag must be a string of 1 to 64 characters"):
        validate(with_overrides(from_preset("default"), wandb_tags=("x" * 65,)))
    # host-loop options: --resume may switch W&B on (or off) and rename the project, group and tags
    names = {"wandb", "wandb_project", "wandb_entity", "wandb_group", "wandb_tags"}
    assert names <= set(resumable("ppo"))
    saved = tmp_path / "saved"
    saved.mkdir()
    rundir.write_config(saved, from_preset("default"))
    argv = ["--resume", str(saved), "--wandb", "offline", "--wandb-tags", "resumed"]
    config, changes = cli_parse.resume_config(cli_parse.parse_train_args(argv), argv)
    assert changes == {"wandb": ("off", "offline"), "wandb_tags": ((), ("resumed",))}
    assert flat_view(config)["wandb"] == "offline"


def test_wandb_without_the_package_is_a_one_line_config_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError, as when it is not installed
    argv = ["--env", "probe:MatchObservation", "--memory", "gru", "--num-envs", "4", "--num-steps", "8"]
    assert train.main([*argv, "--wandb", "offline", "--out-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith("error: wandb: W&B logging needs the wandb package") and "pip install wandb" in line, err
    assert "Compiling" not in err
    assert not (tmp_path / "runs").exists()  # refused before the run directory, let alone a compile
    with pytest.raises(ConfigError, match="^wandb: "):
        api.train(_tiny(tmp_path / "api"), progress=False)
    assert not (tmp_path / "api").exists()


@pytest.mark.slow  # whole runs through the host loop
def test_offline_wandb_has_one_run_per_seed_with_the_config_and_the_csv_rows(tmp_path, wandb):
    recorder = Recorder()
    assert isinstance(recorder, loggers.Logger)  # the protocol: log(row, step) and close()
    config = _tiny(tmp_path, wandb_tags=("tiny", "ci"))
    run_dir = api.train(config, progress=False, loggers=[recorder])

    ids = {label: entry["id"] for label, entry in json.loads((run_dir / "wandb_runs.json").read_text())["runs"].items()}
    assert sorted(ids) == ["seed0", "seed1"]
    sessions = wandb_sessions(run_dir)
    assert sorted(sessions) == sorted(ids.values())  # one W&B run per (setting, seed), one file each
    for label, run_id in ids.items():
        (session,) = sessions[run_id]
        assert session["name"] == label and session["group"] == run_dir.name
        assert session["project"] == "shm-jax" and session["tags"] == ["tiny", "ci"]
        attached = session["config"]  # the full config, as config.json holds it, and which run this is
        saved = json.loads((run_dir / "config.json").read_text())
        assert {key: attached[key] for key in ("env", "agent", "ppo", "run")} == saved
        assert attached["run_label"] == label and attached["seed_index"] == int(label[-1])
        assert attached["sweep_setting"] == {} and attached["run_dir"] == str(run_dir)
        _assert_history_is_the_csv(session["history"], run_dir / "csv" / f"{label}.csv")
        assert any(math.isfinite(row["mean_return"]) for row in session["history"].values())

    # the user's logger saw every row once, in order, at its env steps, and was closed once
    jsonl = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [{k: json_safe(v) for k, v in row.items()} for row in recorder.rows] == jsonl
    assert recorder.steps == [row["env_steps"] for row in jsonl] and recorder.closed == 1
    assert len(jsonl) == UPDATES * 2


@pytest.mark.slow  # whole runs through the host loop
def test_resume_continues_the_same_wandb_runs_without_duplicates(tmp_path, wandb):
    # a crash after update 3's rows reached W&B (for seed0 only: the crash comes while seed1's row is being logged);
    # the only checkpoint is the first one (update 1), so the resumed session recomputes updates 2 and 3
    config = _tiny(tmp_path, run_name="run", checkpoint_every=0, checkpoint_minutes=1e6)
    crashing = Recorder(fail_at=3)
    with pytest.raises(SimulatedCrash):
        api.train(config, progress=False, loggers=[crashing])
    run_dir = tmp_path / "run"
    assert crashing.closed == 1  # loggers are closed on an error too
    first = json.loads((run_dir / "wandb_runs.json").read_text())["runs"]
    assert {label: entry["step"] for label, entry in first.items()} == {"seed0": 96, "seed1": 64}

    resumed = Recorder()
    api.train(rundir.load_config(run_dir), progress=False, resume_dir=run_dir, loggers=[resumed])
    # a resumed session replays the checkpoint's rows first: a fresh logger sees the whole run, once
    assert [(row["update"], row["run"]) for row in resumed.rows] == [
        (u, label) for u in range(1, UPDATES + 1) for label in ("seed0", "seed1")
    ]
    second = json.loads((run_dir / "wandb_runs.json").read_text())["runs"]
    assert {label: entry["id"] for label, entry in second.items()} == {k: entry["id"] for k, entry in first.items()}
    assert {label: entry["step"] for label, entry in second.items()} == {"seed0": 128, "seed1": 128}
    sessions = wandb_sessions(run_dir)
    for label, entry in second.items():
        before, after = sessions[entry["id"]]  # the same W&B run, continued by the second session's file
        assert before["name"] == after["name"] == label and before["group"] == after["group"] == "run"
        assert sorted(before["history"]) == ([32, 64, 96] if label == "seed0" else [32, 64])
        assert not set(before["history"]) & set(after["history"])  # no step logged twice
        _assert_history_is_the_csv({**before["history"], **after["history"]}, run_dir / "csv" / f"{label}.csv")


def test_tensorboard_writes_every_finite_metric_of_a_row_at_its_env_steps(tmp_path):
    written = []

    class Writer:
        def __init__(self, logdir):
            self.logdir = logdir

        def add_scalar(self, key, value, step):
            written.append((Path(self.logdir).name, key, value, step))

        def flush(self):
            written.append("flush")

        def close(self):
            written.append("close")

    log = TensorBoardLog(tmp_path, enabled=False)  # as if tensorboardX were installed: its writer replaced
    log.available, log._writer_cls, log.directory = True, Writer, tmp_path
    assert isinstance(log, loggers.Logger)
    row = {"update": 2, "env_steps": 64, "run": "lr=0.1_seed1", "setting": {"lr": 0.1}, "seed": 1}
    loggers.log_rows([log], [{**row, "active": True, "loss": 0.5, "mean_return": math.nan}])
    loggers.close_all([log])
    assert written == [("lr=0.1_seed1", "active", 1.0, 64), ("lr=0.1_seed1", "loss", 0.5, 64), "flush", "close"]


def test_close_all_closes_every_logger_when_one_fails():
    class Failing(Recorder):
        def close(self):
            super().close()
            raise OSError("disk full")

    first, failing, last = Recorder(), Failing(), Recorder()
    with pytest.raises(OSError, match="disk full"):
        loggers.close_all([first, failing, last])
    assert (first.closed, failing.closed, last.closed) == (1, 1, 1)
