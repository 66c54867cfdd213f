"""``craftax:<Id>``: Craftax (``craftax`` >= 1.6.0), built with ``make_craftax_env_from_name(id, auto_reset=False)``.

Ids: ``craftax:Craftax-Symbolic-v1`` (float32[8268], 43 actions), ``craftax:Craftax-Pixels-v1`` (float32
(130, 110, 3) in [0, 1]), ``craftax:Craftax-Classic-Symbolic-v1`` (float32[1345], 17 actions),
``craftax:Craftax-Classic-Pixels-v1`` (float32 (63, 63, 3)). Overrides name ``EnvParams`` fields (e.g.
``max_timesteps``). Craftax's ``done`` includes the time limit (``state.timestep >= params.max_timesteps``): the
adapter splits truncation from termination (death, lava). Its spaces are converted to gymnax's; its info
(achievements, discount) is passed on as float32. The first pixel env writes a texture cache into site-packages.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from shm_jax.envs.adapters.suite import SuiteAdapter, initial_state, require, split_done
from shm_jax.envs.registry import register_namespace

IDS = ("Craftax-Symbolic-v1", "Craftax-Pixels-v1", "Craftax-Classic-Symbolic-v1", "Craftax-Classic-Pixels-v1")
_NEVER = np.iinfo(np.int32).max


def convert_space(space: Any) -> spaces.Space:
    """A Craftax space (its own Discrete / Box classes) as gymnax's."""
    kind = type(space).__name__
    if kind == "Discrete":
        return spaces.Discrete(int(space.n))
    if kind == "Box":
        return spaces.Box(space.low, space.high, tuple(space.shape), space.dtype)
    raise ValueError(f"craftax: unsupported space {space!r}")


class CraftaxAdapter(SuiteAdapter):
    """A Craftax env on gymnax 1.0's API (see the module docstring). ``suite_env``: Craftax's own env."""

    def reset_env(self, key, params):
        obs, inner = self.suite_env.reset_env(key, params)
        return obs, initial_state(inner)

    def step_env(self, key, state, action, params):
        action = jnp.clip(jnp.asarray(action, jnp.int32), 0, self.num_actions - 1)
        obs, inner, reward, done, info = self.suite_env.step_env(key, state.inner, action, params)
        natural = self.suite_env.is_terminal(inner, params.replace(max_timesteps=_NEVER))
        terminated, truncated = split_done(done, inner.timestep >= params.max_timesteps, natural)
        info = {k: jnp.asarray(v, jnp.float32) for k, v in info.items()}
        state = state.replace(inner=inner, truncated=truncated)
        return obs, state, jnp.asarray(reward, jnp.float32), terminated, info

    @property
    def name(self) -> str:
        return f"craftax:{self.env_id}"

    @property
    def num_actions(self) -> int:
        return int(self.suite_env.num_actions)

    def action_space(self, params=None) -> spaces.Discrete:
        return convert_space(self.suite_env.action_space(params))

    def observation_space(self, params=None) -> spaces.Box:
        return convert_space(self.suite_env.observation_space(params if params is not None else self.default_params))


def make(name: str, **overrides: Any) -> tuple[CraftaxAdapter, Any]:
    """(adapter, params) of ``craftax:<name>``; ``overrides`` name EnvParams fields."""
    suite_env = require("craftax.craftax_env").make_craftax_env_from_name(name, auto_reset=False)
    params = suite_env.default_params
    fields = sorted(params.__dataclass_fields__)
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"unknown override {unknown[0]!r} for craftax:{name}; EnvParams fields: {', '.join(fields)}")
    return CraftaxAdapter(suite_env, name), params.replace(**overrides)


register_namespace("craftax", make, lambda: list(IDS), wrapped=True)
