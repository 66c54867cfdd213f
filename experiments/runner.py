"""Run an experiment's cells (one ``train.py`` run each, seeds vmapped) and collect one number per cell.

Layout: ``<out>/<experiment>-<scale>/<task>--<agent>/`` is each cell's run directory. A finished cell is read back,
an interrupted one resumed, a missing one trained, so a long experiment can be stopped and started again.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from experiments.definitions import Agent, Experiment
from shm_jax import api
from shm_jax.training import loop, rundir


def cell_name(task: str, agent: Agent) -> str:
    return f"{task}--{re.sub(r'[^A-Za-z0-9]+', '-', agent.label).strip('-').lower()}"


def _status(run_dir: Path) -> str | None:
    path = run_dir / "summary.json"
    return json.loads(path.read_text()).get("status") if path.is_file() else None


def cell_value(experiment: Experiment, run_dir: Path) -> dict[str, Any]:
    """The cell's metric from its summary.json / eval.json: mean, std over seeds, per-seed values, in table units."""
    summary = json.loads((run_dir / "summary.json").read_text())
    runs = summary["per_run"]
    if experiment.metric == "mmer":
        values = [100.0 * r["mmer"] for r in runs if r.get("mmer") is not None]
    elif experiment.metric == "success":
        values = [100.0 * r["final_success_rate"] for r in runs if r.get("final_success_rate") is not None]
    elif experiment.metric == "heldout_return":
        greedy = next(e for e in summary.get("evaluation", []) if e["policy"] == "greedy")
        values = [r["mean_return"] for r in greedy["per_run"]]
    else:
        raise ValueError(f"metric: unknown {experiment.metric!r}")
    mean = sum(values) / len(values) if values else None
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 if values else None
    timing = summary.get("timing", {})
    diverged = [d["at_update"] for d in summary.get("diverged", [])]
    return {
        "mean": mean,
        "std": std,
        "per_seed": values,
        "status": summary["status"],
        "diverged_at_updates": diverged,
        "env_steps_per_run": summary["env_steps_per_run"],
        "train_seconds": timing.get("train_seconds"),
    }


def run_cell(
    experiment: Experiment, task: str, agent: Agent, scale: str, root: Path, *, progress: bool = True, **options: Any
) -> Path:
    """Train (or resume, or just read back) one cell; ``options`` are flat config overrides (tests shrink runs)."""
    run_dir = root / cell_name(task, agent)
    status = _status(run_dir)
    if status in ("finished", "nonfinite"):  # a cell whose every seed diverged is a result too
        return run_dir
    try:
        if (run_dir / rundir.CONFIG_FILE).is_file():  # started before: continue exactly where it stopped
            return api.train(rundir.load_config(run_dir), resume_dir=run_dir, progress=progress)
        config = experiment.config(task, agent, scale, out_dir=str(root), run_name=run_dir.name, **options)
        return api.train(config, progress=progress)
    except loop.NonFiniteLossError as err:  # recorded in its summary.json; the other cells go on
        print(f"cell {run_dir.name}: {str(err).splitlines()[0]}", flush=True)
        return run_dir


def cell_status(experiment: Experiment, task: str, agent: Agent, scale: str, root: Path) -> dict[str, Any]:
    """Where one cell stands: status ("not started", "started", "interrupted", "finished", "nonfinite") and the env
    steps per run done out of the budget."""
    run_dir = root / cell_name(task, agent)
    budget = experiment.config(task, agent, scale).algorithm.total_timesteps
    if not (run_dir / rundir.CONFIG_FILE).is_file():
        return {"cell": run_dir.name, "status": "not started", "env_steps": 0, "budget": budget}
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():  # killed before its first checkpoint
        return {"cell": run_dir.name, "status": "started", "env_steps": 0, "budget": budget}
    summary = json.loads(summary_path.read_text())
    return {
        "cell": run_dir.name,
        "status": summary["status"],
        "env_steps": summary["env_steps_per_run"],
        "budget": budget,
    }


def experiment_status(experiment: Experiment, scale: str, out: Path | str) -> list[dict[str, Any]]:
    """:func:`cell_status` of every cell of ``experiment`` at ``scale`` under ``out``."""
    root = Path(out) / f"{experiment.name}-{scale}"
    return [cell_status(experiment, t, a, scale, root) for t in experiment.task_ids(scale) for a in experiment.agents]


def run_experiment(
    experiment: Experiment,
    scale: str,
    out: Path | str,
    *,
    tasks: tuple[str, ...] | None = None,
    agents: tuple[str, ...] | None = None,
    progress: bool = True,
    **options: Any,
) -> Path:
    """Every (task, agent) cell of ``experiment`` at ``scale`` (or the ``tasks`` / agent labels given);
    writes ``<out>/<experiment>-<scale>/results.json`` and returns its path."""
    root = Path(out) / f"{experiment.name}-{scale}"
    root.mkdir(parents=True, exist_ok=True)
    chosen_tasks = tasks or experiment.task_ids(scale)
    chosen_agents = [a for a in experiment.agents if agents is None or a.label in agents]
    unknown = sorted(set(agents or ()) - {a.label for a in experiment.agents})
    if unknown:  # unknown names fail here, before any training
        raise ValueError(f"agents: unknown {unknown}; valid: {', '.join(a.label for a in experiment.agents)}")
    for task in chosen_tasks:
        experiment.config(task, chosen_agents[0], scale)
    cells = [(t, a) for t in chosen_tasks for a in chosen_agents]
    began = time.perf_counter()
    for task, agent in tqdm(cells, desc=f"{experiment.name} ({scale})", unit="cell", disable=not progress):
        run_cell(experiment, task, agent, scale, root, progress=progress, **options)
    results_path = root / "results.json"
    previous = json.loads(results_path.read_text())["cells"] if results_path.is_file() else []
    new = [
        {
            "task": t,
            "paper_task": experiment.paper_task(t),
            "agent": a.label,
            "memory": a.memory,
            "run_dir": cell_name(t, a),
            **cell_value(experiment, root / cell_name(t, a)),
        }
        for t, a in cells
    ]
    done = {(c["task"], c["agent"]) for c in new}
    record = {
        "experiment": experiment.name,
        "title": experiment.title,
        "scale": scale,
        "metric": experiment.metric,
        "notes": experiment.notes,
        "overrides": {**experiment.scale_overrides.get(scale, {}), **options},
        "wall_seconds_this_call": time.perf_counter() - began,
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            **rundir.devices(),
            "versions": rundir.versions(),
        },
        "cells": [c for c in previous if (c["task"], c["agent"]) not in done] + new,
    }
    results_path.write_text(json.dumps(record, indent=2) + "\n")
    return results_path
