"""Where the per-update metrics go: the :class:`Logger` protocol and its writers.

A *row* is one (update, run) record of :meth:`~shm_jax.training.metrics.History.rows`: ``update``, ``env_steps``,
``run`` (the run's label, e.g. ``lr=0.001_seed1``), ``setting`` (its sweep values), ``seed``, then every metric by name
(Python scalars; NaN and inf as they are). The host loop (``shm_jax.training.loop``) calls ``log(row, step)`` with
``step = row["env_steps"]`` on the host after each jitted chunk, for every update of the chunk and every (setting, seed)
run, then ``flush()`` (when a logger has one), and ``close()`` when the session ends (also on an error). Nothing of this
runs inside jit, so logging never changes the numbers and ``--resume`` stays exact.

On ``--resume`` a session first *replays* the rows the checkpoint keeps (updates 1 .. its update), then logs the new
ones: every session's loggers see the run's rows from update 1, in order, once (rows a killed session logged past its
last checkpoint are dropped: the resumed run recomputes them). Files are therefore rewritten per session; a logger
writing to an append-only store skips the steps it already holds, as :class:`WandbLog` does.

Writers: :class:`JsonlLog` (``metrics.jsonl``) and :class:`CsvLog` (``csv/<run>.csv``) always,
``tensorboard.TensorBoardLog`` with ``--tensorboard``, :class:`WandbLog` with ``--wandb offline|online``, and any object
with ``log`` and ``close`` passed as ``shm_jax.train(config, loggers=[...])``.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import string
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from shm_jax.config import TrainConfig, to_dict
from shm_jax.options import ConfigError
from shm_jax.training.metrics import json_safe

ROW_KEYS = ("update", "env_steps", "run", "setting", "seed")
"""The keys of a row that name it; every other key is a metric."""


@runtime_checkable
class Logger(Protocol):
    """What the host loop writes rows to. Optional: ``flush()``, called after each chunk's rows."""

    def log(self, row: dict[str, Any], step: int) -> None:
        """One (update, run) row (read-only) at ``step`` = its environment steps per run."""

    def close(self) -> None:
        """The session ended: write what is pending and release files or connections."""


def metrics_of(row: dict[str, Any]) -> dict[str, Any]:
    """The metrics of a row (every key but :data:`ROW_KEYS`), in the row's order."""
    return {k: v for k, v in row.items() if k not in ROW_KEYS}


def log_rows(loggers: Sequence[Logger], rows: Iterable[dict[str, Any]]) -> None:
    """Give every row to every logger, then flush the loggers that can (nothing to do without loggers)."""
    if not loggers:
        return
    for row in rows:
        for logger in loggers:
            logger.log(row, row["env_steps"])
    for logger in loggers:
        flush = getattr(logger, "flush", None)
        if flush is not None:
            flush()


def close_all(loggers: Sequence[Logger]) -> None:
    """Close every logger, even when one of them raises (the first error is raised after the others closed)."""
    _call_each(logger.close for logger in loggers)


def _call_each(calls: Iterable[Callable[[], Any]]) -> None:
    error = None
    for call in calls:
        try:
            call()
        except Exception as err:  # the others still run; the first error is raised below
            error = error or err
    if error is not None:
        raise error


# ----------------------------------------------------------------------------------------------------
# metrics.jsonl and the CSVs: rewritten from update 1 by each session


class _SessionFiles:
    """Rows buffered per file and written at ``flush()``: the first write of a session truncates the file."""

    def __init__(self) -> None:
        self.pending: dict[Path, list[dict[str, Any]]] = {}
        self.started: set[Path] = set()

    def add(self, path: Path, row: dict[str, Any]) -> None:
        self.pending.setdefault(path, []).append(row)

    def drain(self) -> Iterable[tuple[Path, bool, list[dict[str, Any]]]]:
        """(path, first write of this session, rows) for every file with pending rows."""
        pending, self.pending = self.pending, {}
        for path, rows in pending.items():
            fresh = path not in self.started
            self.started.add(path)
            yield path, fresh, rows


class JsonlLog(_SessionFiles):
    """``metrics.jsonl``: one JSON object per (update, run) row, non-finite metrics as null."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)

    def log(self, row: dict[str, Any], step: int) -> None:
        self.add(self.path, row)

    def flush(self) -> None:
        for path, fresh, rows in self.drain():
            with open(path, "w" if fresh else "a") as f:
                for row in rows:
                    f.write(json.dumps({k: json_safe(v) for k, v in row.items()}) + "\n")

    def close(self) -> None:
        self.flush()


class CsvLog(_SessionFiles):
    """One CSV per (setting, seed) run, ``<directory>/<run label>.csv``: update, env_steps, then every metric."""

    def __init__(self, directory: Path):
        super().__init__()
        self.directory = Path(directory)

    def log(self, row: dict[str, Any], step: int) -> None:
        self.add(self.directory / f"{row['run']}.csv", row)

    def flush(self) -> None:
        for path, fresh, rows in self.drain():
            path.parent.mkdir(parents=True, exist_ok=True)
            keys = list(metrics_of(rows[0]))
            with open(path, "w" if fresh else "a", newline="") as f:
                writer = csv.writer(f)
                if fresh:
                    writer.writerow(["update", "env_steps", *keys])
                for row in rows:
                    writer.writerow([row["update"], row["env_steps"], *(row[k] for k in keys)])

    def close(self) -> None:
        self.flush()


# ----------------------------------------------------------------------------------------------------
# Weights & Biases

WANDB_STATE = "wandb_runs.json"
"""In the run directory: each (setting, seed) run's W&B run id and the last step logged to it."""
_ID_ALPHABET = string.ascii_lowercase + string.digits


