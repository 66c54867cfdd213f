"""envs.adapters' outside suites (``arcade:``, ``craftax:``, ``xminigrid:``) through ``shm_jax.envs.make``: spaces
(uint8 frames stay uint8), reset, step, truncation at the horizon split from termination, shm-jax's auto-reset, and
a random policy's steps equal to the suite's own env stepped directly with the same keys; gymnax 1.0.1 intact after
the suites' installs (popgym-arcade's ``stable-gymnax`` would replace it). Training runs: test_suite_training.py."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax import envs
from shm_jax.envs.adapters.suite import SuiteNotInstalled

FAST = {"compiler_options": {"xla_backend_optimization_level": 0}}
BATCH = 2


def test_gymnax_is_intact():
    """gymnax is 1.0.1 with its 1.0 step API (a 6-tuple, truncation separate), and stable-gymnax is absent: its
    top-level ``gymnax`` package (the old API) would silently overwrite gymnax 1.0.1's files."""
    import gymnax
    from gymnax.environments import environment

    assert importlib.metadata.version("gymnax") == "1.0.1"
    # every gymnax file is the one gymnax 1.0.1's wheel installed (its RECORD hash): nothing wrote over it
    changed = []
    for file in importlib.metadata.distribution("gymnax").files:
        if file.hash is not None and file.suffix == ".py":
            digest = base64.urlsafe_b64encode(hashlib.sha256(file.read_binary()).digest()).rstrip(b"=").decode()
            changed += [str(file)] if digest != file.hash.value else []
    assert not changed, f"gymnax 1.0.1's files were overwritten: {changed[:5]}"
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("stable-gymnax")
    assert hasattr(environment.Environment, "is_truncated")
    env, params = gymnax.make("CartPole-v1")
    _, state = env.reset(jax.random.key(0), params)
    out = env.step(jax.random.key(1), state, 0, params)
    assert len(out) == 6 and {"terminated", "truncated", "final_observation"} <= set(out[5])
    assert hasattr(state, "time")


# (id, overrides, raw observation shape and dtype, actions, horizon, module)
SUITES = {
    "arcade": ("arcade:CountRecallEasy", {}, (128, 128, 3), jnp.uint8, 5, 126, "popgym_arcade"),
    "craftax": ("craftax:Craftax-Classic-Symbolic-v1", {"max_timesteps": 24}, (1345,), jnp.float32, 17, 24, "craftax"),
    "xminigrid": ("xminigrid:MiniGrid-MemoryS8", {"max_steps": 16}, (18,), jnp.int32, 6, 16, "xminigrid"),
}


def _suite(name):
    env_id, overrides, shape, dtype, actions, horizon, module = SUITES[name]
    pytest.importorskip(module)
    return env_id, overrides, shape, dtype, actions, horizon


def _direct(raw, params, suite: str):
    """(reset(key), step(key, state, action) -> (obs, state, reward, done)) of the suite's own env, no adapter."""
    inner = raw.suite_env
    if suite == "xminigrid":
        obs = lambda ts: jnp.asarray(ts.observation, jnp.int32).reshape(-1)  # noqa: E731
        reset = lambda key: (obs(ts := inner.reset(params, key)), ts)  # noqa: E731

        def step(key, ts, action):
            ts = inner.step(params, ts, action)
            return obs(ts), ts, ts.reward, ts.last()

        return reset, step

    def step(key, state, action):
        obs, state, reward, done, _ = inner.step_env(key, state, action, params)
        return obs, state, reward, done

    return (lambda key: inner.reset_env(key, params)), step


def _rollouts(env_id, overrides, suite, steps):
    """BATCH envs x ``steps`` random actions through ``envs.make`` (vmapped, shm-jax's auto-reset) and through the
    suite's own env with gymnax's key use (split each step key into step and reset keys; reset where done)."""
    env, params = envs.make(env_id, **overrides)
    raw = env.unwrapped
    space = raw.action_space(params)
    direct_reset, direct_step = _direct(raw, params, suite)

    def run(key):
        key_reset, key_steps = jax.random.split(key)
        reset_keys = jax.random.split(key_reset, BATCH)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)
        d_obs, d_state = jax.vmap(direct_reset)(reset_keys)
        first = (obs, d_obs)

        def body(carry, key):
            state, d_state = carry
            key_action, key_env = jax.random.split(key)
            action = jax.vmap(space.sample)(jax.random.split(key_action, BATCH))
            env_keys = jax.random.split(key_env, BATCH)
            out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(env_keys, state, action, params)

            def direct(k, s, a):
                k_step, k_reset = jax.random.split(k)
                o, s, r, done = direct_step(k_step, s, a)
                o_re, s_re = direct_reset(k_reset)
                pick = lambda x, y: jnp.where(done, x, y)  # noqa: E731
                return jax.tree.map(pick, o_re, o), jax.tree.map(pick, s_re, s), r, done

            d_obs, d_state, d_reward, d_done = jax.vmap(direct)(env_keys, d_state, action)
            return (out[1], d_state), (out, (d_obs, d_reward, d_done))

        _, (out, ref) = jax.lax.scan(body, (state, d_state), jax.random.split(key_steps, steps))
        return first, out, ref

    return env, params, jax.device_get(jax.jit(run, **FAST)(jax.random.key(0)))


