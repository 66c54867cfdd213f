"""What the outside-suite adapters share (``arcade:``, ``craftax:``, ``xminigrid:``).

None of these suites speaks gymnax 1.0's API (a 6-tuple ``step`` whose truncation reads ``state.time``). An adapter
is a gymnax 1.0 ``Environment`` whose ``step_env`` returns the suite's step with termination and truncation split,
and keeps the truncation flag in its state, so that ``is_truncated(state, params)`` (called by gymnax's ``step`` and
by ``envs.autoreset`` right after ``step_env``) reads it. ``envs.make`` then adds shm-jax's usual wrappers.

Each suite is imported only when one of its ids is made (:func:`require`): an optional extra per suite.
"""

from __future__ import annotations

import importlib
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment


class SuiteNotInstalled(ImportError, ValueError):
    """An id of a suite whose package is not installed (a ValueError too, so config checks report it on one line)."""


# How to install each suite so that gymnax 1.0.1 stays intact (popgym-arcade's own dependency ``stable-gymnax``
# would overwrite gymnax's files with the old API: it is installed without its dependencies).
INSTALL = {
    "popgym_arcade": 'pip install -e ".[arcade]" && pip install --no-deps "popgym-arcade==0.0.7"',
    "craftax": 'pip install -e ".[craftax]"',
    "xminigrid": 'pip install -e ".[xminigrid]"',
}


def require(module: str) -> Any:
    """Import ``module`` (a suite's package or one of its modules) or raise :class:`SuiteNotInstalled` with the
    suite's install line."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        suite = module.partition(".")[0]
        raise SuiteNotInstalled(f"{suite} is not installed ({err}); install it with: {INSTALL[suite]}") from None


@struct.dataclass
class SuiteState:
    """inner: the suite's own state (XLand-MiniGrid: its TimeStep); truncated: the last step hit the time limit and
    did not terminate (False after a reset)."""

    inner: Any
    truncated: jax.Array


def initial_state(inner: Any) -> SuiteState:
    return SuiteState(inner=inner, truncated=jnp.bool_(False))


class SuiteAdapter(environment.Environment):
    """Base of the adapters: holds the suite's own env (``suite_env``) and the id; ``is_truncated`` reads the flag
    ``step_env`` stored; ``default_params`` are the suite env's unless ``params`` are given; the rest per suite."""

    def __init__(self, suite_env: Any, env_id: str, params: Any = None):
        super().__init__()
        self.suite_env = suite_env
        self.env_id = env_id
        self._params = params

    @property
    def default_params(self):
        return self.suite_env.default_params if self._params is None else self._params

    def is_truncated(self, state: SuiteState, params: Any) -> jax.Array:
        return state.truncated

    def is_terminal(self, state: SuiteState, params: Any) -> jax.Array:  # gymnax's legacy helper: not used here
        raise NotImplementedError(f"{self.name}: termination is reported by step_env")


def split_done(done: jax.Array, time_limit: jax.Array, natural: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(terminated, truncated) of a step whose suite reports ``done`` = natural end OR time limit: a natural end
    (``natural``) wins when both happen on one step; truncated only when the time limit alone ended it."""
    done, time_limit, natural = (jnp.asarray(x, jnp.bool_) for x in (done, time_limit, natural))
    truncated = done & time_limit & ~natural
    return done & ~truncated, truncated
