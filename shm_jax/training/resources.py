"""Will the run fit in memory? The algorithm's estimate (``Algorithm.memory_estimate``, from shapes alone)
against the free memory of the devices, checked before anything compiles."""

from __future__ import annotations

import os

import jax

from shm_jax.algorithms.base import MemoryEstimate, gib
from shm_jax.options import ConfigError


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

    Runs spread over the devices of a mesh, so each device is asked for its share.
    """
    devices = devices or jax.devices()
    free, where = available_bytes(devices[0])
    if free is None:
        return
    share = 1 if devices[0].platform == "cpu" else len(devices)  # CPU devices share one host memory
    if estimate.total / share <= free:
        return
    field = "num_seeds" if estimate.per_run / share <= free < estimate.total / share else blame
    raise ConfigError(
        field,
        f"the run needs at least {estimate.describe()}, more than the {gib(free)} of free "
        f"{where}; use a smaller memory size, fewer environments or steps, more minibatches, or "
        f"fewer seeds/sweep settings",
    )
