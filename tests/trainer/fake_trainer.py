"""A tiny stand-in with the algorithm contract of ``shm_jax.batched.Algorithm``, to test the host loop fast.

Each "update" draws a batch of per-environment observations, takes one SGD step of a linear
regression whose loss averages over environments (so sharding the env axis needs an all-reduce),
advances a per-environment state and carry, and reports the contract's metrics. A learning rate of
1e30 makes the loss overflow on the second update.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from shm_jax.batched import BatchedProgram
from shm_jax.config import TrainConfig, with_overrides


class FakeRunnerState(flax.struct.PyTreeNode):
    params: dict
    env_state: jax.Array  # float32[E, D]
    last_obs: jax.Array  # float32[E, D]
    last_start: jax.Array  # bool[E]
    carry: jax.Array  # float32[E, H]
    rng: jax.Array  # uint32[2]
    update: jax.Array  # int32[]


def fake_config(num_updates: int = 6, **overrides) -> TrainConfig:
    """A real TrainConfig for the fake: env "Fake", memory "none", 4 envs x 8 steps, ``num_updates`` updates."""
    defaults = dict(env_id="Fake", memory="none", num_envs=4, num_steps=8, lr=0.05, num_seeds=2,
                    updates_per_chunk=2, checkpoint_every=1, eval_episodes=0, out_dir="runs")
    values = {**defaults, **overrides}
    return with_overrides(TrainConfig(), total_timesteps=num_updates * values["num_envs"] * values["num_steps"],
                          **values)


def fake_hparams(config: TrainConfig) -> dict:
    ppo = config.ppo
    return {name: jnp.float32(getattr(ppo, name)) for name in ("lr", "ent_coef", "clip_eps", "gamma", "gae_lambda")}


class FakeAlgorithm:
    """``work``: iterations of a dummy [64, 64] matmul chain per update, to make an update take long."""

    obs_dim = 3
    carry_dim = 2

    def __init__(self, config: TrainConfig, work: int = 0):
        self.work = work
        self.num_envs = config.ppo.num_envs
        self.steps_per_update = config.ppo.num_envs * config.ppo.num_steps
        self.num_updates = config.ppo.total_timesteps // self.steps_per_update

    def init(self, rng):
        rng, sub = jax.random.split(rng)
        obs = jax.random.normal(sub, (self.num_envs, self.obs_dim))
        return FakeRunnerState(
            params={"w": jnp.zeros(self.obs_dim)}, env_state=obs, last_obs=obs,
            last_start=jnp.ones(self.num_envs, bool), carry=jnp.zeros((self.num_envs, self.carry_dim)),
            rng=rng, update=jnp.int32(0),
        )

    def update(self, state, hparams):
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
        params = jax.tree.map(lambda p, g: p - hparams["lr"] * g, state.params, grads)
        carry = jnp.tanh(state.carry + obs[:, : self.carry_dim])
        episode_return = -((obs @ params["w"] - target) ** 2)  # [E]
        metrics = {
            "episode_return_sum": episode_return.sum(),
            "episode_count": jnp.float32(self.num_envs),
            "success_sum": jnp.sum(episode_return > -1.0).astype(jnp.float32),
            "loss": loss,
            "finite": jnp.isfinite(loss) & jnp.all(jnp.isfinite(params["w"])),
        }
        new_state = state.replace(params=params, env_state=0.5 * obs, last_obs=obs,
                                  last_start=obs[:, 0] > 0, carry=carry, rng=rng, update=state.update + 1)
        return new_state, metrics

    def train_chunk(self, state, hparams, num_updates):
        return jax.lax.scan(lambda s, _: self.update(s, hparams), state, None, length=num_updates)


def fake_program(config: TrainConfig, mesh=None, work: int = 0) -> BatchedProgram:
    """The batched program of the fake for ``config`` (sweep, seeds and env count from the config)."""
    return BatchedProgram(FakeAlgorithm(config, work), fake_hparams(config), sweep=config.run.sweep, seed=config.run.seed,
                          num_seeds=config.run.num_seeds, num_envs=config.ppo.num_envs, mesh=mesh)
