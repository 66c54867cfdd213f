"""The host loop: run the batched (sweep x seed) program in jitted chunks, log, save, evaluate.

``run(config, program=..., built=...) -> run_dir`` is what ``shm_jax.train`` (build, then this) runs
behind ``python train.py``. It names no algorithm: what it needs of one is ``shm_jax.algorithms.base``.

1. the algorithm's memory estimate must fit (checked before anything compiles); ``Built.program()`` is
   the :class:`~shm_jax.training.batched.BatchedProgram` of every (sweep setting, seed) run, on a device mesh;
2. a loop of jitted chunks of ``updates_per_chunk`` updates (default 1); after each chunk, on the
   host: the progress bar (env steps per run, rate, recent mean return, ETA), the chunk's rows to every
   logger (``shm_jax.training.loggers``: ``metrics.jsonl``, one CSV per run, optional TensorBoard and W&B,
   the caller's own), and a checkpoint after the first chunk, then every ``checkpoint_minutes`` of training
   (and every ``checkpoint_every`` chunks), written in the background;
3. ``summary.json`` (final return and MMER per run, mean +- std per setting; training, compile and
   evaluation time apart), ``learning_curve.png``, and a greedy and sampled evaluation (``eval.json``).

Stopping: Ctrl-C or SIGTERM is acknowledged at once; the run stops after the running chunk, saves and
returns (``summary.json`` status "interrupted", ``stop_signal``); a second Ctrl-C raises
KeyboardInterrupt at once, keeping the newest checkpoint. A run whose update is non-finite is frozen at
its state before that update (see ``BatchedProgram.chunk_all``) while the others go on; when every run
has diverged, the loop saves and raises :class:`NonFiniteLossError`. ``run(config, resume_dir=RUN_DIR)``
continues from the newest intact checkpoint exactly (same numbers as an uninterrupted run).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from shm_jax.config import TrainConfig
from shm_jax.training import distributed, rundir
from shm_jax.training import loggers as loggers_lib
from shm_jax.training import metrics as metrics_lib
from shm_jax.training.batched import BatchedProgram
from shm_jax.training.built import Built
from shm_jax.training.checkpoint import Checkpointer, CheckpointWriteError
from shm_jax.training.evaluation import evaluate, reports_success
from shm_jax.training.plots import plot_learning_curves
from shm_jax.training.resources import check_fits
from shm_jax.training.stopping import StopFlag, call_interruptibly, wait_ready
from shm_jax.training.tensorboard import TensorBoardLog


class NonFiniteLossError(RuntimeError):
    """Every run diverged (non-finite loss); each was saved as it was before its divergence."""


# How the user runs the trainer, for the hints it prints (resume, evaluate); the command line sets what was typed.
COMMAND = "python train.py"
_SIGNAL_CODES = {"SIGINT": 2, "SIGTERM": 15}
_SIGNAL_NAMES = {code: name for name, code in _SIGNAL_CODES.items()}


def print_main(*args: Any, **kwargs: Any) -> None:
    """print() on process 0 only (several processes would say it once each)."""
    if distributed.is_main():
        print(*args, **kwargs)


# ----------------------------------------------------------------------------------------------------
# Evaluation of a run's agents


def evaluate_agents(
    built: Built, program: BatchedProgram, state: Any, *, episodes: int, greedy: bool, seed: int = 0
) -> dict[str, Any]:
    """Greedy or sampled evaluation of every agent of the batched ``state`` (JSON-ready summary)."""
    params = built.algorithm.agent_params(state)
    return evaluate(
        built.policy(greedy),
        built.env,
        built.env_params,
        params,
        episodes=episodes,
        seed=seed,
        task_params=built.eval_tasks,
        settings=program.settings,
        seeds=program.seeds,
        policy_name="greedy" if greedy else "sampled",
    )


# ----------------------------------------------------------------------------------------------------
# Small pieces of the loop


def _recent_return(chunk: dict[str, np.ndarray]) -> float:
    """Episode-weighted mean return of the last chunk over all runs (NaN if no episode finished)."""
    if "episode_return_sum" not in chunk:
        return math.nan
    count = float(np.nansum(chunk["episode_count"]))
    return float(np.nansum(chunk["episode_return_sum"]) / count) if count > 0 else math.nan


def effective_chunk_size(num_updates: int, requested: int) -> int:
    """The largest divisor of ``num_updates`` that is <= ``requested`` if it is at least requested/4,
    else ``requested``: equal chunks need ONE compiled program, a shorter last chunk needs a second."""
    requested = max(1, min(requested, num_updates))
    divisor = max(d for d in range(1, requested + 1) if num_updates % d == 0)
    return divisor if 4 * divisor >= requested else requested


def _newly_diverged(
    chunk: dict[str, np.ndarray], was_active: np.ndarray, first_update: int, labels: list[list[str]]
) -> list[tuple[str, int]]:
    """(run label, update number) of the runs whose ``active`` flag dropped during this chunk."""
    active = np.asarray(chunk["active"]).astype(bool)  # [G, S, K]
    found = []
    for g, s in zip(*np.nonzero(was_active & ~active[..., -1])):
        found.append((labels[g][s], first_update + int(np.argmax(~active[g, s]))))
    return found


class _SavePolicy:
    """When to checkpoint: after the first chunk, every ``every_chunks`` chunks, every ``minutes`` of training."""

    def __init__(self, minutes: float, every_chunks: int):
        self.seconds = minutes * 60.0
        self.every_chunks = every_chunks
        self.chunks = 0
        self.last = None  # time of the last save; None: nothing saved in this session yet

    def due(self, now: float) -> bool:
        self.chunks += 1
        if self.last is None:
            return True
        if self.every_chunks and self.chunks % self.every_chunks == 0:
            return True
        return self.seconds > 0 and now - self.last >= self.seconds


def _progress_bar(total: int, initial: int, *, enabled: bool):
    return tqdm(
        total=total,
        initial=initial,
        unit="step",
        unit_scale=True,
        dynamic_ncols=True,
        disable=not enabled,
        desc="env steps/run",
        file=sys.stderr,
    )


# ----------------------------------------------------------------------------------------------------
# The loop


def run(
    config: TrainConfig,
    program: BatchedProgram,
    *,
    built: Built | None = None,
    resume_dir: Path | str | None = None,
    stop_after_updates: int | None = None,
    progress: bool = True,
    loggers: Sequence[loggers_lib.Logger] = (),
) -> Path:
    """Train every (sweep setting, seed) of ``program`` for ``config``; returns the run directory.

    program: the batched program (``built.program(mesh)``); built: what ``shm_jax.build.build(config)`` made,
        for the memory check and the final evaluation (a program alone, e.g. a test algorithm, trains without
        them).
    resume_dir: continue the run saved there (pass the config saved in it, ``rundir.load_config``, possibly
        with changed hyperparameters, see ``rundir.record_resume``). A finished run is left as it is.
    stop_after_updates: stop (and save) once this many updates are done in total, as if interrupted.
    loggers: more :class:`~shm_jax.training.loggers.Logger` objects that receive every (update, run) row next to
        the run's own (metrics.jsonl, CSVs, TensorBoard, W&B), on the main process; closed when this call returns.
    Raises NonFiniteLossError when every run has diverged.
    """
    loggers_lib.check_available(config)  # e.g. --wandb without wandb installed: one line, before anything compiles
    if built is not None:  # before anything compiles: does the run fit in memory?
        blame = "memory_kwargs" if config.agent.memory_kwargs else "num_envs"
        estimate = built.algorithm.memory_estimate(built.hyperparameters, program.num_runs)
        check_fits(estimate, devices=list(program.mesh.devices.flat), blame=blame)
    loop = _HostLoop(config, program, built, progress=progress, loggers=loggers)
    run_dir = loop.run(resume_dir, stop_after_updates)
    distributed.barrier("shm_jax:run-end")  # several processes: process 0's summary.json is written for every one
    return run_dir


class _HostLoop:
    """One session of a run: restore or start, chunks, saves, the end of the run."""

    def __init__(
        self,
        config: TrainConfig,
        program: BatchedProgram,
        built: Built | None,
        *,
        progress: bool,
        loggers: Sequence[loggers_lib.Logger] = (),
    ):
        self.config, self.program, self.built = config, program, built
        self.progress = progress
        self.user_loggers = list(loggers)
        self.is_main = jax.process_index() == 0
        self.num_updates, self.steps_per_update = program.num_updates, program.steps_per_update
        self.chunk_size = effective_chunk_size(self.num_updates, config.run.updates_per_chunk)
        self.labels = [[metrics_lib.run_label(setting, seed) for seed in program.seeds] for setting in program.settings]
        self.diverged: list[dict[str, Any]] = []
        self.timing = {"compile_seconds": 0.0, "train_seconds": 0.0, "eval_seconds": 0.0}

    def run(self, resume_dir: Path | str | None, stop_after_updates: int | None) -> Path:
        config = self.config
        if resume_dir is not None:
            run_dir = Path(resume_dir)
        else:
            # several processes: process 0 names and creates the directory, every process gets its name (or its error)
            run_dir = Path(distributed.run_on_main(lambda: str(self._new_run_dir())))
        self.run_dir = run_dir
        self.checkpointer = Checkpointer(run_dir, max_to_keep=config.run.keep_checkpoints)
        try:
            return self._run(resume_dir, stop_after_updates)
        finally:
            self.checkpointer.close()

    def _new_run_dir(self) -> Path:
        config = self.config
        run_dir = rundir.new_run_dir(config.run.out_dir, config.env.env_id, config.agent.memory, config.run.run_name)
        rundir.write_config(run_dir, config)
        return run_dir

    def _run(self, resume_dir, stop_after_updates) -> Path:
        program, run_dir = self.program, self.run_dir
        track_success = reports_success(self.built.env, self.built.env_params) if self.built is not None else True
        self.history = metrics_lib.History(
            program.settings, program.seeds, self.steps_per_update, track_success=track_success
        )
        if resume_dir is not None:
            state, saved_history, meta = self.checkpointer.restore(program.abstract_state(), purpose="resume")
            updates_done = int(meta["updates_done"])
            if meta.get("status") == "finished" or updates_done >= self.num_updates:
                print_main(
                    f"{run_dir} already finished all {self.num_updates} updates; nothing to do (evaluate it "
                    f"with: {COMMAND} evaluate {run_dir})",
                    file=sys.stderr,
                )
                return run_dir
            self.history.load_state(saved_history)
            self.history.truncate(updates_done)
            self.diverged = list(meta.get("diverged", []))
            if self.checkpointer.removed_temporary:
                print(
                    f"resume: removed unfinished checkpoint folder(s) {', '.join(self.checkpointer.removed_temporary)}",
                    file=sys.stderr,
                )
            if self.is_main:
                print(f"Resuming {run_dir} at update {updates_done}/{self.num_updates}", file=sys.stderr)
        else:
            state, updates_done = program.init(), 0
        self._session_start = updates_done
        self.loggers: list[loggers_lib.Logger] = []
        try:
            if self.is_main:
                rundir.write_provenance(run_dir, sharded_axis=program.sharded_axis)
                self._open_loggers()
                # a resumed session replays the kept rows: every logger sees the run from update 1 (files are rewritten)
                loggers_lib.log_rows(self.loggers, self.history.rows(0))
            return self._loop(state, updates_done, stop_after_updates)
        finally:
            loggers_lib.close_all(self.loggers)

    def _open_loggers(self) -> None:
        """metrics.jsonl, the CSVs, TensorBoard and W&B as configured, then the caller's (into ``self.loggers`` as each
        opens, so that those already open are closed if a later one fails)."""
        config, run_dir = self.config, self.run_dir
        self.loggers += [loggers_lib.JsonlLog(run_dir / "metrics.jsonl"), loggers_lib.CsvLog(run_dir / "csv")]
        if config.run.tensorboard:
            self.loggers.append(TensorBoardLog(run_dir / "tensorboard"))
        if config.run.wandb != "off":
            runs = [
                (self.labels[g][s], setting, seed)
                for g, setting in enumerate(self.program.settings)
                for s, seed in enumerate(self.program.seeds)
            ]
            self.loggers.append(loggers_lib.WandbLog(run_dir, config, runs))
        self.loggers += self.user_loggers

    def _loop(self, state, updates_done: int, stop_after_updates) -> Path:
        config, program = self.config, self.program
        stop = StopFlag()
        active = program.all_active()  # a resumed run gives every run another chance (e.g. with a lower lr)
        saver = _SavePolicy(config.run.checkpoint_minutes, config.run.checkpoint_every)
        self.last_saved = self.checkpointer.latest_step()
        self.updates_done = updates_done
        stop.status_line = self._status_line
        status = "finished"
        with stop.installed():
            if updates_done < self.num_updates:  # compile before the progress bar starts its clock
                self._compile(state, min(self.chunk_size, self.num_updates - updates_done))
            bar = _progress_bar(
                self.num_updates * self.steps_per_update,
                updates_done * self.steps_per_update,
                enabled=self.progress and self.is_main,
            )
            start = time.perf_counter()
            try:
                while self.updates_done < self.num_updates:
                    if self._stop_agreed(stop) or (
                        stop_after_updates is not None and self.updates_done >= stop_after_updates
                    ):
                        status = "interrupted"
                        break
                    state, active, chunk = self._train_chunk(state, active)
                    bar.update(chunk["active"].shape[-1] * self.steps_per_update)
                    rate = bar.format_dict.get("rate") or 0.0
                    bar.set_postfix(
                        ret=f"{_recent_return(chunk):.3f}", all_runs_sps=f"{rate * program.num_runs:.3g}", refresh=True
                    )
                    if not active.any():
                        status = "nonfinite"
                        break
                    # several processes: process 0's clock decides, so that every process enters orbax's save
                    if self.updates_done < self.num_updates and distributed.main_decides(saver.due(time.monotonic())):
                        self._save(self.updates_done, state, "running")
                        saver.last, self.last_saved = time.monotonic(), self.updates_done
            finally:
                bar.close()
                self.timing["train_seconds"] += time.perf_counter() - start
            stop.status_line = lambda: "saving the last checkpoint and finishing"  # a second Ctrl-C still aborts
            return self._end(status, state, stop)

    @staticmethod
    def _stop_agreed(stop: StopFlag) -> bool:
        """Whether to stop now; several processes: a Ctrl-C or SIGTERM on any of them stops all (the first signal's
        name is taken on each, so that process 0's summary.json and every exit code say which)."""
        if not distributed.is_multiprocess():
            return stop.requested
        codes = distributed.gather_ints([_SIGNAL_CODES.get(stop.signal_name, 0) if stop.requested else 0])[:, 0]
        if not codes.any():
            return False
        if not stop.requested:
            stop.requested, stop.signal_name = True, _SIGNAL_NAMES[int(codes[codes > 0][0])]
        return True

    def _status_line(self) -> str:
        """What the first Ctrl-C will do, said the moment it arrives."""
        kept = f"update {self.last_saved}" if self.last_saved is not None else "none yet"
        running = min(self.updates_done + self.chunk_size, self.num_updates)
        return f"stopping after update {running} (running now), then saving a checkpoint; newest on disk: {kept}"

    def _compile(self, state: Any, k: int) -> None:
        program = self.program
        if self.is_main:
            print(
                f"Compiling the training program for {program.num_runs} run(s) ({len(program.settings)} "
                f"setting(s) x {len(program.seeds)} seed(s))...",
                file=sys.stderr,
                flush=True,
            )
        call_interruptibly(program.compiled_chunk, state, k)
        if self.is_main:
            print(f"Compiled in {program.compile_seconds:.1f} s", file=sys.stderr, flush=True)

    def _train_chunk(self, state: Any, active: np.ndarray):
        """One chunk of updates of every run, waited for and logged: (state, active [G, S], metrics [G, S, k])."""
        k = min(self.chunk_size, self.num_updates - self.updates_done)
        if not self.program.is_compiled(k):  # a shorter last chunk compiles once
            call_interruptibly(self.program.compiled_chunk, state, k)
        new_state, chunk, new_active = self.program.dispatch_chunk(state, k, active)
        wait_ready(chunk)
        chunk = {key: np.asarray(value) for key, value in jax.device_get(chunk).items()}
        for label, at in _newly_diverged(chunk, np.asarray(active), self.updates_done + 1, self.labels):
            self.diverged.append({"run": label, "at_update": at})  # the same on every process: metrics are replicated
            print_main(
                f"\nrun {label}: non-finite loss at update {at}; frozen at its state before it, the other runs go on",
                file=sys.stderr,
                flush=True,
            )
        self.history.append(chunk)
        loggers_lib.log_rows(self.loggers, self.history.rows(self.updates_done))  # no loggers off the main process
        self.updates_done += k
        return new_state, np.asarray(new_active), chunk

    def _end(self, status: str, state: Any, stop: StopFlag) -> Path:
        """Save the last state, write the summary (and evaluate a finished run), say how it ended."""
        updates_done = self.updates_done
        self.timing["compile_seconds"] = self.program.compile_seconds
        self._save(updates_done, state, status)
        self.checkpointer.wait()
        self._finish(status, state, stop)
        if status == "nonfinite":
            runs = ", ".join(f"{d['run']} at update {d['at_update']}" for d in self.diverged)
            raise NonFiniteLossError(
                f"non-finite loss in every run ({runs}): run stopped; last good checkpoint: update {updates_done} in "
                f"{self.checkpointer.directory} holds each run as it was before it diverged (lower the learning "
                f"rate, then: {COMMAND} --resume {self.run_dir} --lr <smaller>)"
            )
        if status == "interrupted" and self.is_main:
            print(
                f"Stopped at update {updates_done}/{self.num_updates}; checkpoint saved. "
                f"Resume with: {COMMAND} --resume {self.run_dir}",
                file=sys.stderr,
                flush=True,
            )
        return self.run_dir

    def _save(self, updates_done: int, state: Any, status: str) -> None:
        meta = {
            "updates_done": updates_done,
            "num_updates": self.num_updates,
            "status": status,
            "settings": self.program.settings,
            "seeds": self.program.seeds,
            "diverged": self.diverged,
        }
        try:
            self.checkpointer.save(updates_done, state, self.history.to_state(), meta)
        except CheckpointWriteError as err:
            latest = self.checkpointer.latest_step()
            raise CheckpointWriteError(
                f"{err}; the last good checkpoint is "
                f"{'update ' + str(latest) if latest is not None else 'none'} in "
                f"{self.checkpointer.directory}"
            ) from None

    def _finish(self, status: str, state: Any, stop: StopFlag) -> None:
        evaluation = []
        if status == "finished" and self.built is not None and self.config.run.eval_episodes > 0:
            start = time.perf_counter()
            episodes = self.config.run.eval_episodes
            if self.is_main:
                print(
                    f"Evaluating on {episodes} fresh episodes per agent (greedy and sampled)...",
                    file=sys.stderr,
                    flush=True,
                )
            evaluation = [
                evaluate_agents(self.built, self.program, state, episodes=episodes, greedy=greedy)
                for greedy in (True, False)
            ]
            self.timing["eval_seconds"] = time.perf_counter() - start
        if not self.is_main:
            return
        history, program = self.history, self.program
        train_s = self.timing["train_seconds"]
        session_steps = self.steps_per_update * program.num_runs * (history.num_updates - self._session_start)
        timing = {key: round(value, 3) for key, value in self.timing.items()}
        timing["env_steps_per_second_all_runs"] = round(session_steps / train_s, 1) if train_s > 0 else None
        extra = {
            "run_dir": str(self.run_dir),
            "env_id": self.config.env.env_id,
            "memory": self.config.agent.memory,
            "num_updates": self.num_updates,
            "updates_per_chunk": self.chunk_size,
            "sharded_axis": program.sharded_axis,
            "timing": timing,
            "diverged": self.diverged,
        }
        if stop.requested:
            extra["stop_signal"] = stop.signal_name
        if evaluation:
            extra["evaluation"] = evaluation
        summary = metrics_lib.summarize(history, status=status, extra=extra)
        metrics_lib.write_summary(self.run_dir / "summary.json", summary)
        if evaluation:
            (self.run_dir / "eval.json").write_text(json.dumps(evaluation, indent=2) + "\n")
        plot_learning_curves(
            history, self.run_dir / "learning_curve.png", title=f"{self.config.env.env_id} / {self.config.agent.memory}"
        )
