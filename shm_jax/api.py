"""The library's entry points above the build step and the host loop: train, load and evaluate runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax

from shm_jax.build import build
from shm_jax.config import TrainConfig
from shm_jax.training import loop, rundir
from shm_jax.training.batched import BatchedProgram
from shm_jax.training.built import Built
from shm_jax.training.checkpoint import Checkpointer
from shm_jax.training.loggers import Logger


def train(
    config: TrainConfig,
    *,
    resume_dir: Path | str | None = None,
    built: Built | None = None,
    program: BatchedProgram | None = None,
    stop_after_updates: int | None = None,
    progress: bool = True,
    mesh: jax.sharding.Mesh | None = None,
    loggers: Sequence[Logger] = (),
) -> Path:
    """Build ``config`` and train every (sweep setting, seed) of it; returns the run directory.

    resume_dir: continue the run saved there (pass the config saved in it, ``load_run(...).config`` or
        ``shm_jax.training.rundir.load_config``). A finished run is left as it is.
    built, program: what ``build(config)`` and ``built.program(mesh)`` give, to reuse them (notebooks,
        tests); a program alone (a test algorithm) trains without the memory check and final evaluation.
    stop_after_updates: stop (and save) once this many updates are done in total, as if interrupted.
    loggers: your own loggers (anything with ``log(row, step)`` and ``close()``, ``shm_jax.training.loggers.Logger``):
        each receives every (update, run) row after each chunk, next to metrics.jsonl, the CSVs, TensorBoard and W&B.
    Raises ``shm_jax.training.loop.NonFiniteLossError`` when every run has diverged.
    """
    if program is None:
        built = built if built is not None else build(config)
        program = built.program(mesh)
    return loop.run(
        config,
        program,
        built=built,
        resume_dir=resume_dir,
        stop_after_updates=stop_after_updates,
        progress=progress,
        loggers=loggers,
    )


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A run restored from its directory: its config, what it builds, its program and the latest state."""

    config: TrainConfig
    built: Built
    program: BatchedProgram
    state: Any


def load_run(run_dir: Path | str, purpose: str = "eval") -> LoadedRun:
    """Rebuild the run saved in ``run_dir`` from its config.json and restore the newest intact checkpoint
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


def evaluate(
    run: Path | str | LoadedRun, *, episodes: int | None = None, greedy: bool = True, seed: int = 0
) -> dict[str, Any]:
    """Play fresh episodes with every agent of a saved run (a directory or a :class:`LoadedRun`).

    episodes: per agent (default: the run's eval_episodes, or 32); greedy: mode actions, else sampled.
    Returns the JSON-ready summary (per run and per sweep setting; held-out tasks for meta-RL).
    """
    loaded = run if isinstance(run, LoadedRun) else load_run(run, purpose="eval")
    episodes = episodes or loaded.config.run.eval_episodes or 32
    return loop.evaluate_agents(loaded.built, loaded.program, loaded.state, episodes=episodes, greedy=greedy, seed=seed)