def import_wandb() -> Any:
    """The wandb module (optional: the wandb extra); without it a one-line ConfigError naming the ``wandb`` option."""
    try:
        import wandb
    except ImportError as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            "wandb",
            f"W&B logging needs the wandb package ({detail}): pip install wandb (or the shm-jax[wandb] extra), "
            "or use --wandb off",
        ) from None
    return wandb


def check_available(config: TrainConfig) -> None:
    """Before anything is built or compiled: the chosen optional loggers can start (ConfigError otherwise)."""
    if config.run.wandb != "off":
        import_wandb()


class WandbLog:
    """One W&B run per (setting, seed) run, in ``--wandb`` mode ("offline" or "online").

    Each W&B run is named by the run's label, grouped by ``wandb_group`` (default: the run directory's name), tagged
    with ``wandb_tags``, and carries the full config (``config.json``'s sections) plus its ``sweep_setting``,
    ``seed_index``, ``run_label`` and ``run_dir``. Rows are logged at ``step`` = environment steps per run (W&B's
    x-axis), with every column of the run's CSV. The W&B files go to ``<run_dir>/wandb/`` (offline: upload them later
    with ``wandb sync <run_dir>/wandb/offline-run-*``). The W&B run ids and the last step logged to each are kept in
    ``<run_dir>/wandb_runs.json``: ``--resume`` continues the same W&B runs (``resume="allow"``) and skips the steps
    they already hold, so each W&B run's history has every update once (after a hard kill, the updates between the
    last checkpoint and the kill keep the values logged before it, equal to the resumed ones unless ``--resume``
    changed a hyperparameter).
    """

    def __init__(self, run_dir: Path, config: TrainConfig, runs: Sequence[tuple[str, dict[str, float], int]]):
        wandb = import_wandb()
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / WANDB_STATE
        saved = json.loads(self.path.read_text()).get("runs", {}) if self.path.is_file() else {}
        self.state = {
            label: {"id": saved.get(label, {}).get("id") or _new_id(), "step": int(saved.get(label, {}).get("step", 0))}
            for label, _, _ in runs
        }
        self._write_state()  # the ids are on disk before any W&B run starts
        self._dirty = False
        self.runs: dict[str, Any] = {}
        sections = to_dict(config)
        try:
            for label, setting, seed in runs:
                self.runs[label] = wandb.init(
                    mode=config.run.wandb,
                    project=config.run.wandb_project,
                    entity=config.run.wandb_entity,
                    group=config.run.wandb_group or self.run_dir.name,
                    name=label,
                    tags=list(config.run.wandb_tags),
                    id=self.state[label]["id"],
                    resume="allow",
                    dir=str(self.run_dir),
                    config={
                        **sections,
                        "sweep_setting": dict(setting),
                        "seed_index": seed,
                        "run_label": label,
                        "run_dir": str(self.run_dir),
                    },
                    allow_val_change=True,  # a resumed run may have changed hyperparameters (config.json records them)
                    reinit="create_new",  # one W&B run per (setting, seed), all open at once (wandb >= 0.19.10)
                    settings=wandb.Settings(console="off"),  # the terminal is not copied into every run
                )
        except BaseException:
            self.close()
            raise

    def log(self, row: dict[str, Any], step: int) -> None:
        entry = self.state[row["run"]]
        if step <= entry["step"]:  # already in this W&B run (a resumed session replays from update 1)
            return
        payload = {"update": row["update"], "env_steps": row["env_steps"], **metrics_of(row)}
        self.runs[row["run"]].log(payload, step=step)
        entry["step"] = step
        self._dirty = True

    def flush(self) -> None:
        if self._dirty:
            self._write_state()
            self._dirty = False

    def close(self) -> None:
        runs, self.runs = self.runs, {}
        try:
            _call_each(run.finish for run in runs.values())
        finally:
            self._write_state()

    def _write_state(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"runs": self.state}, indent=2) + "\n")
        os.replace(tmp, self.path)


def _new_id() -> str:
    """A fresh W&B run id: 8 lowercase letters and digits (as W&B draws its own)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
