"""The host loop: build, run the batched (sweep x seed) program in jitted chunks, log, save, evaluate.

``run(config) -> run_dir`` is the whole pipeline behind ``python train.py``:

1. ``shm_jax.build.build(config)`` validates the config and builds env, network, hyperparameters and
   the PPO object once; ``Built.program()`` is the :class:`~shm_jax.batched.BatchedProgram` of every
   (sweep setting, seed) run, placed on a device mesh;
2. a loop of jitted chunks of K = ``updates_per_chunk`` PPO updates (lowered to a nearby divisor of
   the number of updates when there is one, so a single compiled program serves every chunk; see
   :func:`effective_chunk_size`); between chunks, on the host: tqdm progress (env steps per run,
   rate, recent mean return, ETA), ``metrics.jsonl``, one CSV per (setting, seed), optional
   TensorBoard, a checkpoint every ``checkpoint_every`` chunks (0: none on the way) and always at
   the end or when stopped;
3. ``summary.json`` (final return and MMER per run, mean +- std per setting), ``learning_curve.png``
   and a greedy and sampled evaluation of every agent (``eval.json``).

Stopping: Ctrl-C or SIGTERM finishes the current chunk, saves a checkpoint and returns (a second
Ctrl-C aborts at once). A non-finite loss (the algorithm's ``finite`` metric) stops the run before the
bad state is saved: the last good checkpoint stays the latest, and :class:`NonFiniteLossError` says so.
``run(config, resume_dir=RUN_DIR)`` continues a stopped run exactly (same chunks, same numbers).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from shm_jax import metrics as metrics_lib
from shm_jax import rundir
from shm_jax.batched import BatchedProgram
from shm_jax.build import Built, build
from shm_jax.checkpoint import Checkpointer
from shm_jax.config import TrainConfig
from shm_jax.evaluation import evaluate, reports_success
from shm_jax.plots import plot_learning_curves
from shm_jax.stopping import StopFlag
from shm_jax.tensorboard import TensorBoardLog


class NonFiniteLossError(RuntimeError):
    """Training produced a non-finite loss; the run stopped and kept its last good checkpoint."""


# ----------------------------------------------------------------------------------------------------
# Evaluation of a run's agents and loading a run


def evaluate_agents(built: Built, program: BatchedProgram, state: Any, *, episodes: int, greedy: bool,
                    seed: int = 0) -> dict[str, Any]:
    """Greedy or sampled evaluation of every agent of the batched ``state`` (JSON-ready summary)."""
    return evaluate(built.policy(greedy), built.env, built.env_params, state.params, episodes=episodes, seed=seed,
                    task_params=built.eval_tasks, settings=program.settings, seeds=program.seeds,
                    policy_name="greedy" if greedy else "sampled")


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A run restored from its directory: its config, what it builds, its program and the latest state."""

    config: TrainConfig
    built: Built
    program: BatchedProgram
    state: Any


def load_run(run_dir: Path | str, purpose: str = "eval") -> LoadedRun:
    """Rebuild the run saved in ``run_dir`` from its config.json and restore the latest checkpoint
    (one-line ConfigError prefixed ``purpose`` for a bad directory or checkpoint)."""
    config = rundir.load_config(run_dir, purpose=purpose)
    built = build(config)
    program = built.program()
    checkpointer = Checkpointer(run_dir, create=False)
    try:
        state, _, _ = checkpointer.restore(program.abstract_state(), purpose=purpose)
    finally:
        checkpointer.close()
    return LoadedRun(config=config, built=built, program=program, state=state)


# ----------------------------------------------------------------------------------------------------
# The loop


def _recent_return(chunk: dict[str, np.ndarray]) -> float:
    """Episode-weighted mean return of the last chunk over all runs (NaN if no episode finished)."""
    if "episode_return_sum" not in chunk:
        return math.nan
    count = float(np.sum(chunk["episode_count"]))
    return float(np.sum(chunk["episode_return_sum"]) / count) if count > 0 else math.nan


def effective_chunk_size(num_updates: int, requested: int) -> int:
    """The largest divisor of ``num_updates`` that is <= ``requested`` if it is at least requested/4,
    else ``requested``: equal chunks need ONE compiled program, a shorter last chunk needs a second."""
    requested = max(1, min(requested, num_updates))
    divisor = max(d for d in range(1, requested + 1) if num_updates % d == 0)
    return divisor if 4 * divisor >= requested else requested


