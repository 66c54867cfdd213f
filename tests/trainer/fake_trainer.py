"""A tiny stand-in with the PPO Trainer contract (shm_jax.ppo.make_train), to test the host loop fast.

Each "update" draws a batch of per-environment observations, takes one SGD step of a linear
regression whose loss averages over environments (so sharding the env axis needs an all-reduce),
advances a per-environment state and carry, and reports the contract's metrics. A learning rate of
1e30 makes the loss overflow on the second update.
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp


class FakeHParams(flax.struct.PyTreeNode):
    lr: jax.Array
    ent_coef: jax.Array
    clip_eps: jax.Array
    gamma: jax.Array
    gae_lambda: jax.Array


class FakeRunnerState(flax.struct.PyTreeNode):
    params: dict
    env_state: jax.Array  # float32[E, D]
    last_obs: jax.Array  # float32[E, D]
    last_start: jax.Array  # bool[E]
    carry: jax.Array  # float32[E, H]
    rng: jax.Array  # uint32[2]
    update: jax.Array  # int32[]


@dataclasses.dataclass(frozen=True)
class FakeConfig:
    env_id: str = "Fake"
    memory: str = "none"
    num_envs: int = 4
    num_steps: int = 8
    num_updates: int = 6
    lr: float = 0.05
    seed: int = 0
    num_seeds: int = 2
    sweep: tuple = ()
    updates_per_chunk: int = 2
    checkpoint_every: int = 1  # chunks
    run_name: str | None = None
    eval_episodes: int = 0
    out_dir: str = "runs"
    tensorboard: bool = False


def fake_hparams(config: FakeConfig) -> FakeHParams:
    f = lambda v: jnp.float32(v)  # noqa: E731
    return FakeHParams(lr=f(config.lr), ent_coef=f(0.0), clip_eps=f(0.2), gamma=f(0.99), gae_lambda=f(0.95))


class FakeTrainer:
    obs_dim = 3
    carry_dim = 2

    def __init__(self, config: FakeConfig):
        self.num_envs = config.num_envs
        self.num_updates = config.num_updates
        self.steps_per_update = config.num_envs * config.num_steps

    def init(self, rng, hparams):
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
        target = obs.sum(-1)

        def loss_fn(params):
            return jnp.mean((obs @ params["w"] - target) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        params = jax.tree.map(lambda p, g: p - hparams.lr * g, state.params, grads)
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
