"""The algorithm seam: what a learner gives the build step and the host loop, and the ``--algo`` registry.

A learner is registered once (``register(AlgorithmSpec(...))``) with:

- its config section (an :class:`AlgorithmConfig` dataclass: the options of ``--algo NAME``, whose names
  need be unique only within the algorithm, next to the env/agent/run sections);
- its typed hyperparameters: a ``flax.struct`` pytree of float32 scalars. Its field names ARE the sweepable
  options (``--sweep lr=...``) and, with the host-loop settings, the ones ``--resume`` may change;
- ``make(section, env=, env_params=, agent=)``: the single-run :class:`Algorithm` object.

The batched program (``shm_jax.training``) vmaps ``init`` and ``update`` over seeds and sweep settings; it
asks the algorithm, never guesses, which state leaves are per-environment (for sharding), how much memory a
run needs (checked before compiling) and how its agent acts (evaluation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax

from shm_jax.options import ConfigError, check_fields


@dataclasses.dataclass(frozen=True)
class AlgorithmConfig:
    """Base of an algorithm's config section. ``name`` (class constant) is its ``--algo`` value and its
    section key in config.json; subclasses are frozen dataclasses of ``shm_jax.options.option`` fields."""

    name: ClassVar[str] = ""

    def validate(self) -> None:
        """Check every field, then the rules between fields (override :meth:`check_rules`)."""
        check_fields(self)
        self.check_rules()

    def check_rules(self) -> None:
        """Cross-field rules; raise ConfigError naming the field."""


class Policy(NamedTuple):
    """How a trained agent acts, for evaluation.

    initialize_carry(n) -> carry for n episodes; act(params, obs[n, ...], carry, start bool[n], rng) -> (action,
    carry).
    """

    initialize_carry: Callable[[int], Any]
    act: Callable[..., tuple[jax.Array, Any]]


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per run of each term of a run's memory, the number of runs, and their total.

    state: everything carried between updates (parameters, optimiser, environments, carries, buffers);
    rollout: data collected for one update; gradients: one parameter gradient; backward_residuals: what
    one minibatch's backward pass keeps from its forward pass; largest_array: the largest single array the
    gradient computation makes. Peak per run = state + rollout + gradients + max(the last two).
    """

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
        return (
            f"{gib(self.total)} for {self.num_runs} run(s): per run state {gib(self.state)}, rollout "
            f"{gib(self.rollout)}, gradients {gib(self.gradients)}, backward pass "
            f"{gib(max(self.backward_residuals, self.largest_array))}"
        )


def gib(num_bytes: float) -> str:
    """``1.50 GiB`` (or ``12.0 MiB`` below 128 MiB)."""
    return f"{num_bytes / 2**30:.2f} GiB" if num_bytes >= 2**27 else f"{num_bytes / 2**20:.1f} MiB"


