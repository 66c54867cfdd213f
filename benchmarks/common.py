"""What every benchmark records and how it times: the host, versions, commit, load, one timing loop.

A number is only worth committing with the machine, the software and the load it was measured under, so
every script builds its record from ``record_header`` and times with ``timed_calls``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import jax

from shm_jax.training import rundir

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

# Packages whose versions shape a measured number (missing ones are recorded as None).
PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "gymnax", "popgym", "torch", "memorax")


def device_slug() -> str:
    """'cpu', or the lower-cased device kind for a file name, e.g. 'nvidia-h100-80gb-hbm3'."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", device.device_kind.lower()).strip("-") or device.platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def git_commit() -> str | None:
    """The short commit of this checkout (one helper: ``shm_jax.training.rundir.git_commit``)."""
    return rundir.git_commit(short=True)


def host_info() -> dict[str, Any]:
    from shm_jax.memory.scan import default_method  # the scan a core uses when none is named

    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "jax_devices": [str(d) for d in devices],
        "device_kind": devices[0].device_kind,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "default_scan_method": default_method(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def record_header(benchmark: str) -> dict[str, Any]:
    """The fields every results file starts with; finish it with ``close_record``."""
    return {
        "benchmark": benchmark,
        "timestamp_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": host_info(),
        "versions": versions(),
        "git_commit": git_commit(),
        "load_average_start": load_average(),
    }


def close_record(record: dict[str, Any], began: float) -> dict[str, Any]:
    """Adds the end-of-run load and the wall time since ``began`` (a ``time.perf_counter()`` value)."""
    record["load_average_end"] = load_average()
    record["wall_s"] = time.perf_counter() - began
    return record


def write_record(
    record: dict[str, Any], out: str | Path, name: str, quick: bool, markdown: Callable[[dict], str]
) -> Path:
    """Writes ``<out>/<name>_<device>[_quick].json`` and the ``markdown(record)`` table beside it (``.md``), prints
    the table and returns the JSON's path."""
    path = Path(out) / f"{name}_{device_slug()}{'_quick' if quick else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    table = markdown(record)
    path.with_suffix(".md").write_text(table)
    print(table)
    return path


def measured_on(record: dict[str, Any], module: str) -> str:
    """The table's provenance sentence: command, CPU, time, commit and load of ``record``."""
    host = record["host"]
    return (
        f"`python -m {module}` on {host['cpu_model']} ({host['cpu_count']} cores), {record['timestamp_utc']}, "
        f"git {record['git_commit']}, load average {record['load_average_start']} -> {record['load_average_end']}."
    )


def timed_calls(call: Callable[[], Any], repeats: int, max_total_s: float | None = None) -> list[float]:
    """Wall times of ``repeats`` calls of ``call`` (each blocked until ready); stops early, after at least three
    calls, once ``max_total_s`` is spent (slow configurations need no more)."""
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - start)
        if max_total_s is not None and len(times) >= 3 and sum(times) > max_total_s:
            break
    return times


def memory_analysis(compiled) -> dict[str, Any]:
    """XLA's compiled memory sizes in bytes (temp, argument, output, alias, code) and their peak estimate."""
    try:
        stats = compiled.memory_analysis()
    except Exception as err:  # some backends do not implement it
        return {"error": repr(err)}
    if stats is None:
        return {"error": "memory_analysis() returned None"}
    out = {
        name: int(getattr(stats, f"{name}_size_in_bytes", 0))
        for name in ("temp", "argument", "output", "alias", "generated_code")
    }
    out["peak_estimate"] = out["temp"] + out["argument"] + out["output"] - out["alias"]
    return out
