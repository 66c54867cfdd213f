"""The PPO loss on its own, against hand-computed values: clipped objective, value clipping, entropy bonus."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.algorithms.ppo import PPOHyperparameters, Transition, ppo_loss

HP = PPOHyperparameters(
    lr=jnp.float32(1e-3),
    gamma=jnp.float32(0.99),
    gae_lambda=jnp.float32(0.95),
    clip_eps=jnp.float32(0.2),
    vf_coef=jnp.float32(0.5),
    ent_coef=jnp.float32(0.01),
    max_grad_norm=jnp.float32(0.5),
)


def _old(log_prob, value):
    """A Transition holding only what the loss reads of the rollout: old log-probs and values, float32[1, n]."""
    log_prob, value = jnp.asarray([log_prob], jnp.float32), jnp.asarray([value], jnp.float32)
    zeros = jnp.zeros_like(log_prob)
    return Transition(
        obs=zeros,
        start=zeros,
        noise=None,
        action=zeros,
        log_prob=log_prob,
        value=value,
        reward=zeros,
        terminated=zeros,
        truncated=zeros,
        bootstrap_value=zeros,
    )


def _row(values):
    return jnp.asarray([values], jnp.float32)


def test_clipped_policy_objective_and_diagnostics():
    ratios = np.array([1.5, 0.5, 1.1, 0.7])
    advantages = [1.0, 1.0, -1.0, -1.0]
    old = _old([0.0] * 4, [0.0] * 4)
    _, aux = ppo_loss(
        _row(np.log(ratios)),
        _row([0.0] * 4),
        _row([0.0] * 4),
        old,
        _row(advantages),
        _row([0.0] * 4),
        HP,
        normalize_advantages=False,
        clip_value_loss=False,
    )
    # min(r A, clip(r, 0.8, 1.2) A) per sample: min(1.5, 1.2) = 1.2, min(.5, .8) = .5, min(-1.1, -1.1) = -1.1,
    # min(-.7, -.8) = -.8; the loss is minus their mean.
    assert float(aux["policy_loss"]) == pytest.approx(-(1.2 + 0.5 - 1.1 - 0.8) / 4, abs=1e-6)
    assert float(aux["clip_frac"]) == pytest.approx(0.75)  # |r - 1| > 0.2 for 1.5, 0.5 and 0.7
    assert float(aux["approx_kl"]) == pytest.approx(np.mean((ratios - 1) - np.log(ratios)), rel=1e-5)


def test_value_loss_is_clipped_around_the_old_value():
    old = _old([0.0, 0.0], [0.0, 0.0])
    new_value, targets = _row([1.0, 0.1]), _row([2.0, 0.5])
    args = (_row([0.0, 0.0]), new_value, _row([0.0, 0.0]), old, _row([0.0, 0.0]), targets, HP)
    _, clipped = ppo_loss(*args, normalize_advantages=False, clip_value_loss=True)
    _, plain = ppo_loss(*args, normalize_advantages=False, clip_value_loss=False)
    # unclipped errors (1 - 2)^2 = 1 and (.1 - .5)^2 = .16; V clipped to 0 + clip(1, +-.2) = .2 gives (.2 - 2)^2 = 3.24
    assert float(plain["value_loss"]) == pytest.approx(0.5 * (1.0 + 0.16) / 2, rel=1e-5)
    assert float(clipped["value_loss"]) == pytest.approx(0.5 * (3.24 + 0.16) / 2, rel=1e-5)


def test_total_combines_the_terms_with_the_traced_coefficients():
    old = _old([0.0, 0.0], [0.0, 0.0])
    entropy = _row([math.log(2), math.log(3)])
    args = (_row([0.1, -0.2]), _row([0.5, -0.5]), entropy, old, _row([1.0, -2.0]), _row([1.0, 0.0]))
    for hp in (HP, HP.replace(vf_coef=jnp.float32(2.0), ent_coef=jnp.float32(0.3))):
        total, aux = ppo_loss(*args, hp, normalize_advantages=False, clip_value_loss=False)
        assert float(aux["entropy"]) == pytest.approx((math.log(2) + math.log(3)) / 2, rel=1e-6)
        expected = aux["policy_loss"] + hp.vf_coef * aux["value_loss"] - hp.ent_coef * aux["entropy"]
        assert float(total) == pytest.approx(float(expected), rel=1e-6) and float(aux["total_loss"]) == float(total)


def test_normalized_advantages_are_standardised_per_minibatch():
    old = _old([0.0] * 3, [0.0] * 3)
    new_log_prob, advantages = _row([0.3, -0.1, 0.05]), np.array([3.0, -1.0, 7.0])
    common = (_row([0.0] * 3), _row([0.0] * 3), old)
    _, normalised = ppo_loss(
        new_log_prob, *common, _row(advantages), _row([0.0] * 3), HP, normalize_advantages=True, clip_value_loss=False
    )
    standard = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    _, by_hand = ppo_loss(
        new_log_prob, *common, _row(standard), _row([0.0] * 3), HP, normalize_advantages=False, clip_value_loss=False
    )
    assert float(normalised["policy_loss"]) == pytest.approx(float(by_hand["policy_loss"]), rel=1e-5)
    # scaling every advantage by a positive constant leaves the normalised objective unchanged
    _, scaled = ppo_loss(
        new_log_prob,
        *common,
        _row(10 * advantages),
        _row([0.0] * 3),
        HP,
        normalize_advantages=True,
        clip_value_loss=False,
    )
    assert float(scaled["policy_loss"]) == pytest.approx(float(normalised["policy_loss"]), rel=1e-5)