def tree_bytes(tree: Any) -> int:
    """Bytes of every array leaf of ``tree`` (arrays or ShapeDtypeStructs)."""
    return int(sum(np.prod(x.shape, dtype=np.int64) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def observation_storage_dtype(pixel_features: int, env: Any, env_params: Any) -> Any:
    """How stored observations (rollouts, replay) keep the flat observation: uint8 when all of it is uint8 pixels
    (exact, a quarter of float32's bytes; the network divides by 255 either way), else float32."""
    obs, _ = jax.eval_shape(env.reset, jax.random.PRNGKey(0), env_params)
    size = int(np.prod(obs.shape, dtype=np.int64))
    return jnp.uint8 if pixel_features and pixel_features == size else jnp.float32


def gradient_step(optimizer: Any, params: Any, opt_state: Any, grads: Any, lr: Any, max_grad_norm: Any, project: Any):
    """One optimiser step of every learner: the global-norm clip to ``max_grad_norm`` (None: no clip), the optimiser's
    direction, params - lr * direction, then ``project`` (the trunk's projection onto allowed values). Returns
    (params, opt_state, the gradient's norm before clipping)."""
    grad_norm = optax.tree.norm(grads)
    if max_grad_norm is not None:
        scale = jnp.where(grad_norm > max_grad_norm, max_grad_norm / grad_norm, 1.0)
        grads = jax.tree.map(lambda g: g * scale, grads)
    direction, opt_state = optimizer.update(grads, opt_state, params)
    return project(jax.tree.map(lambda p, d: p - lr * d, params, direction)), opt_state, grad_norm


class ScanTraining:
    """``train_chunk`` and ``train`` for a learner with ``init``, ``update`` and ``num_updates``."""

    def train_chunk(self, state: Any, hp: Any, num_updates: int):
        """``num_updates`` (static) updates in one ``lax.scan``: (state, metrics with leading axis num_updates)."""
        return jax.lax.scan(lambda s, _: self.update(s, hp), state, None, length=num_updates)

    def train(self, rng: jax.Array, hp: Any):
        """A whole run, init + num_updates updates: (state, metrics[num_updates])."""
        return self.train_chunk(self.init(rng), hp, self.num_updates)


def all_finite(tree: Any) -> jax.Array:
    """bool: every floating leaf of ``tree`` is finite (an overflowing step can leave inf without a NaN loss)."""
    checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.bool_(True)


def largest_array(jaxpr: Any) -> int:
    """Bytes of the largest value any equation of ``jaxpr`` (or of a jaxpr nested in it) produces."""
    largest = 0
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            if hasattr(var.aval, "shape") and not jax.dtypes.issubdtype(var.aval.dtype, jax.dtypes.prng_key):
                largest = max(largest, int(np.prod(var.aval.shape, dtype=np.int64)) * np.dtype(var.aval.dtype).itemsize)
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else (param,):
                inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
                if hasattr(inner, "eqns"):
                    largest = max(largest, largest_array(inner))
    return largest


class Algorithm(Protocol):
    """A single-run learner (no vmap inside); every method is pure and jittable unless said otherwise.

    num_updates: updates of a whole run; steps_per_update: environment steps of one run per update;
    ``update`` returns scalar metrics including ``finite`` (bool: the update is usable) and, for the
    progress bar and summaries, ``episode_return_sum`` / ``episode_count`` where episodes end.
    """

    num_updates: int
    steps_per_update: int

    def init(self, rng: jax.Array) -> Any:
        """A fresh state."""

    def update(self, state: Any, hp: Any) -> tuple[Any, dict[str, jax.Array]]:
        """One update of one run."""

    def per_env_leaves(self, state: Any) -> Any:
        """A pytree like ``state`` of bools: True where the leaf's leading axis is the environment axis (the
        axis the batched program may shard when seeds and settings cannot be). Called on abstract states."""

    def agent_params(self, state: Any) -> Any:
        """The parameters the evaluation policy acts with."""

    def policy(self, greedy: bool) -> Policy:
        """The evaluation policy: mode actions when ``greedy``, else sampled ones."""

    def memory_estimate(self, hp: Any, num_runs: int) -> MemoryEstimate:
        """A lower bound of the memory ``num_runs`` runs need, from shapes alone (nothing compiles). Host side."""


class AlgorithmSpec(NamedTuple):
    """A registered learner: its ``--algo`` name, config section, hyperparameter pytree type and factory.

    make(section, *, env, env_params, agent) -> Algorithm, where ``agent`` is an
    ``shm_jax.agents.AgentParts`` (the action space and a maker of recurrent trunks).
    """

    name: str
    config_type: type[AlgorithmConfig]
    hyperparameters_type: type
    make: Callable[..., Algorithm]


_REGISTRY: dict[str, AlgorithmSpec] = {}


def register(spec: AlgorithmSpec) -> AlgorithmSpec:
    """Add ``spec`` under ``spec.name`` (its config section's ``name``); a second spec of one name is an error."""
    if spec.name != spec.config_type.name:
        raise ValueError(
            f"register: spec name {spec.name!r} differs from its config section's {spec.config_type.name!r}"
        )
    if spec.name in _REGISTRY and _REGISTRY[spec.name] != spec:
        raise ValueError(f"register: algorithm {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a registered algorithm (tests register and remove their own)."""
    _REGISTRY.pop(name, None)


def names() -> list[str]:
    """Every registered ``--algo`` name."""
    return sorted(_REGISTRY)


def get(name: str) -> AlgorithmSpec:
    """The spec of ``--algo name``; a one-line ConfigError (field ``algo``) listing the valid names otherwise."""
    if name not in _REGISTRY:
        raise ConfigError("algo", f"unknown algorithm {name!r}; valid: {', '.join(names())}")
    return _REGISTRY[name]


def hyperparameter_names(spec: AlgorithmSpec) -> tuple[str, ...]:
    """The sweepable options of an algorithm: the fields of its hyperparameter pytree, in order."""
    return tuple(f.name for f in dataclasses.fields(spec.hyperparameters_type))


def hyperparameters(section: AlgorithmConfig) -> Any:
    """The section's traced hyperparameters as float32 scalars in the algorithm's typed pytree."""
    spec = get(section.name)
    return spec.hyperparameters_type(**{n: jnp.float32(getattr(section, n)) for n in hyperparameter_names(spec)})
