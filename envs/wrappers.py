"""Wrappers applied by ``envs.make`` (innermost first): checked actions (opt-in), previous action + episode-start
flag, flatten, episode statistics.

The first three are gymnax ``Environment`` subclasses that transform ``reset_env``/``step_env``, so gymnax's
auto-reset (inside ``Environment.step``) runs through them: every episode's first observation, including those
produced by an auto-reset, carries the start flag and the null previous action. ``EpisodeStats`` wraps gymnax's
``step`` (outside the auto-reset) because it must see episode boundaries.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces
from jax.experimental import checkify

from shm_jax.envs.spaces import MultiDiscrete

# ----------------------------------------------------------------------------------------------- space helpers


def space_contains(space: spaces.Space, x: Any) -> jax.Array:
    """Whether ``x`` lies in ``space`` (bool scalar). Handles Discrete, MultiDiscrete, Box, Dict (x a dict) and
    Tuple; gymnax's own Dict.contains expects attribute access, hence this helper."""
    if isinstance(space, spaces.Dict):
        return jnp.all(jnp.stack([space_contains(s, x[k]) for k, s in space.spaces.items()]))
    if isinstance(space, spaces.Tuple):
        return jnp.all(jnp.stack([space_contains(s, x[i]) for i, s in enumerate(space.spaces)]))
    if isinstance(space, spaces.Discrete):
        x = jnp.asarray(x)
        return (x >= 0) & (x < space.n) & (x == jnp.round(x))
    if isinstance(space, MultiDiscrete):
        x = jnp.asarray(x)
        return jnp.all((x >= 0) & (x < jnp.asarray(space.nvec)) & (x == jnp.round(x)))
    if isinstance(space, spaces.Box):
        x = jnp.asarray(x)
        return jnp.all((x >= space.low) & (x <= space.high))
    raise ValueError(f"space_contains: unsupported space {space!r}")


def flat_size(space: spaces.Space) -> int:
    """Length of the float32 vector ``flatten_value`` makes for a value of ``space`` (one-hot for discrete parts)."""
    if isinstance(space, spaces.Dict):
        return sum(flat_size(s) for s in space.spaces.values())
    if isinstance(space, spaces.Tuple):
        return sum(flat_size(s) for s in space.spaces)
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, MultiDiscrete):
        return int(sum(space.nvec))
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape, dtype=np.int64))
    raise ValueError(f"flatten: unsupported observation space {space!r}")


def flatten_value(space: spaces.Space, x: Any) -> jax.Array:
    """A value of ``space`` as float32[flat_size(space)]: discrete parts one-hot (an out-of-range index gives an
    all-zero block), Box parts raveled with their values unchanged (uint8 images stay 0..255)."""
    if isinstance(space, spaces.Dict):
        return jnp.concatenate([flatten_value(s, x[k]) for k, s in space.spaces.items()])
    if isinstance(space, spaces.Tuple):
        return jnp.concatenate([flatten_value(s, x[i]) for i, s in enumerate(space.spaces)])
    if isinstance(space, spaces.Discrete):
        return jax.nn.one_hot(jnp.asarray(x, jnp.int32), space.n, dtype=jnp.float32).reshape(-1)
    if isinstance(space, MultiDiscrete):
        x = jnp.asarray(x, jnp.int32).reshape(-1)
        return jnp.concatenate([jax.nn.one_hot(x[i], n, dtype=jnp.float32) for i, n in enumerate(space.nvec)])
    if isinstance(space, spaces.Box):
        return jnp.asarray(x).astype(jnp.float32).reshape(-1)
    raise ValueError(f"flatten: unsupported observation space {space!r}")


def _flat_bounds(space: spaces.Space) -> tuple[np.ndarray, np.ndarray]:
    """Per-element (low, high) of ``flatten_value``'s output, as float32 numpy arrays."""
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        parts = space.spaces.values() if isinstance(space, spaces.Dict) else space.spaces
        bounds = [_flat_bounds(s) for s in parts]
        return np.concatenate([b[0] for b in bounds]), np.concatenate([b[1] for b in bounds])
    if isinstance(space, spaces.Box):
        shape = space.shape
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape).reshape(-1)
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape).reshape(-1)
        return low, high
    size = flat_size(space)
    return np.zeros(size, np.float32), np.ones(size, np.float32)


# ----------------------------------------------------------------------------------------------- wrappers


class _InnerWrapper(environment.Environment):
    """Base for wrappers inside the auto-reset: delegates everything it does not change to ``self._env``."""

    def __init__(self, env: environment.Environment):
        super().__init__()
        self._env = env

    def __getattr__(self, name):  # sizes and helpers of the wrapped env (num_cards, episode_length, ...)
        if name == "_env":
            raise AttributeError(name)
        return getattr(self._env, name)

    @property
    def unwrapped(self) -> environment.Environment:
        """The raw environment under every wrapper."""
        return getattr(self._env, "unwrapped", self._env)

    @property
    def default_params(self):
        return self._env.default_params

    def reset_env(self, key, params):
        return self._env.reset_env(key, params)

    def step_env(self, key, state, action, params):
        return self._env.step_env(key, state, action, params)

    def is_truncated(self, state, params):
        return self._env.is_truncated(state, params)

    @property
    def name(self) -> str:
        return self._env.name

    @property
    def num_actions(self) -> int:
        return self._env.num_actions

    def action_space(self, params=None):
        return self._env.action_space(params)

    def observation_space(self, params=None):
        return self._env.observation_space(params)

    def state_space(self, params=None):
        return self._env.state_space(params)


