"""Rollouts keep pixel-only observations as uint8 (exact, a quarter of the bytes) and learn as from float32."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.build import build
from shm_jax.presets import from_preset
from tests.helpers import TINY_AGENT, assert_trees_equal

SMALL = dict(TINY_AGENT, memory="gru", memory_kwargs={"hidden_size": 4}, num_envs=2, num_steps=4, num_minibatches=1)


@pytest.mark.slow  # two programs compile per learner
@pytest.mark.parametrize("algo", ["ppo", "pqn"])
def test_pixel_rollouts_are_uint8_and_the_update_is_unchanged(algo):
    config = from_preset("default", algo=algo, env_id="VisualMatch-Short", total_timesteps=8, update_epochs=1, **SMALL)
    algorithm = build(config).algorithm
    assert algorithm.obs_dtype == jnp.uint8
    as_float = dataclasses.replace(algorithm, obs_dtype=jnp.float32)
    state = jax.jit(algorithm.init)(jax.random.PRNGKey(0))
    args = (state,) if algo == "ppo" else (state, jnp.float32(0.5))
    # The stored dtypes from the traced rollouts (nothing compiles); the update below runs each rollout for real.
    rollout = jax.eval_shape(algorithm.rollout, *args)[1]
    rollout_float = jax.eval_shape(as_float.rollout, *args)[1]
    assert rollout.trajectory.obs.dtype == jnp.uint8 and rollout_float.trajectory.obs.dtype == jnp.float32
    # Storing uint8 is exact: a learner fed the uint8 rollout ends with bit-identical parameters (a rollout, then
    # the epochs) to one fed float32, so any pixel value the storage changed would show here.
    hp = build(config).hyperparameters
    new, metrics = jax.jit(algorithm.update)(state, hp)
    new_float, metrics_float = jax.jit(as_float.update)(state, hp)
    assert_trees_equal(new.params, new_float.params)
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params)))
    smaller = algorithm.memory_estimate(hp, 1).rollout
    assert smaller < as_float.memory_estimate(hp, 1).rollout


@pytest.mark.parametrize("algo", ["ppo", "pqn", "sacd"])
def test_pixel_only_observations_are_stored_as_uint8_and_vectors_as_float32(algo):
    options = dict(SMALL, algo=algo, total_timesteps=100_000)
    if algo == "sacd":
        options = {k: v for k, v in options.items() if k not in ("num_steps", "num_minibatches")}
    assert build(from_preset("default", env_id="VisualMatch-Short", **options)).algorithm.obs_dtype == jnp.uint8
    assert build(from_preset("default", env_id="RepeatFirstEasy", **options)).algorithm.obs_dtype == jnp.float32
    with_action = from_preset("default", env_id="VisualMatch-Short", prev_action=True, **options)
    assert build(with_action).algorithm.obs_dtype == jnp.float32  # the appended previous action is not a pixel
