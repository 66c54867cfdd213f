"""Every registered memory core obeys the contract of ``shm_jax.memory.base.MemoryCore``.

One suite, parametrised over ``memory_names()`` (SHM, each of its calibration ablations, and every
baseline): shapes and dtypes (float32 and bfloat16 compute), acting step by step == one whole-sequence
call, a split sequence with the carry passed == one call, reset equivalence against independent
segments under vmap, a start flag erasing the past, noise replay, finite gradients, one-line errors for
badly shaped inputs. A core added to the registry is checked here without writing a test.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.memory import make_memory, memory_names
from shm_jax.memory.base import MemoryCore
from tests.helpers import SMALL_CORE_KWARGS, assert_trees_close, small_core_kwargs

T, B, D = 8, 3, 5  # sequence length, batch, input size
SEGMENT = 4  # reset period for the reset-equivalence test (T is a multiple of it)

NAMES = memory_names()
MEMORYLESS = {"mlp"}  # cores whose output depends on the current input only
NOISY = {"shm", "shm-random-c"}  # cores that draw per-step noise


def _kwargs(name: str) -> dict:
    return small_core_kwargs(name)


def test_every_registered_name_is_covered():
    assert {n for n in NAMES if not n.startswith("shm")} | {"shm"} == set(SMALL_CORE_KWARGS)
    assert {"shm", "shm-fixed-theta", "shm-neural-theta", "shm-random-c", "shm-fixed-c", "shm-c1"} <= set(NAMES)


def _inputs(seed: int, steps: int = T):
    return jax.random.normal(jax.random.key(seed), (steps, B, D), jnp.float32)


def _no_starts(steps: int = T):
    return jnp.zeros((steps, B), bool)


def _random_starts(seed: int, steps: int = T, rate: float = 0.3):
    return jax.random.bernoulli(jax.random.key(seed), rate, (steps, B))


def _steps(noise, start: int, stop: int):
    """Noise of steps [start, stop) (noise leaves have a leading time axis)."""
    return jax.tree.map(lambda n: n[start:stop], noise)


@functools.cache
def _setup(name: str, dtype: str = "float32"):
    """(core, params, jitted apply, noise for T steps) of the small version of a core; built once."""
    core = make_memory(name, dtype=dtype, **_kwargs(name))
    noise = core.sample_noise(jax.random.key(11), T, B)
    params = core.init(jax.random.key(1), core.initialize_carry(B), _inputs(0), _no_starts(), noise)
    apply = jax.jit(lambda p, c, x, s, n: core.apply(p, c, x, s, n))
    return core, params, apply, noise


@functools.cache
def _warm_carry(name: str):
    """A non-initial carry: the state after T steps of random input (so resets have something to erase)."""
    core, params, apply, noise = _setup(name)
    carry, _ = apply(params, core.initialize_carry(B), _inputs(99), _no_starts(), noise)
    return carry


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_interface_shapes_and_dtypes(name, dtype):
    core, params, apply, noise = _setup(name, dtype)
    assert isinstance(core, MemoryCore)
    carry0 = core.initialize_carry(B)
    assert all(leaf.shape[0] == B for leaf in jax.tree.leaves(carry0))
    if name in NOISY:
        assert all(leaf.shape[:2] == (T, B) for leaf in jax.tree.leaves(noise))
    else:
        assert noise is None
    carry, y = apply(params, carry0, _inputs(2), _random_starts(2), noise)
    assert y.shape == (T, B, core.output_size) and y.dtype == jnp.dtype(dtype)
    # the recurrent state keeps its own precision whatever the compute dtype is
    assert jax.tree.map(jnp.shape, carry) == jax.tree.map(jnp.shape, carry0)
    assert jax.tree.map(lambda c: c.dtype, carry) == jax.tree.map(lambda c: c.dtype, carry0)
    assert all(leaf.dtype in (jnp.float32, jnp.complex64) for leaf in jax.tree.leaves(carry0))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))


@pytest.mark.parametrize("name", NAMES)
def test_single_steps_equal_whole_sequence(name):
    core, params, apply, noise = _setup(name)
    x, starts = _inputs(3), _random_starts(3)
    carry0 = _warm_carry(name)
    carry_whole, y_whole = apply(params, carry0, x, starts, noise)
    carry, ys = carry0, []
    for t in range(T):
        carry, y_t = apply(params, carry, x[t : t + 1], starts[t : t + 1], _steps(noise, t, t + 1))
        ys.append(y_t)
    assert_trees_close(jnp.concatenate(ys), y_whole)
    assert_trees_close(carry, carry_whole)


@pytest.mark.parametrize("name", NAMES)
def test_split_sequence_equals_whole(name):
    core, params, apply, noise = _setup(name)
    x, starts = _inputs(4), _random_starts(4)
    carry0 = _warm_carry(name)
    carry_whole, y_whole = apply(params, carry0, x, starts, noise)
    half = T // 2
    carry_mid, y_first = apply(params, carry0, x[:half], starts[:half], _steps(noise, 0, half))
    carry_end, y_second = apply(params, carry_mid, x[half:], starts[half:], _steps(noise, half, T))
    assert_trees_close(jnp.concatenate([y_first, y_second]), y_whole)
    assert_trees_close(carry_end, carry_whole)


@pytest.mark.parametrize("name", NAMES)
def test_reset_equivalence_with_independent_segments(name):
    """A start flag every SEGMENT steps equals running each segment alone (vmapped) from the initial carry."""
    core, params, apply, noise = _setup(name)
    x = _inputs(5)
    starts = _no_starts().at[::SEGMENT].set(True)
    _, y_long = apply(params, _warm_carry(name), x, starts, noise)

    num = T // SEGMENT
    segments = x.reshape(num, SEGMENT, B, D)
    segment_noise = jax.tree.map(lambda n: n.reshape(num, SEGMENT, *n.shape[1:]), noise)
    seg_starts = jnp.zeros((SEGMENT, B), bool).at[0].set(True)
    run_segment = lambda xs, ns: apply(params, core.initialize_carry(B), xs, seg_starts, ns)[1]  # noqa: E731
    y_segments = jax.vmap(run_segment)(segments, segment_noise)
    assert_trees_close(y_segments.reshape(y_long.shape), y_long)


@pytest.mark.parametrize("name", NAMES)
def test_start_flag_erases_the_past(name):
    core, params, apply, noise = _setup(name)
    flag_at = 5
    x = _inputs(6)
    x_changed = x.at[:flag_at].set(_inputs(7)[:flag_at])  # different inputs before the flag only
    starts = _no_starts().at[flag_at].set(True)
    carry0 = _warm_carry(name)
    _, y = apply(params, carry0, x, starts, noise)
    _, y_changed = apply(params, core.initialize_carry(B), x_changed, starts, noise)
    assert_trees_close(y[flag_at:], y_changed[flag_at:])
    if name not in MEMORYLESS:
        # without the flag the past does reach the later outputs (so the check above is not vacuous)
        _, y_noflag = apply(params, carry0, x, _no_starts(), noise)
        _, y_noflag_changed = apply(params, carry0, x_changed, _no_starts(), noise)
        assert np.abs(np.asarray(y_noflag[flag_at:] - y_noflag_changed[flag_at:])).max() > 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_noise_replay(name):
    """The same noise gives bit-identical outputs; for cores that draw noise, other noise gives other outputs."""
    core, params, apply, noise = _setup(name)
    x, starts, carry = _inputs(12), _random_starts(12), _warm_carry(name)
    first, again = apply(params, carry, x, starts, noise), apply(params, carry, x, starts, noise)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), first, again)
    assert jax.tree.map(np.shape, core.sample_noise(jax.random.key(11), T, B)) == jax.tree.map(np.shape, noise)
    if name in NOISY:
        other = core.sample_noise(jax.random.key(12), T, B)
        _, y_other = apply(params, carry, x, starts, other)
        assert not np.allclose(np.asarray(y_other), np.asarray(first[1]))


@pytest.mark.parametrize("name", NAMES)
def test_gradients_are_finite(name):
    core, params, _, noise = _setup(name)
    x, starts = _inputs(8), _random_starts(8)

    def loss(p, x):
        _, y = core.apply(p, core.initialize_carry(B), x, starts, noise)
        return jnp.sum(jnp.sin(y))

    grads_p, grads_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)
    leaves = jax.tree.leaves(grads_p) + [grads_x]
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads_p))


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_raise_one_line_errors(name):
    core, params, _, noise = _setup(name)
    carry = core.initialize_carry(B)
    cases = [
        ((jnp.ones((T, B)), _no_starts()), ("x", "rank")),
        ((_inputs(0), jnp.zeros((T, B, 1), bool)), ("starts", "rank")),
        ((_inputs(0), _no_starts(T + 1)), ("starts",)),
        ((_inputs(0), jnp.zeros((T, B + 1), bool)), ("starts",)),
    ]
    for (x, starts), words in cases:
        with pytest.raises(ValueError) as info:
            core.apply(params, carry, x, starts, noise)
        message = str(info.value)
        assert "\n" not in message and all(word in message for word in words), message
