"""MultiarmedBandit (original popgym ``envs/multiarmed_bandit.py``): find and exploit the best-paying arm.

Each episode draws payout probabilities p_i ~ U[0, 1) for ``num_bandits`` arms. Pulling arm a pays out with
probability p_a: observation 1 and reward +1/L, else observation 0 and reward -1/L, with
L = ``EnvParams.max_steps_in_episode`` (Easy 10 arms / 200 steps, Medium 20 / 400, Hard 30 / 600). The reset
observation is 0. Truncated after L steps, never terminated. The payout draw of a step is
``jax.random.uniform(key) < p_a`` with the step's key.

Observation int32 scalar, space Discrete(2). Action Discrete(num_bandits); out-of-range actions are clipped. The
observation does not say which arm was pulled, so the task needs the previous action (``needs_prev_action=True``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from shm_jax.envs import registry


@struct.dataclass
class EnvState(environment.EnvState):
    """probs: float32[num_bandits] payout probabilities; time: int32, steps taken this episode."""

    probs: jax.Array


@struct.dataclass
class EnvParams(environment.EnvParams):
    """max_steps_in_episode: episode length L (truncation), also the reward unit 1/L."""


class MultiarmedBandit(environment.Environment[EnvState, EnvParams]):
    """MultiarmedBandit with ``num_bandits`` arms and default ``episode_length``. See the module docstring."""

    def __init__(self, num_bandits: int = 10, episode_length: int = 200):
        super().__init__()
        if int(num_bandits) < 1:
            raise ValueError(f"MultiarmedBandit: num_bandits must be a positive integer, got {num_bandits!r}")
        if int(episode_length) < 1:
            raise ValueError(f"MultiarmedBandit: episode_length must be a positive integer, got {episode_length!r}")
        self.num_bandits = int(num_bandits)
        self.episode_length = int(episode_length)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.episode_length)

    def reset_env(self, key, params):
        probs = jax.random.uniform(key, (self.num_bandits,), jnp.float32)
        return jnp.int32(0), EnvState(time=jnp.int32(0), probs=probs)

    def step_env(self, key, state, action, params):
        action = jnp.clip(jnp.asarray(action, jnp.int32), 0, self.num_bandits - 1)
        paid = jax.random.uniform(key, (), jnp.float32) < state.probs[action]
        reward = (jnp.where(paid, 1.0, -1.0) / params.max_steps_in_episode).astype(jnp.float32)
        return paid.astype(jnp.int32), state.replace(time=state.time + 1), reward, jnp.array(False), {}

    @property
    def num_actions(self) -> int:
        return self.num_bandits

    def action_space(self, params=None):
        return spaces.Discrete(self.num_bandits)

    def observation_space(self, params=None):
        return spaces.Discrete(2)

    def state_space(self, params=None):
        return spaces.Dict(
            {"probs": spaces.Box(0.0, 1.0, (self.num_bandits,)), "time": spaces.Discrete(self.episode_length + 1)}
        )


for _level, _arms, _length in (("Easy", 10, 200), ("Medium", 20, 400), ("Hard", 30, 600)):
    registry.register(
        f"MultiArmedBandit{_level}",
        MultiarmedBandit,
        aliases=(f"MultiarmedBandit{_level}",),
        needs_prev_action=True,
        family="popgym",
        num_bandits=_arms,
        episode_length=_length,
    )
