"""envs.make and the wrappers: previous action + start flag inside the auto-reset (every episode), flatten layout,
episode statistics at episode ends, overrides, clipping, and the opt-in checkify mode."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from gymnax.environments import environment, spaces

from shm_jax import envs
from shm_jax.envs import wrappers
from shm_jax.envs.spaces import MultiDiscrete

FAST = {"compiler_options": {"xla_backend_optimization_level": 0}}  # these programs run for milliseconds


def roll(env, params, actions, seed=0):
    """Reset, then gymnax ``step`` (auto-reset) through ``actions`` [T, ...]. Returns (reset obs, per-step outputs)."""

    def run(key):
        key_reset, key_steps = jax.random.split(key)
        obs, state = env.reset(key_reset, params)

        def body(state, xs):
            key, action = xs
            obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
            return state, (obs, reward, terminated, truncated, info)

        keys = jax.random.split(key_steps, len(actions))
        return obs, jax.lax.scan(body, state, (keys, actions))[1]

    return jax.device_get(jax.jit(run, **FAST)(jax.random.key(seed)))


# ------------------------------------------------------------------ previous action + start flag, episode stats


def test_every_episode_starts_with_flag_and_null_action_and_stats_are_exact():
    """MultiArmedBandit cut to 3-step episodes (time limit) and RepeatPrevious (51 steps, terminated)."""
    cases = [("MultiArmedBanditEasy", dict(max_steps_in_episode=3), 10, 3), ("RepeatPreviousEasy", {}, 110, 51)]
    for env_id, overrides, steps, length in cases:
        env, params = envs.make(env_id, prev_action=True, flatten=False, **overrides)
        n = env.action_space(params).n
        actions = jnp.asarray(np.random.default_rng(0).integers(0, n, steps), jnp.int32)
        obs0, (obs, reward, terminated, truncated, info) = roll(env, params, actions)
        done = terminated | truncated

        # Episode ends exactly every `length` steps; the observation after each end is a fresh episode's first.
        np.testing.assert_array_equal(np.flatnonzero(done), np.arange(length - 1, steps, length))
        starts = np.concatenate([[True], done[:-1]])  # obs index t+1 is a first observation iff step t ended one
        assert obs0["start"] == 1.0 and not obs0["prev_action"].any()
        np.testing.assert_array_equal(obs["start"], done.astype(np.float32))  # obs after step t
        for t in range(steps):
            expected = np.zeros(n) if done[t] else np.eye(n)[actions[t]]
            np.testing.assert_array_equal(obs["prev_action"][t], expected, err_msg=f"{env_id} step {t}")
            # final_observation is the pre-reset observation: flag 0 and the real action, even on the last step.
            np.testing.assert_array_equal(info["final_observation"]["prev_action"][t], np.eye(n)[actions[t]])
            assert info["final_observation"]["start"][t] == 0.0
        assert starts.sum() == done.sum() + 1 - done[-1]

        # Episode stats: at each end, the sum of that episode's rewards and its length; between ends, held.
        np.testing.assert_array_equal(info["episode_done"], done)
        ends = np.flatnonzero(done)
        for i, end in enumerate(ends):
            begin = ends[i - 1] + 1 if i else 0
            assert info["episode_return"][end] == pytest.approx(reward[begin : end + 1].sum(), abs=1e-6)
            assert info["episode_length"][end] == end - begin + 1 == length
        assert info["episode_length"][0] == 0 and info["episode_return"][0] == 0.0  # before the first end
        assert info["episode_return"].dtype == np.float32 and info["episode_length"].dtype == np.int32


def test_default_prev_action_follows_the_task():
    """make(prev_action=None) wraps exactly the tasks registered with needs_prev_action (obs gains A + 1 dims)."""
    for env_id, extra in (("MultiArmedBanditEasy", 10 + 1), ("ConcentrationEasy", 52 + 1), ("RepeatPreviousEasy", 0)):
        base = envs.make(env_id, prev_action=False)[0].observation_space(None).shape[0]
        default = envs.make(env_id)[0].observation_space(None).shape[0]
        assert default - base == extra, env_id
        assert envs.resolve(env_id).needs_prev_action == (extra > 0)


# ------------------------------------------------------------------------------------------------ flatten


def test_flatten_layout_matches_one_hot_of_the_structured_observation():
    env_id = "CountRecallHard"  # obs (value, query) in 13 ranks each, 17 actions
    flat_env, params = envs.make(env_id, prev_action=True)
    dict_env, _ = envs.make(env_id, prev_action=True, flatten=False)
    assert flat_env.observation_space(params).shape == (13 + 13 + 17 + 1,)
    actions = jnp.arange(6, dtype=jnp.int32) * 3
    flat0, (flat, *_) = roll(flat_env, params, actions)
    struct0, (structured, *_) = roll(dict_env, params, actions)
    assert flat.dtype == np.float32 and flat.shape == (6, 44)
    for f, s in [(flat0, struct0)] + [(flat[t], jax.tree.map(lambda x: x[t], structured)) for t in range(6)]:
        value, query = s["obs"]
        expected = np.concatenate([np.eye(13)[value], np.eye(13)[query], s["prev_action"], [s["start"]]])
        np.testing.assert_array_equal(f, expected)
        assert f[:13].sum() == 1 and f[13:26].sum() == 1


@struct.dataclass
class _ToyState(environment.EnvState):
    last: jax.Array


class _ToyImageEnv(environment.Environment):
    """uint8[2, 3] image observation (the last action's pair written into pixel values), MultiDiscrete([3, 4])
    actions, Box((2,)) and Discrete(5) parts: exercises every flatten branch."""

    @property
    def default_params(self):
        return environment.EnvParams(max_steps_in_episode=4)

    def _obs(self, last):
        image = jnp.full((2, 3), 200, jnp.uint8).at[0, 0].set(last[0].astype(jnp.uint8))
        return {"image": image, "pos": last.astype(jnp.float32) - 1.0, "count": last[1]}

    def reset_env(self, key, params):
        last = jnp.zeros(2, jnp.int32)
        return self._obs(last), _ToyState(time=jnp.int32(0), last=last)

    def step_env(self, key, state, action, params):
        last = jnp.clip(action, 0, jnp.array([2, 3]))
        return self._obs(last), state.replace(time=state.time + 1, last=last), jnp.float32(1.0), jnp.array(False), {}

    def action_space(self, params=None):
        return MultiDiscrete([3, 4])

    def observation_space(self, params=None):
        return spaces.Dict(
            {
                "image": spaces.Box(0, 255, (2, 3), jnp.uint8),
                "pos": spaces.Box(-1.0, 2.0, (2,)),
                "count": spaces.Discrete(5),
            }
        )


def test_flatten_keeps_image_values_and_encodes_multidiscrete_prev_action():
    env = wrappers.FlattenWrapper(wrappers.PrevActionWrapper(_ToyImageEnv()))
    params = env.default_params
    space = env.observation_space(params)
    assert space.shape == (6 + 2 + 5 + (3 + 4) + 1,)
    obs0, state = env.reset(jax.random.key(0), params)
    obs1, *_ = env.step(jax.random.key(1), state, jnp.array([2, 3]), params)
    assert obs0.dtype == jnp.float32
    np.testing.assert_array_equal(obs0[:6], [0, 200, 200, 200, 200, 200])  # 0..255 values, not rescaled
    np.testing.assert_array_equal(obs0[-8:], [0] * 7 + [1])  # null pair, start flag
    np.testing.assert_array_equal(obs1[:6], [2, 200, 200, 200, 200, 200])
    np.testing.assert_array_equal(obs1[6:8], [1.0, 2.0])
    np.testing.assert_array_equal(obs1[8:13], np.eye(5)[3])
    np.testing.assert_array_equal(obs1[13:], [0, 0, 1] + [0, 0, 0, 1] + [0])
    assert bool(wrappers.space_contains(space, obs1))
    low, high = space.low, space.high
    np.testing.assert_array_equal(high[:6], 255.0)
    np.testing.assert_array_equal((low[6:8], high[6:8]), ([-1.0, -1.0], [2.0, 2.0]))


# ---------------------------------------------------------------------------------------- make and overrides


def test_make_routes_overrides_to_params_and_constructor():
    env, params = envs.make("MultiarmedBanditEasy", max_steps_in_episode=5, num_bandits=3)
    assert params.max_steps_in_episode == 5 and env.action_space(params).n == 3
    assert env.observation_space(params).shape == (2 + 3 + 1,)
    _, (_, reward, _, truncated, info) = roll(env, params, jnp.zeros(12, jnp.int32))
    np.testing.assert_array_equal(np.flatnonzero(truncated), [4, 9])
    np.testing.assert_allclose(np.abs(reward), 1 / 5)
    env, params = envs.make("RepeatPreviousMedium", num_decks=1)  # constructor override keeps the level's k
    assert env.unwrapped.num_cards == 52 and env.unwrapped.k == 32


def test_bad_override_and_unknown_id_are_one_line_value_errors():
    with pytest.raises(ValueError) as err:
        envs.make("AutoencodeEasy", num_deck=2)
    message = str(err.value)
    assert "\n" not in message and "num_deck" in message and "num_decks" in message
    with pytest.raises(ValueError, match="AutoencodeEasy"):
        envs.make("AutoEncodeEasy")


# ------------------------------------------------------------------------------------- clipping and checkify


def test_out_of_range_actions_are_clipped():
    for env_id, bad, clipped in (("RepeatFirstEasy", 7, 3), ("RepeatFirstEasy", -2, 0), ("ConcentrationEasy", 99, 51)):
        env, params = envs.make(env_id, flatten=False, log=False, prev_action=True)
        _, state = env.reset(jax.random.key(0), params)
        out_bad = env.step_env(jax.random.key(1), state, jnp.int32(bad), params)
        out_ok = env.step_env(jax.random.key(1), state, jnp.int32(clipped), params)
        for a, b in zip(jax.tree.leaves(out_bad), jax.tree.leaves(out_ok)):
            np.testing.assert_array_equal(a, b)


def test_checked_mode_raises_on_out_of_range_actions():
    env, params = envs.make("HigherLowerEasy", checked=True)
    obs, state = env.reset(jax.random.key(0), params)
    step = jax.jit(lambda s, a: env.step(jax.random.key(1), s, a, params))
    out = wrappers.run_checked(step, state, jnp.int32(1))  # in range: runs
    assert out[0].shape == obs.shape
    with pytest.raises(Exception, match=r"HigherLower: action 2 is outside the action space Discrete\(2"):
        wrappers.run_checked(step, state, jnp.int32(2))
    batched = jax.vmap(lambda s, a: env.step(jax.random.key(1), s, a, params), in_axes=(None, 0))
    with pytest.raises(Exception, match="outside the action space"):
        wrappers.run_checked(batched, state, jnp.array([0, 1, -1], jnp.int32))
