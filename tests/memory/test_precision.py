"""Mixed precision of the memory cores: bfloat16 compute stays within a stated tolerance of float32.

Tolerance (why 2e-2). bfloat16 keeps 8 significant bits: its epsilon is 2^-8 ≈ 3.9e-3 and one rounding costs
at most u = 2^-9 ≈ 2e-3 relative. Between the input and y there are about six bf16 roundings (LayerNorm output,
the fused projection's inputs and outputs, the sum-normalised k and q, the read-out cast back to bf16, the
shortcut / output projection); the projections accumulate in float32, so each adds O(u) in norm, i.e. a few u
in total. The recurrence itself is float32, but it multiplies up to T calibrations C_t = 1 + tanh(θ_t v_c,t)
whose v_c carries one rounding each: with |θ| ≲ 0.2 (Xavier) the error of log C_t is ≲ 0.2u per step with
random sign, ~ sqrt(T)·0.2u = 1.6u at T = 64. So we expect a normwise relative error of a few u and assert
2e-2 ≈ 10u. Measured (3 seeds): 4.5e-3 for y, 3.5e-3 for the carry, gradient cosine 0.9999.
At this length, rounding C_t and U_t to bf16 as well moves these numbers little (measured: 4.5e-3 / 3.8e-3), so
the float32 memory path is pinned by dtype (test_recurrence_runs_in_float32), not by the error size.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.memory import make_memory
from shm_jax.memory.precision import compute_dtype
from shm_jax.memory.shm import SHM

B, T, H, D = 4, 64, 32, 16
REL_TOL = 2e-2  # normwise relative error of y and of the final carry, bf16 vs fp32 (see the module docstring)
MIN_GRAD_COSINE = 0.99


def sequence(length=T, batch=B, features=D, seed=0):
    """x float32[T, B, D] and starts bool[T, B] with episode restarts at t = 0 and inside the sequence."""
    x = jax.random.normal(jax.random.PRNGKey(seed), (length, batch, features))
    starts = jnp.zeros((length, batch), bool).at[0].set(True).at[length // 3, 1].set(True)
    return x, starts


def relative_error(approx, exact) -> float:
    """||approx - exact|| / ||exact|| (real or complex); the plain norm of approx when exact is all zeros."""
    approx, exact = np.asarray(approx, np.complex128), np.asarray(exact, np.complex128)
    scale = np.linalg.norm(exact)
    return float(np.linalg.norm(approx - exact) / (scale if scale > 0 else 1.0))


def flat(tree) -> np.ndarray:
    return np.concatenate([np.asarray(leaf, np.float64).ravel() for leaf in jax.tree.leaves(tree)])


def forward_and_grad(core, params, x, starts, noise):
    """(carry, y, d loss / d params) with a loss that touches every output and the final memory."""

    def loss(p):
        carry, y = core.apply(p, core.initialize_carry(x.shape[1]), x, starts, noise)
        target = jnp.sin(jnp.arange(y.shape[-1], dtype=jnp.float32))
        return jnp.mean((y.astype(jnp.float32) - target) ** 2) + jnp.mean(jnp.abs(carry) ** 2), (carry, y)

    (_, (carry, y)), grads = jax.value_and_grad(loss, has_aux=True)(params)
    return carry, y, grads


def shm(dtype):
    return SHM(memory_size=H, shortcut=True, projection_size=24, scan_method="sequential", dtype=dtype)


@pytest.fixture(scope="module")
def shm_runs():
    """The same params and noise through SHM in float32 and in bfloat16 (two compilations, shared by tests)."""
    x, starts = sequence()
    noise = shm(None).sample_noise(jax.random.PRNGKey(1), T, B)
    # Params do not depend on T: initialise on one step (cheap), run on all T.
    params = shm(None).init(jax.random.PRNGKey(2), shm(None).initialize_carry(B), x[:1], starts[:1], noise[:1])
    runs = {
        name: jax.jit(lambda p, c=shm(dtype): forward_and_grad(c, p, x, starts, noise))(params)
        for name, dtype in (("fp32", None), ("bf16", "bfloat16"))
    }
    return params, runs


def test_bf16_output_within_stated_tolerance_of_fp32(shm_runs):
    _, runs = shm_runs
    (_, y32, _), (_, y16, _) = runs["fp32"], runs["bf16"]
    assert y32.dtype == jnp.float32 and y16.dtype == jnp.bfloat16  # y has the compute dtype
    error = relative_error(y16, y32)
    assert error < REL_TOL, error
    assert error > 0  # the bf16 path really computed in bf16 (identical output would mean it fell back to fp32)


def test_bf16_carry_is_float32_and_close(shm_runs):
    params, runs = shm_runs
    (c32, _, _), (c16, _, _) = runs["fp32"], runs["bf16"]
    assert c16.dtype == jnp.float32 and c16.shape == (B, H, H)
    assert shm("bfloat16").initialize_carry(B).dtype == jnp.float32
    assert relative_error(c16, c32) < REL_TOL
    # Params stay float32 (flax param_dtype) whatever the compute dtype.
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}


def test_bf16_gradients_finite_and_aligned_with_fp32(shm_runs):
    _, runs = shm_runs
    g32, g16 = runs["fp32"][2], runs["bf16"][2]
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(g16))
    a, b = flat(g16), flat(g32)
    assert np.all(np.isfinite(a))
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert cosine > MIN_GRAD_COSINE, cosine


def _values(jaxpr):
    """Every value a jaxpr computes, nested jaxprs (scan/while bodies, custom VJPs, kernels) included."""
    for eqn in jaxpr.eqns:
        yield from eqn.outvars
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                sub = getattr(sub, "jaxpr", sub)
                if hasattr(sub, "eqns"):
                    yield from _values(sub)


@pytest.mark.parametrize("method", ["sequential", "associative", "chunked"])
def test_recurrence_runs_in_float32(method):
    """With bf16 compute no H x H value (M_t, C_t, U_t, their gradients) is bf16, forward or backward."""
    hsz = 5  # no other axis is 5, so [..., 5, 5] values are the memory-sized ones
    x, starts = sequence(length=3, batch=2, features=3)
    core = SHM(memory_size=hsz, dtype="bfloat16", scan_method=method, chunk_size=2)
    noise = core.sample_noise(jax.random.PRNGKey(0), 3, 2)
    params = jax.eval_shape(core.init, jax.random.PRNGKey(0), core.initialize_carry(2), x, starts, noise)
    params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), params)
    jaxpr = jax.make_jaxpr(lambda p: forward_and_grad(core, p, x, starts, noise))(params).jaxpr
    square = [v.aval.dtype for v in _values(jaxpr) if getattr(v.aval, "shape", ())[-2:] == (hsz, hsz)]
    assert square and jnp.dtype(jnp.bfloat16) not in square, set(square)
    assert any(v.aval.dtype == jnp.bfloat16 for v in _values(jaxpr))  # the projections did run in bf16


def _program(core, x, starts, noise):
    """The traced forward + backward program (jaxpr text): equal programs compute bitwise-equal results."""
    params = jax.eval_shape(core.init, jax.random.PRNGKey(0), core.initialize_carry(x.shape[1]), x, starts, noise)
    params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), params)
    return str(jax.make_jaxpr(lambda p: forward_and_grad(core, p, x, starts, noise))(params))


CORES = [
    ("shm", dict(memory_size=8, shortcut=True, projection_size=6)),
    ("shm-neural-theta", dict(memory_size=8)),
    ("shm-fixed-c", dict(memory_size=8)),
    ("gru", dict(hidden_size=8)),
    ("ffm", dict(memory_size=4, context_size=3, output_size=6)),
    ("linear-attention", dict(memory_size=8, output_size=6)),
    ("mlstm", dict(memory_size=8, output_size=6)),
    ("mlp", dict(features=6)),
]


@pytest.mark.parametrize("name, kwargs", CORES, ids=[name for name, _ in CORES])
def test_float32_default_path_unchanged(name, kwargs):
    """dtype=None, "float32" and jnp.float32 trace to the same program (no cast, nothing bf16 in it)."""
    x, starts = sequence(length=5, batch=2, features=3)
    noise = make_memory(name, **kwargs).sample_noise(jax.random.PRNGKey(1), 5, 2)
    programs = [
        _program(make_memory(name, dtype=dtype, **kwargs), x, starts, noise) for dtype in (None, "float32", jnp.float32)
    ]
    assert programs[0] == programs[1] == programs[2]
    assert "bf16" not in programs[0]
    assert "bf16" in _program(make_memory(name, dtype="bfloat16", **kwargs), x, starts, noise)


OTHER_CORES = CORES[1:]  # plain SHM is covered at full size by the shm_runs tests


@pytest.fixture(scope="module")
def every_core_runs():
    """name -> ((carry, y) fp32, (carry, y) bf16) with the same params: every core in one compiled program."""
    x, starts = sequence(length=8, batch=2, features=3)

    @jax.jit
    def run_all():
        results = {}
        for name, kwargs in OTHER_CORES:
            fp32, bf16 = make_memory(name, **kwargs), make_memory(name, dtype="bfloat16", **kwargs)
            noise = fp32.sample_noise(jax.random.PRNGKey(1), 8, 2)
            params = fp32.init(jax.random.PRNGKey(2), fp32.initialize_carry(2), x, starts, noise)
            results[name] = [core.apply(params, core.initialize_carry(2), x, starts, noise) for core in (fp32, bf16)]
        return results

    return run_all()


@pytest.mark.parametrize("name, kwargs", OTHER_CORES, ids=[name for name, _ in OTHER_CORES])
def test_every_core_runs_in_bf16_with_its_state_dtype(every_core_runs, name, kwargs):
    """bf16 output close to fp32 with the same params; the carry keeps its float32 (complex64) dtype."""
    (c32, y32), (c16, y16) = every_core_runs[name]
    assert make_memory(name, dtype="bfloat16", **kwargs).initialize_carry(2).dtype == c16.dtype == c32.dtype
    assert y16.dtype == jnp.bfloat16 and y16.shape == y32.shape
    assert relative_error(y16, y32) < REL_TOL
    assert relative_error(c16, c32) < REL_TOL


@pytest.mark.parametrize(
    "good, expected",
    [
        (None, jnp.float32),
        ("float32", jnp.float32),
        (jnp.float32, jnp.float32),
        (np.float32, jnp.float32),
        ("bfloat16", jnp.bfloat16),
        (jnp.bfloat16, jnp.bfloat16),
        (jnp.dtype(jnp.bfloat16), jnp.bfloat16),
    ],
)
def test_dtype_spellings(good, expected):
    assert compute_dtype("SHM", good) is expected


@pytest.mark.parametrize("bad", ["float16", "bf16", jnp.float16, jnp.float64, 3, True, "Float32"])
def test_bad_dtype_one_line_error(bad):
    for cls_name, build in (
        ("SHM", lambda: SHM(dtype=bad)),
        ("GRU", lambda: make_memory("gru", dtype=bad)),
        ("FFM", lambda: make_memory("ffm", dtype=bad)),
    ):
        with pytest.raises(ValueError) as err:
            build()
        message = str(err.value)
        assert message.startswith(f"{cls_name}: dtype must be") and "'bfloat16'" in message, message
        assert "\n" not in message
