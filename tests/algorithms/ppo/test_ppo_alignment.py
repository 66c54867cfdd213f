"""Done/start-flag alignment, truncation bootstrapping, GAE, and acting == update re-run (ratio 1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.algorithms import ppo
from shm_jax.build import build
from shm_jax.presets import from_preset


def test_gae_hand_computed_boundaries():
    # Three envs (columns) share values/rewards; env 0 has no boundary, env 1 terminates at t=1,
    # env 2 is truncated at t=1 with V(final observation) = 10.
    values = jnp.array([[1.0] * 3, [2.0] * 3, [3.0] * 3])
    rewards = jnp.ones((3, 3))
    terminated = jnp.zeros((3, 3), bool).at[1, 1].set(True)
    truncated = jnp.zeros((3, 3), bool).at[1, 2].set(True)
    bootstrap = jnp.zeros((3, 3)).at[1, 2].set(10.0)
    last_value = jnp.full((3,), 4.0)
    adv, targets = ppo.compute_gae(values, rewards, terminated, truncated, bootstrap, last_value, 0.5, 0.5)
    # gamma = lambda = 0.5. No boundary: d2 = 1 + .5*4 - 3 = 0, d1 = 1 + .5*3 - 2 = .5, d0 = 1 + .5*2 - 1 = 1;
    # A2 = 0, A1 = .5, A0 = 1 + .25*.5 = 1.125.
    np.testing.assert_allclose(adv[:, 0], [1.125, 0.5, 0.0])
    # Termination at t=1: d1 = 1 - 2 = -1 (no bootstrap), trace cut: A1 = -1, A0 = 1 + .25*(-1) = .75.
    np.testing.assert_allclose(adv[:, 1], [0.75, -1.0, 0.0])
    # Truncation at t=1: d1 = 1 + .5*10 - 2 = 4 (bootstrapped from the final obs), trace cut: A0 = 1 + .25*4 = 2.
    np.testing.assert_allclose(adv[:, 2], [2.0, 4.0, 0.0])
    np.testing.assert_allclose(targets, adv + values)


def test_gae_terminated_and_truncated_together_does_not_bootstrap():
    values, rewards = jnp.array([[2.0]]), jnp.array([[1.0]])
    both = jnp.array([[True]])
    adv, _ = ppo.compute_gae(values, rewards, both, both, jnp.array([[10.0]]), jnp.array([7.0]), 0.9, 1.0)
    np.testing.assert_allclose(adv, [[-1.0]])


def test_gae_lambda_one_is_discounted_return_minus_value():
    T = 5
    rewards = jnp.arange(1.0, T + 1)[:, None]
    values = jnp.full((T, 1), 0.5)
    no = jnp.zeros((T, 1), bool)
    adv, targets = ppo.compute_gae(values, rewards, no, no, jnp.zeros((T, 1)), jnp.array([2.0]), 0.9, 1.0)
    expected = [sum(0.9 ** (k - t) * (k + 1) for k in range(t, T)) + 0.9 ** (T - t) * 2.0 for t in range(T)]
    np.testing.assert_allclose(targets[:, 0], expected, rtol=1e-5)


@pytest.fixture(scope="module")
def shm_run():
    """A tiny SHM agent on ConstantReward(episode_length=3, truncated, obs = [1, t]): one rollout."""
    config = from_preset(
        "default",
        env_id="probe:ConstantReward",
        env_overrides={"episode_length": 3, "truncate": True, "observe_time": True},
        memory="shm",
        memory_kwargs={"memory_size": 4},
        time_encoding=True,
        feature_size=8,
        pre_size=8,
        post_size=8,
        head_hidden_size=8,
        num_envs=2,
        num_steps=8,
        total_timesteps=16,
        num_minibatches=2,
        update_epochs=1,
    )
    built = build(config)
    trainer, hp = built.algorithm, built.hyperparameters
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    new_state, rollout = jax.jit(trainer.rollout)(state)
    return (trainer, hp, state, new_state, rollout.trajectory, rollout.start_carry, rollout.last_value, rollout.stats)


def test_rollout_start_flags_follow_episode_ends(shm_run):
    trainer, hp, state, new_state, traj, start_carry, last_value, stats = shm_run
    done = np.asarray(traj.terminated | traj.truncated)
    starts = np.asarray(traj.start)
    assert starts[0].all()  # first observation of the run
    np.testing.assert_array_equal(starts[1:], done[:-1])  # s_{t+1} = d_t
    np.testing.assert_array_equal(np.asarray(new_state.last_start), done[-1])
    np.testing.assert_array_equal(starts[:, 0], [1, 0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(np.asarray(traj.truncated)[:, 0], [0, 0, 1, 0, 0, 1, 0, 0])
    assert not np.asarray(traj.terminated).any()
    np.testing.assert_array_equal(np.asarray(traj.obs)[:, 0, 1], [0, 1, 2, 0, 1, 2, 0, 1])  # t within episode
    assert int(stats["episode_count"]) == 4 and float(stats["episode_return_sum"]) == 12.0
    assert int(stats["episode_length_sum"]) == 12
    # The carry threaded to the next rollout knows the within-episode step of the last observation.
    np.testing.assert_array_equal(np.asarray(new_state.carry.step), [1, 1])


def test_acting_equals_sequence_rerun_with_stored_noise(shm_run):
    trainer, hp, state, new_state, traj, start_carry, last_value, stats = shm_run
    evaluate = jax.jit(trainer.replay)
    logp, value, _ = evaluate(state.params, start_carry, traj)
    np.testing.assert_allclose(logp, traj.log_prob, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value, traj.value, rtol=1e-5, atol=1e-6)
    # The stored theta noise is what makes them equal: other noise gives other outputs.
    other = traj.replace(noise=(traj.noise + 1) % 128)
    _, other_value, _ = evaluate(state.params, start_carry, other)
    assert not np.allclose(other_value, traj.value, atol=1e-6)


def test_carry_reset_exactly_at_episode_start(shm_run):
    trainer, hp, state, new_state, traj, start_carry, last_value, stats = shm_run
    evaluate = jax.jit(trainer.replay)
    # Re-running the episode that starts at t=3 from a garbage carry reproduces the rollout's values.
    garbage = jax.tree.map(lambda x: jnp.full_like(x, 7), start_carry)
    segment = jax.tree.map(lambda x: x[3:6], traj)
    _, value, _ = evaluate(state.params, garbage, segment)
    np.testing.assert_allclose(value, traj.value[3:6], rtol=1e-5, atol=1e-6)
    # Removing the start flag at t=3 changes them: the carry would leak across the boundary.
    leaked = traj.replace(start=traj.start.at[3].set(False))
    _, leaked_value, _ = evaluate(state.params, start_carry, leaked)
    assert not np.allclose(leaked_value[3:6], traj.value[3:6], atol=1e-6)


def test_truncation_bootstrap_uses_carry_of_the_ending_episode():
    """V(final obs) is the value after o0 o1 o2 final_obs with no reset before final_obs (GRU: no noise)."""
    config = from_preset(
        "default",
        env_id="probe:ConstantReward",
        env_overrides={"episode_length": 3, "truncate": True, "observe_time": True},
        memory="gru",
        memory_kwargs={"hidden_size": 4},
        time_encoding=False,
        feature_size=8,
        pre_size=8,
        post_size=8,
        head_hidden_size=8,
        num_envs=2,
        num_steps=4,
        total_timesteps=8,
        num_minibatches=1,
        update_epochs=1,
    )
    trainer = build(config).algorithm
    state = jax.jit(trainer.init)(jax.random.PRNGKey(1))
    _, rollout = jax.jit(trainer.rollout)(state)
    traj, start_carry = rollout.trajectory, rollout.start_carry
    seq = jax.tree.map(lambda x: x[:4], traj)
    seq = seq.replace(obs=seq.obs.at[3].set(jnp.array([[1.0, 3.0]] * 2)), start=seq.start.at[3].set(False))
    evaluate = jax.jit(trainer.replay)
    _, value, _ = evaluate(state.params, start_carry, seq)
    np.testing.assert_allclose(traj.bootstrap_value[2], value[3], rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(traj.bootstrap_value)[[0, 1, 3]] == 0.0)
    # A reset carry before the final observation would give a different (wrong) bootstrap value.
    _, reset_value, _ = evaluate(state.params, start_carry, seq.replace(start=seq.start.at[3].set(True)))
    assert not np.allclose(reset_value[3], value[3], atol=1e-6)


def test_first_minibatch_ratio_is_one_and_nan_is_flagged(shm_run):
    trainer, hp, state, *_ = shm_run
    update = jax.jit(trainer.update)
    new_state, metrics = update(state, hp)
    assert abs(float(metrics["first_minibatch_approx_kl"])) < 1e-6
    assert bool(metrics["finite"])
    assert int(new_state.update) == 1
    assert all(np.ndim(v) == 0 for v in metrics.values())
    poisoned = state.replace(params=jax.tree.map(lambda p: p * jnp.nan, state.params))
    _, bad = update(poisoned, hp)
    assert not bool(bad["finite"])


def test_act_threads_the_same_carry_as_the_rollout(shm_run):
    """Evaluation's act(), fed the rollout's observations, flags and noise, ends in the rollout's carry."""
    trainer, hp, state, new_state, traj, start_carry, last_value, stats = shm_run
    act = jax.jit(trainer.act, static_argnames="greedy")
    carry = start_carry
    for t in range(traj.obs.shape[0]):
        noise = jax.tree.map(lambda x: x[t][None], traj.noise)
        action, carry = act(
            state.params, traj.obs[t], carry, traj.start[t], jax.random.PRNGKey(t), greedy=True, noise=noise
        )
        assert action.shape == (2,) and np.all((np.asarray(action) >= 0) & (np.asarray(action) < 2))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), carry, new_state.carry)
