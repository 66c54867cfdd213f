"""Per-update training metrics on the host: the history, its rows, and summary.json.

The jitted chunk returns a dict of scalars per update for every run: arrays of shape ``[G, S, K]``
(G sweep settings, S seeds, K updates in the chunk). :class:`History` keeps them all as numpy
arrays ``[G, S, U]`` (U updates so far) and derives, per update:

- ``mean_return``: mean undiscounted return of the episodes that finished during that update's
  rollout (``episode_return_sum / episode_count``; NaN when none finished);
- ``success_rate``: the same for ``success_sum`` (only when the task defines success);
- ``env_steps``: environment steps taken by one run so far.

MMER (max-mean episodic return, POPGym's metric): the running maximum over training of
``mean_return``, read at the last update (updates where no episode finished are skipped).
``final_return``: the episode-weighted mean return over the last 10% of updates (at least one).

:meth:`History.rows` gives one row per (update, run), what every logger of ``shm_jax.training.loggers`` receives
(metrics.jsonl, the CSVs, TensorBoard, W&B, a user's own).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DERIVED_KEYS = ("mean_return", "success_rate")
FINAL_FRACTION = 0.1


def _as_number(value: Any) -> Any:
    """A JSON-safe Python scalar: NaN/inf become None (strict JSON has no NaN)."""
    return json_safe(np.asarray(value).item())


def json_safe(value: Any) -> Any:
    """``value`` with a non-finite float replaced by None (strict JSON has no NaN); anything else unchanged."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def run_label(setting: dict[str, float], seed: int) -> str:
    """A filesystem-safe name for one (sweep setting, seed) run, e.g. ``lr=0.0003_seed1``."""
    parts = [f"{name}={value:g}" for name, value in setting.items()]
    return "_".join(parts + [f"seed{seed}"])


def setting_label(setting: dict[str, float]) -> str:
    """A short label for one sweep setting (``default`` when nothing is swept)."""
    return ", ".join(f"{name}={value:g}" for name, value in setting.items()) or "default"


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator where the denominator is positive, NaN elsewhere."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


