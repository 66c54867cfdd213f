"""The host loop: validate, build the batched (sweep x seed) program, run it in jitted chunks, log, save.

``run(config) -> run_dir`` is the whole pipeline behind ``python train.py``:

1. ``shm_jax.config.validate(config)`` before anything compiles;
2. ``shm_jax.ppo.make_train(config)`` gives a single-run Trainer (pure ``init``/``train_chunk``);
   :class:`BatchedTrain` vmaps it over seeds (inner) and the sweep grid (outer), so every runner-state
   leaf and every metric has leading axes ``[G, S]`` (G sweep settings, S seeds), and places the
   state on a device mesh (``shm_jax.sharding``);
3. a loop of jitted chunks of K = ``updates_per_chunk`` PPO updates (lowered to a nearby divisor of
   the number of updates when there is one, so a single compiled program serves every chunk; see
   :func:`effective_chunk_size`); between chunks, on the host:
   tqdm progress (env steps per run, rate, recent mean return, ETA), ``metrics.jsonl``, one CSV per
   (setting, seed), optional TensorBoard, a checkpoint every ``checkpoint_every`` chunks (0: none
   on the way) and always at the end or when stopped;
4. ``summary.json`` (final return and MMER per run, mean +- std per setting) and ``learning_curve.png``.

A run directory ``<out_dir>/<env>-<memory>-<UTC timestamp>/`` describes itself: ``config.json``,
``versions.json`` (python, jax, flax, ... and the git commit), ``devices.json``, ``metrics.jsonl``,
``csv/``, ``summary.json``, ``learning_curve.png``, ``checkpoints/``, ``tensorboard/`` (optional).

Stopping: Ctrl-C or SIGTERM finishes the current chunk, saves a checkpoint and returns (a second
Ctrl-C aborts at once). A non-finite loss (the trainer's ``finite`` metric) stops the run before the
bad state is saved: the last good checkpoint stays the latest, and :class:`NonFiniteLossError` says so.
``run(config, resume_dir=RUN_DIR)`` continues a stopped run exactly (same chunks, same numbers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import importlib.metadata
import itertools
import json
import math
import platform
import signal
import subprocess
import sys
import threading
import time
import typing
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from shm_jax import metrics as metrics_lib
from shm_jax import sharding as sharding_lib
from shm_jax.checkpoint import Checkpointer
from shm_jax.plots import plot_learning_curves
from shm_jax.ppo import split_seed_keys, sweep_grid

CONFIG_FILE = "config.json"
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "gymnax", "chex", "numpy", "tyro", "shm-jax")


class NonFiniteLossError(RuntimeError):
    """Training produced a non-finite loss; the run stopped and kept its last good checkpoint."""


# ----------------------------------------------------------------------------------------------------
# Config <-> JSON


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def _coerce(value: Any, annotation: Any) -> Any:
    """Turn a JSON value back into the annotated type: lists become tuples, dicts nested dataclasses."""
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        return config_from_dict(annotation, value)
    if isinstance(value, list):
        return tuple(_coerce(v, Any) for v in value)
    if isinstance(value, dict):
        return {k: _coerce(v, Any) for k, v in value.items()}
    return value


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a config dataclass ``cls`` from :func:`config_to_dict` output (unknown keys rejected)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"config: unknown field(s) {unknown} in saved config; this code knows {sorted(names)}")
    return cls(**{k: _coerce(v, hints.get(k, Any)) for k, v in data.items()})


def _field(config: Any, *names: str, default: Any = None) -> Any:
    """The first of ``names`` that the config has (the config module may still rename a field)."""
    for name in names:
        if hasattr(config, name):
            return getattr(config, name)
    return default


# ----------------------------------------------------------------------------------------------------
# The batched program


class BatchedTrain:
    """A single-run Trainer vmapped over seeds (inner) and sweep settings (outer), placed on a mesh.

    trainer: object with ``init(rng, hparams)``, ``train_chunk(state, hparams, k)``,
    ``num_updates``, ``steps_per_update`` (see the PPO contract).
    """

    def __init__(self, trainer: Any, base_hparams: Any, *, sweep=(), seed: int = 0, num_seeds: int = 1,
                 num_envs: int | None = None, mesh: jax.sharding.Mesh | None = None):
        self.trainer = trainer
        self.hparams, self.settings = sweep_grid(base_hparams, sweep)
        self.keys, self.seeds = split_seed_keys(seed, num_seeds), list(range(num_seeds))
        self.mesh = mesh if mesh is not None else sharding_lib.make_mesh()
        self._init = jax.vmap(jax.vmap(trainer.init, in_axes=(0, None)), in_axes=(None, 0))
        abstract = jax.eval_shape(self._init, self.keys, self.hparams)
        self.state_sharding, self.sharded_axis = sharding_lib.plan_state_sharding(
            abstract, self.mesh, num_envs=num_envs)
        self._replicated = sharding_lib.replicated(self.mesh)
        self.hparams = jax.device_put(self.hparams, self._replicated)
        self._compiled: dict[int, Any] = {}
        self.compile_seconds = 0.0

    @property
    def num_runs(self) -> int:
        return len(self.settings) * len(self.seeds)

    def abstract_state(self) -> Any:
        """The runner-state pytree of ShapeDtypeStructs with shardings (the restore target)."""
        abstract = jax.eval_shape(self._init, self.keys, self.hparams)
        return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                            abstract, self.state_sharding)

    def init(self) -> Any:
        """The fresh batched runner state, leaves [G, S, ...], already sharded.

        Each run is initialised by one un-vmapped jitted call and the results are stacked: vmapping
        an orthogonal initialiser turns its QR into a batched LAPACK call, which can deadlock the
        XLA CPU thread pool on small machines (jaxlib 0.10, seen on 2 cores). Same numbers per run.
        """
        init_one = jax.jit(self.trainer.init)
        settings = [jax.tree.map(lambda x, g=g: x[g], self.hparams) for g in range(len(self.settings))]
        runs = [[init_one(key, hp) for key in self.keys] for hp in settings]
        stack = lambda *xs: jnp.stack(xs)  # noqa: E731
        stacked = jax.tree.map(stack, *[jax.tree.map(stack, *row) for row in runs])
        return jax.device_put(stacked, self.state_sharding)

    def _chunk_fn(self, k: int) -> Callable:
        trainer = self.trainer

        def chunk(state, hparams):
            run_one = lambda st, hp: trainer.train_chunk(st, hp, k)  # noqa: E731
            state, metrics = jax.vmap(jax.vmap(run_one, in_axes=(0, None)), in_axes=(0, 0))(state, hparams)
            # metrics are tiny: replicate them so every process can read them on the host
            return state, jax.lax.with_sharding_constraint(metrics, self._replicated)

        donate = (0,) if jax.default_backend() != "cpu" else ()  # CPU ignores donation (with a warning)
        return jax.jit(chunk, out_shardings=(self.state_sharding, self._replicated), donate_argnums=donate)

    def compiled_chunk(self, state: Any, k: int) -> Any:
        """The compiled chunk of ``k`` updates (ahead-of-time, cached; compile time is recorded)."""
        if k not in self._compiled:
            start = time.perf_counter()
            self._compiled[k] = self._chunk_fn(k).lower(state, self.hparams).compile()
            self.compile_seconds += time.perf_counter() - start
        return self._compiled[k]

    def run_chunk(self, state: Any, k: int) -> tuple[Any, dict[str, np.ndarray]]:
        """k updates of every run: (new state, metrics dict of numpy [G, S, k])."""
        new_state, metrics = self.compiled_chunk(state, k)(state, self.hparams)
        return new_state, {key: np.asarray(value) for key, value in jax.device_get(metrics).items()}


# ----------------------------------------------------------------------------------------------------
# Run directory


def _versions() -> dict[str, Any]:
    versions: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    try:
        repo = Path(__file__).resolve().parents[1]
        versions["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        versions["git_commit"] = None
    return versions


def _devices() -> dict[str, Any]:
    return {
        "backend": jax.default_backend(),
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "devices": [{"id": d.id, "platform": d.platform, "kind": d.device_kind, "process": d.process_index}
                    for d in jax.devices()],
    }


def new_run_dir(config: Any) -> Path:
    """``<out_dir>/<env>-<memory>-<UTC timestamp>`` (a numeric suffix if two runs start in one
    second), or ``<out_dir>/<run_name>`` when the config names the run."""
    out_dir = Path(_field(config, "out_dir", "runs_dir", default="runs"))
    if _field(config, "run_name"):
        path = out_dir / _field(config, "run_name")
        if path.exists() and any(path.iterdir()):
            raise ValueError(f"run_name: {str(path)!r} already exists and is not empty; pick another name or --resume it")
        path.mkdir(parents=True, exist_ok=True)
        return path
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = f"{_field(config, 'env_id', 'env', default='env')}-{_field(config, 'memory', default='memory')}-{stamp}"
    for i in itertools.count():
        path = out_dir / (base if i == 0 else f"{base}-{i}")
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def load_run_config(run_dir: Path | str, config_cls: type, purpose: str = "resume") -> Any:
    """The config saved in ``run_dir``; one-line ValueError (prefixed ``purpose:``) when the directory
    is missing, not a run directory, or its config.json is damaged."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{purpose}: run directory {str(run_dir)!r} does not exist")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"{purpose}: {str(run_dir)!r} is not a run directory (no {CONFIG_FILE})")
    try:
        data = json.loads(path.read_text())
        return config_from_dict(config_cls, data)
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        detail = f"{err.msg} at line {err.lineno}" if isinstance(err, json.JSONDecodeError) else str(err).splitlines()[0]
        raise ValueError(f"{purpose}: {path} is corrupted ({detail})") from None


