"""Partially observed CartPole (original popgym ``position_only_cartpole.py``,
``noisy_position_only_cartpole.py``, ``velocity_only_cartpole.py``; gymnasium CartPole-v1 dynamics).

Ids (popjym name first, popgym class name as alias):
- StatelessCartPole{Easy,Medium,Hard} = PositionOnlyCartPole…: sees [x, theta]; L = 200 / 400 / 600.
- NoisyStatelessCartPole{Easy,Medium,Hard} = NoisyPositionOnlyCartPole…: [x, theta] + N(0, sigma^2)
  clipped to +-[4.8, 0.4189]; sigma = 0.1 / 0.2 / 0.3; L = 200.
- VelocityOnlyCartPole{Easy,Medium,Hard} (popgym only): sees [x_dot, theta_dot]; L = 200 / 400 / 600.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from shm_jax.envs.popgym.noisy_control import EnvParams, checked_params, noisy
from shm_jax.envs.registry import register

# gymnasium CartPole-v1 constants
GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
TOTAL_MASS = MASS_CART + MASS_POLE
HALF_LENGTH = 0.5
POLE_MASS_LENGTH = MASS_POLE * HALF_LENGTH
FORCE_MAG = 10.0
TAU = 0.02
X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360


@struct.dataclass
class EnvState(environment.EnvState):
    """physics: float32[4] = (x, x_dot, theta, theta_dot); time: int32 steps taken."""

    physics: jax.Array
    time: jax.Array


def cartpole_dynamics(physics: jax.Array, push_right: jax.Array) -> jax.Array:
    """One explicit-Euler step of gymnasium's CartPole. physics: float32[4]; returns float32[4]."""
    x, x_dot, theta, theta_dot = physics
    force = jnp.where(push_right, FORCE_MAG, -FORCE_MAG)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    temp = (force + POLE_MASS_LENGTH * theta_dot**2 * sin) / TOTAL_MASS
    theta_acc = (GRAVITY * sin - cos * temp) / (HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * cos**2 / TOTAL_MASS))
    x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS
    return jnp.stack([x + TAU * x_dot, x_dot + TAU * x_acc, theta + TAU * theta_dot, theta_dot + TAU * theta_acc])


class PositionOnlyCartPole(environment.Environment[EnvState, EnvParams]):
    """CartPole observed through [x, theta] only (original popgym semantics).

    - Action: Discrete(2), 1 pushes right, 0 left. Out-of-range actions are CLIPPED to {0, 1}.
    - Observation: float32[2] (x, theta). With ``noise_sigma > 0`` (the Noisy ids) Gaussian noise is
      added and the result clipped to the observation box +-[4.8, 0.4189], at reset and every step.
    - Reward: +1/L on every step, the falling step included, so returns lie in (0, 1].
    - Terminated when |x| > 2.4 or |theta| > 12 degrees; truncated (``is_truncated``) after L steps.
    - Reset: (x, x_dot, theta, theta_dot) ~ U(-0.05, 0.05)^4.
    Physics runs in float32 (the original uses float64): trajectories agree to float tolerance.
    """

    observed = (0, 2)  # indices of (x, x_dot, theta, theta_dot) that the agent sees
    obs_high = (2 * X_THRESHOLD, 2 * THETA_THRESHOLD)

    def __init__(self, max_steps_in_episode: int = 200, noise_sigma: float = 0.0):
        super().__init__()
        self._default = checked_params(max_steps_in_episode, noise_sigma)

    @property
    def default_params(self) -> EnvParams:
        return self._default

    def observe(self, key: jax.Array, state: EnvState, action, params: EnvParams) -> jax.Array:
        """float32[2]: the observed components, plus clipped noise when noise_sigma > 0."""
        clean = state.physics[jnp.array(self.observed)]
        return noisy(key, clean, params.noise_sigma, jnp.asarray(self.obs_high, jnp.float32))

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        key_init, key_obs = jax.random.split(key)
        physics = jax.random.uniform(key_init, (4,), jnp.float32, -0.05, 0.05)
        state = EnvState(physics=physics, time=jnp.int32(0))
        return self.observe(key_obs, state, None, params), state

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        push_right = jnp.clip(jnp.asarray(action, jnp.int32).reshape(()), 0, 1) == 1
        physics = cartpole_dynamics(state.physics, push_right)
        state = EnvState(physics=physics, time=state.time + 1)
        x, theta = physics[0], physics[2]
        terminated = (jnp.abs(x) > X_THRESHOLD) | (jnp.abs(theta) > THETA_THRESHOLD)
        reward = jnp.float32(1.0) / params.max_steps_in_episode
        return self.observe(key, state, action, params), state, reward.astype(jnp.float32), terminated, {}

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.time >= params.max_steps_in_episode

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(2)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Box:
        high = jnp.asarray(self.obs_high, jnp.float32)
        return spaces.Box(-high, high, (2,), jnp.float32)


class NoisyPositionOnlyCartPole(PositionOnlyCartPole):
    """PositionOnlyCartPole with N(0, sigma^2) observation noise, clipped to the box (default sigma 0.1)."""

    def __init__(self, max_steps_in_episode: int = 200, noise_sigma: float = 0.1):
        super().__init__(max_steps_in_episode, noise_sigma)


class VelocityOnlyCartPole(PositionOnlyCartPole):
    """CartPole observed through [x_dot, theta_dot] only; observation box unbounded.

    The original's reset returns [x, theta] instead of the velocities (an upstream slip, popgym
    1.0.7 ``velocity_only_cartpole.py``); here every observation, the first included, is velocities.
    """

    observed = (1, 3)
    obs_high = (math.inf, math.inf)


_LEVELS = ("Easy", "Medium", "Hard")
for _level, _length, _sigma in zip(_LEVELS, (200, 400, 600), (0.1, 0.2, 0.3)):
    register(
        f"StatelessCartPole{_level}",
        PositionOnlyCartPole,
        aliases=(f"PositionOnlyCartPole{_level}",),
        family="popgym",
        max_steps_in_episode=_length,
    )
    register(
        f"NoisyStatelessCartPole{_level}",
        NoisyPositionOnlyCartPole,
        aliases=(f"NoisyPositionOnlyCartPole{_level}",),
        family="popgym",
        max_steps_in_episode=200,
        noise_sigma=_sigma,
    )
    register(f"VelocityOnlyCartPole{_level}", VelocityOnlyCartPole, family="popgym", max_steps_in_episode=_length)
