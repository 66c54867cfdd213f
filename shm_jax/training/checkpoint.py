"""Checkpoints of the FULL training state with orbax-checkpoint, saved from the host between chunks.

One checkpoint (``RUN_DIR/checkpoints/<updates done>/``) holds:

- ``state``: the batched runner state, every leaf ``[G, S, ...]`` (params, optimizer state, env
  state, memory carries, last observations and start flags, RNG keys, update counters), so a
  resumed run continues exactly where it stopped;
- ``history``: every per-update metric so far (numpy ``[G, S, U]``, see ``shm_jax.training.metrics``);
- ``meta``: JSON with the number of updates done, the status and the config.

Saves are asynchronous: ``save`` returns once the arrays are copied to the host, and the files are
written by orbax in the background while training goes on (``wait`` blocks until they are). orbax
writes into a temporary folder and renames it when complete, so a kill at any moment leaves every
finished checkpoint intact; leftover temporary folders are removed when a run directory is opened.
``restore`` takes the newest checkpoint that reads back and names any damaged newer one. Calls must
come from one thread. Typed PRNG keys are stored as their raw key data and re-wrapped on restore.

Several processes (``jax.distributed``): every process makes the same calls in the same order on one shared
directory (orbax's save and restore are collective); what touches the directory outside orbax (removing leftovers,
setting a damaged checkpoint aside) is done by process 0 between barriers, every process then rebuilds its
manager, and whether a checkpoint restored is agreed by all before it is used.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from shm_jax.options import ConfigError
from shm_jax.training import distributed

CHECKPOINT_SUBDIR = "checkpoints"
_TMP_MARK = ".orbax-checkpoint-tmp"


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (e.g. the disk is full); ``str(err)`` is one line."""


def _is_typed_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _unwrap_keys(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_typed_key(x) else x, tree)


def _abstract_key_data(x: Any) -> Any:
    """ShapeDtypeStruct of the raw key data behind an abstract typed key (same sharding)."""
    data = jax.eval_shape(jax.random.key_data, jax.ShapeDtypeStruct(x.shape, x.dtype))
    return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=getattr(x, "sharding", None))


