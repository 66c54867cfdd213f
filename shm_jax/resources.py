"""Will the run fit in memory? An estimate from shapes alone, checked before anything compiles.

The estimate adds, for every (setting, seed) run: the runner state (parameters, Adam moments, env
states, memory carries), the rollout kept for the update (trajectory, start carry), the parameter
gradients, and the larger of what one minibatch's backward pass keeps from its forward pass (the
residuals of ``jax.vjp`` of the PPO loss, which include a scan's saved memory states) and the largest
single array the gradient computation makes (e.g. a chunk of memory states recomputed in the backward
pass). Every term comes from ``jax.eval_shape`` / ``jax.make_jaxpr``, so nothing runs or compiles. XLA's
other temporaries come on top, so the estimate is a lower bound: a run it rejects cannot fit, a run it
accepts may still need more.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np

from shm_jax.config import ConfigError


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per run of each term, the number of runs, and their total."""

    state: int
    rollout: int
    gradients: int
    backward_residuals: int
    largest_array: int
    num_runs: int

    @property
    def per_run(self) -> int:
        return self.state + self.rollout + self.gradients + max(self.backward_residuals, self.largest_array)

    @property
    def total(self) -> int:
        return self.per_run * self.num_runs

    def describe(self) -> str:
        return (f"{_gib(self.total)} for {self.num_runs} run(s): per run state {_gib(self.state)}, rollout "
                f"{_gib(self.rollout)}, gradients {_gib(self.gradients)}, backward pass "
                f"{_gib(max(self.backward_residuals, self.largest_array))}")


def _gib(num_bytes: float) -> str:
    return f"{num_bytes / 2**30:.2f} GiB" if num_bytes >= 2**27 else f"{num_bytes / 2**20:.1f} MiB"


def _bytes(tree: Any) -> int:
    return int(sum(np.prod(x.shape, dtype=np.int64) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def _minibatch(tree: Any, axis: int, size: int) -> Any:
    def take(x):
        shape = list(x.shape)
        shape[axis] = size
        return jax.ShapeDtypeStruct(tuple(shape), x.dtype)

    return jax.tree.map(take, tree)


def estimate_ppo(ppo: Any, hparams: dict[str, Any], num_runs: int) -> MemoryEstimate:
    """The estimate for ``num_runs`` runs of a ``shm_jax.ppo.PPO`` (abstract evaluation only)."""
    state = jax.eval_shape(ppo.init, jax.random.PRNGKey(0))
    _, rollout = jax.eval_shape(ppo.rollout, state)
    n = ppo.num_envs // ppo.num_minibatches
    start_carry = _minibatch(rollout.start_carry, 0, n)
    trajectory = _minibatch(rollout.trajectory, 1, n)
    targets = jax.ShapeDtypeStruct((ppo.num_steps, n), np.float32)

    def residuals(params, hp, carry, traj, adv, target):
        _, backward = jax.vjp(lambda p: ppo.loss(p, hp, carry, traj, adv, target)[0], params)
        return backward  # a pytree whose leaves are what the backward pass reads

    args = (state.params, hparams, start_carry, trajectory, targets, targets)
    saved = jax.eval_shape(residuals, *args)
    gradient = jax.make_jaxpr(jax.grad(lambda p, *rest: ppo.loss(p, *rest)[0]))(*args)
    return MemoryEstimate(state=_bytes(state), rollout=_bytes(rollout), gradients=_bytes(state.params),
                          backward_residuals=_bytes(saved), largest_array=_largest_array(gradient.jaxpr),
                          num_runs=num_runs)


def _largest_array(jaxpr: Any) -> int:
    """Bytes of the largest value any equation of ``jaxpr`` (or of a jaxpr nested in it) produces."""
    largest = 0
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            if hasattr(var.aval, "shape"):
                largest = max(largest, int(np.prod(var.aval.shape, dtype=np.int64)) * np.dtype(var.aval.dtype).itemsize)
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else (param,):
                inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
                if hasattr(inner, "eqns"):
                    largest = max(largest, _largest_array(inner))
    return largest


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


def check_fits(estimate: MemoryEstimate, *, devices: list[jax.Device] | None = None,
               blame: str = "num_envs") -> None:
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
    raise ConfigError(field, f"the run needs at least {estimate.describe()}, more than the {_gib(free)} of free "
                      f"{where}; use a smaller memory size, fewer environments or steps, more minibatches, or "
                      f"fewer seeds/sweep settings")
