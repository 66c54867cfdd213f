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
from experiments.report import cell_curve
from shm_jax import api
from shm_jax.training import loop, rundir


def cell_name(task: str, agent: Agent) -> str:
    """The cell's run directory name, e.g. ``AutoencodeEasy--shm-fixed`` (``arcade:X`` -> ``arcade-X``)."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', task)}--{re.sub(r'[^A-Za-z0-9]+', '-', agent.label).strip('-').lower()}"


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
    elif experiment.metric == "final_return":
        values = [r["final_return"] for r in runs if r.get("final_return") is not None]
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
        "curve": cell_curve(run_dir),
    }


def recorded_cells(root: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(task, agent label) -> the cell's entry in ``<root>/results.json`` (empty without one)."""
    path = root / "results.json"
    return {(c["task"], c["agent"]): c for c in json.loads(path.read_text())["cells"]} if path.is_file() else {}


def _recorded_finished(recorded: dict[str, Any] | None, budget: int, steps_per_update: int) -> bool:
    """A cell finished at this budget is in results.json (a fresh clone has no run directories: they are not
    committed)."""
    return (
        recorded is not None
        and recorded.get("status") in ("finished", "nonfinite")
        and recorded.get("env_steps_per_run", 0) > budget - steps_per_update
    )


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


def cell_status(
    experiment: Experiment, task: str, agent: Agent, scale: str, root: Path, **options: Any
) -> dict[str, Any]:
    """Where one cell stands: status ("not started", "started", "interrupted", "finished", "nonfinite") and the env
    steps per run done out of the budget; a cell without a run directory but finished in results.json (a fresh
    clone) is finished. ``options``: the flat overrides the cells were run with (tests shrink runs)."""
    run_dir = root / cell_name(task, agent)
    algorithm = experiment.config(task, agent, scale, **options).algorithm
    budget = algorithm.total_timesteps
    if not (run_dir / rundir.CONFIG_FILE).is_file():
        recorded = recorded_cells(root).get((task, agent.label))
        if _recorded_finished(recorded, budget, _steps_per_update(algorithm)):
            return {
                "cell": run_dir.name,
                "status": recorded["status"],
                "env_steps": recorded["env_steps_per_run"],
                "budget": budget,
            }
        return {"cell": run_dir.name, "status": "not started", "env_steps": 0, "budget": budget}
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():  # running, or killed before its first checkpoint
        return {"cell": run_dir.name, "status": "started", "env_steps": _logged_env_steps(run_dir), "budget": budget}
    summary = json.loads(summary_path.read_text())
    return {
        "cell": run_dir.name,
        "status": summary["status"],
        "env_steps": summary["env_steps_per_run"],
        "budget": budget,
    }


def _logged_env_steps(run_dir: Path) -> int:
    """Env steps per run of the newest logged update (0 before the first); rows past the newest checkpoint are
    computed again when the cell resumes."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 65536))
        lines = f.read().decode("utf-8", errors="replace").splitlines()
    for line in reversed(lines):
        try:
            return int(json.loads(line)["env_steps"])
        except (ValueError, KeyError):
            continue  # a partly written or cut line
    return 0


def experiment_status(experiment: Experiment, scale: str, out: Path | str, **options: Any) -> list[dict[str, Any]]:
    """:func:`cell_status` of every cell of ``experiment`` at ``scale`` under ``out``."""
    root = Path(out) / f"{experiment.name}-{scale}"
    return [
        cell_status(experiment, t, a, scale, root, **options)
        for t in experiment.task_ids(scale)
        for a in experiment.agents
    ]


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
    if not chosen_tasks:
        raise ValueError(f"scale: {experiment.name} has no cells at scale {scale} ({experiment.notes})")
    chosen_agents = [a for a in experiment.agents if agents is None or a.label in agents]
    unknown = sorted(set(agents or ()) - {a.label for a in experiment.agents})
    if unknown:  # unknown names fail here, before any training
        raise ValueError(f"agents: unknown {unknown}; valid: {', '.join(a.label for a in experiment.agents)}")
    for task in chosen_tasks:
        experiment.config(task, chosen_agents[0], scale)
    cells = [(t, a) for t in chosen_tasks for a in chosen_agents]
    began = time.perf_counter()
    results_path = root / "results.json"
    for task, agent in tqdm(cells, desc=f"{experiment.name} ({scale})", unit="cell", disable=not progress):
        config = experiment.config(task, agent, scale, **options).algorithm
        run_dir = root / cell_name(task, agent)
        recorded = recorded_cells(root).get((task, agent.label))
        if not run_dir.is_dir() and _recorded_finished(recorded, config.total_timesteps, _steps_per_update(config)):
            continue  # finished in an earlier session; its number and curve are in results.json
        run_cell(experiment, task, agent, scale, root, progress=progress, **options)
        entry = {
            "task": task,
            "paper_task": experiment.paper_task(task),
            "agent": agent.label,
            "memory": agent.memory,
            "run_dir": run_dir.name,
            **cell_value(experiment, run_dir),
        }
        _write_results(results_path, experiment, scale, options, began, entry)  # after every cell: nothing lost
        if entry["status"] == "interrupted":  # Ctrl-C / SIGTERM stops the experiment, not only its running cell
            print(
                f"cell {run_dir.name} interrupted: the experiment stops; run the same command to continue", flush=True
            )
            break
    return results_path


def _steps_per_update(algorithm_config: Any) -> int:
    return getattr(algorithm_config, "num_envs", 1) * getattr(algorithm_config, "num_steps", 1)


def _write_results(
    results_path: Path, experiment: Experiment, scale: str, options: dict, began: float, entry: dict
) -> None:
    """Merge one cell's entry into results.json (replacing its earlier entry), written atomically."""
    previous = json.loads(results_path.read_text())["cells"] if results_path.is_file() else []
    done = {(entry["task"], entry["agent"])}
    new = [entry]
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
    partial = results_path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(partial, results_path)