def _first_nonfinite(chunk: dict[str, np.ndarray]) -> int | None:
    """Index of the first update in the chunk whose ``finite`` flag is false in any run, else None."""
    if "finite" not in chunk:
        return None
    bad = ~np.asarray(chunk["finite"]).astype(bool).all(axis=(0, 1))
    return int(np.argmax(bad)) if bad.any() else None


def _final_evaluation(config: TrainConfig, built: Built | None, state: Any,
                      program: BatchedProgram) -> list[dict[str, Any]]:
    """Greedy and sampled evaluation of every trained agent (config.run.eval_episodes fresh episodes each)."""
    episodes = config.run.eval_episodes
    if episodes <= 0 or built is None:
        return []
    print(f"Evaluating on {episodes} fresh episodes per agent (greedy and sampled)...", file=sys.stderr, flush=True)
    return [evaluate_agents(built, program, state, episodes=episodes, greedy=greedy) for greedy in (True, False)]


def run(
    config: TrainConfig,
    *,
    resume_dir: Path | str | None = None,
    built: Built | None = None,
    program: BatchedProgram | None = None,
    stop_after_updates: int | None = None,
    progress: bool = True,
    mesh: jax.sharding.Mesh | None = None,
) -> Path:
    """Train every (sweep setting, seed) of ``config``; returns the run directory.

    resume_dir: continue the run saved there (pass the config saved in it, ``rundir.load_config``).
    built, program: what ``build(config)`` and ``built.program(mesh)`` give, to reuse them (notebooks,
        tests); a program alone (a test algorithm) trains without the final evaluation.
    stop_after_updates: stop (and save) once this many updates are done in total, as if interrupted.
    Raises NonFiniteLossError when the loss becomes non-finite (the last good checkpoint is kept).
    """
    if program is None:
        built = built if built is not None else build(config)
        program = built.program(mesh)
    run_cfg = config.run
    is_main = jax.process_index() == 0
    num_updates, steps_per_update = program.num_updates, program.steps_per_update
    chunk_size = effective_chunk_size(num_updates, run_cfg.updates_per_chunk)
    # checkpoint_every counts chunks of the requested size (0: only at the end and when stopped)
    every = run_cfg.checkpoint_every * run_cfg.updates_per_chunk if run_cfg.checkpoint_every > 0 else num_updates

    if resume_dir is not None:
        run_dir = Path(resume_dir)
    else:
        run_dir = rundir.new_run_dir(run_cfg.out_dir, config.env.env_id, config.agent.memory, run_cfg.run_name)
        if is_main:
            rundir.write_config(run_dir, config)
    if is_main:
        rundir.write_provenance(run_dir, sharded_axis=program.sharded_axis)
    track_success = reports_success(built.env, built.env_params) if built is not None else True
    history = metrics_lib.History(program.settings, program.seeds, steps_per_update, track_success=track_success)
    checkpointer = Checkpointer(run_dir, max_to_keep=3)
    tensorboard = TensorBoardLog(run_dir / "tensorboard", run_cfg.tensorboard and is_main)
    jsonl = run_dir / "metrics.jsonl"

    if resume_dir is not None:
        state, saved_history, meta = checkpointer.restore(program.abstract_state(), purpose="resume")
        history.load_state(saved_history)
        updates_done = int(meta["updates_done"])
        history.truncate(updates_done)
        if is_main:
            metrics_lib.rewrite_jsonl(jsonl, history)
            tensorboard.write(history, 0)
        print(f"Resuming {run_dir} at update {updates_done}/{num_updates}", file=sys.stderr)
    else:
        state, updates_done = program.init(), 0

    def save(status: str) -> None:
        meta = {"updates_done": updates_done, "num_updates": num_updates, "status": status,
                "settings": program.settings, "seeds": program.seeds}
        checkpointer.save(updates_done, state, history.to_state(), meta)

    def finish(status: str, extra: dict[str, Any] | None = None) -> None:
        if not is_main:
            return
        metrics_lib.write_csvs(run_dir / "csv", history)
        elapsed = time.perf_counter() - loop_start
        timing = {"compile_seconds": round(program.compile_seconds, 3),
                  "train_seconds_this_session": round(elapsed, 3),
                  "env_steps_per_second_all_runs": round(session_steps * program.num_runs / elapsed, 1)
                  if elapsed > 0 else None}
        summary = metrics_lib.summarize(history, status=status, extra={
            "run_dir": str(run_dir), "env_id": config.env.env_id, "memory": config.agent.memory,
            "num_updates": num_updates, "updates_per_chunk": chunk_size, "sharded_axis": program.sharded_axis,
            "timing": timing, **(extra or {})})
        metrics_lib.write_summary(run_dir / "summary.json", summary)
        if summary.get("evaluation"):
            (run_dir / "eval.json").write_text(json.dumps(summary["evaluation"], indent=2) + "\n")
        plot_learning_curves(history, run_dir / "learning_curve.png",
                             title=f"{config.env.env_id} / {config.agent.memory}")

    if updates_done < num_updates:  # compile before the progress bar starts its clock
        if is_main:
            print(f"Compiling the training program for {program.num_runs} run(s) "
                  f"({len(program.settings)} setting(s) x {len(program.seeds)} seed(s))...", file=sys.stderr, flush=True)
        program.compiled_chunk(state, min(chunk_size, num_updates - updates_done))
        if is_main:
            print(f"Compiled in {program.compile_seconds:.1f} s", file=sys.stderr, flush=True)
    bar = _progress_bar(num_updates * steps_per_update, updates_done * steps_per_update, enabled=progress and is_main)
    stop = StopFlag()
    status = "finished"
    loop_start, session_steps = time.perf_counter(), 0
    try:
        with stop.installed():
            last_saved = updates_done
            while updates_done < num_updates:
                if stop.requested or (stop_after_updates is not None and updates_done >= stop_after_updates):
                    status = "interrupted"
                    break
                k = min(chunk_size, num_updates - updates_done)
                program.compiled_chunk(state, k)  # compile outside the timed region
                new_state, chunk = program.run_chunk(state, k)
                bad = _first_nonfinite(chunk)
                if bad is not None:
                    # keep the finite prefix for the logs; never save the non-finite state
                    history.append({key: v[..., :bad] for key, v in chunk.items()})
                    if is_main:
                        metrics_lib.append_jsonl(jsonl, history, updates_done)
                    updates_done += bad
                    bar.close()
                    latest = checkpointer.latest_step()
                    finish("nonfinite", {"nonfinite_at_update": updates_done + 1, "last_good_checkpoint": latest})
                    raise NonFiniteLossError(
                        f"non-finite loss at update {updates_done + 1}: run stopped; last good checkpoint: "
                        + (f"update {latest} in {checkpointer.directory}" if latest is not None else "none")
                        + " (lower the learning rate, then --resume or start again)")
                state = new_state
                history.append(chunk)
                if is_main:
                    metrics_lib.append_jsonl(jsonl, history, updates_done)
                    tensorboard.write(history, updates_done)
                updates_done += k
                session_steps += k * steps_per_update
                bar.update(k * steps_per_update)
                recent = _recent_return(chunk)
                rate = bar.format_dict.get("rate") or 0.0
                bar.set_postfix(ret=f"{recent:.3f}", all_runs_sps=f"{rate * program.num_runs:.3g}", refresh=True)
                if updates_done // every > last_saved // every and updates_done < num_updates:
                    save("running")
                    last_saved = updates_done
                    if is_main:
                        metrics_lib.write_csvs(run_dir / "csv", history)
            bar.close()
            save(status)
            finish(status, {"evaluation": _final_evaluation(config, built, state, program)}
                   if status == "finished" else None)
    finally:
        bar.close()
        tensorboard.close()
        checkpointer.close()
    if status == "interrupted" and is_main:
        print(f"Stopped at update {updates_done}/{num_updates}; checkpoint saved. "
              f"Resume with: python train.py --resume {run_dir}", file=sys.stderr, flush=True)
    return run_dir


def _progress_bar(total: int, initial: int, *, enabled: bool):
    return tqdm(total=total, initial=initial, unit="step", unit_scale=True, dynamic_ncols=True,
                disable=not enabled, desc="env steps/run", file=sys.stderr)
