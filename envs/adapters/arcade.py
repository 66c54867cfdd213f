"""``arcade:<Id>``: POPGym Arcade (``popgym-arcade`` 0.0.7), pixel versions of POPGym's memory tasks.

Ids: ``arcade:<Game><Level>`` with Game in AutoEncode, BattleShip, Breakout, CartPole, CountRecall, MineSweeper,
Navigator, NoisyCartPole, Skittles, Tetris and Level in Easy, Medium, Hard: the partially observable task
(``partial_obs=True``); ``arcade:<Game><Level>-full`` is its fully observable twin (``partial_obs=False``, the
suite's default), the controlled no-memory comparison. Observations are uint8 (obs_size, obs_size, 3) frames, kept
uint8 (the network divides by 255); override ``obs_size`` (128, the default, or 256) and the game's other
constructor arguments. Every game has 5 actions (up, down, left, right, confirm): the action space is Discrete(5)
for all (AutoEncode's own ``action_space()`` says 4, but its action 4 is confirm). The suite's ``done`` is
termination OR the time limit (``env.max_steps_in_episode``); its info says which, and the adapter splits them.

Install: popgym-arcade depends on ``stable-gymnax``, which installs a top-level ``gymnax`` package with the old API
over gymnax 1.0.1's files; install popgym-arcade with ``--no-deps`` after the ``arcade`` extra (its real
dependencies): see ``suite.INSTALL``.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from gymnax.environments import spaces

from shm_jax.envs.adapters.suite import SuiteAdapter, initial_state, require, split_done
from shm_jax.envs.registry import register_namespace

GAMES = (
    "AutoEncode",
    "BattleShip",
    "Breakout",
    "CartPole",
    "CountRecall",
    "MineSweeper",
    "Navigator",
    "NoisyCartPole",
    "Skittles",
    "Tetris",
)
LEVELS = ("Easy", "Medium", "Hard")
IDS = tuple(f"{game}{level}" for game in GAMES for level in LEVELS)
FULL_SUFFIX = "-full"
NUM_ACTIONS = 5


class ArcadeAdapter(SuiteAdapter):
    """A POPGym Arcade env on gymnax 1.0's API (see the module docstring). ``suite_env``: the suite's own env."""

    @property
    def max_steps_in_episode(self) -> int:
        return int(getattr(self.suite_env, "max_steps_in_episode", getattr(self.suite_env, "max_episode_length", 0)))

    def reset_env(self, key, params):
        obs, inner = self.suite_env.reset_env(key, params)
        return jnp.asarray(obs, jnp.uint8), initial_state(inner)

    def step_env(self, key, state, action, params):
        action = jnp.clip(jnp.asarray(action, jnp.int32), 0, NUM_ACTIONS - 1)
        obs, inner, reward, done, info = self.suite_env.step_env(key, state.inner, action, params)
        terminated, truncated = split_done(done, info["truncated"], info["terminated"])
        state = state.replace(inner=inner, truncated=truncated)
        return jnp.asarray(obs, jnp.uint8), state, jnp.asarray(reward, jnp.float32), terminated, {}

    @property
    def name(self) -> str:
        return f"arcade:{self.env_id}"

    @property
    def num_actions(self) -> int:
        return NUM_ACTIONS

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(NUM_ACTIONS)

    def observation_space(self, params=None) -> spaces.Box:
        size = self.suite_env.obs_size
        return spaces.Box(0, 255, (size, size, 3), jnp.uint8)


def make(name: str, **overrides: Any) -> tuple[ArcadeAdapter, Any]:
    """(adapter, params) of ``arcade:<name>``; ``overrides`` go to the game's constructor (e.g. ``obs_size=256``)."""
    popgym_arcade = require("popgym_arcade")
    game = name.removesuffix(FULL_SUFFIX)
    try:
        suite_env, params = popgym_arcade.make(game, partial_obs=not name.endswith(FULL_SUFFIX), **overrides)
    except (TypeError, KeyError) as err:
        raise ValueError(f"arcade:{name}: invalid override(s) {sorted(overrides)} ({err})") from None
    return ArcadeAdapter(suite_env, name), params


register_namespace("arcade", make, lambda: [*IDS, *(i + FULL_SUFFIX for i in IDS)], wrapped=True)
