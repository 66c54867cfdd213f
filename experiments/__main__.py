"""python -m experiments list | run NAME --scale cpu|paper | status NAME --scale cpu|paper | report RESULTS_JSON

  python -m experiments list                               # every experiment, its tasks, agents and budgets
  python -m experiments run popgym --scale cpu             # train every cell (3 seeds each), then the report
  python -m experiments run calibration --scale paper      # the paper's budget (a GPU/TPU job)
  python -m experiments run popgym --scale cpu --tasks RepeatPreviousEasy --agents GRU SHM
  python -m experiments status popgym --scale cpu           # which cells are done, running or not started
  python -m experiments report experiments/results/popgym-cpu/results.json

A stopped experiment continues where it stopped when run again (finished cells are read back, interrupted ones
resumed). Results: <out>/<experiment>-<scale>/{results.json, README.md, curves_<task>.png, <cell run dirs>}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.definitions import EXPERIMENTS, SCALES, get
from experiments.report import write_report
from experiments.runner import experiment_status, run_experiment

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _list() -> None:
    for e in EXPERIMENTS.values():
        print(f"{e.name}: {e.title}")
        print(f"  agents: {', '.join(a.label for a in e.agents)}; preset {e.preset}")
        for scale in SCALES:
            if not e.task_ids(scale):
                print(f"  {scale}: no cells")
                continue
            overrides = dict(e.scale_overrides.get(scale, {}))
            budget = overrides.pop("total_timesteps", "the preset's")
            other = f"; on top of the preset: {overrides}" if overrides else ""
            print(f"  {scale}: tasks {', '.join(e.task_ids(scale))}; steps per run: {budget}{other}")


def _status(experiment, scale: str, out: Path) -> None:
    cells = experiment_status(experiment, scale, out)
    if not cells:
        raise ValueError(f"scale: {experiment.name} has no cells at scale {scale} ({experiment.notes})")
    width = max(len(c["cell"]) for c in cells)
    for c in cells:
        print(f"{c['cell']:<{width}}  {c['status']:<12} {c['env_steps']:>11,} / {c['budget']:,} env steps per run")
    done = sum(c["status"] in ("finished", "nonfinite") for c in cells)
    print(f"{done} of {len(cells)} cells done")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the experiments")
    run = sub.add_parser("run", help="train an experiment's cells and write its report")
    run.add_argument("name", choices=sorted(EXPERIMENTS))
    run.add_argument("--scale", choices=SCALES, required=True)
    run.add_argument("--tasks", nargs="*", default=None)
    run.add_argument("--agents", nargs="*", default=None, help="agent labels (default: all)")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT)
    status = sub.add_parser("status", help="which cells of an experiment are finished, interrupted or not started")
    status.add_argument("name", choices=sorted(EXPERIMENTS))
    status.add_argument("--scale", choices=SCALES, required=True)
    status.add_argument("--out", type=Path, default=DEFAULT_OUT)
    report = sub.add_parser("report", help="rewrite the table and figures of a results.json")
    report.add_argument("results", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            _list()
        elif args.command == "run":
            path = run_experiment(
                get(args.name),
                args.scale,
                args.out,
                tasks=tuple(args.tasks) if args.tasks else None,
                agents=tuple(args.agents) if args.agents else None,
            )
            for written in write_report(path):
                print(f"wrote {written}")
        elif args.command == "status":
            _status(get(args.name), args.scale, args.out)
        else:
            for written in write_report(args.results):
                print(f"wrote {written}")
    except ValueError as err:  # bad names: one line, before any training
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
