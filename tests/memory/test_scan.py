"""The reset-aware HMF scan: operator algebra and agreement of the three implementations.

Tolerance: float32 throughout; the implementations sum the same terms in different orders, so we
compare with rtol = 1e-4 and an absolute floor of 1e-5 x the largest magnitude.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shm_jax.memory.scan import SCAN_METHODS, hadamard_scan, resettable_combine
from tests.helpers import assert_scaled_close, quick_subset

jax.config.update("jax_numpy_rank_promotion", "allow")


def random_element(key, shape=(3, 4, 4)):
    kc, ku, kf = jax.random.split(key, 3)
    c = jax.random.uniform(kc, shape, minval=0.0, maxval=2.0)
    u = jax.random.normal(ku, shape)
    f = jax.random.bernoulli(kf, 0.4, shape[:1])
    return c, u, f


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_resettable_operator_is_associative(seed):
    a, b, c = (random_element(k) for k in jax.random.split(jax.random.PRNGKey(seed), 3))
    left = resettable_combine(resettable_combine(a, b), c)
    right = resettable_combine(a, resettable_combine(b, c))
    for x, y in zip(left, right):
        assert_scaled_close(x, y, rtol=1e-5)


def test_operator_identity_and_reset():
    a, b = random_element(jax.random.PRNGKey(0)), random_element(jax.random.PRNGKey(1))
    identity = (jnp.ones_like(a[0]), jnp.zeros_like(a[1]), jnp.zeros_like(a[2]))
    for x, y in zip(resettable_combine(identity, a), a):
        assert_scaled_close(x, y)
    for x, y in zip(resettable_combine(a, identity), a):
        assert_scaled_close(x, y)
    # A later element that starts an episode discards everything before it.
    b_reset = (b[0], b[1], jnp.ones_like(b[2]))
    c, u, f = resettable_combine(a, b_reset)
    assert_scaled_close(c, b[0])
    assert_scaled_close(u, b[1])
    assert bool(jnp.all(f))


def make_cu(inputs):
    c = 1.0 + jnp.tanh(inputs["a"][..., :, None] * inputs["b"][..., None, :])
    u = inputs["v"][..., :, None] * inputs["k"][..., None, :]
    return c, u


def read(memory, inputs):
    return jnp.einsum("...ij,...j->...i", memory, inputs["q"])


def random_problem(key, length, batch, size, reset_prob=0.1):
    keys = jax.random.split(key, 7)
    inputs = {n: jax.random.normal(k, (length, batch, size)) for n, k in zip("abvkq", keys[:5])}
    starts = jax.random.bernoulli(keys[5], reset_prob, (length, batch))
    carry = jax.random.normal(keys[6], (batch, size, size))
    return carry, inputs, starts


def reference_loop(carry, inputs, starts):
    """The recurrence written out step by step in numpy."""
    memory, ys = np.asarray(carry, np.float64), []
    for t in range(starts.shape[0]):
        c, u = make_cu(jax.tree.map(lambda x: x[t], inputs))
        memory = np.where(np.asarray(starts[t])[:, None, None], 0.0, memory) * np.asarray(c) + np.asarray(u)
        ys.append(np.einsum("bij,bj->bi", memory, np.asarray(inputs["q"][t])))
    return memory, np.stack(ys)


@pytest.mark.parametrize("length,size", quick_subset([(1, 4), (13, 4), (64, 8), (100, 16)], {(1, 4), (13, 4)}))
def test_all_methods_match_reference_outputs_carry_and_gradients(length, size):
    carry, inputs, starts = random_problem(jax.random.PRNGKey(length), length, 3, size)
    ref_carry, ref_y = reference_loop(carry, inputs, starts)

    # A random linear read-out of everything: gradients stay well conditioned, so float32 agreement
    # measures the scans, not the loss.
    w_y, w_final = (
        jax.random.normal(jax.random.PRNGKey(1), ref_y.shape),
        jax.random.normal(jax.random.PRNGKey(2), ref_carry.shape),
    )

    def loss(carry, inputs, method):
        final, y = hadamard_scan(carry, inputs, starts, make_cu, read, method=method, chunk_size=16)
        return jnp.sum(w_y * y) + jnp.sum(w_final * final), (final, y)

    grads = {}
    for method in SCAN_METHODS:
        (_, (final, y)), grads[method] = jax.jit(
            jax.value_and_grad(loss, argnums=(0, 1), has_aux=True), static_argnums=2
        )(carry, inputs, method)
        assert_scaled_close(y, ref_y)
        assert_scaled_close(final, ref_carry)
    for method in ("associative", "chunked"):
        jax.tree.map(assert_scaled_close, grads[method], grads["sequential"])


@pytest.mark.slow
def test_reset_equivalence_2048_steps_every_32():
    """One 2048-step sequence with a start flag every 32 steps == 64 independent 32-step sequences."""
    length, period, batch, size = 2048, 32, 2, 4
    carry, inputs, _ = random_problem(jax.random.PRNGKey(7), length, batch, size)
    starts = jnp.zeros((length, batch), bool).at[::period].set(True)
    chunks = jax.tree.map(lambda x: x.reshape((length // period, period) + x.shape[1:]), inputs)
    zero = jnp.zeros_like(carry)

    # One compiled program per method: run eagerly, every primitive of the scans dispatches (and compiles) on its own.
    @functools.partial(jax.jit, static_argnums=0)
    def long_and_short(method, inputs, chunks):
        _, y_long = hadamard_scan(carry, inputs, starts, make_cu, read, method=method, chunk_size=48)
        _, y_short = jax.vmap(
            lambda inp: hadamard_scan(zero, inp, jnp.zeros((period, batch), bool), make_cu, read, method=method)
        )(chunks)
        return y_long, y_short.reshape(y_long.shape)

    for method in SCAN_METHODS:
        assert_scaled_close(*long_and_short(method, inputs, chunks))


@pytest.mark.slow
def test_carry_threading_equals_one_call():
    length, batch, size = 40, 2, 4
    carry, inputs, starts = random_problem(jax.random.PRNGKey(3), length, batch, size, reset_prob=0.05)
    # Jitted: one compiled program per call shape instead of one dispatch per primitive.
    scan = jax.jit(
        lambda carry, inputs, starts, method: hadamard_scan(
            carry, inputs, starts, make_cu, read, method=method, chunk_size=8
        ),
        static_argnums=3,
    )
    for method in SCAN_METHODS:
        final, y = scan(carry, inputs, starts, method)
        head = jax.tree.map(lambda x: x[:17], inputs)
        tail = jax.tree.map(lambda x: x[17:], inputs)
        mid, y1 = scan(carry, head, starts[:17], method)
        final2, y2 = scan(mid, tail, starts[17:], method)
        assert_scaled_close(jnp.concatenate([y1, y2]), y)
        assert_scaled_close(final2, final)


def test_bad_method_and_chunk_size_raise_one_line_errors():
    carry, inputs, starts = random_problem(jax.random.PRNGKey(0), 4, 1, 2)
    with pytest.raises(ValueError, match="unknown scan method 'fast'.*associative, sequential, chunked"):
        hadamard_scan(carry, inputs, starts, make_cu, read, method="fast")
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        hadamard_scan(carry, inputs, starts, make_cu, read, method="chunked", chunk_size=0)
