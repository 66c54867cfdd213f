"""What is particular to the SHM layer: scans per calibration, theta replay, ablations, stability, errors, sizes.

The memory-core contract (stepping == whole sequence, resets, noise replay, dtypes) is in test_conformance.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.memory import make_memory, memory_names
from shm_jax.memory.shm import CALIBRATIONS, SHM
from tests.helpers import assert_trees_close, quick_subset

T, B, D, H = 24, 3, 6, 8


def inputs(length=T, batch=B, seed=0, reset_every=None):
    x = jax.random.normal(jax.random.PRNGKey(seed), (length, batch, D))
    starts = jnp.zeros((length, batch), bool).at[0].set(True)
    if reset_every:
        starts = starts.at[::reset_every].set(True)
    return x, starts


def build(calibration="random_theta", method="sequential", reset_every=None, **kw):
    core = SHM(memory_size=H, calibration=calibration, scan_method=method, **kw)
    x, starts = inputs(reset_every=reset_every)
    noise = core.sample_noise(jax.random.PRNGKey(1), T, B)
    params = core.init(jax.random.PRNGKey(2), core.initialize_carry(B), x, starts, noise)
    return core, params, x, starts, noise


def assert_close(a, b, tol=1e-5):
    assert_trees_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("calibration", quick_subset(CALIBRATIONS, {"random_theta"}))
def test_scan_methods_agree_for_every_calibration(calibration):
    core, params, x, starts, noise = build(calibration, reset_every=7)
    ref = core.apply(params, core.initialize_carry(B), x, starts, noise)
    for method in ("associative", "chunked"):
        other = SHM(memory_size=H, calibration=calibration, scan_method=method, chunk_size=5)
        out = other.apply(params, core.initialize_carry(B), x, starts, noise)
        jax.tree.map(lambda a, b: assert_close(a, b, 1e-4), out, ref)


def test_theta_replay():
    core, params, x, starts, noise = build()
    carry = core.initialize_carry(B)
    first = core.apply(params, carry, x, starts, noise)
    again = core.apply(params, carry, x, starts, noise)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), first, again)
    other_noise = core.sample_noise(jax.random.PRNGKey(42), T, B)
    assert not np.array_equal(np.asarray(other_noise), np.asarray(noise))
    other = core.apply(params, carry, x, starts, other_noise)
    assert not np.allclose(np.asarray(other[1]), np.asarray(first[1]))
    assert noise.shape == (T, B) and noise.dtype == jnp.int32
    assert int(noise.min()) >= 0 and int(noise.max()) < core.num_theta


def test_fixed_theta_ignores_noise_and_uses_row_zero():
    core, params, x, starts, _ = build("fixed_theta")
    assert core.sample_noise(jax.random.PRNGKey(0), T, B) is None
    carry = core.initialize_carry(B)
    base_out = core.apply(params, carry, x, starts, None)
    noisy = core.apply(params, carry, x, starts, jax.random.randint(jax.random.PRNGKey(5), (T, B), 0, 128))
    jax.tree.map(assert_close, base_out, noisy)
    # Random-theta with every index 0 is the fixed-theta model.
    random_core = SHM(memory_size=H, scan_method="sequential")
    zeros = jnp.zeros((T, B), jnp.int32)
    jax.tree.map(assert_close, random_core.apply(params, carry, x, starts, zeros), base_out)


def test_random_theta_gradient_stable_over_4096_steps():
    length, batch = 4096, 2
    core = SHM(memory_size=H, scan_method="sequential")
    x, starts = inputs(length, batch, seed=4)
    noise = core.sample_noise(jax.random.PRNGKey(0), length, batch)
    params = core.init(jax.random.PRNGKey(1), core.initialize_carry(batch), x[:2], starts[:2], noise[:2])

    def last_output(x):
        return jnp.sum(core.apply(params, core.initialize_carry(batch), x, starts, noise)[1][-1])

    grad_first = jax.jit(jax.grad(last_output))(x)[0]
    assert bool(jnp.all(jnp.isfinite(grad_first)))
    assert float(jnp.abs(grad_first).max()) > 0.0


def test_calibration_is_one_on_average_at_init():
    """E[C] = 1 with Xavier Θ and random rows (the paper's Prop. 4 premise)."""
    core = SHM(memory_size=32)
    x, starts = inputs(length=64, batch=16, seed=5)
    noise = core.sample_noise(jax.random.PRNGKey(0), 64, 16)
    params = core.init(jax.random.PRNGKey(1), core.initialize_carry(16), x, starts, noise)
    theta = params["params"]["theta"]
    bound = np.sqrt(6.0 / (128 + 32))
    assert theta.shape == (128, 32) and float(jnp.abs(theta).max()) <= bound
    assert float(jnp.abs(theta).max()) > 0.8 * bound
    v_c = jax.random.normal(jax.random.PRNGKey(2), (4096, 32))
    rows = theta[jax.random.randint(jax.random.PRNGKey(3), (4096,), 0, 128)]
    c = 1.0 + jnp.tanh(rows[:, :, None] * v_c[:, None, :])
    assert abs(float(c.mean()) - 1.0) < 0.01


def test_popgym_parameter_count_matches_the_official_core():
    """d = 64, H = 32, shortcut, projection to 1024: 48,352 parameters, the official POPGym core's count."""
    core = make_memory("shm", memory_size=32, projection_size=1024, shortcut=True)
    x = jnp.zeros((1, 1, 64))
    params = core.init(
        jax.random.PRNGKey(0),
        core.initialize_carry(1),
        x,
        jnp.ones((1, 1), bool),
        core.sample_noise(jax.random.PRNGKey(0), 1, 1),
    )
    assert sum(p.size for p in jax.tree.leaves(params)) == 48_352
    assert core.output_size == 1024


def test_registry_names_build_the_ablations():
    for name, calibration in [
        ("shm", "random_theta"),
        ("shm-fixed-theta", "fixed_theta"),
        ("shm-neural-theta", "neural_theta"),
        ("shm-random-c", "random_c"),
        ("shm-fixed-c", "fixed_c"),
        ("shm-c1", "ones"),
    ]:
        assert name in memory_names()
        assert make_memory(name, memory_size=4).calibration == calibration


@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(x=jnp.zeros((T, D))), "x must have rank 3"),
        (dict(starts=jnp.zeros((T + 1, B), bool)), r"starts shape \(25, 3\) must equal"),
        (dict(starts=jnp.zeros((T,), bool)), "starts must have rank 2"),
        (dict(noise=jnp.zeros((T, B + 1), jnp.int32)), r"noise must be int\[T, B\]"),
        (dict(noise=None), "needs noise"),
    ],
)
def test_bad_call_inputs_raise_one_line_errors(bad, match):
    core, params, x, starts, noise = build()
    args = dict(x=x, starts=starts, noise=noise) | bad
    with pytest.raises(ValueError, match=match) as info:
        core.apply(params, core.initialize_carry(B), args["x"], args["starts"], args["noise"])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(memory_size=0), "memory_size must be a positive integer"),
        (dict(memory_size=4, num_theta=-1), "num_theta must be a positive integer"),
        (dict(memory_size=4, calibration="magic"), "unknown calibration 'magic'; valid: random_theta"),
        (dict(memory_size=4, scan_method="fast"), "unknown scan method 'fast'"),
    ],
)
def test_bad_sizes_and_names_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SHM(**kwargs)


