"""Run directories: naming a new one, what describes it (config, versions, devices), reading it back.

A run directory ``<out_dir>/<env>-<memory>-<UTC timestamp>/`` (or ``<out_dir>/<run_name>``) holds
``config.json`` (the sectioned config; flat configs of older runs still load), ``versions.json``
(python, jax, flax, ... and the git commit) and ``devices.json``, next to what the host loop writes.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import itertools
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax

from shm_jax.config import ConfigError, TrainConfig, from_dict, to_dict
from shm_jax.training import distributed

CONFIG_FILE = "config.json"
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "gymnax", "chex", "numpy", "tyro", "shm-jax")


def new_run_dir(out_dir: str, env_id: str, memory: str, run_name: str | None = None) -> Path:
    """``<out_dir>/<env>-<memory>-<UTC timestamp>`` (a numeric suffix if two runs start in one second),
    or ``<out_dir>/<run_name>``, which must not exist with content."""
    root = Path(out_dir)
    if run_name:
        path = root / run_name
        if path.exists() and any(path.iterdir()):
            raise ConfigError(
                "run_name", f"{str(path)!r} already exists and is not empty; pick another name or --resume it"
            )
        path.mkdir(parents=True, exist_ok=True)
        return path
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    base = f"{env_id}-{memory}-{stamp}"
    for i in itertools.count():
        path = root / (base if i == 0 else f"{base}-{i}")
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def write_config(run_dir: Path, config: TrainConfig) -> None:
    (Path(run_dir) / CONFIG_FILE).write_text(json.dumps(to_dict(config), indent=2) + "\n")


def record_resume(run_dir: Path, config: TrainConfig, changes: dict[str, tuple[Any, Any]]) -> None:
    """Write the config a resumed run continues with, keeping a dated record of each change (old, new)."""
    path = Path(run_dir) / CONFIG_FILE
    previous = json.loads(path.read_text()).get("resumed", []) if path.is_file() else []
    stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    record = previous + [{"time": stamp, "changed": {k: list(v) for k, v in changes.items()}}]
    path.write_text(json.dumps({**to_dict(config), "resumed": record}, indent=2) + "\n")


# Agent options whose default changed, with the value runs written before the change trained with: their config.json
# has no entry for the option, and resuming or evaluating them must rebuild the same network.
FORMER_AGENT_DEFAULTS = {"memory_norm": False}


def with_former_defaults(data: Any) -> Any:
    """``data`` (a loaded config.json, sectioned or flat) with FORMER_AGENT_DEFAULTS filled in where absent."""
    if not isinstance(data, dict):
        return data
    if isinstance(data.get("agent"), dict):
        return {**data, "agent": {**FORMER_AGENT_DEFAULTS, **data["agent"]}}
    return {**FORMER_AGENT_DEFAULTS, **data}


def load_config(run_dir: Path | str, purpose: str = "resume") -> TrainConfig:
    """The config saved in ``run_dir``; one-line ConfigError (field ``purpose``) when the directory is
    missing, not a run directory, or its config.json is damaged."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(purpose, f"run directory {str(run_dir)!r} does not exist")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(purpose, f"{str(run_dir)!r} is not a run directory (no {CONFIG_FILE})")
    try:
        return from_dict(with_former_defaults(json.loads(path.read_text())))
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        detail = (
            f"{err.msg} at line {err.lineno}" if isinstance(err, json.JSONDecodeError) else str(err).splitlines()[0]
        )
        raise ConfigError(purpose, f"{path} is corrupted ({detail})") from None


def versions() -> dict[str, Any]:
    """Python, platform, the versions of the packages that shape results, and the git commit."""
    found: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    found["git_commit"] = git_commit()
    return found


def git_commit(short: bool = False) -> str | None:
    """The checkout's commit (``HEAD``), or None outside a git checkout."""
    try:
        repo = Path(__file__).resolve().parents[2]
        args = ["git", "rev-parse", *(["--short"] if short else []), "HEAD"]
        return subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def devices() -> dict[str, Any]:
    """The backend and every device of every process (several processes: the job's topology too)."""
    found = {
        "backend": jax.default_backend(),
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "devices": [
            {"id": d.id, "platform": d.platform, "kind": d.device_kind, "process": d.process_index}
            for d in jax.devices()
        ],
    }
    if jax.process_count() > 1:
        found["distributed"] = distributed.describe()
    return found


def write_provenance(run_dir: Path, **extra_devices: Any) -> None:
    """versions.json and devices.json (``extra_devices`` adds keys such as the sharded axis)."""
    run_dir = Path(run_dir)
    (run_dir / "versions.json").write_text(json.dumps(versions(), indent=2) + "\n")
    (run_dir / "devices.json").write_text(json.dumps({**devices(), **extra_devices}, indent=2) + "\n")