def _quiet_orbax() -> None:
    """orbax logs every save at INFO and damaged files at ERROR through absl, and its background coroutines
    log their tracebacks: the trainer reports checkpoint problems itself, in one line."""
    for name in ("absl", "orbax", "asyncio", "jax._src.distributed"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


class Checkpointer:
    """Save and restore (state, history, meta) under ``run_dir/checkpoints``; keeps the last ``max_to_keep``."""

    def __init__(self, run_dir: Path | str, *, max_to_keep: int = 3, create: bool = True):
        _quiet_orbax()
        self.directory = Path(run_dir).absolute() / CHECKPOINT_SUBDIR
        distributed.barrier("shm_jax:checkpointer-open")  # nobody still reads or writes the folder being cleaned
        self.removed_temporary = self._remove_temporary() if distributed.is_main() else []
        distributed.barrier("shm_jax:checkpointer-cleaned")  # every process builds its manager after the clean-up
        self._options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=True, create=create
        )
        self._manager = ocp.CheckpointManager(self.directory, options=self._options)

    def _remove_temporary(self) -> list[str]:
        """Delete the temporary folders a killed save left behind (never a finished checkpoint)."""
        if not self.directory.is_dir():
            return []
        leftovers = sorted(p for p in self.directory.iterdir() if _TMP_MARK in p.name)
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)
        return [p.name for p in leftovers]

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, history: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Start saving checkpoint ``step`` (= updates done); a step saved before is skipped.

        Raises CheckpointWriteError (one line) when this or the previous save could not be written.
        """
        if step in self._manager.all_steps():
            return
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(_unwrap_keys(state)),
            history=ocp.args.StandardSave({k: np.asarray(v) for k, v in history.items()}),
            meta=ocp.args.JsonSave(meta),
        )
        try:
            self._manager.save(step, args=args)
        except Exception as err:  # orbax wraps OS errors (ENOSPC, EACCES) in several types
            self._clean_up_after_failure()
            raise CheckpointWriteError(f"checkpoint {step} was not written ({_first_line(err)})") from None

    def _clean_up_after_failure(self) -> None:
        """Let a save still in flight finish (it may be the last good one), then drop half-written folders."""
        try:
            self._manager.wait_until_finished()
        except Exception:  # that save failed too: its folder is removed below
            pass
        if distributed.is_main():
            self._remove_temporary()

    def wait(self) -> None:
        """Block until every started save is on disk; CheckpointWriteError if one failed."""
        try:
            self._manager.wait_until_finished()
        except Exception as err:
            self._clean_up_after_failure()
            raise CheckpointWriteError(f"a checkpoint was not written ({_first_line(err)})") from None

    def restore(
        self, abstract_state: Any, step: int | None = None, purpose: str = "resume"
    ) -> tuple[Any, dict[str, np.ndarray], dict[str, Any]]:
        """Restore (state, history, meta) of ``step``, default: the newest checkpoint that reads back.

        abstract_state: the runner-state pytree of ``jax.ShapeDtypeStruct`` (with shardings) that
        the checkpoint must match, e.g. ``jax.eval_shape`` of the batched init.
        purpose: the field of the one-line ConfigError ("resume", "eval") when no checkpoint is usable.
        A damaged newer checkpoint is reported on stderr by name and skipped.
        """
        steps = sorted(self._manager.all_steps(), reverse=True) if step is None else [step]
        if not steps:
            raise ConfigError(purpose, f"no checkpoint in {self.directory}")
        target = jax.tree.map(lambda x: _abstract_key_data(x) if _is_typed_key(x) else x, abstract_state)
        failures = []
        for candidate in steps:
            error = None
            try:
                restored = self._restore_step(candidate, target)
            except Exception as err:  # orbax raises many types for a damaged checkpoint
                error = _first_line(err)
            if not distributed.agree_all(error is None):  # several processes: a step fails for all if it fails for one
                failures.append(f"{candidate} ({error or 'failed on another process'})")
                continue
            if failures:
                moved = self._set_aside([int(f.split(" ")[0]) for f in failures]) if purpose == "resume" else []
                aside = f" (moved to {', '.join(moved)})" if moved else ""
                if distributed.is_main():
                    print(
                        f"{purpose}: skipped damaged checkpoint(s) {'; '.join(failures)} in {self.directory}{aside}; "
                        f"using checkpoint {candidate}",
                        file=sys.stderr,
                    )
            state = jax.tree.map(
                lambda abstract, x: (
                    jax.random.wrap_key_data(x, impl=_impl_of(abstract)) if _is_typed_key(abstract) else x
                ),
                abstract_state,
                restored["state"],
            )
            history = {k: np.asarray(v) for k, v in (restored["history"] or {}).items()}
            return state, history, dict(restored["meta"])
        raise ConfigError(purpose, f"no readable checkpoint in {self.directory}: {'; '.join(failures)}")

    def _set_aside(self, steps: list[int]) -> list[str]:
        """Rename damaged checkpoints out of orbax's sight, so a resumed run can save those steps again (process 0
        renames; every process then rebuilds its manager, whose list of steps would otherwise keep them)."""
        distributed.barrier("shm_jax:set-aside-start")
        moved = []
        if distributed.is_main():
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for step in steps:
                source = self.directory / str(step)
                if source.is_dir():
                    target = source.with_name(f"{step}.damaged-{stamp}")
                    source.rename(target)
                    moved.append(target.name)
        distributed.barrier("shm_jax:set-aside-done")
        self._manager.close()
        self._manager = ocp.CheckpointManager(self.directory, options=self._options)
        return moved

    def _restore_step(self, step: int, target: Any) -> Any:
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(target),
            history=ocp.args.StandardRestore(),
            meta=ocp.args.JsonRestore(),
        )
        return self._manager.restore(step, args=args)

    def close(self) -> None:
        """Finish pending saves and release orbax's threads (write errors are reported by ``wait``)."""
        try:
            self._manager.wait_until_finished()
        except Exception:  # the caller saw it from wait() or save(); closing must not mask the first error
            pass
        self._manager.close()


def _impl_of(abstract_key: Any) -> Any:
    """The PRNG implementation of an abstract typed key array (jax has no public getter for abstract keys)."""
    return abstract_key.dtype._impl
