"""Outside suites served as ``<prefix>:<name>`` ids (``envs.registry.register_namespace``)."""

from shm_jax.envs.adapters import gymnax_builtin  # noqa: F401  (registers the gymnax: namespace)
