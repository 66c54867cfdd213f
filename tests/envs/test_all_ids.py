"""Every registered id (``envs.list_ids()``, so new environments are covered as they land):

- raw env: ``reset_env`` and ``step_env`` return identical observation/state structures, shapes and dtypes
  (checked abstractly with ``jax.eval_shape``: no compilation), reward float32[], terminated bool[],
  ``is_truncated`` bool[], ``info["success"]`` a bool scalar where present;
- one compiled program per group of environment classes (8; the quick tier's five representatives are one group), per
  class one id (its first registered; the class's other ids differ only in parameters, and their family's tests step
  every one of them: POPGym's against numpy popgym, the credit and meta tasks at each length and task split) with 1024
  envs under jit + vmap, reset and a few gymnax ``step``s (auto-reset) of ``envs.make(id, flatten=False)`` (the task's
  previous-action default + episode stats): every observation (reset, step, ``final_observation``) lies in the
  observation space, every sampled action in the action space, the flattened observation is float32[D] inside
  ``envs.make(id)``'s Box, and reset/step/final observations agree in shape and dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax import envs
from shm_jax.envs.wrappers import flat_size, flatten_value, space_contains

NUM_ENVS = 1024
NUM_STEPS = 3


def raw_env(env_id):
    spec = envs.resolve(env_id)
    env = spec.factory(**spec.kwargs)
    return env, env.default_params


def shape_dtypes(tree):
    return jax.tree.map(lambda x: (tuple(x.shape), jnp.dtype(x.dtype)), tree)


@pytest.mark.parametrize("env_id", envs.list_ids())
def test_reset_and_step_agree_abstractly(env_id):
    env, params = raw_env(env_id)
    key = jax.random.key(0)
    obs_r, state_r = jax.eval_shape(env.reset_env, key, params)
    action = jax.eval_shape(env.action_space(params).sample, key)
    obs_s, state_s, reward, terminated, info = jax.eval_shape(env.step_env, key, state_r, action, params)
    truncated = jax.eval_shape(env.is_truncated, state_s, params)

    assert jax.tree.structure(obs_r) == jax.tree.structure(obs_s)
    assert shape_dtypes(obs_r) == shape_dtypes(obs_s)
    assert jax.tree.structure(state_r) == jax.tree.structure(state_s)
    assert shape_dtypes(state_r) == shape_dtypes(state_s)
    assert (reward.shape, reward.dtype) == ((), jnp.float32)
    assert (terminated.shape, terminated.dtype) == ((), jnp.bool_)
    assert (truncated.shape, truncated.dtype) == ((), jnp.bool_)
    assert isinstance(info, dict)
    if "success" in info:
        assert (info["success"].shape, info["success"].dtype) == ((), jnp.bool_)
    for leaf in jax.tree.leaves(obs_r):
        assert leaf.dtype in (jnp.int32, jnp.uint8, jnp.float32, jnp.bool_), (env_id, leaf.dtype)


# Every id's contract is checked abstractly above in the quick tier; rolling out runs five representatives there.
ROLLOUT_QUICK = (
    "RepeatPreviousEasy",
    "LabyrinthEscapeEasy",
    "VisualMatch-Short",
    "PointRobot-10-190",
    "probe:ContinuousTarget",
)
# The other classes roll out in groups, one compiled program per group: XLA's fixed cost per program is a good part
# of compiling one small environment, and the suite is compile-bound.
GROUP_SIZE = 8


def env_class(env_id: str):
    return envs.resolve(env_id).factory


def rollout_ids() -> list[str]:
    """One id per environment class not among the quick tier's representatives (the first registered)."""
    seen = {env_class(env_id) for env_id in ROLLOUT_QUICK}
    ids = []
    for env_id in envs.list_ids():
        if env_class(env_id) not in seen:
            seen.add(env_class(env_id))
            ids.append(env_id)
    return ids