# ----------------------------------------------------------------------------------------------------
# Stop requests (Ctrl-C, SIGTERM)


class StopFlag:
    """Set by the first SIGINT/SIGTERM; the loop stops after the current chunk. A second SIGINT aborts."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(f"\n{self.signal_name} received: finishing the current chunk, then saving a checkpoint "
              "(Ctrl-C again aborts without saving)", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def installed(self):
        """Install the handlers (main thread only: signal handlers cannot be set elsewhere)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


# ----------------------------------------------------------------------------------------------------
# Optional TensorBoard


class _TensorBoard:
    """Scalars per run under ``run_dir/tensorboard/<run>``; a no-op when tensorboardX is missing."""

    def __init__(self, directory: Path, enabled: bool):
        self.writers = {}
        self.available = False
        if not enabled:
            return
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            print("tensorboard: tensorboardX is not installed; skipping TensorBoard logs "
                  "(pip install tensorboardX)", file=sys.stderr)
            return
        self.available = True
        self._writer_cls = SummaryWriter
        self.directory = directory

    def write(self, history: metrics_lib.History, start: int) -> None:
        if not self.available:
            return
        steps = history.env_steps()
        for g, s, label in history.runs():
            writer = self.writers.get(label)
            if writer is None:
                writer = self.writers[label] = self._writer_cls(str(self.directory / label))
            for key, values in history.data.items():
                for u in range(start, history.num_updates):
                    value = float(values[g, s, u])
                    if math.isfinite(value):
                        writer.add_scalar(key, value, int(steps[u]))
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


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


