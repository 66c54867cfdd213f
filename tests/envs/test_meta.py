"""Wind and Point Robot: task tables, splits, trial structure, oracle returns, held-out evaluation, batching."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax import envs
from shm_jax.envs.meta import PointRobot, Wind, held_out_params
from shm_jax.envs.meta.tasks import NUM_TASKS, point_robot_tasks, wind_tasks

H = 100


@partial(jax.jit, static_argnames=("env", "policy", "num_steps"))
def rollout(env, params, keys, policy, num_steps):
    """Batched rollout with gymnax's auto-resetting ``step``; params batched like keys (leading axis B).

    Returns (first obs [B, D], first state, per-step pytree of obs/reward/terminated/truncated/info/state [T, B]).
    """

    def one(key, p):
        key, key_reset = jax.random.split(key)
        obs0, state0 = env.reset(key_reset, p)

        def body(carry, key_t):
            state = carry
            action = policy(state, p, key_t)
            obs, state, reward, term, trunc, info = env.step(key_t, state, action, p)
            return state, dict(obs=obs, reward=reward, terminated=term, truncated=trunc, info=info, state=state)

        _, trace = jax.lax.scan(body, state0, jax.random.split(key, num_steps))
        return obs0, state0, trace

    return jax.vmap(one)(keys, params)


def wind_oracle(state, params, key):
    """Per-axis greedy move to the goal (0, 1), cancelling the wind (reads the hidden task)."""
    wind = params.task_table[state.task_id]
    return jnp.clip((jnp.array([0.0, 1.0]) - state.pos - wind) / params.action_scale, -1.0, 1.0)


def point_oracle(state, params, key):
    return jnp.clip((params.task_table[state.task_id] - state.pos) / params.action_scale, -1.0, 1.0)


def random_policy(state, params, key):
    return jax.random.uniform(key, (2,), minval=-1.5, maxval=1.5)  # out of range on purpose: clipped


def per_task_params(env, task_ids):
    base = env.default_params
    return jax.vmap(lambda t: base.replace(task_id=t))(jnp.asarray(task_ids, jnp.int32))


def steps_to_reach(start, goal, drift, radius, speed=0.1, horizon=H):
    """Fewest steps n >= 0 after which the goal disc intersects the reachable box (float64); horizon+1 if never."""
    for n in range(horizon + 1):
        lo, hi = start + n * (drift - speed), start + n * (drift + speed)
        if np.linalg.norm(goal - np.clip(goal, lo, hi)) <= radius:
            return n
    return horizon + 1


def max_return(n_min, horizon=H):
    """Once inside the disc the agent can stay; rewards count post-move positions of steps 1..horizon."""
    return 0 if n_min > horizon else horizon - max(n_min - 1, 0)


def test_task_tables_match_the_seeded_original():
    winds, _ = wind_tasks()
    goals, _ = point_robot_tasks()
    np.testing.assert_allclose(winds[:3], [[-0.0476, -0.0683], [-0.0444, -0.0081], [-0.0358, 0.0037]], atol=1e-4)
    np.testing.assert_allclose(goals[:3], [[0.3272, 0.9449], [0.9988, 0.0480], [-0.8817, 0.4719]], atol=1e-4)
    assert winds.shape == goals.shape == (NUM_TASKS, 2)
    assert np.all(np.abs(winds) <= 0.1)
    np.testing.assert_allclose(np.linalg.norm(goals, axis=1), 1.0, atol=1e-12)
    assert np.all(goals[:, 1] >= 0)


@pytest.mark.parametrize("cls", [Wind, PointRobot])
@pytest.mark.parametrize("num_train,num_test", [(50, 150), (10, 190)])
def test_splits_disjoint_cover_all_and_fixed(cls, num_train, num_test):
    params = cls(num_train, num_test).default_params
    train, test = np.asarray(params.train_task_ids), np.asarray(params.test_task_ids)
    assert len(train) == num_train and len(test) == num_test
    assert not set(train) & set(test)
    assert sorted(set(train) | set(test)) == list(range(NUM_TASKS))
    again = cls(num_train, num_test).default_params  # a new instance (another run) gets the same split
    np.testing.assert_array_equal(train, again.train_task_ids)
    np.testing.assert_array_equal(params.task_table, again.task_table)


def test_registered_ids_and_spaces():
    assert set(envs.list_ids("meta")) == {"Wind-50-150", "Wind-10-190", "PointRobot-50-150", "PointRobot-10-190"}
    spec = envs.resolve("PointRobot-10-190")
    env = spec.factory(**spec.kwargs)
    assert (env.num_train, env.num_test) == (10, 190)
    assert envs.resolve("Wind-50-150").needs_prev_action
    assert Wind().observation_space(None).shape == (2,)
    assert PointRobot().observation_space(None).shape == (4,)
    assert PointRobot(reward_in_obs=False).observation_space(None).shape == (3,)
    space = Wind().action_space(None)
    assert space.shape == (2,) and float(space.low) == -1.0 and float(space.high) == 1.0


def test_bad_constructor_arguments_raise():
    with pytest.raises(ValueError, match="num_test"):
        Wind(50, 151)
    with pytest.raises(ValueError, match="num_train"):
        PointRobot(0, 10)
    with pytest.raises(ValueError, match="sub_episodes"):
        PointRobot(sub_episodes=0)


def test_training_resets_draw_only_train_tasks():
    env = Wind(50, 150)
    params = env.default_params
    _, states = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(3), 2000), params)
    drawn = set(np.asarray(states.task_id).tolist())
    assert drawn == set(np.asarray(params.train_task_ids).tolist())  # all 50 seen in 2000 uniform draws


def test_wind_oracle_reaches_the_maximal_return_on_every_task():
    env = Wind()
    winds, _ = wind_tasks()
    task_ids = np.arange(NUM_TASKS)
    _, state0, trace = rollout(
        env, per_task_params(env, task_ids), jax.random.split(jax.random.key(0), NUM_TASKS), wind_oracle, H
    )
    returns = np.asarray(trace["reward"].sum(axis=1))
    expected = np.array([max_return(steps_to_reach(np.zeros(2), np.array([0.0, 1.0]), w, 0.01)) for w in winds])
    np.testing.assert_array_equal(returns, expected)
    assert (expected == 0).sum() == 11  # the spec's count of unreachable winds
    assert np.all(np.asarray(state0.task_id) == task_ids)
    # trial = one sub-episode of 100 steps, truncated (not terminated) on step 100 only
    trunc = np.asarray(trace["truncated"])
    assert not trunc[:, :-1].any() and trunc[:, -1].all() and not np.asarray(trace["terminated"]).any()
    success = np.asarray(trace["info"]["success"][:, -1])
    np.testing.assert_array_equal(success, expected > 0)
    # after the auto-reset, the forced task id is kept (evaluation params survive gymnax's reset)
    np.testing.assert_array_equal(np.asarray(trace["state"].task_id[:, -1]), task_ids)
    np.testing.assert_array_equal(np.asarray(trace["obs"][:, -1]), 0.0)  # back at the start (0, 0)


def test_point_robot_oracle_maximal_return_and_sub_episode_boundary():
    env = PointRobot()
    goals, _ = point_robot_tasks()
    task_ids = np.arange(NUM_TASKS)
    obs0, state0, trace = rollout(
        env, per_task_params(env, task_ids), jax.random.split(jax.random.key(1), NUM_TASKS), point_oracle, 2 * H
    )
    obs = np.asarray(trace["obs"])
    pos = np.asarray(trace["state"].pos)
    rewards = np.asarray(trace["reward"])
    start1 = np.asarray(state0.pos)
    start2 = pos[:, H - 1]  # the state after the boundary step holds the new start
    assert not np.allclose(start1, start2)
    for i in range(NUM_TASKS):
        for start, sub_rewards in ((start1[i], rewards[i, :H]), (start2[i], rewards[i, H:])):
            n = steps_to_reach(start.astype(np.float64), goals[i], np.zeros(2), 0.05)
            assert sub_rewards.sum() == max_return(n), (i, start)
    assert np.all((start1 >= [-1.5, -0.5]) & (start1 <= [1.5, 1.5]))
    # observation = (x, y, sub_episode_end, previous_reward); flag 1 exactly on steps 100 and 200
    np.testing.assert_array_equal(obs0[:, 2:], 0.0)
    flags = obs[:, :, 2]
    assert set(np.flatnonzero(flags.any(axis=0)).tolist()) == {H - 1}  # step 200's obs is the auto-reset obs
    np.testing.assert_array_equal(
        np.asarray(trace["info"]["sub_episode_end"]).nonzero()[1].reshape(NUM_TASKS, 2),
        np.tile([H - 1, 2 * H - 1], (NUM_TASKS, 1)),
    )
    np.testing.assert_array_equal(obs[:, H - 1, :2], start2)  # default: the boundary shows the NEW start
    np.testing.assert_array_equal(obs[:, :-1, 3], rewards[:, :-1])  # previous-reward feature
    np.testing.assert_array_equal(obs[:, -1, 2:], 0.0)  # the last step returns the next trial's reset obs
    # one trial = 200 steps: truncated once, on the last step; memory spans both sub-episodes
    trunc = np.asarray(trace["truncated"])
    assert trunc[:, -1].all() and not trunc[:, :-1].any()
    assert np.asarray(trace["info"]["success"][:, -1]).all()


def test_point_robot_stale_boundary_observation_reproduces_the_original():
    env = PointRobot()
    params = per_task_params(env, np.array([0, 1, 2, 3]))
    stale = params.replace(stale_boundary_obs=jnp.ones(4, bool))
    keys = jax.random.split(jax.random.key(2), 4)
    _, _, fresh = rollout(env, params.replace(stale_boundary_obs=jnp.zeros(4, bool)), keys, point_oracle, H + 1)
    _, _, old = rollout(env, stale, keys, point_oracle, H + 1)
    before = np.asarray(fresh["state"].pos[:, H - 2])  # position before the boundary step
    goals = point_robot_tasks()[0][:4]
    terminal = before + 0.1 * np.clip((goals - before) / 0.1, -1, 1)  # where the oracle's last move lands
    np.testing.assert_allclose(np.asarray(old["obs"][:, H - 1, :2]), terminal, atol=1e-6)  # stale: terminal
    np.testing.assert_array_equal(np.asarray(fresh["obs"][:, H - 1, :2]), np.asarray(fresh["state"].pos[:, H - 1]))
    np.testing.assert_array_equal(np.asarray(old["obs"][:, H - 1, 2]), 1.0)
    # the environment itself moved on: next observation = new start + action in both modes
    np.testing.assert_array_equal(np.asarray(old["obs"][:, H]), np.asarray(fresh["obs"][:, H]))


def test_reset_to_task_matches_task_id_params_and_actions_are_clipped():
    env = Wind(10, 190)
    params = env.default_params
    test_task = int(params.test_task_ids[0])
    key = jax.random.key(5)
    obs_a, state_a = env.reset_to_task(key, test_task, params)
    obs_b, state_b = env.reset(key, params.replace(task_id=test_task))
    assert int(state_a.task_id) == int(state_b.task_id) == test_task
    batched = held_out_params(params)
    np.testing.assert_array_equal(batched.task_id, params.test_task_ids)
    assert batched.task_table.shape == (190, NUM_TASKS, 2)
    _, states = jax.vmap(env.reset)(jax.random.split(key, 190), batched)
    np.testing.assert_array_equal(states.task_id, params.test_task_ids)
    _, s_big, *_ = env.step_env(key, state_a, jnp.array([7.0, -3.0]), params)
    _, s_one, *_ = env.step_env(key, state_a, jnp.array([1.0, -1.0]), params)
    np.testing.assert_array_equal(s_big.pos, s_one.pos)
    np.testing.assert_allclose(s_one.pos, np.array([0.1, -0.1]) + wind_tasks()[0][test_task], atol=1e-6)


def test_vmap_1024_envs_stable_shapes_and_dtypes_across_auto_reset():
    env = PointRobot()
    batch = 1024
    params = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (batch,) + jnp.shape(x)), env.default_params)
    obs0, _, trace = rollout(env, params, jax.random.split(jax.random.key(7), batch), random_policy, 2 * H + 3)
    assert obs0.shape == (batch, 4) and obs0.dtype == jnp.float32
    assert trace["obs"].shape == (batch, 2 * H + 3, 4) and trace["obs"].dtype == jnp.float32
    assert trace["reward"].dtype == jnp.float32 and trace["info"]["success"].dtype == jnp.bool_
    time = np.asarray(trace["state"].time)
    assert time[0, 2 * H - 1] == 0 and time[0, -1] == 3  # auto-reset after 200 steps, then counting again
    train = set(np.asarray(env.default_params.train_task_ids).tolist())
    assert set(np.asarray(trace["state"].task_id).ravel().tolist()) <= train
    assert np.isfinite(np.asarray(trace["obs"])).all()
