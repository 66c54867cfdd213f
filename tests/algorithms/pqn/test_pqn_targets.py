"""Q(lambda) targets against hand computations, the TD loss, and epsilon-greedy exploration (pure functions)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.algorithms import pqn

# Four envs (columns), T = 3, gamma = 0.5; max_a Q = 1, 2, 3 along the rollout and 4 after it; reward 1 per step.
# Env 0 has no boundary, env 1 terminates at t = 1, env 2 is truncated at t = 1 with max_a Q(final obs) = 10,
# env 3 is terminated and truncated at t = 1 (termination wins: no bootstrap).
Q_MAX = jnp.array([[1.0] * 4, [2.0] * 4, [3.0] * 4])
REWARDS = jnp.ones((3, 4))
TERMINATED = jnp.zeros((3, 4), bool).at[1, 1].set(True).at[1, 3].set(True)
TRUNCATED = jnp.zeros((3, 4), bool).at[1, 2].set(True).at[1, 3].set(True)
BOOTSTRAP = jnp.zeros((3, 4)).at[1, 2].set(10.0).at[1, 3].set(10.0)
LAST_Q_MAX = jnp.full((4,), 4.0)


def _targets(q_lambda):
    return pqn.q_lambda_targets(Q_MAX, REWARDS, TERMINATED, TRUNCATED, BOOTSTRAP, LAST_Q_MAX, 0.5, q_lambda)


def test_q_lambda_hand_computed_episode_end_and_truncation():
    # lambda = 0.5, G_t = 1 + 0.5 [V'_{t+1} + 0.5 c_t (G_{t+1} - V'_{t+1})].
    # The last row is one-step TD for every env: G_2 = 1 + 0.5 * 4 = 3.
    # No boundary: G_1 = 1 + .5 (3 + .5 (3 - 3)) = 2.5; G_0 = 1 + .5 (2 + .5 (2.5 - 2)) = 2.125.
    # Terminated at t = 1: G_1 = 1 (no bootstrap); G_0 = 1 + .5 (2 + .5 (1 - 2)) = 1.75.
    # Truncated at t = 1: G_1 = 1 + .5 * 10 = 6 (bootstrap, trace cut: G_2 is the next episode's);
    # G_0 = 1 + .5 (2 + .5 (6 - 2)) = 3.
    expected = [[2.125, 1.75, 3.0, 1.75], [2.5, 1.0, 6.0, 1.0], [3.0, 3.0, 3.0, 3.0]]
    np.testing.assert_allclose(_targets(0.5), expected)


def test_q_lambda_zero_is_one_step_td():
    # G_t = r_t + gamma (1 - terminated_t) V'_{t+1}.
    expected = [[2.0, 2.0, 2.0, 2.0], [2.5, 1.0, 6.0, 1.0], [3.0, 3.0, 3.0, 3.0]]
    np.testing.assert_allclose(_targets(0.0), expected)


def test_q_lambda_one_is_the_discounted_return_to_the_next_end_or_bootstrap():
    # G_2 = 1 + .5 * 4 = 3 (bootstrap after the rollout); no boundary: G_1 = 1 + .5 * 3 = 2.5, G_0 = 1 + .5 * 2.5;
    # terminated at 1: G_1 = 1, G_0 = 1.5; truncated at 1: G_1 = 1 + .5 * 10 = 6, G_0 = 1 + .5 * 6 = 4.
    expected = [[2.25, 1.5, 4.0, 1.5], [2.5, 1.0, 6.0, 1.0], [3.0, 3.0, 3.0, 3.0]]
    np.testing.assert_allclose(_targets(1.0), expected)


def test_q_lambda_one_equals_monte_carlo_on_a_long_rollout():
    rng = np.random.default_rng(0)
    T, gamma = 12, 0.9
    rewards = rng.normal(size=(T, 1)).astype(np.float32)
    q_max = rng.normal(size=(T, 1)).astype(np.float32)  # ignored by lambda = 1 except at boundaries
    terminated = np.zeros((T, 1), bool)
    terminated[4] = True
    no = np.zeros((T, 1), bool)
    last = np.array([2.0], np.float32)
    targets = pqn.q_lambda_targets(q_max, rewards, terminated, no, np.zeros((T, 1)), last, gamma, 1.0)
    expected = [sum(gamma ** (k - t) * rewards[k, 0] for k in range(t, 5)) for t in range(5)]
    expected += [
        sum(gamma ** (k - t) * rewards[k, 0] for k in range(t, T)) + gamma ** (T - t) * 2.0 for t in range(5, T)
    ]
    np.testing.assert_allclose(targets[:, 0], expected, rtol=1e-5, atol=1e-6)


def test_q_loss_is_half_mean_squared_error_and_targets_get_no_gradient():
    q, g = jnp.array([[1.0, 2.0]]), jnp.array([[0.0, 4.0]])
    loss, aux = pqn.q_loss(q, g)
    assert float(loss) == pytest.approx(0.5 * (1.0 + 4.0) / 2)
    assert float(aux["q_mean"]) == pytest.approx(1.5)
    np.testing.assert_allclose(jax.grad(lambda t: pqn.q_loss(q, t)[0])(g), 0.0)
    np.testing.assert_allclose(jax.grad(lambda x: pqn.q_loss(x, g)[0])(q), [[0.5, -1.0]])


def test_epsilon_schedule_is_linear_then_flat():
    eps = [float(pqn.linear_epsilon(jnp.int32(u), 20, 1.0, 0.1, 0.25)) for u in (0, 1, 5, 6, 19)]
    np.testing.assert_allclose(eps, [1.0, 0.82, 0.1, 0.1, 0.1], rtol=1e-6)
    assert float(pqn.linear_epsilon(jnp.int32(0), 20, 1.0, 0.1, 0.0)) == pytest.approx(0.1)  # no decay at all


def test_epsilon_greedy_takes_argmax_or_uniform_actions():
    q = jnp.tile(jnp.array([0.0, 3.0, 1.0]), (4000, 1))
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    assert np.all(np.asarray(pqn.epsilon_greedy(keys[0], q, 0.0)) == 1)
    counts = np.bincount(np.asarray(pqn.epsilon_greedy(keys[1], q, 0.3)), minlength=3) / 4000
    # 0.7 greedy + 0.3 uniform over 3 actions: 0.8 for action 1, 0.1 for the others
    np.testing.assert_allclose(counts, [0.1, 0.8, 0.1], atol=0.03)