def rollout_groups() -> list:
    rest = rollout_ids()
    groups = [tuple(rest[i : i + GROUP_SIZE]) for i in range(0, len(rest), GROUP_SIZE)]
    return [pytest.param(ROLLOUT_QUICK, id="quick")] + [
        pytest.param(group, id=f"{group[0]}..{group[-1]}", marks=pytest.mark.slow) for group in groups
    ]


def _rollout(env_id):
    """(the rollout of one key, its checks after the run) for ``env_id``: reset, ``NUM_STEPS`` gymnax steps."""
    made, params = envs.make(env_id, flatten=False)  # task's prev-action default + episode stats
    obs_space, action_space = made.observation_space(params), made.action_space(params)
    flat_space = envs.make(env_id)[0].observation_space(params)
    assert isinstance(flat_space.shape, tuple) and len(flat_space.shape) == 1, env_id
    assert flat_space.shape == (flat_size(obs_space),), env_id
    raw = made.unwrapped
    assert raw.action_space(params).__class__ is action_space.__class__, env_id

    def run(key):
        key_reset, key_steps = jax.random.split(key)
        obs, state = made.reset(key_reset, params)
        ok = jnp.stack([space_contains(obs_space, obs), space_contains(flat_space, flatten_value(obs_space, obs))])

        def body(state, key):
            key_a, key_s = jax.random.split(key)
            action = action_space.sample(key_a)
            obs, state, reward, terminated, truncated, info = made.step(key_s, state, action, params)
            checks = jnp.stack(
                [
                    space_contains(action_space, action),
                    space_contains(obs_space, obs),
                    space_contains(obs_space, info["final_observation"]),
                    space_contains(flat_space, flatten_value(obs_space, obs)),
                ]
            )
            return state, (checks, (obs, reward, terminated, truncated, info))

        _, (checks, outputs) = jax.lax.scan(body, state, jax.random.split(key_steps, NUM_STEPS))
        return obs, ok, checks, outputs

    return run


def _check(env_id, obs, ok, checks, step_obs, reward, terminated, truncated, info):
    assert np.asarray(ok).all(), f"{env_id}: reset observation outside its space"
    names = ["sampled action", "step observation", "final_observation", "flattened observation"]
    for i, name in enumerate(names):
        assert np.asarray(checks[..., i]).all(), f"{env_id}: {name} outside its space"
    # Shapes/dtypes: reset == step == final_observation.
    first = lambda tree: jax.tree.map(lambda x: x[:, 0], tree)  # noqa: E731
    assert shape_dtypes(obs) == shape_dtypes(first(step_obs)) == shape_dtypes(first(info["final_observation"])), env_id
    assert reward.shape == (NUM_ENVS, NUM_STEPS) and reward.dtype == jnp.float32, env_id
    assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_, env_id
    assert np.isfinite(np.asarray(reward)).all(), env_id
    for key in ("episode_return", "episode_length", "episode_done", "terminated", "truncated", "final_observation"):
        assert key in info, f"{env_id}: info lacks {key}"


@pytest.mark.parametrize("env_ids", rollout_groups())
def test_jit_vmap_rollout_in_spaces(env_ids):
    runs = [jax.vmap(_rollout(env_id)) for env_id in env_ids]
    keys = jax.random.split(jax.random.key(1), NUM_ENVS)
    # Optimisation level 0 halves XLA's compile time; these programs run for milliseconds.
    run_all = jax.jit(lambda keys: [run(keys) for run in runs], compiler_options={"xla_backend_optimization_level": 0})
    for env_id, (obs, ok, checks, (step_obs, reward, terminated, truncated, info)) in zip(env_ids, run_all(keys)):
        _check(env_id, obs, ok, checks, step_obs, reward, terminated, truncated, info)


def test_rollout_groups_cover_every_environment_class_once():
    grouped = [env_id for param in rollout_groups() for env_id in param.values[0]]
    assert sorted({env_class(env_id) for env_id in grouped}, key=repr) == sorted(
        {env_class(env_id) for env_id in envs.list_ids()}, key=repr
    )
    assert len({env_class(env_id) for env_id in grouped}) == len(grouped)  # one id per class
