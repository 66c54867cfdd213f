"""ActorCritic and action distributions: shapes, the paper's layout, resets, acting == sequence re-run."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

from shm_jax.agents import ActionSpec, action_spec_from_space, actor_critic, distributions, trunk
from shm_jax.envs.spaces import MultiDiscrete
from shm_jax.memory import make_memory

DISCRETE = ActionSpec("discrete", (3,))
MULTI = ActionSpec("multidiscrete", (2, 4))
BOX = ActionSpec("box", (2,), (-1.0, 0.0), (1.0, 2.0))


def test_action_spec_from_spaces():
    assert action_spec_from_space(spaces.Discrete(5)) == ActionSpec("discrete", (5,))
    assert action_spec_from_space(MultiDiscrete([3, 7])) == ActionSpec("multidiscrete", (3, 7))
    box = action_spec_from_space(spaces.Box(-2.0, 2.0, (3,)))
    assert box.kind == "box" and box.sizes == (3,) and box.low == (-2.0,) * 3 and box.high == (2.0,) * 3
    assert MULTI.num_outputs == 6 and BOX.num_outputs == 2


def test_discrete_and_multidiscrete_log_prob_and_entropy():
    logits = jnp.array([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    logp = distributions.log_prob(DISCRETE, logits, jnp.array([2, 0]))
    expected = np.log(np.exp(2) / np.exp([0, 1, 2]).sum()), np.log(1 / 3)
    np.testing.assert_allclose(logp, expected, rtol=1e-6)
    np.testing.assert_allclose(distributions.entropy(DISCRETE, logits)[1], math.log(3), rtol=1e-6)

    # MultiDiscrete: independent categoricals -> log-probs and entropies add.
    multi_logits = jnp.array([[0.0, 1.0, 0.5, 0.5, 0.5, 0.5]])
    action = jnp.array([[1, 3]])
    p0 = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    np.testing.assert_allclose(
        distributions.log_prob(MULTI, multi_logits, action), [np.log(p0[1]) + np.log(0.25)], rtol=1e-6
    )
    np.testing.assert_allclose(
        distributions.entropy(MULTI, multi_logits), [-(p0 * np.log(p0)).sum() + math.log(4)], rtol=1e-6
    )
    samples = distributions.sample_action(MULTI, jnp.tile(multi_logits, (4000, 1)), jax.random.PRNGKey(0))
    assert samples.shape == (4000, 2) and samples.dtype == jnp.int32
    assert samples[:, 0].max() <= 1 and samples[:, 1].max() <= 3
    np.testing.assert_allclose(np.bincount(samples[:, 1], minlength=4) / 4000, 0.25, atol=0.03)
    np.testing.assert_array_equal(distributions.mode_action(MULTI, multi_logits), [[1, 0]])


def test_box_gaussian_log_prob_of_unclipped_sample_and_clipped_env_action():
    mean = jnp.array([[0.5, 1.0]])
    log_std = jnp.log(jnp.array([[2.0, 0.5]]))
    raw = distributions.sample_action(BOX, (mean, log_std), jax.random.PRNGKey(3))
    raw = raw.at[0, 0].set(5.0)  # far outside the bounds
    expected = sum(
        -0.5 * ((raw[0, i] - mean[0, i]) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
        for i, s in enumerate([2.0, 0.5])
    )
    np.testing.assert_allclose(distributions.log_prob(BOX, (mean, log_std), raw), [expected], rtol=1e-5)
    clipped = distributions.env_action(BOX, raw)
    assert float(clipped[0, 0]) == 1.0 and 0.0 <= float(clipped[0, 1]) <= 2.0
    ent = 0.5 * math.log(2 * math.pi * math.e) * 2 + math.log(2.0) + math.log(0.5)
    np.testing.assert_allclose(distributions.entropy(BOX, (mean, log_std)), [ent], rtol=1e-6)


def test_episode_steps_and_time_encoding():
    starts = jnp.array([[0, 1], [0, 0], [1, 0], [0, 1]], bool)  # [T=4, B=2]
    steps = trunk.episode_steps(jnp.array([4, -1], jnp.int32), starts)
    np.testing.assert_array_equal(steps, [[5, 0], [6, 1], [0, 2], [1, 0]])
    pe = trunk.sinusoidal_encoding(jnp.array([0, 3, 5000]), 8, 1024)
    np.testing.assert_allclose(pe[0], [0, 1] * 4, atol=1e-7)
    w = 1024.0 ** (-np.arange(0, 8, 2) / 8)
    np.testing.assert_allclose(pe[1, 0::2], np.sin(3 * w), rtol=1e-5)
    np.testing.assert_allclose(pe[1, 1::2], np.cos(3 * w), rtol=1e-5)
    np.testing.assert_allclose(pe[2, 0::2], np.sin(1023 * w), rtol=1e-4, atol=1e-5)  # clipped to max_len - 1


def _net(memory, spec=DISCRETE, **kw):
    sizes = dict(feature_size=16, pre_size=8, post_size=8, head_hidden_size=8)
    return actor_critic(memory=memory, action_spec=spec, **{**sizes, **kw})


def test_paper_agent_layout():
    core = make_memory("shm", memory_size=8, projection_size=32, shortcut=True)
    net = actor_critic(
        memory=core,
        action_spec=DISCRETE,
        feature_size=128,
        time_encoding=True,
        pre_size=64,
        post_size=64,
        head_hidden_size=64,
    )
    carry = net.initialize_carry(2)
    assert carry.memory.shape == (2, 8, 8) and carry.step.tolist() == [-1, -1]
    obs = jnp.zeros((1, 2, 5))
    params = jax.jit(net.init)(
        jax.random.PRNGKey(0), carry, obs, jnp.ones((1, 2), bool), net.sample_noise(jax.random.PRNGKey(1), 1, 2)
    )["params"]
    shapes = {k: v["kernel"].shape for k, v in params.items() if isinstance(v, dict) and "kernel" in v}
    assert shapes == {
        "feature_map": (5, 128),
        "pre": (128, 64),
        "post": (32, 64),
        "actor_hidden": (64, 64),
        "actor_out": (64, 3),
        "critic_hidden": (64, 64),
        "critic_out": (64, 1),
    }
    assert "feature_norm" not in params  # LayerNorm without affine parameters
    assert float(params["time_mix"]) == 0.5
    # Orthogonal body, small final layers.
    k = np.asarray(params["pre"]["kernel"])
    np.testing.assert_allclose(k.T @ k, 2.0 * np.eye(64), atol=1e-4)
    assert np.abs(params["actor_out"]["kernel"]).max() < 0.05


def test_box_network_has_state_independent_log_std():
    net = _net(make_memory("mlp", features=8), spec=BOX)
    carry = net.initialize_carry(3)
    obs = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 4))
    params = jax.jit(net.init)(jax.random.PRNGKey(1), carry, obs, jnp.zeros((2, 3), bool), None)
    _, (mean, log_std), value = jax.jit(net.apply)(params, carry, obs, jnp.zeros((2, 3), bool), None)
    assert mean.shape == (2, 3, 2) and value.shape == (2, 3)
    np.testing.assert_array_equal(log_std, 0.0)
    assert params["params"]["log_std"].shape == (2,)


def test_pixel_features_divided_by_255_and_the_rest_unchanged():
    obs = jax.random.uniform(jax.random.PRNGKey(0), (1, 2, 6))
    starts = jnp.ones((1, 2), bool)
    plain, scaled = _net(make_memory("mlp", features=8)), _net(make_memory("mlp", features=8), pixel_features=4)
    carry = plain.initialize_carry(2)
    params = jax.jit(plain.init)(jax.random.PRNGKey(1), carry, obs, starts, None)
    _, d1, v1 = jax.jit(plain.apply)(params, carry, obs, starts, None)
    pixels = obs.at[..., :4].multiply(255.0)  # 4 pixel features, then e.g. a previous action and a start flag
    _, d2, v2 = jax.jit(scaled.apply)(params, carry, pixels, starts, None)
    np.testing.assert_allclose(d1, d2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v1, v2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("memory", ["gru", "shm"])
def test_stepwise_acting_equals_sequence_and_resets_at_starts(memory):
    core = make_memory("gru", hidden_size=8) if memory == "gru" else make_memory("shm", memory_size=4)
    net = _net(core, time_encoding=True)
    T, B = 6, 2
    obs = jax.random.normal(jax.random.PRNGKey(0), (T, B, 3))
    starts = jnp.zeros((T, B), bool).at[0].set(True).at[3, 0].set(True)
    noise = net.sample_noise(jax.random.PRNGKey(5), T, B)
    carry0 = net.initialize_carry(B)
    apply = jax.jit(net.apply)
    params = jax.jit(net.init)(jax.random.PRNGKey(1), carry0, obs, starts, noise)
    seq_carry, seq_dist, seq_value = apply(params, carry0, obs, starts, noise)

    carry, dists, values = carry0, [], []
    for t in range(T):
        noise_t = jax.tree.map(lambda x: x[t : t + 1], noise)
        carry, d, v = apply(params, carry, obs[t : t + 1], starts[t : t + 1], noise_t)
        dists.append(d)
        values.append(v)
    np.testing.assert_allclose(jnp.concatenate(dists), seq_dist, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jnp.concatenate(values), seq_value, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), carry, seq_carry)

    # The episode starting at t = 3 in env 0 gives what a fresh sequence from that step gives,
    # whatever the carry held before (here: a garbage carry).
    garbage = jax.tree.map(lambda x: jnp.full_like(x, 3), carry0)
    sub_noise = jax.tree.map(lambda x: x[3:, :1], noise)
    _, fresh_dist, fresh_value = apply(
        params, jax.tree.map(lambda x: x[:1], garbage), obs[3:, :1], starts[3:, :1], sub_noise
    )
    np.testing.assert_allclose(fresh_dist, seq_dist[3:, :1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fresh_value, seq_value[3:, :1], rtol=1e-5, atol=1e-6)
    # Without the start flag at t = 3 the outputs differ (memory carried over the boundary).
    _, _, carried_value = apply(params, carry0, obs, starts.at[3, 0].set(False), noise)
    assert not np.allclose(carried_value[3:, 0], seq_value[3:, 0], atol=1e-6)


def _time_mix_net():
    return _net(make_memory("mlp", features=8), time_encoding=True)


def _init(net, T=3, B=2):
    obs = jax.random.normal(jax.random.PRNGKey(0), (T, B, 3))
    starts = jnp.zeros((T, B), bool).at[0].set(True)
    carry = net.initialize_carry(B)
    return net.init(jax.random.PRNGKey(1), carry, obs, starts, None), (carry, obs, starts)


def _with_time_mix(params, value):
    return {**params, "params": {**params["params"], "time_mix": jnp.float32(value)}}


def test_time_mix_is_projected_to_unit_interval_and_keeps_its_gradient_at_the_edges():
    net = _time_mix_net()
    params, (carry, obs, starts) = _init(net)
    for value, projected in [(-0.3, 0.0), (0.25, 0.25), (1.7, 1.0)]:
        out = net.project_params(_with_time_mix(params, value))
        assert float(out["params"]["time_mix"]) == projected
        # everything else passes through unchanged
        rest = {**out["params"], "time_mix": 0}
        jax.tree.map(np.testing.assert_array_equal, rest, {**params["params"], "time_mix": 0})

    @jax.jit
    def value_sum(p):
        return jnp.sum(net.apply(p, carry, obs, starts, None)[2] ** 2)

    # A projected s can sit exactly on an edge, and the blend must still pass it a gradient (a forward clip
    # alone gives none once s has left [0, 1]: it would stick there).
    grad_fn = jax.jit(jax.grad(value_sum))
    for edge in (0.0, 1.0, 1.7):
        grad = grad_fn(_with_time_mix(params, edge))["params"]["time_mix"]
        assert np.isfinite(grad) and abs(float(grad)) > 0
    # The forward pass reads a projected s: an out-of-range param gives what its projection gives.
    outside, edge = (value_sum(_with_time_mix(params, v)) for v in (1.7, 1.0))
    np.testing.assert_allclose(outside, edge, rtol=1e-6)
    assert _net(make_memory("mlp", features=8)).project_params(params) is params  # no time encoding: no-op


def test_every_ppo_update_projects_time_mix():
    from shm_jax.build import build
    from shm_jax.presets import from_preset

    config = from_preset(
        "default",
        env_id="probe:Recall",
        memory="mlp",
        memory_kwargs={"features": 8},
        feature_size=8,
        pre_size=8,
        post_size=8,
        head_hidden_size=8,
        num_envs=4,
        num_steps=8,
        num_minibatches=2,
        update_epochs=1,
        total_timesteps=32,
        lr=1e-3,
    )
    built = build(config)
    state = built.algorithm.init(jax.random.PRNGKey(0))
    update = jax.jit(built.algorithm.update)  # one compile for the three calls
    for start in (-5.0, 5.0):  # out of range before the update, inside after it
        moved = state.replace(params=_with_time_mix(state.params, start))
        new, _ = update(moved, built.hyperparameters)
        assert 0.0 <= float(new.params["params"]["time_mix"]) <= 1.0
    new, _ = update(state, built.hyperparameters)
    assert float(new.params["params"]["time_mix"]) != 0.5  # s learns from its 0.5 init


def test_official_init_matches_the_official_popgym_agent():
    core = make_memory("mlp", features=8)
    net = actor_critic(
        memory=core,
        action_spec=DISCRETE,
        feature_size=128,
        time_encoding=True,
        pre_size=64,
        post_size=64,
        head_hidden_size=64,
        init_scheme="official",
    )
    params = _init(net)[0]["params"]
    fan_in = {
        "feature_map": 3,
        "pre": 128,
        "post": 8,
        "actor_hidden": 64,
        "actor_out": 64,
        "critic_hidden": 64,
        "critic_out": 64,
    }
    for name, n in fan_in.items():
        bias = np.asarray(params[name]["bias"])  # PyTorch's default: U(±1/sqrt(fan_in)), not zeros
        assert np.abs(bias).max() <= 1 / math.sqrt(n) and np.abs(bias).max() > 0.3 / math.sqrt(n)
    for name in ("pre", "actor_hidden"):  # orthogonal with gain 1 (the default init uses sqrt(2) for pre/post)
        k = np.asarray(params[name]["kernel"])
        np.testing.assert_allclose(k.T @ k, np.eye(k.shape[1]), atol=1e-4)
    out = np.asarray(params["actor_out"]["kernel"])  # N(0, 0.01), not orthogonal
    assert 0.007 < out.std() < 0.013 and abs(np.sum(out.T @ out - np.diag(np.diag(out.T @ out)))) > 0
    default = _init(actor_critic(memory=core, action_spec=DISCRETE, feature_size=128, pre_size=64))[0]["params"]
    assert not np.any(np.asarray(default["pre"]["bias"]))
    with pytest.raises(ValueError, match="init_scheme must be one of"):
        actor_critic(memory=core, action_spec=DISCRETE, init_scheme="xavier")
