"""The commands behind the command line: train (or resume) and evaluate, their printed summaries and exit codes.

Imports the trainer (JAX): ``shm_jax.cli`` imports it after joining a distributed job.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from shm_jax import api
from shm_jax.cli_parse import EvalCommand, parse_train_args, resume_config, tyro_cli
from shm_jax.options import ConfigError
from shm_jax.training import distributed, loop, rundir, stopping
from shm_jax.training.checkpoint import CheckpointWriteError
from shm_jax.training.stopping import EXIT_CODES


def _print_summary(run_dir) -> None:
    path = run_dir / "summary.json"
    if not path.is_file():
        return
    summary = json.loads(path.read_text())
    print(f"\n{summary['status']}: {summary['updates']} updates, {summary['env_steps_per_run']} env steps per run")
    for entry in summary["per_setting"]:
        fr, mm = entry["final_return"], entry["mmer"]
        fmt = lambda d: "n/a" if d["mean"] is None else f"{d['mean']:.3f} +- {d['std']:.3f}"  # noqa: E731
        line = f"  {entry['label']:<24} final return {fmt(fr)}   MMER {fmt(mm)}   (n={fr['n']})"
        print(line)
    for ev in summary.get("evaluation", []):
        for entry in ev["per_setting"]:
            success = f", success {entry['success_rate']['mean']:.3f}" if "success_rate" in entry else ""
            print(
                f"  eval ({ev['policy']}, {ev['episodes']} episodes) {entry['label']}: "
                f"return {entry['mean_return']['mean']:.3f} +- {entry['mean_return']['std']:.3f}{success}"
            )
    print(f"Run directory: {run_dir}")


def _exit_code(run_dir: Path) -> int:
    """0 for a finished run, 130 / 143 for one stopped by SIGINT / SIGTERM."""
    path = Path(run_dir) / "summary.json"
    summary = json.loads(path.read_text()) if path.is_file() else {}
    return EXIT_CODES.get(summary.get("stop_signal", ""), 0) if summary.get("status") == "interrupted" else 0


def train_main(argv: list[str], prog: str = "shm-jax") -> int:
    command = parse_train_args(argv, prog)
    if command.resume is not None:
        config, changes = resume_config(command, argv)
        if changes and distributed.is_main():  # several processes: process 0 writes
            for name, (old, new) in changes.items():
                print(f"resume: {name} {old!r} -> {new!r} (recorded in config.json)", file=sys.stderr)
            rundir.record_resume(Path(command.resume), config, changes)
        run_dir = api.train(config, resume_dir=command.resume)
    else:
        run_dir = api.train(command.config)
    if distributed.is_main():
        _print_summary(run_dir)
    return _exit_code(run_dir)


def eval_main(argv: list[str], prog: str = "shm-jax evaluate") -> int:
    command = tyro_cli(EvalCommand, argv, prog=prog, description=EvalCommand.__doc__)
    if command.episodes is not None and (not isinstance(command.episodes, int) or command.episodes <= 0):
        raise ConfigError("episodes", f"must be a positive integer, got {command.episodes!r}")
    loaded = api.load_run(command.run_dir, purpose="eval")  # restored once for every policy
    policies = {"both": (True, False), "greedy": (True,), "sampled": (False,)}[command.policy]
    results = [api.evaluate(loaded, episodes=command.episodes, greedy=g, seed=command.seed) for g in policies]
    out = Path(command.run_dir) / "eval.json"
    if not distributed.is_main():  # several processes: process 0 writes and reports
        return 0
    out.write_text(json.dumps(results, indent=2) + "\n")
    for result in results:
        for entry in result["per_setting"]:
            success = (
                f"   success {entry['success_rate']['mean']:.3f} +- {entry['success_rate']['std']:.3f}"
                if "success_rate" in entry
                else ""
            )
            print(
                f"{result['policy']:<8} {entry['label']:<24} return {entry['mean_return']['mean']:.3f} "
                f"+- {entry['mean_return']['std']:.3f}{success}   ({result['episodes']} episodes, "
                f"{result['task_split']})"
            )
    print(f"Wrote {out}")
    return 0


def run(command: str, argv: list[str], prog: str) -> int:
    """Run ``command`` ("train" or "evaluate") on ``argv`` (launch options already taken out). A ConfigError (bad
    option, run directory or checkpoint) prints one line and exits 2; every run diverged or a checkpoint could not be
    written: one line, exit 1; a second Ctrl-C: exit 130; anything else raises with its traceback."""
    previous, stopping.on_second_interrupt = stopping.on_second_interrupt, stopping.exit_at_once
    previous_command, loop.COMMAND = loop.COMMAND, prog  # the trainer's hints name the command the user typed
    try:
        if command == "evaluate":
            return eval_main(argv, f"{prog} evaluate")
        return train_main(argv, prog)
    except ConfigError as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    except (loop.NonFiniteLossError, CheckpointWriteError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the trainer's handler is installed (e.g. while building)
        stopping.exit_at_once()
    finally:  # called from Python (tests): the process's defaults are left as they were
        stopping.on_second_interrupt = previous
        loop.COMMAND = previous_command
