"""Memory cores behind one interface (see ``shm_jax.memory.base``) and one registry.

``make_memory(name, **kwargs)`` builds any core by name; unknown names raise a ValueError that lists
the valid ones.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> (module, class name, fixed constructor kwargs). Modules import lazily so a broken baseline
# never takes SHM down with it.
_REGISTRY: dict[str, tuple[str, str, dict[str, Any]]] = {
    "shm": ("shm_jax.memory.shm", "SHM", {"calibration": "random_theta"}),
    "shm-fixed-theta": ("shm_jax.memory.shm", "SHM", {"calibration": "fixed_theta"}),
    "shm-neural-theta": ("shm_jax.memory.shm", "SHM", {"calibration": "neural_theta"}),
    "shm-random-c": ("shm_jax.memory.shm", "SHM", {"calibration": "random_c"}),
    "shm-fixed-c": ("shm_jax.memory.shm", "SHM", {"calibration": "fixed_c"}),
    "shm-c1": ("shm_jax.memory.shm", "SHM", {"calibration": "ones"}),
    "gru": ("shm_jax.memory.baselines", "GRU", {}),
    "ffm": ("shm_jax.memory.baselines", "FFM", {}),
    "linear-attention": ("shm_jax.memory.baselines", "LinearAttention", {}),
    "mlstm": ("shm_jax.memory.baselines", "ScalarGated", {}),
    "mlp": ("shm_jax.memory.baselines", "NoMemory", {}),
}


def memory_names() -> list[str]:
    """Every name ``make_memory`` accepts."""
    return sorted(_REGISTRY)


def make_memory(name: str, **kwargs: Any):
    """Build the memory core registered as ``name`` with constructor ``kwargs``."""
    if name not in _REGISTRY:
        raise ValueError(f"memory: unknown memory {name!r}; valid names: {', '.join(memory_names())}")
    module, cls_name, fixed = _REGISTRY[name]
    cls = getattr(importlib.import_module(module), cls_name)
    overlap = set(fixed) & set(kwargs)
    if overlap:
        raise ValueError(f"memory: {sorted(overlap)} is fixed by the name {name!r}; use 'shm' to set it")
    return cls(**fixed, **kwargs)
