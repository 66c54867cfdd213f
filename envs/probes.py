"""Probe environments that test a PPO implementation one property at a time (bsuite-style).

Each probe is a gymnax 1.0 ``Environment`` following the project's environment contract, with an
answer known in closed form:

- ``ConstantReward``: reward 1 on every step, constant observation. With ``truncate=True`` the
  episode is cut by a time limit, so correct truncation bootstrapping gives V = 1 / (1 - gamma) at
  every step; with ``truncate=False`` it terminates after ``episode_length`` steps.
- ``MatchObservation``: one-step episodes; the observation is a one-hot symbol and the reward is 1
  when the action equals it (optimal return 1, random 1 / num_symbols).
- ``Recall``: a symbol is shown at the first step, then ``delay`` blank steps, the last of which
  carries a query flag; the reward is 1 when the action at the query step equals the symbol.
  Needs memory: a memoryless policy gets 1 / num_symbols on average.
- ``ContinuousTarget``: one-step episodes with a Box(-1, 1) action; the observation is a target in
  [-1, 1] and the reward is 1 - |action - target| (optimal 1; a policy ignoring the target gets <= 0.5).

Registered as ``probe:<ClassName>`` (family "probe"); ``envs.make("probe:Recall", delay=2)`` builds one with
the default wrappers, like every other id.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from shm_jax.envs.registry import register


@struct.dataclass
class ProbeState:
    """time: steps taken in this episode; symbol: the hidden symbol (int) or target (float); ConstantReward ignores
    it."""

    time: jax.Array
    symbol: jax.Array


@struct.dataclass
class ProbeParams:
    """No tunable parameter: sizes are constructor arguments (they fix shapes)."""


class _Probe(environment.Environment):
    """Shared plumbing: fixed params, a Discrete action space, float32 observations."""

    num_symbols: int = 2

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams()

    @property
    def num_actions(self) -> int:
        return self.num_symbols

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(self.num_symbols)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.obs_size,), jnp.float32)

    def is_truncated(self, state: ProbeState, params) -> jax.Array:
        return jnp.asarray(False)


class ConstantReward(_Probe):
    """Reward 1 every step; obs float32[1] = 1 (or float32[2] = [1, t] with ``observe_time``).

    Episodes last ``episode_length`` steps, ending by truncation (``truncate=True``) or termination.
    Actions (Discrete(2)) are ignored, so out-of-range actions are harmless.
    """

    def __init__(self, episode_length: int = 4, truncate: bool = True, observe_time: bool = False):
        super().__init__()
        if episode_length <= 0:
            raise ValueError(f"ConstantReward: episode_length must be positive, got {episode_length}")
        self.episode_length = int(episode_length)
        self.truncate = bool(truncate)
        self.observe_time = bool(observe_time)
        self.obs_size = 2 if observe_time else 1

    def _obs(self, time: jax.Array) -> jax.Array:
        if self.observe_time:
            return jnp.stack([jnp.float32(1.0), time.astype(jnp.float32)])
        return jnp.ones((1,), jnp.float32)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(0.0, float(self.episode_length), (self.obs_size,), jnp.float32)

    def reset_env(self, key, params):
        state = ProbeState(time=jnp.int32(0), symbol=jnp.int32(0))
        return self._obs(state.time), state

    def step_env(self, key, state, action, params):
        state = state.replace(time=state.time + 1)
        ended = state.time >= self.episode_length
        terminated = jnp.logical_and(ended, not self.truncate)
        return self._obs(state.time), state, jnp.float32(1.0), terminated, {}

    def is_truncated(self, state, params):
        return jnp.logical_and(state.time >= self.episode_length, self.truncate)


class MatchObservation(_Probe):
    """One-step episodes: obs float32[num_symbols] one-hot of a random symbol; reward 1 if action == symbol.

    Action: Discrete(num_symbols), clipped into range.
    """

    def __init__(self, num_symbols: int = 2):
        super().__init__()
        if num_symbols < 2:
            raise ValueError(f"MatchObservation: num_symbols must be >= 2, got {num_symbols}")
        self.num_symbols = int(num_symbols)
        self.obs_size = self.num_symbols

    def reset_env(self, key, params):
        symbol = jax.random.randint(key, (), 0, self.num_symbols, jnp.int32)
        state = ProbeState(time=jnp.int32(0), symbol=symbol)
        return jax.nn.one_hot(symbol, self.num_symbols, dtype=jnp.float32), state

    def step_env(self, key, state, action, params):
        action = jnp.clip(action, 0, self.num_symbols - 1)
        reward = (action == state.symbol).astype(jnp.float32)
        state = state.replace(time=state.time + 1)
        obs = jnp.zeros((self.num_symbols,), jnp.float32)
        return obs, state, reward, jnp.asarray(True), {"success": reward > 0}


class Recall(_Probe):
    """Cue at t = 0, ``delay`` steps later a query; reward 1 if the action at the query equals the cue.

    obs float32[num_symbols + 1]: [one-hot cue (t = 0 only), query flag (t = delay only)].
    Episodes last delay + 1 steps and terminate. Action: Discrete(num_symbols), clipped into range.
    """

    def __init__(self, delay: int = 3, num_symbols: int = 2):
        super().__init__()
        if delay < 1:
            raise ValueError(f"Recall: delay must be >= 1, got {delay}")
        if num_symbols < 2:
            raise ValueError(f"Recall: num_symbols must be >= 2, got {num_symbols}")
        self.delay = int(delay)
        self.num_symbols = int(num_symbols)
        self.obs_size = self.num_symbols + 1

    def _obs(self, state: ProbeState) -> jax.Array:
        cue = jax.nn.one_hot(state.symbol, self.num_symbols, dtype=jnp.float32) * (state.time == 0)
        query = (state.time == self.delay).astype(jnp.float32)[None]
        return jnp.concatenate([cue, query])

    def reset_env(self, key, params):
        symbol = jax.random.randint(key, (), 0, self.num_symbols, jnp.int32)
        state = ProbeState(time=jnp.int32(0), symbol=symbol)
        return self._obs(state), state

    def step_env(self, key, state, action, params):
        action = jnp.clip(action, 0, self.num_symbols - 1)
        at_query = state.time == self.delay
        correct = jnp.logical_and(at_query, action == state.symbol)
        reward = correct.astype(jnp.float32)
        state = state.replace(time=state.time + 1)
        return self._obs(state), state, reward, at_query, {"success": correct}


class ContinuousTarget(_Probe):
    """One-step episodes: obs float32[1] = target ~ U(-1, 1); reward 1 - |a - target| for a in Box(-1, 1, (1,)).

    Out-of-range actions are clipped to [-1, 1].
    """

    def __init__(self):
        super().__init__()
        self.obs_size = 1

    def action_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    @property
    def num_actions(self) -> int:
        return 1

    def reset_env(self, key, params):
        target = jax.random.uniform(key, (), jnp.float32, -1.0, 1.0)
        state = ProbeState(time=jnp.int32(0), symbol=target)
        return target[None], state

    def step_env(self, key, state, action, params):
        action = jnp.clip(jnp.asarray(action, jnp.float32).reshape(-1)[0], -1.0, 1.0)
        reward = 1.0 - jnp.abs(action - state.symbol)
        state = state.replace(time=state.time + 1)
        return jnp.zeros((1,), jnp.float32), state, reward, jnp.asarray(True), {}


PROBES = {cls.__name__: cls for cls in (ConstantReward, MatchObservation, Recall, ContinuousTarget)}

for _name, _cls in PROBES.items():
    register(f"probe:{_name}", _cls, family="probe")
