"""PPO learns the probe tasks (envs.probes): value targets, observation-dependent reward, recall."""

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
    ent_coef=0.0,
    clip_value_loss=False,
    vf_coef=1.0,
    max_grad_norm=1.0,
    anneal_lr=False,
)


def _train(env_id, memory, memory_kwargs, updates, **overrides):
    """Run ``updates`` PPO updates; return per-update metrics as numpy arrays."""
    kw = {**TINY, **overrides}
    config = from_preset(
        "default",
        env_id=env_id,
        memory=memory,
        memory_kwargs=memory_kwargs,
        total_timesteps=kw["num_envs"] * kw["num_steps"] * updates,
        **kw,
    )
    built = build(config)
    _, metrics = jax.jit(built.algorithm.train)(jax.random.PRNGKey(0), built.hyperparameters)
    metrics = jax.tree.map(np.asarray, metrics)
    assert metrics["finite"].all()
    return metrics


def _mean_return(metrics, last):
    return metrics["episode_return_sum"][-last:].sum() / metrics["episode_count"][-last:].sum()


def test_value_learns_discounted_value_with_truncation_bootstrap():
    # Reward 1 forever, time limit every 4 steps, constant observation: with truncation bootstrapped,
    # V = 1 / (1 - gamma) = 10 at every step. Treating the time limit as termination would give at most 3.44.
    metrics = _train(
        "probe:ConstantReward",
        "mlp",
        {"features": 32},
        updates=40,
        env_overrides={"episode_length": 4, "truncate": True},
        gamma=0.9,
        gae_lambda=0.95,
        lr=1e-2,
        max_grad_norm=10.0,
    )
    assert abs(metrics["value_mean"][-1] - 10.0) < 0.5, metrics["value_mean"]


def test_policy_learns_observation_dependent_reward():
    metrics = _train("probe:MatchObservation", "mlp", {"features": 32}, updates=12, env_overrides={"num_symbols": 3})
    assert _mean_return(metrics, 3) > 0.95, metrics["episode_return_sum"] / metrics["episode_count"]
    assert metrics["success_sum"][-1] == metrics["episode_return_sum"][-1]  # success == rewarded episode


@pytest.mark.parametrize(
    "memory, kwargs, learns",
    [
        ("gru", {"hidden_size": 32}, True),
        ("shm", {"memory_size": 8}, True),
        ("mlp", {"features": 32}, False),
    ],
)
def test_recall_needs_memory(memory, kwargs, learns):
    # The cue is visible at t = 0 only and asked for at t = 3: chance level is 0.5.
    metrics = _train("probe:Recall", memory, kwargs, updates=20, env_overrides={"delay": 3})
    mean_return = _mean_return(metrics, 5)
    if learns:
        assert mean_return > 0.9, (memory, metrics["episode_return_sum"] / metrics["episode_count"])
    else:
        assert mean_return < 0.6, (memory, mean_return)


def test_gaussian_policy_learns_continuous_target():
    # Box(-1, 1) action, reward 1 - |a - target|: any policy that ignores the target gets at most 0.5.
    metrics = _train("probe:ContinuousTarget", "mlp", {"features": 32}, updates=24)
    returns = metrics["episode_return_sum"] / metrics["episode_count"]
    assert _mean_return(metrics, 3) > 0.6, returns
    assert metrics["entropy"][-1] < metrics["entropy"][0]  # the state-independent std shrinks