def test_unknown_memory_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown memory 'shn'; valid names: .*gru.*shm"):
        make_memory("shn")


def test_sown_memories_and_calibrations_follow_the_recurrence():
    core, params, x, starts, noise = build(reset_every=10)
    carry, y = core.apply(params, core.initialize_carry(B), x, starts, noise)
    (carry_i, y_i), variables = core.apply(
        params, core.initialize_carry(B), x, starts, noise, mutable=["intermediates"]
    )
    assert_close(y_i, y, 1e-4)
    assert_close(carry_i, carry, 1e-4)
    memory, c = variables["intermediates"]["memory"][0], variables["intermediates"]["calibration"][0]
    # the last recorded memory is the carry the layer returns
    assert_close(memory[-1], carry, 1e-4)
    assert memory.shape == c.shape == (T, B, H, H)
    assert float(c.min()) > 0.0 and float(c.max()) < 2.0
    # The recorded matrices satisfy the recurrence step by step (M reset to 0 at start steps).
    for t in range(1, T):
        prev = jnp.where(starts[t][:, None, None], 0.0, memory[t - 1])
        u = memory[t] - prev * c[t]
        # U_t = eta v ⊗ k has rank one: its second singular value vanishes.
        s = jnp.linalg.svd(u, compute_uv=False)
        assert float(jnp.max(s[:, 1] / (s[:, 0] + 1e-12))) < 1e-3


