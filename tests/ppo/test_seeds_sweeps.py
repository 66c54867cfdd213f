"""Seeds and hyperparameter sweeps are vmaps: they must equal the separate runs they stand for."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax import ppo
from shm_jax.config import TrainConfig

CONFIG = TrainConfig(
    env_id="probe:Recall", env_overrides={"delay": 2}, memory="gru", memory_kwargs={"hidden_size": 8},
    feature_size=8, pre_size=8, post_size=8, head_hidden_size=8, num_envs=4, num_steps=8, total_timesteps=64,
    num_minibatches=2, update_epochs=2, lr=1e-2, seed=3, num_seeds=2, sweep=(("lr", (1e-2, 3e-3)),))


def _close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), a, b)


def _differ(a, b):
    return any(not np.allclose(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def single():
    trainer = ppo.make_train(CONFIG)
    return trainer, jax.jit(trainer.train)


def test_hparam_grid_and_seed_keys():
    config = TrainConfig(sweep=(("lr", (1e-3, 2e-3)), ("gamma", (0.9, 0.99, 0.999))), ent_coef=0.02)
    hparams, labels = ppo.hparam_grid(config)
    assert len(labels) == 6 and labels[1] == {"lr": 1e-3, "gamma": 0.99}
    np.testing.assert_allclose(hparams.lr, [1e-3] * 3 + [2e-3] * 3)
    np.testing.assert_allclose(hparams.gamma, [0.9, 0.99, 0.999] * 2)
    np.testing.assert_allclose(hparams.ent_coef, 0.02)
    no_sweep, labels = ppo.hparam_grid(TrainConfig())
    assert labels == [{}] and no_sweep.lr.shape == (1,)
    keys = ppo.seed_keys(CONFIG)
    assert keys.shape[0] == 2 and not np.array_equal(keys[0], keys[1])


def test_same_seed_same_result_different_seed_different(single):
    trainer, train = single
    hp = ppo.hparams_from_config(CONFIG)
    k0, k1 = ppo.seed_keys(CONFIG)
    a, b, c = train(k0, hp), train(k0, hp), train(k1, hp)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert _differ(a[0].params, c[0].params)


def test_vmapped_seeds_and_lr_sweep_equal_separate_runs(single):
    trainer, train = single
    batched = ppo.make_batched_train(CONFIG)
    states, metrics = jax.jit(batched.train)(batched.rngs, batched.hparams)
    assert metrics["total_loss"].shape == (2, 2, 2)  # [grid, seeds, updates]
    for g, label in enumerate(batched.labels):
        hp = ppo.hparams_from_config(CONFIG).replace(lr=jnp.float32(label["lr"]))
        for s in range(CONFIG.num_seeds):
            state, m = train(batched.rngs[s], hp)
            _close(jax.tree.map(lambda x: x[g, s], states.params), state.params)
            _close(jax.tree.map(lambda x: x[g, s], metrics), m)
    # Different learning rates give different parameters from the same seed.
    assert _differ(jax.tree.map(lambda x: x[0, 0], states.params), jax.tree.map(lambda x: x[1, 0], states.params))


def test_batched_chunks_over_seeds_equal_separate_whole_runs(single):
    """init + two chunks of one update, vmapped over 3 seeds == train() of each seed alone."""
    trainer, train = single
    config = TrainConfig(**{**CONFIG.__dict__, "sweep": (), "num_seeds": 3})
    batched = ppo.make_batched_train(config)
    chunk = jax.jit(batched.train_chunk, static_argnums=2)
    states = jax.jit(batched.init)(batched.rngs, batched.hparams)
    states, m1 = chunk(states, batched.hparams, 1)
    states, m2 = chunk(states, batched.hparams, 1)
    assert m1["episode_count"].shape == (1, 3, 1) and states.update.shape == (1, 3)
    assert trainer.num_updates == 2 and np.all(np.asarray(states.update) == 2)
    hp = ppo.hparams_from_config(config)
    for s in range(3):
        state, metrics = train(batched.rngs[s], hp)
        _close(jax.tree.map(lambda x: x[0, s], states), state)
        _close(jax.tree.map(lambda x, y: jnp.concatenate([x[0, s], y[0, s]]), m1, m2), metrics)
