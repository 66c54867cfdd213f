"""CartPole and Pendulum variants: lengths, oracle/random returns, and equivalence with the original
numpy popgym (same physics state, same actions; float tolerance since the original runs float64)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax import envs

np_cartpole = pytest.importorskip("popgym.envs.position_only_cartpole")
np_noisy_cartpole = pytest.importorskip("popgym.envs.noisy_position_only_cartpole")
np_velocity_cartpole = pytest.importorskip("popgym.envs.velocity_only_cartpole")
np_pendulum = pytest.importorskip("popgym.envs.position_only_pendulum")
np_noisy_pendulum = pytest.importorskip("popgym.envs.noisy_position_only_pendulum")

LEVELS = ("Easy", "Medium", "Hard")
N = 256  # episodes per id


def build(env_id):
    spec = envs.resolve(env_id)
    env = spec.factory(**spec.kwargs)
    return env, env.default_params


def stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def balancing_action(state):
    """A full-state PD controller that keeps the pole up for 600+ steps (the cartpole 'oracle')."""
    x, x_dot, theta, theta_dot = state.physics
    return (theta + 0.5 * theta_dot + 0.05 * x + 0.1 * x_dot > 0).astype(jnp.int32)


def first_episodes(env, params_list, horizon, policy):
    """Run N envs per params (vmapped over both) with gymnax ``step`` (auto-reset) and summarise each
    env's first episode. policy: 'random' | 'oracle'. Returns numpy [len(params_list), N] arrays:
    return, length, terminated, truncated."""

    def run(key, params):
        key, key_reset = jax.random.split(key)
        _, state = env.reset(key_reset, params)

        def body(carry, _):
            state, key, done_before = carry
            key, key_act, key_step = jax.random.split(key, 3)
            if policy == "oracle":
                action = balancing_action(state)
            else:
                action = env.action_space(params).sample(key_act)
            _, state, reward, term, trunc, _ = env.step(key_step, state, action, params)
            live = ~done_before
            return (state, key, done_before | term | trunc), (reward * live, live, term & live, trunc & live)

        _, (rew, live, term, trunc) = jax.lax.scan(body, (state, key, jnp.bool_(False)), None, horizon)
        return rew.sum(), live.sum(), term.any(), trunc.any()

    keys = jax.random.split(jax.random.PRNGKey(0), N)
    per_params = jax.vmap(run, in_axes=(0, None))
    out = jax.jit(jax.vmap(per_params, in_axes=(None, 0)))(keys, stack(params_list))
    return tuple(np.asarray(x) for x in out)


def assert_random_mean(returns, reference):
    """Mean within 4 standard errors of the spec's 100-episode reference (both samples' noise)."""
    tol = 4 * returns.std() * np.sqrt(1 / 100 + 1 / returns.size) + 1e-3
    assert abs(returns.mean() - reference) < tol, (returns.mean(), reference, tol)


def test_cartpole_lengths_and_returns():
    ids = [f"StatelessCartPole{lv}" for lv in LEVELS] + [f"NoisyStatelessCartPole{lv}" for lv in LEVELS]
    built = [build(i) for i in ids]
    env = built[0][0]  # the Noisy class only changes default params; one program serves all six ids
    params = [p for _, p in built]
    assert [int(p.max_steps_in_episode) for p in params] == [200, 400, 600, 200, 200, 200]
    assert [float(p.noise_sigma) for p in params] == [0, 0, 0, 0.1, 0.2, 0.3]

    ret, length, term, trunc = first_episodes(env, params, 600, "random")
    # the original's random returns +0.125 / +0.062 / +0.042 (mean length 25), noisy +0.125 at every level
    for i, ref in enumerate([0.125, 0.062, 0.042, 0.125, 0.125, 0.125]):
        assert_random_mean(ret[i], ref)
        # every step pays exactly 1/L, the falling step included
        np.testing.assert_allclose(ret[i], length[i] / params[i].max_steps_in_episode, rtol=1e-5)
    assert term.mean() > 0.99

    ret, length, term, trunc = first_episodes(env, params, 600, "oracle")
    for i, p in enumerate(params):
        assert (length[i] == p.max_steps_in_episode).all() and trunc[i].all() and not term[i].any()
        np.testing.assert_allclose(ret[i], 1.0, rtol=1e-5)


def test_pendulum_lengths_and_returns():
    ids = [f"StatelessPendulum{lv}" for lv in LEVELS] + [f"NoisyStatelessPendulum{lv}" for lv in LEVELS]
    built = [build(i) for i in ids]
    env, params = built[0][0], [p for _, p in built]
    assert [int(p.max_steps_in_episode) for p in params] == [200, 150, 100, 200, 200, 200]
    ret, length, term, trunc = first_episodes(env, params, 200, "random")
    for i, p in enumerate(params):
        assert (length[i] == p.max_steps_in_episode).all() and trunc[i].all() and not term[i].any()
        assert_random_mean(ret[i], 0.26)  # the original's: about +0.26 at every level
        assert (np.abs(ret[i]) <= 1.0).all()


def test_registry_ids_and_spaces():
    for lv in LEVELS:
        for alias, canonical in (
            (f"PositionOnlyCartPole{lv}", f"StatelessCartPole{lv}"),
            (f"NoisyPositionOnlyCartPole{lv}", f"NoisyStatelessCartPole{lv}"),
            (f"PositionOnlyPendulum{lv}", f"StatelessPendulum{lv}"),
            (f"NoisyPositionOnlyPendulum{lv}", f"NoisyStatelessPendulum{lv}"),
            (f"VelocityOnlyCartPole{lv}", f"VelocityOnlyCartPole{lv}"),
        ):
            spec = envs.resolve(alias)
            assert spec.env_id == canonical and not spec.needs_prev_action and spec.family == "popgym"
    cart, _ = build("StatelessCartPoleEasy")
    np.testing.assert_allclose(cart.observation_space(None).high, [4.8, 0.41887903], rtol=1e-6)
    assert cart.action_space(None).n == 2
    pend, _ = build("StatelessPendulumEasy")
    assert pend.action_space(None).shape == (1,) and float(pend.action_space(None).high) == 2.0


# ---------------------------------------------------------------------------------------------
# Equivalence with the original numpy popgym.


def record(np_env, n_episodes, rng, policy, get_physics):
    """Play numpy episodes; record (pre-step physics, action, obs, reward, terminated, truncated)."""
    rows = []
    for ep in range(n_episodes):
        obs0, _ = np_env.reset(seed=int(rng.integers(2**31)))
        traj = []
        while True:
            physics = np.array(get_physics(np_env), np.float64)
            action = policy(np_env, rng, ep)
            o, r, te, tr, _ = np_env.step(action)
            traj.append((physics, action, np.asarray(o, np.float64), r, te, tr))
            if te or tr:
                break
        rows.append((np.asarray(obs0, np.float64), traj))
    return rows


def cartpole_policy(np_env, rng, ep):
    x, x_dot, theta, theta_dot = np_env.state
    if ep % 2 == 0:  # half the episodes balance until the time limit
        return int(theta + 0.5 * theta_dot + 0.05 * x + 0.1 * x_dot > 0)
    return int(rng.integers(2))


def pendulum_policy(np_env, rng, ep):
    return rng.uniform(-2.5, 2.5, size=(1,)).astype(np.float32)  # some torques beyond the clip


def one_step(env, params, make_state, pre, actions):
    """step_env from each recorded pre-step physics state; returns numpy obs, reward, terminated, truncated."""

    def go(physics, time, action):
        obs, state, reward, term, _ = env.step_env(jax.random.PRNGKey(0), make_state(physics, time), action, params)
        return obs, reward, term, env.is_truncated(state, params)

    out = jax.jit(jax.vmap(go))(jnp.asarray(pre[0], jnp.float32), jnp.asarray(pre[1]), jnp.asarray(actions))
    return tuple(np.asarray(x) for x in out)


def compare_one_step(rows, env, params, make_state, obs_tol):
    pre = np.concatenate([[t[0] for t in traj] for _, traj in rows])
    times = np.concatenate([np.arange(len(traj)) for _, traj in rows]).astype(np.int32)
    actions = np.stack([t[1] for _, traj in rows for t in traj])
    obs, rew, term, trunc = one_step(env, params, make_state, (pre, times), actions)
    ref = [t for _, traj in rows for t in traj]
    np.testing.assert_allclose(obs, np.stack([t[2] for t in ref]), atol=obs_tol, rtol=1e-5)
    np.testing.assert_allclose(rew, [t[3] for t in ref], atol=1e-6, rtol=1e-5)
    np.testing.assert_array_equal(term, [t[4] for t in ref])
    np.testing.assert_array_equal(trunc, [t[5] for t in ref])
    return np.array([t[4] for t in ref]), np.array([t[5] for t in ref])


def rollout_from(env, params, state, actions):
    """step_env along a fixed action sequence from one state. Returns obs [T, 2], rewards [T]."""

    def body(state, a):
        obs, state, reward, _, _ = env.step_env(jax.random.PRNGKey(0), state, a, params)
        return state, (obs, reward)

    return jax.lax.scan(body, state, actions)[1]


@pytest.mark.parametrize(
    "env_id, np_cls",
    [
        ("StatelessCartPoleMedium", lambda: np_cartpole.PositionOnlyCartPoleMedium()),
        ("NoisyStatelessCartPoleEasy", lambda: np_noisy_cartpole.NoisyPositionOnlyCartPole(noise_sigma=0.0)),
        ("VelocityOnlyCartPoleEasy", lambda: np_velocity_cartpole.VelocityOnlyCartPoleEasy()),
    ],
)
def test_cartpole_matches_original(env_id, np_cls):
    warnings.simplefilter("ignore")
    env, params = build(env_id)
    params = params.replace(noise_sigma=0.0)  # noise disabled on both sides; its law is tested below
    np_env = np_cls()
    rows = record(np_env, 24, np.random.default_rng(7), cartpole_policy, lambda e: e.state)

    def make_state(physics, time):
        return env.reset_env(jax.random.PRNGKey(0), params)[1].replace(physics=physics, time=time)

    term, trunc = compare_one_step(rows, env, params, make_state, obs_tol=1e-5)
    assert term.any() and trunc.any()

    # Whole episodes from the same initial state: float32 vs float64 drift stays small while balanced.
    for obs0, traj in rows[:4]:
        state = make_state(jnp.asarray(traj[0][0], jnp.float32), jnp.int32(0))
        obs, rew = rollout_from(env, params, state, jnp.asarray([t[1] for t in traj]))
        np.testing.assert_allclose(obs[:50], np.stack([t[2] for t in traj])[:50], atol=1e-4)
        if env_id.startswith("Velocity"):
            # The original's reset shows [x, theta] (upstream slip); ours shows the velocities.
            np.testing.assert_allclose(obs0, traj[0][0][[0, 2]], atol=1e-6)
            reset_obs = env.observe(jax.random.PRNGKey(0), state, None, params)
            np.testing.assert_allclose(reset_obs, traj[0][0][[1, 3]], atol=1e-6)
        else:
            np.testing.assert_allclose(obs0, traj[0][0][[0, 2]], atol=1e-6)


@pytest.mark.parametrize(
    "env_id, np_cls",
    [
        ("StatelessPendulumMedium", lambda: np_pendulum.PositionOnlyPendulumMedium()),
        ("NoisyStatelessPendulumHard", lambda: np_noisy_pendulum.NoisyPositionOnlyPendulum(noise_sigma=0.0)),
    ],
)
def test_pendulum_matches_original(env_id, np_cls):
    warnings.simplefilter("ignore")
    env, params = build(env_id)
    params = params.replace(noise_sigma=0.0)
    np_env = np_cls()
    rows = record(np_env, 16, np.random.default_rng(8), pendulum_policy, lambda e: e.state)

    def make_state(physics, time):
        state = env.reset_env(jax.random.PRNGKey(0), params)[1]
        return state.replace(theta=physics[0], theta_dot=physics[1], time=time)

    _, trunc = compare_one_step(rows, env, params, make_state, obs_tol=2e-6)
    assert trunc.sum() == len(rows)
    for obs0, traj in rows[:4]:
        state = make_state(jnp.asarray(traj[0][0], jnp.float32), jnp.int32(0))
        np.testing.assert_allclose(env.observe(jax.random.PRNGKey(0), state, None, params), obs0, atol=1e-6)
        obs, rew = rollout_from(env, params, state, jnp.asarray(np.stack([t[1] for t in traj])))
        np.testing.assert_allclose(obs, np.stack([t[2] for t in traj]), atol=1e-3)
        np.testing.assert_allclose(rew, [t[3] for t in traj], atol=1e-4)


def test_noise_matches_original_in_distribution():
    """Noisy observations: residual (obs - clean obs) has the original's law, clipping included."""
    warnings.simplefilter("ignore")
    n = 2000
    cases = [
        (
            "NoisyStatelessCartPoleHard",
            np_noisy_cartpole.NoisyPositionOnlyCartPoleHard(),
            lambda e: np.array(e.state)[[0, 2]],
        ),
        (
            "NoisyStatelessPendulumHard",
            np_noisy_pendulum.NoisyPositionOnlyPendulumHard(),
            lambda e: np.array([np.cos(e.state[0]), np.sin(e.state[0])]),
        ),
    ]
    for env_id, np_env, clean_of in cases:
        ref = []
        for seed in range(n):
            obs, _ = np_env.reset(seed=seed)
            ref.append(obs - clean_of(np_env))
        ref = np.array(ref)
        env, params = build(env_id)
        obs, states = jax.vmap(lambda k: env.reset_env(k, params))(jax.random.split(jax.random.PRNGKey(9), n))
        clean = jax.vmap(lambda s: env.observe(jax.random.PRNGKey(0), s, None, params.replace(noise_sigma=0.0)))(states)
        ours = np.asarray(obs - clean)
        np.testing.assert_allclose(ours.std(0), ref.std(0), rtol=0.1)
        np.testing.assert_allclose(ours.mean(0), ref.mean(0), atol=0.03)
        # clipping binds in both (theta's box is +-0.4189 with sigma 0.3; cos/sin boxes are +-1)
        high = np.asarray(env.observation_space(params).high)
        assert np.isclose(np.abs(np.asarray(obs)), high).any(0).any()


def test_out_of_range_actions_are_clipped():
    cart, params = build("StatelessCartPoleEasy")
    _, state = cart.reset_env(jax.random.PRNGKey(1), params)
    for far, ok in ((7, 1), (-3, 0)):
        a = cart.step_env(jax.random.PRNGKey(2), state, jnp.int32(far), params)
        b = cart.step_env(jax.random.PRNGKey(2), state, jnp.int32(ok), params)
        jax.tree.map(np.testing.assert_array_equal, a, b)
    pend, params = build("StatelessPendulumEasy")
    _, state = pend.reset_env(jax.random.PRNGKey(1), params)
    a = pend.step_env(jax.random.PRNGKey(2), state, jnp.array([9.0]), params)
    b = pend.step_env(jax.random.PRNGKey(2), state, jnp.array([2.0]), params)
    jax.tree.map(np.testing.assert_array_equal, a, b)