def _recurrence(carry, c, u, starts, bound):
    """The clamped recurrence in numpy from given C_t and U_t."""
    memory, out = np.asarray(carry), []
    for t in range(len(starts)):
        prev = np.where(np.asarray(starts[t])[:, None, None], 0.0, memory)
        memory = np.clip(prev * np.asarray(c[t]) + np.asarray(u[t]), -bound, bound)
        out.append(memory)
    return np.stack(out)


def _c_and_u(core, params, x, starts, noise):
    """C_t and U_t of the unclamped layer, read back from its sown memories: U_t = M_t - M_{t-1} ⊙ C_t."""
    _, variables = core.apply(params, core.initialize_carry(B), x, starts, noise, mutable=["intermediates"])
    memory, c = (np.asarray(variables["intermediates"][k][0]) for k in ("memory", "calibration"))
    prev = np.concatenate([np.zeros_like(memory[:1]), memory[:-1]])
    prev = np.where(np.asarray(starts)[:, :, None, None], 0.0, prev)
    return c, memory - prev * c


@pytest.mark.parametrize("calibration", ["random_theta", "fixed_c"])
def test_clamp_clips_the_memory_after_every_write(calibration):
    core, params, x, starts, noise = build(calibration, reset_every=10)
    c, u = _c_and_u(core, params, x, starts, noise)
    bound = float(np.quantile(np.abs(u), 0.9))  # tight enough that many cells hit it
    for method in ("sequential", None):
        clamped = SHM(memory_size=H, calibration=calibration, scan_method=method, chunk_size=5, clamp=bound)
        (carry, y), variables = clamped.apply(
            params, core.initialize_carry(B), x, starts, noise, mutable=["intermediates"]
        )
        memory = variables["intermediates"]["memory"][0]
        expected = _recurrence(core.initialize_carry(B), c, u, starts, bound)
        assert_close(memory, expected, 1e-5)
        assert_close(carry, expected[-1], 1e-5)
        assert np.mean(np.abs(expected) == bound) > 0.05  # the clip was active
        assert_close(y, clamped.apply(params, core.initialize_carry(B), x, starts, noise)[1], 1e-6)
    # A bound no cell reaches changes nothing.
    loose = SHM(memory_size=H, calibration=calibration, chunk_size=5, clamp=1e6)
    jax.tree.map(
        lambda a, b: assert_close(a, b, 1e-5),
        loose.apply(params, core.initialize_carry(B), x, starts, noise),
        core.apply(params, core.initialize_carry(B), x, starts, noise),
    )


