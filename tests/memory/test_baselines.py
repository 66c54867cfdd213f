"""What is particular to the baseline memory cores (shm_jax.memory.baselines): defaults, size checks, the
three HMF scans agreeing, and float64 references written from the equations.

The contract every core shares (stepping == whole sequence, resets, noise, gradients, input errors) is in
test_conformance.py. Sizes are tiny so each core compiles a handful of small programs.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.memory import make_memory
from tests.helpers import SMALL_CORE_KWARGS, assert_trees_close

T, B, D = 8, 3, 5  # sequence length, batch, input size
SEGMENT = 4  # reset period for the reset-equivalence test (T is a multiple of it)

SMALL = {name: kwargs for name, kwargs in SMALL_CORE_KWARGS.items() if name != "shm"}
HMF = ["ffm", "linear-attention", "mlstm"]


def _inputs(seed: int, steps: int = T):
    x = jax.random.normal(jax.random.key(seed), (steps, B, D), jnp.float32)
    return x


def _no_starts(steps: int = T):
    return jnp.zeros((steps, B), bool)


@functools.cache
def _setup(name: str):
    """(core, params, jitted apply) for the small version of a core; built once per core."""
    core = make_memory(name, **SMALL[name])
    carry = core.initialize_carry(B)
    params = core.init(jax.random.key(1), carry, _inputs(0), _no_starts(), None)
    apply = jax.jit(lambda p, c, x, s: core.apply(p, c, x, s, None))
    return core, params, apply


@functools.cache
def _warm_carry(name: str):
    """A non-initial carry: the state after T steps of random input (so resets have something to erase)."""
    core, params, apply = _setup(name)
    carry, _ = apply(params, core.initialize_carry(B), _inputs(99), _no_starts())
    return carry


def _random_starts(seed: int, steps: int = T, rate: float = 0.3):
    return jax.random.bernoulli(jax.random.key(seed), rate, (steps, B))


@pytest.mark.parametrize("name", ["gru", "mlp", "ffm", "linear-attention", "mlstm"])
def test_make_memory_defaults_work(name):
    core = make_memory(name)
    carry = core.initialize_carry(2)
    x, starts = jnp.ones((2, 2, 4)), jnp.array([[True, True], [False, True]])
    params = jax.eval_shape(core.init, jax.random.key(0), carry, x, starts, None)
    _, y = jax.eval_shape(core.apply, params, carry, x, starts, None)
    assert y.shape == (2, 2, core.output_size)
    assert core.sample_noise(jax.random.key(0), 2, 2) is None


def _one_line_value_error(fn, *match):
    with pytest.raises(ValueError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    for word in match:
        assert word in message
    return message


@pytest.mark.parametrize(
    "name, field",
    [
        ("gru", "hidden_size"),
        ("mlp", "features"),
        ("linear-attention", "memory_size"),
        ("linear-attention", "output_size"),
        ("mlstm", "memory_size"),
        ("mlstm", "output_size"),
        ("ffm", "memory_size"),
        ("ffm", "context_size"),
        ("ffm", "output_size"),
        ("ffm", "max_period"),
    ],
)
@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_sizes_raise_one_line_errors(name, field, value):
    _one_line_value_error(lambda: make_memory(name, **{field: value}), field)


@pytest.mark.parametrize("name", HMF)
def test_unknown_scan_method_raises_one_line_error(name):
    _one_line_value_error(lambda: make_memory(name, scan_method="parallel"), "parallel")
    _one_line_value_error(lambda: make_memory(name, chunk_size=0), "chunk_size")


@pytest.mark.parametrize("name", ["gru", "mlp"])
def test_batch_size_must_be_positive(name):
    _one_line_value_error(lambda: make_memory(name).initialize_carry(0), "batch_size")


# ---------------------------------------------------------------------------------------------------
# HMF cores: the three scan methods, and independent float64 references written from the equations.


@pytest.mark.parametrize("name", HMF)
def test_scan_methods_agree(name):
    """associative (SMALL) == sequential == chunked (chunk 3, so T = 8 is not a multiple of it)."""
    core, params, apply = _setup(name)
    x, starts = _inputs(10), _random_starts(10)
    carry0 = _warm_carry(name)
    expected = apply(params, carry0, x, starts)
    for method in ["sequential", "chunked"]:
        other = core.clone(scan_method=method, chunk_size=3)
        assert_trees_close(other.apply(params, carry0, x, starts, None), expected)


def _layer_norm(z, scale=None, bias=None, eps=1e-6):
    z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + eps)
    return z if scale is None else z * scale + bias


def _dense(p, z):
    return z @ np.asarray(p["kernel"], np.float64) + (np.asarray(p["bias"], np.float64) if "bias" in p else 0.0)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _numpy_params(params):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), params)["params"]


def _ffm_reference(params, carry0, x, starts, memory_size, output_size):
    """Plain per-step loop of FFM in float64/complex128: S_t = γ ⊙ (0 if start else S_{t-1}) + a_t ⊙ in-gate_t."""
    p = _numpy_params(params)
    m, f = memory_size, output_size
    pre = _dense(p["pre"], np.asarray(x, np.float64))
    trace_in, thru, gates = pre[..., :m], pre[..., m : m + f], _sigmoid(pre[..., m + f :])
    in_gate, out_gate = gates[..., :m], gates[..., m:]
    gamma = np.exp(-np.abs(p["alpha"])[:, None] + 1j * p["omega"][None, :])
    state = np.asarray(carry0, np.complex128)
    ys = []
    for t in range(x.shape[0]):
        state = np.where(np.asarray(starts[t])[:, None, None], 0.0, state)
        state = gamma * state + (trace_in[t] * in_gate[t])[:, :, None]
        features = np.concatenate([state.real, state.imag], axis=-1).reshape(state.shape[0], -1)
        mixed = _layer_norm(_dense(p["mix"], features))
        ys.append(mixed * out_gate[t] + thru[t] * (1.0 - out_gate[t]))
    return state, np.stack(ys)


@pytest.mark.parametrize("method", ["associative", "chunked"])
def test_ffm_equals_sequential_reference_with_random_resets(method):
    """The upstream FFM (flags not OR-ed) differs from this loop by up to ~1 at these settings."""
    sizes = SMALL["ffm"]
    core = make_memory("ffm", **{**sizes, "scan_method": method, "chunk_size": 16})
    steps = 64
    x = 2.0 * jax.random.normal(jax.random.key(11), (steps, B, D))
    starts = _random_starts(12, steps, rate=0.15)
    _, params, _ = _setup("ffm")
    carry0 = _warm_carry("ffm")
    carry, y = jax.jit(lambda p, c: core.apply(p, c, x, starts, None))(params, carry0)
    ref_carry, ref_y = _ffm_reference(params, carry0, x, starts, sizes["memory_size"], sizes["output_size"])
    np.testing.assert_allclose(np.asarray(y), ref_y, atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(carry), ref_carry, atol=2e-4, rtol=1e-4)


def _episode_weights(starts, decay):
    """w[t, s, b] = Π_{s<r≤t} decay[r, b] if s ≤ t and no start in (s, t], else 0 (float64[T, T, B]).

    The weight with which the write of step s is still present in the memory at step t.
    """
    steps, batch = starts.shape
    w = np.zeros((steps, steps, batch))
    for b in range(batch):
        for t in range(steps):
            product = 1.0
            for s in range(t, -1, -1):
                w[t, s, b] = product
                if starts[s, b]:
                    break
                product *= decay[s, b]
    return w


def _attention_reference(name, params, x, starts, memory_size):
    """The matrix memories written as masked (decayed) attention over each episode, from M_0 = 0."""
    p = _numpy_params(params)
    x_hat = _layer_norm(np.asarray(x, np.float64), p["norm"]["scale"], p["norm"]["bias"])
    v, k, q = (_dense(p[n], x_hat) for n in ("value", "key", "query"))
    starts = np.asarray(starts)
    if name == "linear-attention":

        def phi(z):
            return np.where(z > 0, z + 1.0, np.exp(z))

        k, q = phi(k), phi(q)
        decay, write = np.ones(starts.shape), np.ones(starts.shape)
    else:
        k = k / np.sqrt(memory_size)
        decay = _sigmoid(_dense(p["forget_gate"], x_hat))[..., 0]
        write = _sigmoid(_dense(p["input_gate"], x_hat))[..., 0]
    w = _episode_weights(starts, decay)
    scores = np.einsum("tbj,sbj->tsb", q, k) * w * write[None]  # [t, s, b]
    numerator = np.einsum("tsb,sbi->tbi", scores, v)
    normaliser = scores.sum(1)
    if name == "linear-attention":
        h = numerator / (normaliser[..., None] + 1e-6)
    else:
        h = numerator / np.maximum(np.abs(normaliser), 1.0)[..., None]
        h = h * _sigmoid(_dense(p["output_gate"], x_hat))
    return _dense(p["out"], h + _dense(p["shortcut"], x_hat))


@pytest.mark.parametrize("name", ["linear-attention", "mlstm"])
def test_matrix_memory_equals_masked_attention(name):
    core, params, apply = _setup(name)
    x, starts = _inputs(13), _random_starts(13, rate=0.25)
    _, y = apply(params, core.initialize_carry(B), x, starts)
    expected = _attention_reference(name, params, x, starts, SMALL[name]["memory_size"])
    np.testing.assert_allclose(np.asarray(y), expected, atol=1e-4, rtol=1e-4)
