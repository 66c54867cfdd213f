"""Spreading a batched training run over devices with JAX's SPMD engine (no pmap).

A 1-D :class:`jax.sharding.Mesh` over ``jax.devices()`` with one axis, ``"data"``. The batched runner
state has leaves ``[G, S, ...]`` (G sweep settings, S seeds); :func:`plan_state_sharding` picks, in
order, the first axis that the device count divides:

1. the seed axis S (each device trains whole runs: no communication at all);
2. the sweep axis G;
3. the environment axis (axis 2 of every leaf the algorithm declares per-environment, its
   ``per_env_leaves``: for PPO env state, last observation, start flags, memory carry), with the rest
   (parameters, optimiser state, RNG keys, counters) replicated. ``jit`` then inserts the all-reduce of
   the gradient mean over environments (and the gathers that the minibatch shuffle over environments
   needs);
4. otherwise everything is replicated (correct, no speed-up) and a warning says why.

The same code runs on a CPU, one GPU, a TPU host and several hosts. Several processes (a TPU pod slice,
GPU nodes, CPU hosts): run ``python train.py --distributed ...`` in every process
(``shm_jax.training.distributed``; docs/distributed.md), which joins the ``jax.distributed`` job before
anything starts JAX. ``jax.devices()`` then lists the devices of all processes, blocked by process, so
process p holds block p of the sharded axis: its own seeds or settings (no communication) or its own
environments (the gradient mean is then all-reduced across processes every minibatch, over the
network). The arrays are global ``jax.Array``s, orbax saves and restores them collectively and only
process 0 writes logs, CSVs and plots. Test multi-device code on one CPU with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` set before JAX is imported.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``"data"`` over ``devices`` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that keeps a full copy on every device."""
    return NamedSharding(mesh, P())


def _axis_spec(ndim: int, axis: int) -> P:
    return P(*([None] * axis + [DATA_AXIS] + [None] * (ndim - axis - 1)))


def plan_state_sharding(abstract_state: Any, mesh: Mesh, *, per_env: Any = None) -> tuple[Any, str]:
    """Shardings for a batched runner state and the name of the sharded axis.

    abstract_state: pytree of arrays/ShapeDtypeStructs with leaves ``[G, S, ...]``; per_env: a pytree of
    the same structure of bools, True where the leaf's axis 2 (its first per-run axis) holds the
    environments (None: nothing may be sharded over environments).
    Returns (pytree of NamedSharding like abstract_state, one of "seeds", "settings", "envs", "none").
    """
    n = mesh.devices.size
    leaves = jax.tree.leaves(abstract_state)
    if n == 1 or not leaves:
        return jax.tree.map(lambda _: replicated(mesh), abstract_state), "none"
    num_settings, num_seeds = leaves[0].shape[:2]
    for axis, name, size in ((1, "seeds", num_seeds), (0, "settings", num_settings)):
        if size % n == 0:
            return jax.tree.map(lambda x: NamedSharding(mesh, _axis_spec(x.ndim, axis)), abstract_state), name
    marks = jax.tree.leaves(per_env) if per_env is not None else []
    env_sizes = {x.shape[2] if x.ndim > 2 else None for x, marked in zip(leaves, marks) if marked}
    num_envs = env_sizes.pop() if len(env_sizes) == 1 else None  # one env axis, or none to shard
    if num_envs and num_envs % n == 0:
        if jax.process_count() > 1:
            warnings.warn(
                f"sharding: the environments are split over {jax.process_count()} processes, so every minibatch's "
                "gradient is all-reduced between them over the network; seeds or sweep settings in a multiple of "
                f"{n} devices would need no communication",
                stacklevel=2,
            )
        shardings = jax.tree.map(
            lambda x, marked: NamedSharding(mesh, _axis_spec(x.ndim, 2)) if marked else replicated(mesh),
            abstract_state,
            per_env,
        )
        return shardings, "envs"
    warnings.warn(
        f"sharding: {n} devices divide neither seeds ({num_seeds}), sweep settings ({num_settings}) nor "
        f"environments ({num_envs}); running replicated on every device (no speed-up)",
        stacklevel=2,
    )
    return jax.tree.map(lambda _: replicated(mesh), abstract_state), "none"
