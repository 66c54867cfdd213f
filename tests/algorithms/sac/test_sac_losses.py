"""SAC-Discrete and SAC losses against hand computations on tiny cases (pomdp-baselines' formulas, spec §2.4-2.7)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.algorithms.sac import losses


def test_masked_mean_divides_by_the_valid_steps_and_never_by_zero():
    x = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    mask = jnp.array([[True, False], [True, False]])
    assert float(losses.masked_mean(x, mask)) == 2.0
    assert float(losses.masked_mean(x, jnp.zeros_like(mask))) == 0.0


def test_categorical_clamps_the_log_of_a_vanishing_probability():
    probs, log_probs = losses.categorical(jnp.array([0.0, -200.0]))
    assert np.isfinite(np.asarray(log_probs)).all()
    np.testing.assert_allclose(log_probs[1], math.log(1e-8), rtol=1e-6)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-6)


def test_sacd_target_by_hand():
    # T = 2, B = 1, A = 2; the second step is terminal, so only its reward counts.
    reward = jnp.array([[1.0], [2.0]])
    done = jnp.array([[False], [True]])
    next_probs = jnp.array([[[0.25, 0.75]], [[0.5, 0.5]]])
    next_log = jnp.log(next_probs)
    q1 = jnp.array([[[1.0, 4.0]], [[9.0, 9.0]]])
    q2 = jnp.array([[[2.0, 3.0]], [[9.0, 9.0]]])
    alpha, gamma = 0.1, 0.9
    y = losses.sacd_target(reward, done, next_probs, next_log, q1, q2, alpha, gamma)
    soft = 0.25 * (1.0 - alpha * math.log(0.25)) + 0.75 * (3.0 - alpha * math.log(0.75))
    np.testing.assert_allclose(np.asarray(y)[:, 0], [1.0 + gamma * soft, 2.0], rtol=1e-6)


def test_sac_target_by_hand():
    y = losses.sac_target(
        jnp.array([0.5, 0.5]),
        jnp.array([False, True]),
        jnp.array([-1.0, -1.0]),
        jnp.array([2.0, 7.0]),
        jnp.array([3.0, 7.0]),
        0.2,
        0.9,
    )
    np.testing.assert_allclose(np.asarray(y), [0.5 + 0.9 * (2.0 + 0.2), 0.5], rtol=1e-6)


def test_critic_loss_is_the_sum_of_two_masked_mses_and_holds_the_target_fixed():
    q1 = jnp.array([1.0, 2.0, 100.0])
    q2 = jnp.array([0.0, 0.0, 100.0])
    target = jnp.array([2.0, 2.0, 0.0])
    mask = jnp.array([True, True, False])
    loss = losses.critic_loss(q1, q2, target, mask)
    np.testing.assert_allclose(float(loss), (1.0 + 0.0) / 2 + (4.0 + 4.0) / 2, rtol=1e-6)
    assert float(jax.grad(lambda t: losses.critic_loss(q1, q2, t, mask))(target).sum()) == 0.0


def test_sacd_actor_loss_by_hand_and_its_gradient_leaves_q_alone():
    logits = jnp.array([[0.3, -0.2, 1.0]])
    q1 = jnp.array([[1.0, 5.0, -1.0]])
    q2 = jnp.array([[2.0, 4.0, 0.0]])
    mask = jnp.array([True])
    probs, log_probs = losses.categorical(logits)
    loss, mean_log = losses.sacd_actor_loss(probs, log_probs, q1, q2, 0.1, mask)
    p = np.exp(np.array([0.3, -0.2, 1.0]))
    p /= p.sum()
    expected = np.sum(p * (0.1 * np.log(p) - np.array([1.0, 4.0, -1.0])))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    np.testing.assert_allclose(float(mean_log), np.sum(p * np.log(p)), rtol=1e-5)
    q_grad = jax.grad(lambda q: losses.sacd_actor_loss(probs, log_probs, q, q2, 0.1, mask)[0])(q1)
    assert float(jnp.abs(q_grad).sum()) == 0.0


def test_tanh_gaussian_log_prob_matches_the_change_of_variables():
    mean, log_std = jnp.array([[0.2, -0.5]]), jnp.array([[-0.3, 0.1]])
    rng = jax.random.PRNGKey(3)
    action, log_prob = losses.tanh_gaussian(mean, log_std, rng)
    eps = np.asarray(jax.random.normal(rng, mean.shape))
    u = np.asarray(mean) + np.exp(np.asarray(log_std)) * eps
    std = np.exp(np.asarray(log_std))
    normal = -0.5 * ((u - np.asarray(mean)) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    expected = np.sum(normal - np.log(1 - np.tanh(u) ** 2 + 1e-6), axis=-1)
    np.testing.assert_allclose(np.asarray(action), np.tanh(u), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(log_prob), expected, rtol=1e-5)


def test_sac_actor_loss_by_hand():
    loss, mean_log = losses.sac_actor_loss(
        jnp.array([-1.0, -2.0]), jnp.array([3.0, 1.0]), jnp.array([2.0, 4.0]), 0.5, jnp.array([True, True])
    )
    np.testing.assert_allclose(float(loss), ((-0.5 - 2.0) + (-1.0 - 1.0)) / 2, rtol=1e-6)
    np.testing.assert_allclose(float(mean_log), -1.5, rtol=1e-6)


@pytest.mark.parametrize("mean_log_prob", [-0.1, -3.0])
def test_alpha_falls_when_entropy_is_below_target_and_rises_above(mean_log_prob):
    # entropy = -mean log pi, target entropy 1.0; gradient descent moves log alpha by -grad.
    grad = jax.grad(losses.alpha_loss)(jnp.float32(0.0), jnp.float32(mean_log_prob), jnp.float32(1.0))
    np.testing.assert_allclose(float(grad), -(mean_log_prob + 1.0), rtol=1e-6)
    entropy = -mean_log_prob
    assert (-float(grad) > 0) == (entropy < 1.0)  # too little entropy -> raise alpha


def test_polyak_moves_tau_of_the_way_on_every_leaf():
    target = {"a": jnp.array([0.0, 10.0]), "b": jnp.float32(1.0)}
    online = {"a": jnp.array([1.0, 0.0]), "b": jnp.float32(3.0)}
    out = losses.polyak(target, online, 0.25)
    np.testing.assert_allclose(np.asarray(out["a"]), [0.25, 7.5])
    np.testing.assert_allclose(float(out["b"]), 1.5)
