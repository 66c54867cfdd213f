"""``xminigrid:<Id>``: XLand-MiniGrid (``xminigrid`` 0.9.3), ids as ``xminigrid.registered_environments()`` lists
them (MiniGrid-MemoryS8 ... S128, the MiniGrid ports, XLand-MiniGrid-R{1..9}-{size}).

The suite's ``reset(params, key)`` / ``step(params, timestep, action)`` (no key) and its ``TimeStep`` (step_type
FIRST/MID/LAST, discount 0 only on termination) become gymnax 1.0's API: terminated = LAST with discount 0,
truncated = LAST with discount 1 (``step_num == params.max_steps``). Observation: the (V, V, 2) grid view of tile
ids (13 values) and colours (12 values) as int32[V * V * 2] (row, column, layer order) with a ``MultiDiscrete``
space ((13, 12) per cell), so shm-jax's flatten one-hots it (V * V * 25 features). Overrides name ``EnvParams``
fields (``max_steps``, ``view_size``, ...). XLand ids run the default ruleset of ``default_params``; the rule
benchmarks (``xminigrid.load_benchmark``) download at first use and are not wired here. 6 actions.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from gymnax.environments import spaces

from shm_jax.envs.adapters.suite import SuiteAdapter, initial_state, require
from shm_jax.envs.registry import register_namespace
from shm_jax.envs.spaces import MultiDiscrete

NUM_TILES, NUM_COLORS = 13, 12  # xminigrid.core.constants


class XMiniGridAdapter(SuiteAdapter):
    """An XLand-MiniGrid env on gymnax 1.0's API (see the module docstring). ``suite_env``: the suite's env;
    the adapter's state holds the suite's ``TimeStep``."""

    @staticmethod
    def _obs(timestep) -> Any:
        return jnp.asarray(timestep.observation, jnp.int32).reshape(-1)

    def reset_env(self, key, params):
        timestep = self.suite_env.reset(params, key)
        return self._obs(timestep), initial_state(timestep)

    def step_env(self, key, state, action, params):
        action = jnp.clip(jnp.asarray(action, jnp.int32), 0, self.num_actions - 1)
        timestep = self.suite_env.step(params, state.inner, action)
        last = timestep.last()
        terminated = last & (timestep.discount == 0.0)
        truncated = last & ~terminated
        state = state.replace(inner=timestep, truncated=truncated)
        return self._obs(timestep), state, jnp.asarray(timestep.reward, jnp.float32), terminated, {}

    @property
    def name(self) -> str:
        return f"xminigrid:{self.env_id}"

    @property
    def num_actions(self) -> int:
        return int(self.suite_env.num_actions(self._params))

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions)

    def observation_space(self, params=None) -> MultiDiscrete:
        params = params if params is not None else self._params
        return MultiDiscrete((NUM_TILES, NUM_COLORS) * (params.view_size * params.view_size))


def _names() -> list[str]:
    return list(require("xminigrid").registered_environments())


def make(name: str, **overrides: Any) -> tuple[XMiniGridAdapter, Any]:
    """(adapter, params) of ``xminigrid:<name>``; ``overrides`` name EnvParams fields."""
    xminigrid = require("xminigrid")
    suite_env, params = xminigrid.make(name)
    fields = sorted(params.__dataclass_fields__)
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"unknown override {unknown[0]!r} for xminigrid:{name}; EnvParams fields: {', '.join(fields)}")
    params = params.replace(**overrides)
    return XMiniGridAdapter(suite_env, name, params), params


register_namespace("xminigrid", make, _names, wrapped=True)