def _reports_success(trainer: Any) -> bool:
    """Whether the task defines success (``info["success"]``); trainers without an env: trust the metrics."""
    if not hasattr(trainer, "env"):
        return True
    from shm_jax.evaluation import reports_success

    return reports_success(trainer.env, trainer.env_params)


def _final_evaluation(config: Any, trainer: Any, state: Any, program: BatchedTrain) -> list[dict[str, Any]]:
    """Greedy and sampled evaluation of every trained agent (config.eval_episodes fresh episodes each)."""
    episodes = int(_field(config, "eval_episodes", default=0) or 0)
    if episodes <= 0 or not hasattr(trainer, "act"):
        return []
    from shm_jax.evaluation import evaluate

    print(f"Evaluating on {episodes} fresh episodes per agent (greedy and sampled)...", file=sys.stderr, flush=True)
    return [evaluate(state, episodes=episodes, greedy=greedy, trainer=trainer, config=config,
                     settings=program.settings, seeds=program.seeds) for greedy in (True, False)]


def _build(config: Any) -> tuple[Any, Any]:
    """Validate the config (before anything compiles), then build the Trainer and base HParams."""
    from shm_jax.config import validate
    from shm_jax.ppo import hparams_from_config, make_train

    validate(config)
    return make_train(config), hparams_from_config(config)


