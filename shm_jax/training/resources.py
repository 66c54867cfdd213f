"""Will the run fit in memory? The algorithm's estimate (``Algorithm.memory_estimate``, from shapes alone)
against the free memory of the devices, checked before anything compiles."""

from __future__ import annotations

import os

import jax
import numpy as np

from shm_jax.algorithms.base import MemoryEstimate, gib
from shm_jax.options import ConfigError
from shm_jax.training import distributed


def available_bytes(device: jax.Device | None = None) -> tuple[int | None, str]:
    """(free bytes on the device, or None when it cannot be read, and a name for it). CPU: the host's RAM."""
    device = device or jax.devices()[0]
    if device.platform == "cpu":
        return _host_available(), "host memory"
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), f"{device.device_kind} memory"
    return None, f"{device.device_kind} memory"


def _host_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(estimate: MemoryEstimate, *, devices: list[jax.Device] | None = None, blame: str = "num_envs") -> None:
    """ConfigError naming ``blame`` (or num_seeds when one run alone would fit) when the estimate exceeds memory.

    Runs spread over the devices of a mesh, so each device is asked for its share. Several processes: each checks
    its own devices (a CPU host holds its devices' share of the runs) and the verdict is agreed: every process raises
    (its own error, or one naming the first process short of memory) instead of one leaving the others waiting.
    """
    devices = devices or jax.devices()
    local = [d for d in devices if d.process_index == jax.process_index()] or devices
    free, where = available_bytes(local[0])
    # CPU devices of one process share its host's memory, which holds their share of the runs
    share = len(devices) / len(local) if local[0].platform == "cpu" else len(devices)
    error = None
    if free is not None and estimate.total / share > free:
        field = "num_seeds" if estimate.per_run / share <= free < estimate.total / share else blame
        error = ConfigError(
            field,
            f"the run needs at least {estimate.describe()}, more than the {gib(free)} of free "
            f"{where}{_on_host()}; use a smaller memory size, fewer environments or steps, more minibatches, or "
            f"fewer seeds/sweep settings",
        )
    if not distributed.is_multiprocess():
        if error is not None:
            raise error
        return
    failed = distributed.gather_ints([int(error is not None)])[:, 0]
    if error is not None:
        raise error
    if failed.any():
        first = int(np.flatnonzero(failed)[0])
        raise ConfigError(blame, f"process {first} does not have the memory the run needs (see its error)")


def _on_host() -> str:
    return f" on process {jax.process_index()}" if jax.process_count() > 1 else ""
