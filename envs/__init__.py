"""JAX-native partially observable environments (gymnax 1.0 API).

``envs.make(id, **overrides) -> (env, params)`` and ``envs.list_ids()``.
"""

from shm_jax.envs import adapters, credit, meta, popgym, probes  # noqa: F401,E402  (registers every id)
from shm_jax.envs.registry import list_ids, make, register, resolve  # noqa: F401