def run(
    config: Any,
    *,
    resume_dir: Path | str | None = None,
    trainer: Any = None,
    base_hparams: Any = None,
    stop_after_updates: int | None = None,
    progress: bool = True,
    mesh: jax.sharding.Mesh | None = None,
    program: BatchedTrain | None = None,
) -> Path:
    """Train every (sweep setting, seed) of ``config``; returns the run directory.

    resume_dir: continue the run saved there (its config.json wins over ``config``).
    trainer, base_hparams: a prebuilt single-run Trainer and its HParams (tests); default: built from
        ``config`` by ``shm_jax.ppo`` after ``shm_jax.config.validate``.
    stop_after_updates: stop (and save) once this many updates are done in total, as if interrupted.
    program: a BatchedTrain built for this config, to reuse its compiled chunks (tests, notebooks).
    Raises NonFiniteLossError when the loss becomes non-finite (the last good checkpoint is kept).
    """
    if program is None:
        if trainer is None:
            trainer, base_hparams = _build(config)
        program = BatchedTrain(
            trainer, base_hparams, sweep=_field(config, "sweep", default=()), seed=_field(config, "seed", default=0),
            num_seeds=_field(config, "num_seeds", default=1), num_envs=_field(config, "num_envs"), mesh=mesh,
        )
    trainer = program.trainer
    is_main = jax.process_index() == 0
    num_updates, steps_per_update = int(trainer.num_updates), int(trainer.steps_per_update)
    requested_chunk = max(1, int(_field(config, "updates_per_chunk", default=10)))
    chunk_size = effective_chunk_size(num_updates, requested_chunk)
    # checkpoint_every counts chunks of the requested size (0: only at the end and when stopped)
    every_chunks = int(_field(config, "checkpoint_every", default=0) or 0)
    checkpoint_every = every_chunks * requested_chunk if every_chunks > 0 else num_updates

    run_dir = Path(resume_dir) if resume_dir is not None else new_run_dir(config)
    if is_main:
        if resume_dir is None:
            (run_dir / CONFIG_FILE).write_text(json.dumps(config_to_dict(config), indent=2) + "\n")
        (run_dir / "versions.json").write_text(json.dumps(_versions(), indent=2) + "\n")
        (run_dir / "devices.json").write_text(
            json.dumps({**_devices(), "sharded_axis": program.sharded_axis}, indent=2) + "\n")
    history = metrics_lib.History(program.settings, program.seeds, steps_per_update,
                                  track_success=_reports_success(trainer))
    checkpointer = Checkpointer(run_dir, max_to_keep=int(_field(config, "keep_checkpoints", default=3)))
    tensorboard = _TensorBoard(run_dir / "tensorboard", bool(_field(config, "tensorboard", default=False)) and is_main)
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
            "run_dir": str(run_dir), "env_id": _field(config, "env_id"), "memory": _field(config, "memory"),
            "num_updates": num_updates, "updates_per_chunk": chunk_size, "sharded_axis": program.sharded_axis,
            "timing": timing, **(extra or {})})
        metrics_lib.write_summary(run_dir / "summary.json", summary)
        if summary.get("evaluation"):
            (run_dir / "eval.json").write_text(json.dumps(summary["evaluation"], indent=2) + "\n")
        title = f"{_field(config, 'env_id', default='')} / {_field(config, 'memory', default='')}"
        plot_learning_curves(history, run_dir / "learning_curve.png", title=title)

    if updates_done < num_updates:  # compile before the progress bar starts its clock
        if is_main:
            print(f"Compiling the training program for {program.num_runs} run(s) "
                  f"({len(program.settings)} setting(s) x {len(program.seeds)} seed(s))...", file=sys.stderr, flush=True)
        program.compiled_chunk(state, min(chunk_size, num_updates - updates_done))
        if is_main:
            print(f"Compiled in {program.compile_seconds:.1f} s", file=sys.stderr, flush=True)
    total_steps = num_updates * steps_per_update
    bar = _progress_bar(total_steps, updates_done * steps_per_update, enabled=progress and is_main)
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
                if updates_done // checkpoint_every > last_saved // checkpoint_every and updates_done < num_updates:
                    save("running")
                    last_saved = updates_done
                    if is_main:
                        metrics_lib.write_csvs(run_dir / "csv", history)
            bar.close()
            save(status)
            finish(status, {"evaluation": _final_evaluation(config, trainer, state, program)}
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
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", unit_scale=True, dynamic_ncols=True,
                disable=not enabled, desc="env steps/run", file=sys.stderr)
