"""The batched program: every (sweep setting, seed) run of one algorithm in one jitted program.

Runner-state leaves and metrics have leading axes ``[G, S]``: G sweep settings (outer; the
hyperparameter pytree gets a leading G axis), S seeds (inner; one PRNG key each). The state is
placed on a device mesh by ``shm_jax.training.sharding``. The host loop, evaluation, the notebooks and
the tests all run through :class:`BatchedProgram`; the algorithm is any ``shm_jax.algorithms.base.Algorithm``.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from shm_jax.algorithms.base import Algorithm
from shm_jax.training import sharding


def split_seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """PRNG keys [num_seeds]: run i uses split(PRNGKey(seed), num_seeds)[i] (also when num_seeds = 1)."""
    return jax.random.split(jax.random.PRNGKey(int(seed)), num_seeds)


def sweep_grid(base: Any, sweep) -> tuple[Any, list[dict[str, float]]]:
    """Stack every combination of ``sweep`` over the ``base`` hyperparameters, in grid order.

    base: an algorithm's hyperparameter pytree (a dataclass of scalars); sweep: ((name, values), ...).
    Returns (base with leaves [G], the G settings as {name: value}). Without a sweep, G = 1 and the
    setting is {}.
    """
    sweep = tuple(sweep or ())
    names = [name for name, _ in sweep]
    valid = [f.name for f in dataclasses.fields(base)]
    for name in names:
        if name not in valid:
            raise ValueError(f"sweep: {name!r} is not a hyperparameter of this algorithm; valid: {', '.join(valid)}")
    settings = [dict(zip(names, map(float, combo))) for combo in itertools.product(*(v for _, v in sweep))] or [{}]
    points = [
        dataclasses.replace(
            base, **{k: jnp.asarray(v, jnp.asarray(getattr(base, k)).dtype) for k, v in setting.items()}
        )
        for setting in settings
    ]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *points), settings


class BatchedProgram:
    """One algorithm vmapped over seeds (inner) and sweep settings (outer), placed on a mesh.

    algorithm: an ``Algorithm``; hyperparameters: its hyperparameter pytree (scalars); sweep, seed,
    num_seeds: the grid and the seeds. The algorithm's ``per_env_leaves`` says which state leaves may be
    sharded over environments when the device count divides neither seeds nor settings.
    """

    def __init__(
        self,
        algorithm: Algorithm,
        hyperparameters: Any,
        *,
        sweep=(),
        seed: int = 0,
        num_seeds: int = 1,
        mesh: jax.sharding.Mesh | None = None,
    ):
        self.algorithm = algorithm
        self.hyperparameters, self.settings = sweep_grid(hyperparameters, sweep)
        self.keys, self.seeds = split_seed_keys(seed, num_seeds), list(range(num_seeds))
        self.mesh = mesh if mesh is not None else sharding.make_mesh()
        abstract = self._abstract_init()
        per_env = algorithm.per_env_leaves(jax.eval_shape(algorithm.init, self.keys[0]))
        self.state_sharding, self.sharded_axis = sharding.plan_state_sharding(abstract, self.mesh, per_env=per_env)
        self._replicated = sharding.replicated(self.mesh)
        self.hyperparameters = jax.device_put(self.hyperparameters, self._replicated)
        self._compiled: dict[int, Any] = {}
        self.compile_seconds = 0.0

    @property
    def num_runs(self) -> int:
        return len(self.settings) * len(self.seeds)

    @property
    def num_updates(self) -> int:
        return int(self.algorithm.num_updates)

    @property
    def steps_per_update(self) -> int:
        return int(self.algorithm.steps_per_update)

    # --- the vmapped functions (not jitted: compose them, e.g. several programs in one jit) ---------

    def init_all(self, keys: jax.Array) -> Any:
        """Fresh states [G, S, ...] from seed keys [S] (vmapped; every setting starts alike)."""
        init = jax.vmap(self.algorithm.init)
        return jax.vmap(lambda _: init(keys))(jnp.arange(len(self.settings)))

    def chunk_all(
        self, states: Any, hyperparameters: Any, active: jax.Array, num_updates: int
    ) -> tuple[Any, dict[str, jax.Array], jax.Array]:
        """``num_updates`` updates of every run: (states [G, S, ...], metrics [G, S, num_updates], active [G, S]).

        active bool[G, S]: the runs still training. An update whose ``finite`` metric is false is discarded: the
        run keeps its state from before that update and is frozen (active False) from then on, so a diverging
        run neither reaches a checkpoint nor stops the others. Metrics of frozen updates are NaN (floats) or 0;
        ``metrics["active"]`` says which updates counted.
        """

        def run_one(state, hp, alive):
            def step(carry, _):
                state, alive = carry
                new_state, metrics = self.algorithm.update(state, hp)
                ok = jnp.logical_and(alive, metrics["finite"])
                state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, state)
                metrics = {k: jnp.where(ok, v, _missing(v)) for k, v in metrics.items()}
                return (state, ok), {**metrics, "active": ok}

            (state, alive), metrics = jax.lax.scan(step, (state, alive), None, length=num_updates)
            return state, metrics, alive

        return jax.vmap(jax.vmap(run_one, in_axes=(0, None, 0)), in_axes=(0, 0, 0))(states, hyperparameters, active)

    def all_active(self) -> jax.Array:
        """bool[G, S] of True: every run training."""
        return jnp.ones((len(self.settings), len(self.seeds)), bool)

    # --- placed and compiled ------------------------------------------------------------------------

    def _abstract_init(self) -> Any:
        return jax.eval_shape(self.init_all, self.keys)

    def abstract_state(self) -> Any:
        """The state pytree of ShapeDtypeStructs with shardings (the restore target)."""
        return jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), self._abstract_init(), self.state_sharding
        )

    def init(self) -> Any:
        """The fresh state, leaves [G, S, ...], already sharded.

        Each run is initialised by one un-vmapped jitted call and the results are stacked: a vmapped
        orthogonal initialiser becomes a batched LAPACK QR, which can deadlock the XLA CPU thread pool
        on small machines; an initialiser added later could bring that back. Same numbers per run.
        """
        init_one = jax.jit(self.algorithm.init)
        if not all(s.is_fully_addressable for s in jax.tree.leaves(self.state_sharding)):
            return self._init_global(init_one)  # several processes (jax.distributed)
        runs = [[init_one(key) for key in self.keys] for _ in self.settings]
        stack = lambda *xs: jnp.stack(xs)  # noqa: E731
        stacked = jax.tree.map(stack, *[jax.tree.map(stack, *row) for row in runs])
        return jax.device_put(stacked, self.state_sharding)

    def _init_global(self, init_one) -> Any:
        """The fresh state on a mesh spanning several processes: each process initialises only the runs of the shards
        it holds (the same numbers as :meth:`init` in one process) and every leaf is assembled from them
        (``jax.make_array_from_callback``; a committed array cannot be ``device_put`` onto another process's devices).
        """
        per_seed: dict[int, list[Any]] = {}  # every setting starts alike: one init per seed

        def run_leaves(s: int) -> list[Any]:
            if s not in per_seed:
                per_seed[s] = jax.tree.leaves(init_one(self.keys[s]))
            return per_seed[s]

        abstract = self._abstract_init()
        leaves, treedef = jax.tree.flatten(abstract)
        shardings = treedef.flatten_up_to(self.state_sharding)
        num_settings, num_seeds = len(self.settings), len(self.seeds)
        out = []
        for i, (leaf, leaf_sharding) in enumerate(zip(leaves, shardings)):
            typed = jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)

            def host(x, typed=typed):
                return np.asarray(jax.random.key_data(x) if typed else x)

            def block(index, i=i, host=host):
                settings = range(num_settings)[index[0]]
                seeds = range(num_seeds)[index[1]]
                rows = [np.stack([host(run_leaves(s)[i]) for s in seeds]) for _ in settings]
                return np.stack(rows)[(slice(None), slice(None), *index[2:])]

            if typed:
                impl = jax.random.key_impl(run_leaves(0)[i])
                shape = jax.eval_shape(jax.random.key_data, jax.ShapeDtypeStruct(leaf.shape, leaf.dtype)).shape
                data = jax.make_array_from_callback(shape, leaf_sharding, block)
                wrap = jax.jit(lambda d, impl=impl: jax.random.wrap_key_data(d, impl=impl), out_shardings=leaf_sharding)
                out.append(wrap(data))
            else:
                out.append(jax.make_array_from_callback(leaf.shape, leaf_sharding, block))
        return jax.tree.unflatten(treedef, out)

    def _chunk_fn(self, k: int):
        def chunk(states, hyperparameters, active):
            states, metrics, active = self.chunk_all(states, hyperparameters, active, k)
            # metrics are tiny: replicate them so every process can read them on the host
            return states, jax.lax.with_sharding_constraint(metrics, self._replicated), active

        donate = (0,) if jax.default_backend() != "cpu" else ()  # CPU ignores donation (with a warning)
        return jax.jit(
            chunk, out_shardings=(self.state_sharding, self._replicated, self._replicated), donate_argnums=donate
        )

    def is_compiled(self, k: int) -> bool:
        return k in self._compiled

    def compiled_chunk(self, state: Any, k: int) -> Any:
        """The compiled chunk of ``k`` updates (ahead-of-time, cached; compile time is recorded)."""
        if k not in self._compiled:
            start = time.perf_counter()
            active = jax.device_put(self.all_active(), self._replicated)
            self._compiled[k] = self._chunk_fn(k).lower(state, self.hyperparameters, active).compile()
            self.compile_seconds += time.perf_counter() - start
        return self._compiled[k]

    def dispatch_chunk(self, state: Any, k: int, active: Any = None) -> tuple[Any, dict[str, jax.Array], jax.Array]:
        """Start k updates of every run without waiting: (new state, metrics, active), all device arrays."""
        active = self.all_active() if active is None else active
        return self.compiled_chunk(state, k)(state, self.hyperparameters, jax.device_put(active, self._replicated))

    def run_chunk(self, state: Any, k: int, active: Any = None) -> tuple[Any, dict[str, np.ndarray]]:
        """k updates of every run, waited for: (new state, metrics dict of numpy [G, S, k])."""
        new_state, metrics, _ = self.dispatch_chunk(state, k, active)
        return new_state, {key: np.asarray(value) for key, value in jax.device_get(metrics).items()}

    def with_hyperparameters(self, hyperparameters: Any, sweep=()) -> BatchedProgram:
        """This program with other hyperparameters (a grid of the same size); the compiled chunks are shared,
        since hyperparameters are traced inputs."""
        stacked, settings = sweep_grid(hyperparameters, sweep)
        if len(settings) != len(self.settings):
            raise ValueError(f"sweep: the grid has {len(settings)} settings, this program {len(self.settings)}")
        program = copy.copy(self)
        program.hyperparameters, program.settings = jax.device_put(stacked, self._replicated), settings
        return program


def _missing(value: jax.Array) -> jax.Array:
    """What a discarded update reports: NaN for floats, 0 / False otherwise."""
    if jnp.issubdtype(value.dtype, jnp.floating):
        return jnp.full_like(value, jnp.nan)
    return jnp.zeros_like(value)