@pytest.mark.parametrize("suite", list(SUITES))
def test_spaces_reset_step(suite):
    env_id, overrides, shape, dtype, actions, _ = _suite(suite)
    env, params = envs.make(env_id, **overrides)
    raw = env.unwrapped
    assert raw.action_space(params).n == actions and env.action_space(params).n == actions
    obs_space = raw.observation_space(params)
    assert tuple(obs_space.shape) == shape and jnp.dtype(obs_space.dtype) == jnp.dtype(dtype)
    obs, state = jax.jit(raw.reset, **FAST)(jax.random.key(0), params)
    assert obs.shape == shape and obs.dtype == jnp.dtype(dtype)  # frames stay uint8 until the network
    assert not bool(raw.is_truncated(state, params))
    flat = env.observation_space(params)
    assert flat.shape == (int(np.prod(shape)) if suite != "xminigrid" else 18 * 25 // 2,)


def test_fully_observable_twin_and_errors():
    pytest.importorskip("popgym_arcade")
    partial, _ = envs.make("arcade:CountRecallEasy")
    full, _ = envs.make("arcade:CountRecallEasy-full")
    assert partial.unwrapped.suite_env.partial_obs and not full.unwrapped.suite_env.partial_obs
    assert envs.resolve("arcade:TetrisHard-full").family == "arcade"
    assert envs.make("arcade:NavigatorEasy", obs_size=256)[0].unwrapped.observation_space().shape == (256, 256, 3)
    with pytest.raises(ValueError, match="unknown arcade environment"):
        envs.resolve("arcade:Pong")
    with pytest.raises(ValueError, match="nope"):
        envs.make("arcade:CountRecallEasy", nope=1)
    assert issubclass(SuiteNotInstalled, ValueError) and issubclass(SuiteNotInstalled, ImportError)


# Craftax's and Arcade's comparisons compile their resets (world generation, frame rendering) twice: slow tier;
# XLand-MiniGrid's is the quick tier's representative of the adapter contract.
QUICK = {"xminigrid"}


@pytest.mark.parametrize("suite", [s if s in QUICK else pytest.param(s, marks=pytest.mark.slow) for s in SUITES])
def test_random_policy_matches_the_suite(suite):
    """Same keys, same actions: the adapter's rewards, ends, observations after auto-reset equal the suite's own env;
    truncation only at the horizon, termination never there unless the suite ended the episode itself."""
    env_id, overrides, _, _, _, horizon = _suite(suite)
    steps = horizon + 8 if suite == "arcade" else 3 * horizon
    env, params, (first, out, ref) = _rollouts(env_id, overrides, suite, steps)
    obs, _, reward, terminated, truncated, info = out
    d_obs, d_reward, d_done = ref
    flat = lambda x: np.asarray(x, np.float32).reshape(*np.shape(x)[:2], -1)  # noqa: E731
    if suite == "xminigrid":  # the flatten wrapper one-hots the int codes: compare codes
        space = env.unwrapped.observation_space(params)
        offsets = np.concatenate([[0], np.cumsum(space.nvec)[:-1]])
        codes = lambda o: np.stack([np.argmax(o[..., a : a + n], -1) for a, n in zip(offsets, space.nvec)], -1)  # noqa: E731
        assert np.array_equal(codes(np.asarray(first[0])), np.asarray(first[1]))
        assert np.array_equal(codes(obs), d_obs)
    else:
        # uint8 frames bit for bit; Craftax's float32 features to rounding (the two programs fuse differently)
        np.testing.assert_allclose(np.asarray(first[0]), flat(first[1][None])[0], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(np.asarray(obs), flat(d_obs), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(reward, np.asarray(d_reward, np.float32))
    done = terminated | truncated
    np.testing.assert_array_equal(done, d_done)
    assert done.any(), "no episode ended: the rollout is too short to test auto-reset"
    assert not (terminated & truncated).any()
    lengths = info["episode_length"][info["episode_done"]]
    returns = info["episode_return"][info["episode_done"]]
    assert (lengths <= horizon).all() and (info["episode_length"][truncated] == horizon).all()
    assert truncated.any() or suite == "craftax"  # a random Craftax agent may die first; the others reach the limit
    # the same episodes (length, return) from the suite's own stream
    ref_lengths, ref_returns = [], []
    for b in range(BATCH):
        ends = np.flatnonzero(d_done[:, b])
        starts = np.concatenate([[-1], ends[:-1]])
        ref_lengths += list(ends - starts)
        ref_returns += [float(np.sum(d_reward[s + 1 : e + 1, b])) for s, e in zip(starts, ends)]
    assert sorted(lengths.tolist()) == sorted(ref_lengths)
    np.testing.assert_allclose(sorted(returns.tolist()), sorted(ref_returns), rtol=1e-5, atol=1e-6)
    # the final observation of a finished episode is the suite's last frame, not the reset one
    assert np.shape(info["final_observation"]) == np.shape(obs)


@pytest.mark.parametrize(
    ("env_id", "module"),
    [
        ("arcade:CountRecallEasy", "popgym_arcade"),
        ("craftax:Craftax-Classic-Symbolic-v1", "craftax.craftax_env"),
        ("xminigrid:MiniGrid-MemoryS8", "xminigrid"),
    ],
)
def test_a_missing_suite_names_its_install_line(monkeypatch, env_id, module):
    monkeypatch.setitem(sys.modules, module, None)  # import of it raises ImportError
    with pytest.raises(SuiteNotInstalled, match="install it with: pip install"):
        envs.make(env_id)


@pytest.mark.parametrize(
    ("preset", "env_id"), [("arcade", "arcade:CountRecallEasy"), ("craftax-1m", "craftax:Craftax-Symbolic-v1")]
)
def test_the_suite_presets_build_with_their_published_settings(preset, env_id):
    """The presets that put an SHM row next to a suite's published baseline: they validate and build (nothing runs)."""
    from shm_jax.build import build
    from shm_jax.presets import from_preset

    config = from_preset(preset)
    assert config.env.env_id == env_id and config.algorithm.total_timesteps in (10_000_000, 1_000_000)
    built = build(config)
    assert built.algorithm.num_envs == config.algorithm.num_envs
