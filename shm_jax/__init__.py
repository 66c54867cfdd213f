"""shm-jax: Stable Hadamard Memory (Le et al., ICLR 2025) in JAX/Flax, with recurrent learners.

The curated API (loaded on first use, so ``import shm_jax`` starts no JAX backend)::

    make_memory(name, **kwargs)     a memory core (SHM, GRU, FFM, ...): shm_jax.memory
    memory_names()                  every memory core name
    TrainConfig                     every option of a run (sections env, agent, <algo>, run)
    from_preset(name, **options)    a TrainConfig from a named preset ("default", "paper-popgym", ...)
    build(config)                   validate and build environment, agent and algorithm once
    train(config)                   build, then train every sweep setting x seed; returns the run directory
    evaluate(run_dir)               play fresh episodes with a saved run's agents
    load_run(run_dir)               a saved run's config, build, program and newest checkpointed state

The command line is ``shm-jax`` (``python -m shm_jax``; ``shm_jax.cli``).
"""

from __future__ import annotations

import importlib
from typing import Any

# The one place the version is written: pyproject.toml reads it (setuptools dynamic version, without importing).
__version__ = "0.1.0"

_API = {
    "make_memory": "shm_jax.memory",
    "memory_names": "shm_jax.memory",
    "TrainConfig": "shm_jax.config",
    "from_preset": "shm_jax.presets",
    "build": "shm_jax.build",
    "train": "shm_jax.api",
    "evaluate": "shm_jax.api",
    "load_run": "shm_jax.api",
}

__all__ = sorted(_API)  # __version__ is not part of the API list


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'shm_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