@pytest.mark.slow
def test_clamp_gradient_is_the_clip_gradient():
    core, params, x, starts, noise = build()
    loose = SHM(memory_size=H, scan_method="sequential", chunk_size=5, clamp=1e6)

    def loss(layer, p, carry):
        carry_out, y = layer.apply(p, carry, x, starts.at[0].set(False), noise)
        return jnp.sum(y**2) + jnp.sum(carry_out)

    carry = 0.1 * jax.random.normal(jax.random.PRNGKey(3), (B, H, H))
    # Unreached bound: the gradient equals the unclamped layer's (its lean custom gradient).
    for a, b in zip(jax.grad(loss, (1, 2))(loose, params, carry), jax.grad(loss, (1, 2))(core, params, carry)):
        jax.tree.map(lambda g, h: assert_close(g, h, 1e-4), a, b)
    # One step from a carry whose cells are half far past the bound: clipped cells pass no gradient back,
    # the others pass C_1 (dM_1/dM_0 = C_1 where |M_1| < bound).
    tight = SHM(memory_size=H, scan_method="sequential", clamp=1.0)
    big = jnp.where(jnp.arange(H)[None, :, None] < H // 2, 50.0, 0.0) * jnp.ones((B, H, H))
    one_step = lambda m: jnp.sum(tight.apply(params, m, x[:1], starts[:1].at[:].set(False), noise[:1])[0])  # noqa: E731
    grad = np.asarray(jax.grad(one_step)(big))
    assert np.all(grad[:, : H // 2] == 0.0)
    c, _ = _c_and_u(core, params, x[:1], starts[:1].at[:].set(False), noise[:1])
    assert_close(grad[:, H // 2 :], c[0][:, H // 2 :], 1e-6)
    grads = jax.grad(loss, 1)(SHM(memory_size=H, scan_method="sequential", clamp=0.05), params, carry)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads)) and any(
        np.abs(g).max() > 0 for g in jax.tree.leaves(grads)
    )


@pytest.mark.parametrize("method", ["associative", "chunked", "fused"])
def test_clamp_refuses_the_associative_scans(method):
    with pytest.raises(ValueError, match=f"clamp needs scan_method 'sequential' or None .*got '{method}'"):
        SHM(memory_size=4, scan_method=method, clamp=100.0)


@pytest.mark.parametrize("bound", [0, -1.0, float("inf"), True, "100"])
def test_bad_clamp_raises(bound):
    with pytest.raises(ValueError, match="clamp must be None or a positive finite number"):
        SHM(memory_size=4, clamp=bound)


@pytest.mark.slow
def test_default_checkpoint_interval_keeps_the_recomputed_chunk_in_cache_and_changes_no_value():
    from shm_jax.memory.shm import sequential_chunk_size

    # L x B x H x H float32 <= 4 MiB, a power of two in [8, 64].
    assert [sequential_chunk_size(b, h) for b, h in ((8, 128), (64, 128), (8, 32), (1, 128), (2, 128))] == [
        8,
        8,
        64,
        64,
        32,
    ]
    assert SHM().chunk_size is None
    with pytest.raises(ValueError, match="chunk_size"):
        SHM(chunk_size=0)
    length, batch, hsz = 40, 3, 8
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    x = jax.random.normal(keys[0], (length, batch, 5))
    starts = jax.random.bernoulli(keys[1], 0.1, (length, batch)).at[0].set(True)
    auto, fixed = (
        SHM(memory_size=hsz, scan_method="sequential"),
        SHM(memory_size=hsz, scan_method="sequential", chunk_size=7),
    )
    noise = auto.sample_noise(keys[2], length, batch)
    carry = jax.random.normal(keys[3], (batch, hsz, hsz))
    params = auto.init(keys[2], carry, x, starts, noise)

    def loss(core, x_):
        final, y = core.apply(params, carry, x_, starts, noise)
        return jnp.sum(jnp.square(y)) + jnp.sum(final)

    for a, b in zip(
        jax.value_and_grad(lambda x_: loss(auto, x_))(x), jax.value_and_grad(lambda x_: loss(fixed, x_))(x)
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