class PrevActionWrapper(_InnerWrapper):
    """Observation -> ``{"obs": inner obs, "prev_action": float32[A], "start": float32}``.

    ``prev_action`` is the action that produced this observation, encoded one-hot for Discrete (A = n) and
    per component for MultiDiscrete (A = sum(nvec)), raw float32 values for Box (A = prod(shape)); it is
    all-zero (the null action) on the first observation of an episode. ``start`` is 1.0 on that first observation,
    else 0.0. Out-of-range actions are encoded after clipping, i.e. as the action the environment executed.
    """

    def _encode(self, action, params) -> jax.Array:
        space = self._env.action_space(params)
        if isinstance(space, spaces.Discrete):
            action = jnp.clip(jnp.asarray(action, jnp.int32), 0, space.n - 1)
        elif isinstance(space, MultiDiscrete):
            action = jnp.clip(jnp.asarray(action, jnp.int32), 0, jnp.asarray(space.nvec) - 1)
        elif isinstance(space, spaces.Box):
            action = jnp.clip(jnp.asarray(action, jnp.float32), space.low, space.high)
        return flatten_value(space, action)

    def reset_env(self, key, params):
        obs, state = self._env.reset_env(key, params)
        null = jnp.zeros(flat_size(self._env.action_space(params)), jnp.float32)
        return {"obs": obs, "prev_action": null, "start": jnp.float32(1.0)}, state

    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = self._env.step_env(key, state, action, params)
        wrapped = {"obs": obs, "prev_action": self._encode(action, params), "start": jnp.float32(0.0)}
        return wrapped, state, reward, terminated, info

    def observation_space(self, params=None):
        action_space = self._env.action_space(params)
        low, high = _flat_bounds(action_space)
        return spaces.Dict(
            {
                "obs": self._env.observation_space(params),
                "prev_action": spaces.Box(low, high, (flat_size(action_space),), jnp.float32),
                "start": spaces.Box(0.0, 1.0, (), jnp.float32),
            }
        )


class FlattenWrapper(_InnerWrapper):
    """Observation -> float32[D]: discrete parts one-hot, Box parts raveled (uint8 images keep 0..255 values: the
    network divides by 255). ``observation_space`` is a Box of shape (D,)."""

    def reset_env(self, key, params):
        obs, state = self._env.reset_env(key, params)
        return flatten_value(self._env.observation_space(params), obs), state

    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = self._env.step_env(key, state, action, params)
        return flatten_value(self._env.observation_space(params), obs), state, reward, terminated, info

    def observation_space(self, params=None):
        inner = self._env.observation_space(params)
        low, high = _flat_bounds(inner)
        return spaces.Box(low, high, (flat_size(inner),), jnp.float32)


class CheckedActionWrapper(_InnerWrapper):
    """Checks every action against the action space with ``jax.experimental.checkify``.

    The check is a functional error: call the environment through :func:`run_checked` (or your own
    ``checkify.checkify``) and an out-of-range action raises ``JaxRuntimeError`` naming the environment, the
    action and the space. Calling ``step`` under plain ``jit`` without checkify fails at trace time.
    """

    def step_env(self, key, state, action, params):
        space = self._env.action_space(params)
        checkify.check(
            space_contains(space, action),
            f"{self._env.name}: action {{action}} is outside the action space {space!r}",
            action=jnp.asarray(action),
        )
        return self._env.step_env(key, state, action, params)


def run_checked(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` (jitted or not; it may call ``env.step`` of a ``make(..., checked=True)`` env)
    under ``checkify`` and raise the first failed check as ``JaxRuntimeError``. Returns fn's output."""
    error, out = checkify.checkify(fn, errors=checkify.user_checks)(*args, **kwargs)
    error.throw()
    return out


@struct.dataclass
class EpisodeStatsState:
    """env_state: the inner state; episode_return: float32 and episode_length: int32 of the running episode;
    last_return: float32 and last_length: int32 of the most recently finished episode (0 before the first)."""

    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array
    last_return: jax.Array
    last_length: jax.Array


class EpisodeStatsWrapper:
    """Outer wrapper around gymnax ``step`` (outside the auto-reset) adding to ``info`` on every step:

    - ``episode_done`` (bool): an episode ended at this step (terminated or truncated);
    - ``episode_return`` (float32) and ``episode_length`` (int32): the undiscounted return and the number of steps
      of the episode that ended at this step where ``episode_done``; elsewhere the last finished episode's values
      (0 before the first). Average ``episode_return`` only where ``episode_done``.

    Other attributes (``action_space``, ``observation_space``, ``default_params``, ``name`` ...) are the inner env's.
    """

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        if name == "_env":
            raise AttributeError(name)
        return getattr(self._env, name)

    @property
    def unwrapped(self):
        """The raw environment under every wrapper."""
        return getattr(self._env, "unwrapped", self._env)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key, params=None):
        obs, env_state = self._env.reset(key, params)
        zero_f, zero_i = jnp.float32(0.0), jnp.int32(0)
        return obs, EpisodeStatsState(env_state, zero_f, zero_i, zero_f, zero_i)

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key, state, action, params=None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(key, state.env_state, action, params)
        done = jnp.logical_or(terminated, truncated)
        ret = state.episode_return + reward.astype(jnp.float32)
        length = state.episode_length + 1
        state = EpisodeStatsState(
            env_state=env_state,
            episode_return=jnp.where(done, 0.0, ret).astype(jnp.float32),
            episode_length=jnp.where(done, 0, length).astype(jnp.int32),
            last_return=jnp.where(done, ret, state.last_return).astype(jnp.float32),
            last_length=jnp.where(done, length, state.last_length).astype(jnp.int32),
        )
        info = {
            **info,
            "episode_return": state.last_return,
            "episode_length": state.last_length,
            "episode_done": done,
        }
        return obs, state, reward, terminated, truncated, info
