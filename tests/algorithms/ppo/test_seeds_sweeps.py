"""Seeds and hyperparameter sweeps are vmaps: the batched program must equal the separate runs it stands for."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.algorithms.base import hyperparameters
from shm_jax.build import build
from shm_jax.config import with_overrides
from shm_jax.presets import from_preset
from shm_jax.training.batched import split_seed_keys, sweep_grid
from tests.helpers import assert_trees_close

CONFIG = from_preset(
    "default",
    env_id="probe:Recall",
    env_overrides={"delay": 2},
    memory="gru",
    memory_kwargs={"hidden_size": 8},
    time_encoding=False,
    feature_size=8,
    pre_size=8,
    post_size=8,
    head_hidden_size=8,
    num_envs=4,
    num_steps=8,
    total_timesteps=64,
    num_minibatches=2,
    update_epochs=2,
    lr=1e-2,
    seed=3,
    num_seeds=2,
    sweep=(("lr", (1e-2, 3e-3)),),
)


def _close(a, b):
    if isinstance(a, dict) and isinstance(b, dict):  # the program's metrics add "active" (every run trained)
        assert np.all(a.pop("active", True))
    assert_trees_close(a, b, rtol=1e-5, atol=1e-6)


def _differ(a, b):
    return any(not np.allclose(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def single():
    built = build(CONFIG)
    return built, jax.jit(built.algorithm.train)


def test_hparam_grid_and_seed_keys():
    config = from_preset("default", sweep=(("lr", (1e-3, 2e-3)), ("gamma", (0.9, 0.99, 0.999))), ent_coef=0.02)
    grid, labels = sweep_grid(hyperparameters(config.ppo), config.run.sweep)
    assert len(labels) == 6 and labels[1] == {"lr": 1e-3, "gamma": 0.99}
    np.testing.assert_allclose(grid.lr, [1e-3] * 3 + [2e-3] * 3)
    np.testing.assert_allclose(grid.gamma, [0.9, 0.99, 0.999] * 2)
    np.testing.assert_allclose(grid.ent_coef, 0.02)
    no_sweep, labels = sweep_grid(hyperparameters(from_preset("default").ppo), ())
    assert labels == [{}] and no_sweep.lr.shape == (1,)
    keys = split_seed_keys(CONFIG.run.seed, CONFIG.run.num_seeds)
    assert keys.shape[0] == 2 and not np.array_equal(keys[0], keys[1])


@pytest.mark.slow
def test_same_seed_same_result_different_seed_different(single):
    built, train = single
    k0, k1 = split_seed_keys(CONFIG.run.seed, 2)
    a, b, c = train(k0, built.hyperparameters), train(k0, built.hyperparameters), train(k1, built.hyperparameters)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert _differ(a[0].params, c[0].params)


def test_vmapped_seeds_and_lr_sweep_equal_separate_runs(single):
    """The program the host loop runs (BatchedProgram: init, then compiled chunks) == separate train() calls."""
    built, train = single
    program = built.program()
    states, metrics = program.run_chunk(program.init(), program.num_updates)
    assert metrics["total_loss"].shape == (2, 2, 2)  # [grid, seeds, updates]
    for g, label in enumerate(program.settings):
        hp = built.hyperparameters.replace(lr=jnp.float32(label["lr"]))
        for s in range(CONFIG.run.num_seeds):
            state, m = train(program.keys[s], hp)
            _close(jax.tree.map(lambda x: x[g, s], states), state)
            _close(jax.tree.map(lambda x: x[g, s], metrics), m)
    # Different learning rates give different parameters from the same seed.
    assert _differ(jax.tree.map(lambda x: x[0, 0], states.params), jax.tree.map(lambda x: x[1, 0], states.params))


@pytest.mark.slow
def test_batched_chunks_over_seeds_equal_separate_whole_runs(single):
    """init + two chunks of one update, vmapped over 3 seeds == train() of each seed alone."""
    built, train = single
    program = build(with_overrides(CONFIG, sweep=(), num_seeds=3)).program()
    states = program.init()
    states, m1 = program.run_chunk(states, 1)
    states, m2 = program.run_chunk(states, 1)
    assert m1["episode_count"].shape == (1, 3, 1) and states.update.shape == (1, 3)
    assert program.num_updates == 2 and np.all(np.asarray(states.update) == 2)
    for s in range(3):
        state, metrics = train(program.keys[s], built.hyperparameters)
        _close(jax.tree.map(lambda x: x[0, s], states), state)
        _close(jax.tree.map(lambda x, y: np.concatenate([x[0, s], y[0, s]]), m1, m2), metrics)


def test_vmapped_init_equals_the_per_run_init(single):
    """``init_all`` (what notebooks compose) builds the same state as the per-run ``init`` the host loop uses."""
    built, _ = single
    program = built.program()
    _close(jax.jit(program.init_all)(program.keys), program.init())