class History:
    """Every per-update metric of every run so far: ``dict[name -> float64/bool[G, S, U]]``.

    settings: the G sweep settings (dicts name -> value, empty for no sweep); seeds: the S seeds;
    steps_per_update: environment steps one run takes per update.
    """

    def __init__(
        self,
        settings: Sequence[dict[str, float]],
        seeds: Sequence[int],
        steps_per_update: int,
        *,
        track_success: bool = True,
    ):
        self.track_success = track_success  # False: the task defines no success; no success_rate
        self.settings = [dict(s) for s in settings]
        self.seeds = [int(s) for s in seeds]
        self.steps_per_update = int(steps_per_update)
        self.data: dict[str, np.ndarray] = {}

    @property
    def num_updates(self) -> int:
        """U: the number of updates recorded."""
        return 0 if not self.data else next(iter(self.data.values())).shape[-1]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.settings), len(self.seeds)

    def append(self, chunk: dict[str, Any]) -> None:
        """Add one chunk of raw trainer metrics (each ``[G, S, K]``) and its derived metrics."""
        chunk = {k: np.asarray(v) for k, v in chunk.items()}
        derived = dict(chunk)
        if "episode_return_sum" in chunk and "episode_count" in chunk:
            derived["mean_return"] = _ratio(chunk["episode_return_sum"], chunk["episode_count"])
            if "success_sum" in chunk and self.track_success:
                derived["success_rate"] = _ratio(chunk["success_sum"], chunk["episode_count"])
        for key, value in derived.items():
            if value.shape[:2] != self.shape:
                raise ValueError(f"metrics: {key} has shape {value.shape}, expected [G, S, K] with G, S = {self.shape}")
            self.data[key] = value if key not in self.data else np.concatenate([self.data[key], value], axis=-1)

    def truncate(self, num_updates: int) -> None:
        """Keep only the first ``num_updates`` updates (used on resume)."""
        self.data = {k: v[..., :num_updates] for k, v in self.data.items()}

    def env_steps(self) -> np.ndarray:
        """int64[U]: environment steps of one run after each update."""
        return (np.arange(self.num_updates, dtype=np.int64) + 1) * self.steps_per_update

    def runs(self) -> Iterable[tuple[int, int, str]]:
        """(g, s, label) for every run, sweep settings outermost."""
        for g, setting in enumerate(self.settings):
            for s, seed in enumerate(self.seeds):
                yield g, s, run_label(setting, seed)

    def rows(self, start: int = 0) -> Iterable[dict[str, Any]]:
        """One dict per (update >= start, run), updates outermost: update, env_steps, run (its label), setting, seed,
        then every metric (sorted by name) as a Python scalar; NaN and inf stay as they are (the CSV's values)."""
        steps = self.env_steps()
        keys = sorted(self.data)
        for u in range(start, self.num_updates):
            for g, s, label in self.runs():
                row = {
                    "update": u + 1,
                    "env_steps": int(steps[u]),
                    "run": label,
                    "setting": dict(self.settings[g]),
                    "seed": self.seeds[s],
                }
                row.update({k: self.data[k][g, s, u].item() for k in keys})
                yield row

    def records(self, start: int = 0) -> Iterable[dict[str, Any]]:
        """:meth:`rows` made JSON-ready (a line of metrics.jsonl): non-finite metrics become None."""
        for row in self.rows(start):
            yield {k: json_safe(v) for k, v in row.items()}

    def to_state(self) -> dict[str, np.ndarray]:
        """The arrays to store in a checkpoint."""
        return {k: np.asarray(v) for k, v in self.data.items()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.data = {k: np.asarray(v) for k, v in state.items()}


def mmer(mean_return: np.ndarray) -> float:
    """Max-mean episodic return of one run: the max over updates of ``mean_return[U]`` (NaN-skipping)."""
    finite = mean_return[np.isfinite(mean_return)]
    return float(finite.max()) if finite.size else math.nan


def final_return(return_sum: np.ndarray, count: np.ndarray) -> float:
    """Episode-weighted mean return over the last 10% of updates (at least one) of one run."""
    window = max(1, int(math.ceil(FINAL_FRACTION * len(count))))
    total = float(np.sum(count[-window:]))
    return float(np.sum(return_sum[-window:]) / total) if total > 0 else math.nan


def _mean_std(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if not arr.size:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size)}


def summarize(history: History, *, status: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """summary.json content: per run final return / MMER (/ success), mean +- std per sweep setting.

    status: "finished", "interrupted" or "nonfinite"; std is the population std over seeds.
    """
    per_run, per_setting = [], []
    have_success = "success_rate" in history.data and history.track_success
    for g, setting in enumerate(history.settings):
        finals, mmers, successes = [], [], []
        for s, seed in enumerate(history.seeds):
            entry: dict[str, Any] = {"run": run_label(setting, seed), "setting": setting, "seed": seed}
            if "mean_return" in history.data:
                fr = final_return(history.data["episode_return_sum"][g, s], history.data["episode_count"][g, s])
                mm = mmer(history.data["mean_return"][g, s])
                entry.update(final_return=_as_number(fr), mmer=_as_number(mm))
                finals.append(fr)
                mmers.append(mm)
            if have_success:
                sr = final_return(history.data["success_sum"][g, s], history.data["episode_count"][g, s])
                entry["final_success_rate"] = _as_number(sr)
                successes.append(sr)
            per_run.append(entry)
        agg: dict[str, Any] = {
            "setting": setting,
            "label": setting_label(setting),
            "final_return": _mean_std(finals),
            "mmer": _mean_std(mmers),
        }
        if have_success:
            agg["final_success_rate"] = _mean_std(successes)
        per_setting.append(agg)
    steps = history.env_steps()
    summary = {
        "status": status,
        "updates": history.num_updates,
        "env_steps_per_run": int(steps[-1]) if len(steps) else 0,
        "seeds": history.seeds,
        "per_setting": per_setting,
        "per_run": per_run,
        "definitions": {
            "mean_return": "mean return of the episodes finished during one update's rollout",
            "final_return": f"episode-weighted mean return over the last {FINAL_FRACTION:.0%} of updates",
            "mmer": "max over updates of mean_return (POPGym max-mean episodic return)",
            "std": "population std over seeds",
        },
    }
    summary.update(extra or {})
    return summary


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(summary, indent=2) + "\n")
