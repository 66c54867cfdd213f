"""Several cooperating processes (hosts) training one run with JAX's multi-controller runtime.

``python train.py --distributed`` joins a ``jax.distributed`` job: every process runs the same program on one
global device mesh (``shm_jax.training.sharding``), process p owning block p of the sharded axis (seeds, then
sweep settings, then environments). Where the job's coordinator and this process's rank come from:

- explicit launch options ``--coordinator-address HOST:PORT --num-processes N --process-id I`` (and optionally
  ``--local-device-ids 0,1``), each falling back to jax's own environment variables (``JAX_COORDINATOR_ADDRESS``,
  ``JAX_LOCAL_DEVICE_IDS``);
- otherwise jax's cluster detection (Slurm, Open MPI, Cloud TPU, Kubernetes).

A half-given setup outside a detected cluster is a one-line :class:`ConfigError` naming the missing field. The
launch options are not part of the run's config (``config.json``): a run saved on N processes resumes on M.

This module imports only jax and ``shm_jax.options``: ``jax.distributed.initialize`` must run before anything
starts a JAX backend, and importing gymnax (hence the environments, the agents, ``shm_jax.config``) does.

Helpers for the host loop, all no-ops (no communication) in a single process: :func:`is_main`,
:func:`broadcast_str` (process 0's string to every process), :func:`agree_any` / :func:`agree_all` (a flag agreed
by every process), :func:`main_decides` (process 0's flag), :func:`barrier`, :func:`run_on_main` (run on process 0,
share the result or its ConfigError).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import socket
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from shm_jax.options import ConfigError

try:  # private, read only and with fallbacks: jax's cluster registry, its backends, its distributed state
    from jax._src import clusters as _clusters
    from jax._src import distributed as _jax_distributed
    from jax._src import xla_bridge as _xla_bridge
except ImportError:  # another jax layout
    _clusters = _jax_distributed = _xla_bridge = None

FLAG = "--distributed"
VALUE_OPTIONS = {
    "--coordinator-address": "coordinator_address",
    "--num-processes": "num_processes",
    "--process-id": "process_id",
    "--local-device-ids": "local_device_ids",
}


@dataclasses.dataclass(frozen=True)
class Launch:
    """The launch options as given on the command line (strings; None when not given)."""

    enabled: bool = False
    coordinator_address: str | None = None
    num_processes: str | None = None
    process_id: str | None = None
    local_device_ids: str | None = None

    @property
    def explicit(self) -> dict[str, str]:
        return {name: v for name in VALUE_OPTIONS.values() if (v := getattr(self, name)) is not None}


def split_launch_args(argv: Sequence[str]) -> tuple[Launch, list[str]]:
    """The launch options taken out of ``argv`` (anywhere; ``--opt V`` or ``--opt=V``): (Launch, the rest in order).

    Any of the value options implies ``--distributed``.
    """
    argv = list(argv)
    found: dict[str, str] = {}
    enabled = False
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        head, sep, value = arg.partition("=")
        if arg == FLAG:
            enabled = True
        elif head in VALUE_OPTIONS:
            if not sep:
                if i + 1 >= len(argv):
                    raise ConfigError(VALUE_OPTIONS[head], f"{head} needs a value")
                value = argv[i + 1]
                i += 1
            found[VALUE_OPTIONS[head]] = value
            enabled = True
        else:
            rest.append(arg)
        i += 1
    return Launch(enabled=enabled, **found), rest


@dataclasses.dataclass(frozen=True)
class Resolved:
    """What ``jax.distributed.initialize`` receives (None: jax's cluster detection fills it in)."""

    coordinator_address: str | None
    num_processes: int | None
    process_id: int | None
    local_device_ids: tuple[int, ...] | None
    cluster: str | None  # the detected cluster type, e.g. "SlurmCluster", or None


def _int(field: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(field, f"must be an integer, got {value!r}") from None
    if number < minimum:
        raise ConfigError(field, f"must be >= {minimum}, got {number}")
    return number


def detected_cluster() -> str | None:
    """The cluster jax's auto-detection would use (Slurm, Open MPI, Cloud TPU, Kubernetes), or None."""
    try:
        for env in _clusters.ClusterEnv._cluster_types:  # the registry behind jax.distributed.initialize()
            if not getattr(env, "opt_in_only_method", False) and env.is_env_present():
                return env.__name__
    except Exception:  # another jax layout: let jax.distributed.initialize decide
        return None
    return None


def resolve(launch: Launch, environ: dict[str, str] | None = None) -> Resolved:
    """Check the launch options (with jax's environment variables as fallbacks); one-line ConfigError if half given."""
    environ = os.environ if environ is None else environ
    address = launch.coordinator_address or environ.get("JAX_COORDINATOR_ADDRESS") or None
    if address is not None:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError("coordinator_address", f"must be HOST:PORT (e.g. 10.0.0.1:1234), got {address!r}")
    num = _int("num_processes", launch.num_processes, 1) if launch.num_processes is not None else None
    pid = _int("process_id", launch.process_id, 0) if launch.process_id is not None else None
    if num is not None and pid is not None and pid >= num:
        raise ConfigError("process_id", f"must be below --num-processes {num}, got {pid}")
    ids_text = launch.local_device_ids or environ.get("JAX_LOCAL_DEVICE_IDS") or None
    ids = None
    if ids_text is not None:
        try:
            ids = tuple(int(x) for x in ids_text.split(","))
        except ValueError:
            raise ConfigError(
                "local_device_ids", f"must be integers separated by commas (e.g. 0,1), got {ids_text!r}"
            ) from None
    cluster = None
    given = {"coordinator_address": address, "num_processes": num, "process_id": pid}
    missing = [name for name, value in given.items() if value is None]
    if missing:
        cluster = detected_cluster()
        if cluster is None:
            flags = "--coordinator-address HOST:PORT, --num-processes N and --process-id I"
            if len(missing) == len(given):
                raise ConfigError(
                    "distributed",
                    f"no cluster detected (Slurm, Open MPI, Cloud TPU, Kubernetes); give {flags} "
                    "(or set JAX_COORDINATOR_ADDRESS)",
                )
            field = missing[0]
            have = ", ".join(f"--{n.replace('_', '-')}" for n, v in given.items() if v is not None)
            raise ConfigError(
                field, f"--{field.replace('_', '-')} is needed with {have} outside a detected cluster (give {flags})"
            )
    return Resolved(address, num, pid, ids, cluster)


def is_initialized() -> bool:
    """Whether this process joined a jax.distributed job."""
    check = getattr(jax.distributed, "is_initialized", None)
    if check is not None:
        return bool(check())
    return getattr(getattr(_jax_distributed, "global_state", None), "client", None) is not None


def _backend_started() -> bool:
    return bool(getattr(_xla_bridge, "_backends", None))


def initialize(launch: Launch) -> bool:
    """Join the job described by ``launch`` (once; later calls return at once). Returns whether this process is
    part of a multi-process job. ConfigError (one line) for a bad or half-given setup, or when JAX already started."""
    if is_initialized():
        return True
    if not launch.enabled:
        return False
    resolved = resolve(launch)
    if _backend_started():
        raise ConfigError(
            "distributed",
            "JAX was already started in this process, so it cannot join a job any more: use python train.py "
            "--distributed, or call jax.distributed.initialize() before importing shm_jax's trainer",
        )
    kwargs = dict(
        coordinator_address=resolved.coordinator_address,
        num_processes=resolved.num_processes,
        process_id=resolved.process_id,
        local_device_ids=list(resolved.local_device_ids) if resolved.local_device_ids is not None else None,
    )
    if resolved.coordinator_address is not None and resolved.process_id not in (0, None):
        # jax aborts the whole process (a C++ fatal error and a stack dump) when the coordinator cannot be reached;
        # waiting for its port here turns that into one line
        wait_for_coordinator(resolved.coordinator_address, environ_int("SHM_JAX_INIT_TIMEOUT") or INIT_TIMEOUT)
    params = inspect.signature(jax.distributed.initialize).parameters
    for name, env in (
        ("initialization_timeout", "SHM_JAX_INIT_TIMEOUT"),
        ("heartbeat_timeout_seconds", "SHM_JAX_HEARTBEAT_TIMEOUT"),
        ("shutdown_timeout_seconds", "SHM_JAX_SHUTDOWN_TIMEOUT"),  # jax >= 0.8.1
    ):
        if name in params and environ_int(env) is not None:
            kwargs[name] = environ_int(env)
    try:
        jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as err:  # e.g. the coordinator unreachable within the timeout
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise ConfigError("distributed", f"could not join the job ({first})") from None
    return True


INIT_TIMEOUT = 300  # seconds; jax.distributed.initialize's own default


def wait_for_coordinator(address: str, timeout: float) -> None:
    """Wait until process 0's coordinator accepts connections at ``address`` (HOST:PORT); one-line ConfigError
    after ``timeout`` seconds. Processes start in any order, so a refused connection is retried."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=min(5.0, timeout)):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    "coordinator_address",
                    f"no coordinator answered at {address} within {timeout:g} s ({err.strerror or err}); start "
                    "process 0 there, or raise SHM_JAX_INIT_TIMEOUT",
                ) from None
        time.sleep(0.2)


def environ_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    return _int(name, value, 1)


# ----------------------------------------------------------------------------------------------------
# Agreement between processes (no-ops in a single process)


def is_multiprocess() -> bool:
    return jax.process_count() > 1


def is_main() -> bool:
    """Process 0: the one that writes files, logs and the progress bar."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process gets here (``multihost_utils.sync_global_devices``; no timeout)."""
    if is_multiprocess():
        multihost_utils.sync_global_devices(name)


def _allgather(values: Sequence[int]) -> np.ndarray:
    """int32[process_count, len(values)]: every process's values."""
    local = np.asarray(values, np.int32)
    return np.asarray(multihost_utils.process_allgather(local)).reshape(jax.process_count(), len(values))


def gather_ints(values: Sequence[int]) -> np.ndarray:
    """[process_count, len(values)] of every process's ints ([1, n] in a single process)."""
    if not is_multiprocess():
        return np.asarray([list(values)], np.int64)
    return _allgather(values)


def agree_any(flag: bool) -> bool:
    """True on every process when it is True on any."""
    return bool(gather_ints([int(bool(flag))]).any())


def agree_all(flag: bool) -> bool:
    """True on every process when it is True on all."""
    return bool(gather_ints([int(bool(flag))]).all())


def main_decides(flag: bool) -> bool:
    """Process 0's flag, on every process."""
    return bool(gather_ints([int(bool(flag))])[0, 0])


def broadcast_str(text: str | None) -> str:
    """Process 0's ``text`` on every process (what others pass is ignored)."""
    if not is_multiprocess():
        return text or ""
    data = (text or "").encode() if is_main() else b""
    size = int(multihost_utils.broadcast_one_to_all(np.asarray(len(data), np.int32)))
    buffer = np.zeros(max(size, 1), np.uint8)
    if is_main():
        buffer[:size] = np.frombuffer(data, np.uint8)
    out = np.asarray(multihost_utils.broadcast_one_to_all(buffer))
    return out[:size].astype(np.uint8).tobytes().decode()


def run_on_main(fn: Callable[[], str]) -> str:
    """``fn()`` on process 0 only, its string result on every process; a ConfigError it raises is raised on every
    process (same field and message), any other error as a RuntimeError on the others."""
    if not is_multiprocess():
        return fn()
    result, error = "", None
    if is_main():
        try:
            result = "ok\n" + fn()
        except ConfigError as err:
            error = err
            result = f"config\n{err.field}\n{str(err)[len(err.field) + 2 :]}"
        except Exception as err:
            error = err
            result = f"error\n{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
    shared = broadcast_str(result)
    kind, _, body = shared.partition("\n")
    if error is not None:
        raise error
    if kind == "config":
        field, _, message = body.partition("\n")
        raise ConfigError(field, message)
    if kind == "error":
        raise RuntimeError(f"process 0 failed: {body}")
    return body


def describe() -> dict[str, object]:
    """The job's topology for devices.json: processes, this process's local devices, the coordinator."""
    info: dict[str, object] = {
        "process_count": jax.process_count(),
        "local_device_count": jax.local_device_count(),
        "devices_per_process": {
            str(p): sum(1 for d in jax.devices() if d.process_index == p) for p in range(jax.process_count())
        },
    }
    address = getattr(getattr(_jax_distributed, "global_state", None), "coordinator_address", None)
    if address is not None:
        info["coordinator_address"] = address
    return info
