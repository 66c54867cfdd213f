"""An experiment's results.json -> a markdown table beside the paper's numbers, and learning-curve figures."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from experiments.definitions import PAPER, PAPER_POPGYM_AVERAGE, get


def _fmt(mean: float | None, std: float | None) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean:.1f}" + (f" ± {std:.1f}" if std is not None else "")


def _fmt_cell(cell: dict[str, Any]) -> str:
    """mean ± std, or where every seed diverged: the updates at which they did."""
    if cell.get("status") == "nonfinite":
        at = sorted(set(cell.get("diverged_at_updates") or []))
        return "diverged" + (f" (update {', '.join(map(str, at))})" if at else "")
    if cell.get("status") == "interrupted":  # a number so far, not the cell's result
        return f"(interrupted at {cell.get('env_steps_per_run', 0):,} steps)"
    return _fmt(cell["mean"], cell["std"])


def markdown(record: dict[str, Any]) -> str:
    """Rows: tasks; columns: agents, each cell "ours (paper: x)"; the POPGym average when every task is there."""
    experiment = get(record["experiment"])
    cells = {(c["task"], c["agent"]): c for c in record["cells"]}
    tasks = [t for t in dict.fromkeys(c["task"] for c in record["cells"])]
    agents = [a.label for a in experiment.agents if any(c["agent"] == a.label for c in record["cells"])]
    lines = [
        f"# {record['title']}",
        "",
        f"Scale **{record['scale']}**, overrides `{json.dumps(record['overrides'])}`; "
        f"{record['machine'].get('backend', '?')} with {record['machine'].get('cpu_count')} CPUs, load "
        f"{record['machine'].get('load_average_end')} at the end. {record['notes']}",
        "",
        "Each cell: ours (paper's number where the paper's summaries give one).",
        "",
        "| task | " + " | ".join(agents) + " |",
        "|---|" + "---|" * len(agents),
    ]
    for task in tasks:
        row = []
        for agent in agents:
            cell = cells.get((task, agent))
            ours = _fmt_cell(cell) if cell else "not run"
            paper = PAPER.get((record["experiment"], experiment.paper_task(task), agent))
            row.append(ours + (f" (paper {_fmt(*paper)})" if paper else ""))
        label = task if experiment.paper_task(task) == task else f"{task} (for {experiment.paper_task(task)})"
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    if record["experiment"] == "popgym" and set(tasks) == set(experiment.tasks):
        means = []
        for agent in agents:
            values = [cells[(t, agent)]["mean"] for t in tasks if (t, agent) in cells]
            mean = float(np.mean(values)) if values and None not in values else None
            paper = PAPER_POPGYM_AVERAGE.get(agent)
            means.append(_fmt(mean, None) + (f" (paper {_fmt(*paper)})" if paper else ""))
        lines.append("| **average over 12** | " + " | ".join(means) + " |")
    lines += ["", "Per-seed values, env steps per run and training time are in `results.json`."]
    return "\n".join(lines) + "\n"


CURVE_POINTS = 100  # points per seed kept in results.json: the figure survives without the (uncommitted) run dirs


def _curve(csv_path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = np.array([float(r["env_steps"]) for r in rows])
    values = np.array([float(r["mean_return"]) if r["mean_return"] not in ("", "nan") else np.nan for r in rows])
    return steps, values


def _binned(steps: np.ndarray, values: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` consecutive bins of updates: the last step of each bin and its mean value (NaN-aware)."""
    bins = np.array_split(np.arange(len(steps)), min(points, len(steps)))
    with warnings.catch_warnings():  # a bin where no episode ended is NaN
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.array([steps[b[-1]] for b in bins]), np.array([np.nanmean(values[b]) for b in bins])


def cell_curve(run_dir: Path, points: int = CURVE_POINTS) -> dict[str, Any] | None:
    """The cell's learning curves, binned to ``points``: {"env_steps": [...], "per_seed": [[...], ...]} (mean
    return per bin, None where no episode ended); None without CSV logs."""
    curves = [_binned(*_curve(p), points) for p in sorted((run_dir / "csv").glob("*.csv"))]
    if not curves:
        return None
    as_list = lambda v: [None if not np.isfinite(x) else round(float(x), 6) for x in v]  # noqa: E731
    return {"env_steps": curves[0][0].astype(int).tolist(), "per_seed": [as_list(v) for _, v in curves]}


def _cell_curves(root: Path, cell: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(env steps [P], returns [seeds, P]) from results.json's curve, else from the run directory's CSV logs."""
    curve = cell.get("curve") or cell_curve(root / cell["run_dir"])
    if curve is None:
        return None
    values = np.array([[np.nan if v is None else v for v in seed] for seed in curve["per_seed"]], dtype=float)
    return np.asarray(curve["env_steps"], dtype=float), values


def plot_task(root: Path, record: dict[str, Any], task: str, path: Path) -> Path:
    """Mean ± std over seeds of every agent's per-update mean return on ``task``."""
    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    for cell in (c for c in record["cells"] if c["task"] == task):
        found = _cell_curves(root, cell)
        if found is None:
            continue
        steps, stacked = found
        with warnings.catch_warnings():  # updates where no seed finished an episode are NaN columns
            warnings.simplefilter("ignore", category=RuntimeWarning)
            mean, std = np.nanmean(stacked, axis=0), np.nanstd(stacked, axis=0)
        (line,) = ax.plot(steps, mean, label=f"{cell['agent']} (n={len(stacked)})")
        ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_title(task)
    ax.set_xlabel("environment steps per run")
    ax.set_ylabel("mean episode return (± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def write_report(results_path: Path | str) -> list[Path]:
    """README.md (the table) and one PNG per task next to ``results.json``; returns the written paths."""
    results_path = Path(results_path)
    root = results_path.parent
    record = json.loads(results_path.read_text())
    written = [root / "README.md"]
    written[0].write_text(markdown(record))
    for task in dict.fromkeys(c["task"] for c in record["cells"]):
        written.append(plot_task(root, record, task, root / f"curves_{task}.png"))
    return written
