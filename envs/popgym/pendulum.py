"""Partially observed Pendulum (original popgym ``position_only_pendulum.py`` and
``noisy_position_only_pendulum.py``; gymnasium Pendulum-v1 dynamics).

Ids (popjym name first, popgym class name as alias):
- StatelessPendulum{Easy,Medium,Hard} = PositionOnlyPendulum…: sees [cos theta, sin theta]; L = 200 / 150 / 100.
- NoisyStatelessPendulum{Easy,Medium,Hard} = NoisyPositionOnlyPendulum…: plus N(0, sigma^2) noise,
  clipped to [-1, 1]; sigma = 0.1 / 0.2 / 0.3; L = 200.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from shm_jax.envs.popgym.noisy_control import EnvParams, checked_params, noisy
from shm_jax.envs.registry import register

# gymnasium Pendulum-v1 constants
GRAVITY = 10.0
MASS = 1.0
LENGTH = 1.0
DT = 0.05
MAX_SPEED = 8.0
MAX_TORQUE = 2.0
# raw reward range [-(pi^2 + 0.1 * 8^2 + 0.001 * 2^2), 0], mapped to [-1, 1] then divided by L
REWARD_HALF_RANGE = 16.2736044 / 2


@struct.dataclass
class EnvState(environment.EnvState):
    """theta: float32 angle (not wrapped); theta_dot: float32 angular velocity; time: int32 steps taken."""

    theta: jax.Array
    theta_dot: jax.Array
    time: jax.Array


def angle_normalize(theta: jax.Array) -> jax.Array:
    """Wrap an angle to [-pi, pi)."""
    return jnp.mod(theta + math.pi, 2 * math.pi) - math.pi


class PositionOnlyPendulum(environment.Environment[EnvState, EnvParams]):
    """Pendulum observed through [cos theta, sin theta] only (original popgym semantics).

    - Action: Box([-2], [2]) torque, float32[1] (a scalar is accepted). Out-of-range torques are
      CLIPPED to [-2, 2] (as gymnasium does).
    - Observation: float32[2] (cos theta, sin theta) of the state after the step. With
      ``noise_sigma > 0`` (the Noisy ids) Gaussian noise is added and clipped to [-1, 1].
    - Reward: gymnasium's r = -(wrap(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2), computed on the state
      before the step, mapped to ((r + 8.1368022) / 8.1368022) / L, so returns lie in [-1, 1].
    - Never terminated; truncated (``is_truncated``) after L steps.
    - Reset: theta ~ U(-pi, pi), theta_dot ~ U(-1, 1).
    Physics runs in float32 (the original uses float64): trajectories agree to float tolerance.
    """

    def __init__(self, max_steps_in_episode: int = 200, noise_sigma: float = 0.0):
        super().__init__()
        self._default = checked_params(max_steps_in_episode, noise_sigma)

    @property
    def default_params(self) -> EnvParams:
        return self._default

    def observe(self, key: jax.Array, state: EnvState, action, params: EnvParams) -> jax.Array:
        """float32[2] (cos, sin), plus noise clipped to [-1, 1] when noise_sigma > 0."""
        clean = jnp.stack([jnp.cos(state.theta), jnp.sin(state.theta)])
        return noisy(key, clean, params.noise_sigma, 1.0)

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        key_theta, key_speed, key_obs = jax.random.split(key, 3)
        state = EnvState(
            theta=jax.random.uniform(key_theta, (), jnp.float32, -math.pi, math.pi),
            theta_dot=jax.random.uniform(key_speed, (), jnp.float32, -1.0, 1.0),
            time=jnp.int32(0),
        )
        return self.observe(key_obs, state, None, params), state

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        torque = jnp.clip(jnp.asarray(action, jnp.float32).reshape(-1)[0], -MAX_TORQUE, MAX_TORQUE)
        theta, theta_dot = state.theta, state.theta_dot
        cost = angle_normalize(theta) ** 2 + 0.1 * theta_dot**2 + 0.001 * torque**2
        theta_acc = 3 * GRAVITY / (2 * LENGTH) * jnp.sin(theta) + 3.0 / (MASS * LENGTH**2) * torque
        new_theta_dot = theta_dot + theta_acc * DT
        new_theta_dot = jnp.clip(new_theta_dot, -MAX_SPEED, MAX_SPEED)
        state = EnvState(theta=theta + new_theta_dot * DT, theta_dot=new_theta_dot, time=state.time + 1)
        reward = ((REWARD_HALF_RANGE - cost) / REWARD_HALF_RANGE) / params.max_steps_in_episode
        return self.observe(key, state, action, params), state, reward.astype(jnp.float32), jnp.bool_(False), {}

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.time >= params.max_steps_in_episode

    @property
    def name(self) -> str:
        return type(self).__name__

    def action_space(self, params: EnvParams | None = None) -> spaces.Box:
        return spaces.Box(-MAX_TORQUE, MAX_TORQUE, (1,), jnp.float32)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (2,), jnp.float32)


class NoisyPositionOnlyPendulum(PositionOnlyPendulum):
    """PositionOnlyPendulum with N(0, sigma^2) observation noise clipped to [-1, 1] (default sigma 0.1)."""

    def __init__(self, max_steps_in_episode: int = 200, noise_sigma: float = 0.1):
        super().__init__(max_steps_in_episode, noise_sigma)


for _level, _length, _sigma in zip(("Easy", "Medium", "Hard"), (200, 150, 100), (0.1, 0.2, 0.3)):
    register(
        f"StatelessPendulum{_level}",
        PositionOnlyPendulum,
        aliases=(f"PositionOnlyPendulum{_level}",),
        family="popgym",
        max_steps_in_episode=_length,
    )
    register(
        f"NoisyStatelessPendulum{_level}",
        NoisyPositionOnlyPendulum,
        aliases=(f"NoisyPositionOnlyPendulum{_level}",),
        family="popgym",
        max_steps_in_episode=200,
        noise_sigma=_sigma,
    )
