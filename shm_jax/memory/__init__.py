"""Memory cores behind one interface (``shm_jax.memory.base.MemoryCore``) and one registry.

``make_memory(name, **kwargs)`` builds any core by name; unknown names raise a ValueError that lists
the valid ones.
"""

from __future__ import annotations

from typing import Any

from shm_jax.memory.base import MemoryCore
from shm_jax.memory.baselines import FFM, GRU, LinearAttention, NoMemory, ScalarGated
from shm_jax.memory.shm import SHM

# name -> (class, constructor kwargs fixed by the name)
_REGISTRY: dict[str, tuple[type, dict[str, Any]]] = {
    "shm": (SHM, {"calibration": "random_theta"}),
    "shm-fixed-theta": (SHM, {"calibration": "fixed_theta"}),
    "shm-neural-theta": (SHM, {"calibration": "neural_theta"}),
    "shm-random-c": (SHM, {"calibration": "random_c"}),
    "shm-fixed-c": (SHM, {"calibration": "fixed_c"}),
    "shm-c1": (SHM, {"calibration": "ones"}),
    "gru": (GRU, {}),
    "ffm": (FFM, {}),
    "linear-attention": (LinearAttention, {}),
    "mlstm": (ScalarGated, {}),
    "mlp": (NoMemory, {}),
}


def memory_names() -> list[str]:
    """Every name ``make_memory`` accepts."""
    return sorted(_REGISTRY)


def make_memory(name: str, **kwargs: Any) -> MemoryCore:
    """Build the memory core registered as ``name`` with constructor ``kwargs``."""
    if name not in _REGISTRY:
        raise ValueError(f"memory: unknown memory {name!r}; valid names: {', '.join(memory_names())}")
    cls, fixed = _REGISTRY[name]
    overlap = set(fixed) & set(kwargs)
    if overlap:
        raise ValueError(f"memory: {sorted(overlap)} is fixed by the name {name!r}; use 'shm' to set it")
    return cls(**fixed, **kwargs)
