"""PQN learns a memory task only with a memory: Recall with a delay, a GRU above the threshold, an MLP at chance."""

import jax
import numpy as np
import pytest

from shm_jax.build import build
from shm_jax.presets import from_preset

pytestmark = [pytest.mark.slow, pytest.mark.optimized]  # learning runs: outside the quick tier, fully optimised compile

TINY = dict(
    time_encoding=False,
    feature_size=32,
    pre_size=32,
    post_size=32,
    head_hidden_size=32,
    num_envs=16,
    num_steps=32,
    num_minibatches=2,
    update_epochs=4,
    lr=3e-3,
    anneal_lr=False,
    gamma=0.9,
    q_lambda=0.9,
    eps_finish=0.02,
    eps_decay=0.25,
)
UPDATES = 16


def _mean_return(memory, memory_kwargs):
    """Mean return over the last 5 of UPDATES updates on Recall(delay 4): chance is 0.5, a perfect agent ~0.99."""
    config = from_preset(
        "default",
        algo="pqn",
        env_id="probe:Recall",
        env_overrides={"delay": 4},
        memory=memory,
        memory_kwargs=memory_kwargs,
        total_timesteps=TINY["num_envs"] * TINY["num_steps"] * UPDATES,
        **TINY,
    )
    built = build(config)
    _, metrics = jax.jit(built.algorithm.train)(jax.random.PRNGKey(0), built.hyperparameters)
    metrics = jax.tree.map(np.asarray, metrics)
    assert metrics["finite"].all()
    return metrics["episode_return_sum"][-5:].sum() / metrics["episode_count"][-5:].sum()


def test_recall_is_learned_with_memory_and_not_without():
    with_memory = _mean_return("gru", {"hidden_size": 32})
    without = _mean_return("mlp", {"features": 32})
    assert with_memory > 0.9, with_memory
    assert without < 0.6, without  # the negative control: the cue is gone by the query step
