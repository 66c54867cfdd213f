"""Outside suites served as ``<prefix>:<name>`` ids (``envs.registry.register_namespace``).

``gymnax:`` (gymnax's own environments, as gymnax builds them) and, through adapters onto gymnax 1.0's API with
shm-jax's wrappers, ``arcade:`` (POPGym Arcade), ``craftax:`` (Craftax) and ``xminigrid:`` (XLand-MiniGrid). Each
suite's package is imported only when one of its ids is made (an optional extra per suite).
"""

from shm_jax.envs.adapters import arcade, craftax, gymnax_builtin, xminigrid  # noqa: F401  (registers the namespaces)
