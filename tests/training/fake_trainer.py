"""A tiny learner with the algorithm contract (``shm_jax.algorithms.base``), to test the host loop fast.

Each "update" draws a batch of per-environment observations, takes one SGD step of a linear
regression whose loss averages over environments (so sharding the env axis needs an all-reduce),
advances a per-environment state and carry, and reports the contract's metrics. A learning rate of
1e30 makes the loss overflow on the second update.

It is used two ways: ``fake_program(config)`` plugs it into a PPO-shaped config's batched program
(the host-loop tests), and importing this module registers it as ``--algo fake`` (its own config
section, typed hyperparameters and factory) so that ``shm_jax.train`` runs it end to end through the
build step: the seam a new learner plugs into, with this file and the one ``register`` line below.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import flax.struct
import jax
import jax.numpy as jnp

from shm_jax.algorithms import base
from shm_jax.config import TrainConfig, with_overrides
from shm_jax.options import option, positive_int, positive_number
from shm_jax.training.batched import BatchedProgram


class FakeRunnerState(flax.struct.PyTreeNode):
    params: dict
    env_state: jax.Array  # float32[E, D]
    last_obs: jax.Array  # float32[E, D]
    last_start: jax.Array  # bool[E]
    carry: jax.Array  # float32[E, H]
    rng: jax.Array  # uint32[2]
    update: jax.Array  # int32[]


class FakeHyperparameters(flax.struct.PyTreeNode):
    lr: jax.Array


@dataclasses.dataclass(frozen=True)
class FakeConfig(base.AlgorithmConfig):
    """The fake learner's own options (``--algo fake``)."""

    name: ClassVar[str] = "fake"

    num_envs: int = option(4, positive_int)
    """Parallel environments per run."""
    num_steps: int = option(8, positive_int)
    """Environment steps per update and environment."""
    total_timesteps: int = option(4 * 8 * 6, positive_int)
    """Environment steps per run."""
    lr: float = option(0.05, positive_number)
    """Step size (sweepable)."""


def fake_config(num_updates: int = 6, **overrides) -> TrainConfig:
    """A real (PPO-shaped) TrainConfig for the fake program: env "Fake", memory "none", 4 envs x 8 steps."""
    defaults = dict(
        env_id="Fake",
        memory="none",
        num_envs=4,
        num_steps=8,
        lr=0.05,
        num_seeds=2,
        updates_per_chunk=2,
        checkpoint_every=1,
        eval_episodes=0,
        out_dir="runs",
    )
    values = {**defaults, **overrides}
    return with_overrides(
        TrainConfig(), total_timesteps=num_updates * values["num_envs"] * values["num_steps"], **values
    )


def fake_hyperparameters(config: TrainConfig):
    """The config's algorithm hyperparameters (the fake reads only ``lr``)."""
    return base.hyperparameters(config.algorithm)


class FakeAlgorithm:
    """``work``: iterations of a dummy [64, 64] matmul chain per update, to make an update take long."""

    obs_dim = 3
    carry_dim = 2

    def __init__(self, section, work: int = 0, num_actions: int = 2):
        self.work = work
        self.num_actions = num_actions
        self.num_envs = section.num_envs
        self.steps_per_update = section.num_envs * section.num_steps
        self.num_updates = section.total_timesteps // self.steps_per_update

    @classmethod
    def from_config(cls, section: FakeConfig, *, env, env_params, agent) -> FakeAlgorithm:
        """The registered factory: what the build step calls for ``--algo fake``."""
        return cls(section, num_actions=agent.action_spec.num_outputs)

    def init(self, rng):
        rng, sub = jax.random.split(rng)
        obs = jax.random.normal(sub, (self.num_envs, self.obs_dim))
        return FakeRunnerState(
            params={"w": jnp.zeros(self.obs_dim)},
            env_state=obs,
            last_obs=obs,
            last_start=jnp.ones(self.num_envs, bool),
            carry=jnp.zeros((self.num_envs, self.carry_dim)),
            rng=rng,
            update=jnp.int32(0),
        )

    def update(self, state, hp):
        rng, sub = jax.random.split(state.rng)
        obs = state.env_state + jax.random.normal(sub, state.env_state.shape)
        if self.work:  # a slow update whose result does not depend on the work (it is multiplied by 0)
            m = jnp.eye(64) * 0.5
            busy = jax.lax.fori_loop(0, self.work, lambda i, x: jnp.tanh(x @ m), jnp.ones((64, 64)))
            obs = obs + 0.0 * busy[0, 0]
        target = obs.sum(-1)

        def loss_fn(params):
            return jnp.mean((obs @ params["w"] - target) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        params = jax.tree.map(lambda p, g: p - hp.lr * g, state.params, grads)
        carry = jnp.tanh(state.carry + obs[:, : self.carry_dim])
        episode_return = -((obs @ params["w"] - target) ** 2)  # [E]
        metrics = {
            "episode_return_sum": episode_return.sum(),
            "episode_count": jnp.float32(self.num_envs),
            "success_sum": jnp.sum(episode_return > -1.0).astype(jnp.float32),
            "loss": loss,
            "finite": jnp.isfinite(loss) & jnp.all(jnp.isfinite(params["w"])),
        }
        new_state = state.replace(
            params=params,
            env_state=0.5 * obs,
            last_obs=obs,
            last_start=obs[:, 0] > 0,
            carry=carry,
            rng=rng,
            update=state.update + 1,
        )
        return new_state, metrics

    def train_chunk(self, state, hp, num_updates):
        return jax.lax.scan(lambda s, _: self.update(s, hp), state, None, length=num_updates)

    # --- the rest of the contract ---------------------------------------------------------------

    def per_env_leaves(self, state):
        return state.replace(
            params={"w": False}, env_state=True, last_obs=True, last_start=True, carry=True, rng=False, update=False
        )

    def agent_params(self, state):
        return state.params

    def policy(self, greedy: bool) -> base.Policy:
        """Uniformly random actions (the fake learns nothing an environment rewards)."""

        def act(params, obs, carry, start, rng):
            return jax.random.randint(rng, start.shape, 0, self.num_actions), carry

        return base.Policy(initialize_carry=lambda n: jnp.zeros((n,)), act=act)

    def memory_estimate(self, hp, num_runs: int) -> base.MemoryEstimate:
        state = jax.eval_shape(self.init, jax.random.PRNGKey(0))
        return base.MemoryEstimate(
            state=base.tree_bytes(state),
            rollout=0,
            gradients=base.tree_bytes(state.params),
            backward_residuals=0,
            largest_array=0,
            num_runs=num_runs,
        )


def fake_program(config: TrainConfig, mesh=None, work: int = 0) -> BatchedProgram:
    """The batched program of the fake for ``config`` (sweep, seeds and env count from the config)."""
    return BatchedProgram(
        FakeAlgorithm(config.algorithm, work),
        fake_hyperparameters(config),
        sweep=config.run.sweep,
        seed=config.run.seed,
        num_seeds=config.run.num_seeds,
        mesh=mesh,
    )


base.register(base.AlgorithmSpec("fake", FakeConfig, FakeHyperparameters, FakeAlgorithm.from_config))
