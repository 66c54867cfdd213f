"""Checkpoints of the FULL training state with orbax-checkpoint, saved from the host between chunks.

One checkpoint (``RUN_DIR/checkpoints/<updates done>/``) holds:

- ``state``: the batched runner state, every leaf ``[G, S, ...]`` (params, optimizer state, env
  state, memory carries, last observations and start flags, RNG keys, update counters), so a
  resumed run continues exactly where it stopped;
- ``history``: every per-update metric so far (numpy ``[G, S, U]``, see ``shm_jax.metrics``);
- ``meta``: JSON with the number of updates done, the status and the config.

Saving is synchronous and runs on the main thread (orbax's CheckpointManager is not thread safe);
the state is tiny next to a chunk of PPO updates. Typed PRNG keys (``jax.random.key``) are stored
as their raw key data and re-wrapped on restore, so both key styles round-trip.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from shm_jax.config import ConfigError

CHECKPOINT_SUBDIR = "checkpoints"


def _is_typed_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _unwrap_keys(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_typed_key(x) else x, tree)


def _abstract_key_data(x: Any) -> Any:
    """ShapeDtypeStruct of the raw key data behind an abstract typed key (same sharding)."""
    data = jax.eval_shape(jax.random.key_data, jax.ShapeDtypeStruct(x.shape, x.dtype))
    return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=getattr(x, "sharding", None))


class Checkpointer:
    """Save and restore (state, history, meta) under ``run_dir/checkpoints``; keeps the last ``max_to_keep``."""

    def __init__(self, run_dir: Path | str, *, max_to_keep: int = 3, create: bool = True):
        logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every save at INFO
        self.directory = Path(run_dir).absolute() / CHECKPOINT_SUBDIR
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=False, create=create
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, history: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Save checkpoint ``step`` (= updates done). Overwrites nothing: a step saved twice is skipped."""
        if step in self._manager.all_steps():
            return
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(_unwrap_keys(state)),
            history=ocp.args.StandardSave({k: np.asarray(v) for k, v in history.items()}),
            meta=ocp.args.JsonSave(meta),
        )
        self._manager.save(step, args=args)
        self._manager.wait_until_finished()

    def restore(self, abstract_state: Any, step: int | None = None,
                purpose: str = "resume") -> tuple[Any, dict[str, np.ndarray], dict[str, Any]]:
        """Restore (state, history, meta) of ``step`` (default: the latest).

        abstract_state: the runner-state pytree of ``jax.ShapeDtypeStruct`` (with shardings) that
        the checkpoint must match, e.g. ``jax.eval_shape`` of the batched init.
        purpose: the prefix of the one-line errors ("resume", "eval") for a missing or unreadable checkpoint.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise ConfigError(purpose, f"no checkpoint in {self.directory}")
        target = jax.tree.map(lambda x: _abstract_key_data(x) if _is_typed_key(x) else x, abstract_state)
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(target),
            history=ocp.args.StandardRestore(),
            meta=ocp.args.JsonRestore(),
        )
        try:
            restored = self._manager.restore(step, args=args)
        except Exception as err:  # orbax raises many types for a damaged checkpoint: say it in one line
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise ConfigError(purpose, f"checkpoint in {self.directory} is unreadable ({first_line})") from None
        state = jax.tree.map(
            lambda abstract, x: jax.random.wrap_key_data(x, impl=_impl_of(abstract)) if _is_typed_key(abstract) else x,
            abstract_state, restored["state"],
        )
        history = {k: np.asarray(v) for k, v in (restored["history"] or {}).items()}
        return state, history, dict(restored["meta"])

    def close(self) -> None:
        self._manager.close()


def _impl_of(abstract_key: Any) -> Any:
    """The PRNG implementation of an abstract typed key array (jax has no public getter for abstract keys)."""
    return abstract_key.dtype._impl
