"""The SHM product-form scans against the reference scan: values and gradients.

Three implementations of the same contract: the fused Pallas kernel in interpret mode on CPU, in its GPU
(Triton) structure and its TPU (Mosaic) structure, and its XLA twin ``product_form_scan`` (SHM's sequential
path). That the compiled kernels build for TPU and GPU is checked in tests/aot.

The reference is ``hadamard_scan(method="associative")`` on the same C_t = 1 + tanh(a ⊗ b), U_t = w ⊗ k,
itself checked against a numpy loop in test_scan.py. float32; the kernel sums in a different order, so
rtol = 1e-4 with an absolute floor of 1e-5 x the largest magnitude.
"""

import functools

import jax
import jax.numpy as jnp
import pytest

from shm_jax.memory.kernels import mosaic_shm
from shm_jax.memory.pallas_shm import default_block_rows, fused_shm_scan, gpu_block_config
from shm_jax.memory.product_scan import product_form_scan
from shm_jax.memory.scan import hadamard_scan
from shm_jax.memory.shm import SHM
from tests.helpers import assert_scaled_close


def _make_cu(inputs):
    c = 1.0 + jnp.tanh(inputs["a"][..., :, None] * inputs["b"][..., None, :])
    return c, inputs["w"][..., :, None] * inputs["k"][..., None, :]


def _read(memory, inputs):
    return jnp.einsum("...ij,...j->...i", memory, inputs["q"])


def _reference(carry, starts, a, b, w, k, q):
    inputs = dict(a=a, b=b, w=w, k=k, q=q)
    return hadamard_scan(carry, inputs, starts, _make_cu, _read, method="associative")


def _loss_and_grads(scan):
    """A loss that weights every step differently and uses the final carry, so every gradient path counts."""

    def loss(carry, a, b, w, k, q, starts):
        final, h = scan(carry, starts, a, b, w, k, q)
        weights = jnp.arange(1, h.shape[0] + 1, dtype=h.dtype)[:, None, None]
        return jnp.sum(weights * h**2) + jnp.sum(jnp.sin(final)), (final, h)

    return jax.jit(jax.value_and_grad(loss, argnums=range(6), has_aux=True))


def _problem(seed, length, batch, hsz):
    keys = jax.random.split(jax.random.PRNGKey(seed), 6)
    a, b, w, k, q = (jax.random.normal(key, (length, batch, hsz)) for key in keys[:5])
    carry = jax.random.normal(keys[5], (batch, hsz, hsz))
    return carry, a, b, w, k, q


@pytest.mark.parametrize("implementation", ["pallas-gpu", "pallas-tpu", "xla"])
@pytest.mark.parametrize(
    "length, batch, hsz, chunk, rows, reset_steps",
    [
        # Several chunks, T not a multiple of the chunk (padded steps), two row blocks, resets at t = 0, inside a
        # chunk and on a chunk boundary.
        (13, 2, 8, 4, 4, [(0, 1), (5, 0), (8, 1), (12, 0)]),
        # One chunk longer than T, one row block, no reset: the carry flows through untouched.
        (5, 1, 4, 64, 4, []),
    ],
)
def test_product_form_scans_match_reference_values_and_gradients(
    implementation, length, batch, hsz, chunk, rows, reset_steps
):
    carry, a, b, w, k, q = _problem(length, length, batch, hsz)
    starts = jnp.zeros((length, batch), bool)
    for t, i in reset_steps:
        starts = starts.at[t, i].set(True)

    def fused(carry, starts, a, b, w, k, q):
        if implementation == "xla":
            return product_form_scan(carry, starts, a, b, w, k, q, chunk_size=chunk)
        if implementation == "pallas-tpu":  # TPU row blocks are multiples of 8 or H; time blocks of 128 steps
            return fused_shm_scan(carry, starts, a, b, w, k, q, interpret=True, target="tpu")
        return fused_shm_scan(carry, starts, a, b, w, k, q, chunk_size=chunk, block_rows=rows, interpret=True)

    (loss_f, (final_f, h_f)), grads_f = _loss_and_grads(fused)(carry, a, b, w, k, q, starts)
    (loss_r, (final_r, h_r)), grads_r = _loss_and_grads(_reference)(carry, a, b, w, k, q, starts)
    assert_scaled_close(h_f, h_r)
    assert_scaled_close(final_f, final_r)
    assert_scaled_close(loss_f, loss_r)
    for name, g_f, g_r in zip(["carry", "a", "b", "w", "k", "q"], grads_f, grads_r):
        assert float(jnp.max(jnp.abs(g_r))) > 0, name  # every input matters to this loss
        assert_scaled_close(g_f, g_r)
    if reset_steps:
        # A reset at t = 0 of sequence 1 cuts M_0 off: its carry gradient must be exactly zero.
        assert any(t == 0 and i == 1 for t, i in reset_steps)
        assert float(jnp.max(jnp.abs(grads_f[0][1]))) == 0.0
        assert float(jnp.max(jnp.abs(grads_f[0][0]))) > 0.0


def test_tpu_structure_carries_memory_and_gradient_across_time_blocks():
    """T = 200 runs as two 128-step time blocks (the last padded), H = 16 as two row blocks (the column-side
    gradients are summed over them); resets right at and just after the time-block boundary."""
    length, batch, hsz = 200, 1, 16
    carry, a, b, w, k, q = _problem(7, length, batch, hsz)
    starts = jnp.zeros((length, batch), bool).at[128, 0].set(True).at[130, 0].set(True)

    def tpu(carry, starts, a, b, w, k, q):
        return fused_shm_scan(carry, starts, a, b, w, k, q, interpret=True, target="tpu", block_rows=8)

    (_, (final_f, h_f)), grads_f = _loss_and_grads(tpu)(carry, a, b, w, k, q, starts)
    (_, (final_r, h_r)), grads_r = _loss_and_grads(_reference)(carry, a, b, w, k, q, starts)
    assert mosaic_shm.time_block(length) == 128
    assert_scaled_close(h_f, h_r)
    assert_scaled_close(final_f, final_r)
    for g_f, g_r in zip(grads_f, grads_r):
        assert_scaled_close(g_f, g_r)


def test_block_rows_default_divides_memory_size():
    for hsz in (4, 8, 12, 32, 72, 128, 100):
        rows = default_block_rows(hsz)
        assert hsz % rows == 0 and rows <= 8
    # The ptxas-checked GPU table (tests/aot): 8 rows, warps growing with H.
    assert [gpu_block_config(h) for h in (32, 64, 128, 256)] == [(8, 2), (8, 2), (8, 4), (8, 8)]
    for hsz in (32, 64, 72, 128, 256):
        rows = mosaic_shm.default_block_rows(hsz)
        assert hsz % rows == 0 and (rows % 8 == 0 or rows == hsz)
    assert [mosaic_shm.default_block_rows(h) for h in (32, 64, 72, 128, 256)] == [32, 32, 24, 32, 16]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"block_rows": 3}, "block_rows"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"num_warps": 0}, "num_warps"),
        ({"target": "ipu", "interpret": True}, "target"),
        ({"target": "tpu"}, "target"),
        ({"target": "tpu", "interpret": True, "block_rows": 4}, "block_rows"),
    ],
)
def test_fused_rejects_bad_settings_with_one_line(kwargs, field):
    carry, a, b, w, k, q = _problem(0, 4, 1, 8)
    with pytest.raises(ValueError, match=field) as info:
        fused_shm_scan(carry, jnp.zeros((4, 1), bool), a, b, w, k, q, **kwargs)
    assert "\n" not in str(info.value)


def test_padding_memory_size_to_a_power_of_two_changes_nothing():
    """Compiled (Triton) runs pad H to a power of two; padded rows/columns must not leak into the result."""
    length, batch, hsz = 6, 2, 6
    carry, a, b, w, k, q = _problem(3, length, batch, hsz)
    starts = jnp.zeros((length, batch), bool).at[3, 1].set(True)

    def padded(carry, starts, a, b, w, k, q):
        return fused_shm_scan(carry, starts, a, b, w, k, q, chunk_size=4, interpret=True, pad_hidden=True)

    (_, (final_p, h_p)), grads_p = _loss_and_grads(padded)(carry, a, b, w, k, q, starts)
    (_, (final_r, h_r)), grads_r = _loss_and_grads(_reference)(carry, a, b, w, k, q, starts)
    assert h_p.shape == (length, batch, hsz) and final_p.shape == (batch, hsz, hsz)
    assert_scaled_close(h_p, h_r)
    assert_scaled_close(final_p, final_r)
    for g_p, g_r in zip(grads_p, grads_r):
        assert g_p.shape == g_r.shape
        assert_scaled_close(g_p, g_r)


def _shm_problem(core, length=9, batch=2, features=6):
    x = jax.random.normal(jax.random.PRNGKey(4), (length, batch, features))
    starts = jnp.zeros((length, batch), bool).at[0].set(True).at[5, 1].set(True)
    noise = core.sample_noise(jax.random.PRNGKey(5), length, batch)
    params = core.init(jax.random.PRNGKey(6), core.initialize_carry(batch), x, starts, noise)
    return params, x, starts, noise


@pytest.mark.parametrize("calibration", ["random_theta", "ones"])
def test_shm_layer_fused_equals_sequential_outputs_and_parameter_gradients(calibration):
    def run(method):
        core = SHM(
            memory_size=8, projection_size=5, shortcut=True, calibration=calibration, scan_method=method, chunk_size=4
        )
        params, x, starts, noise = _shm_problem(core)

        def loss(params, x):
            final, y = core.apply(params, core.initialize_carry(x.shape[1]), x, starts, noise)
            return jnp.sum(y**2) + jnp.sum(final), (final, y)

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(params, x)

    (_, out_fused), grads_fused = run("fused")
    (_, out_seq), grads_seq = run("sequential")
    jax.tree.map(assert_scaled_close, out_fused, out_seq)
    jax.tree.map(assert_scaled_close, grads_fused, grads_seq)


def test_shm_fused_rejects_fixed_c_and_lists_methods():
    with pytest.raises(ValueError, match="'fused' needs C_t = 1 \\+ tanh"):
        SHM(memory_size=8, calibration="fixed_c", scan_method="fused")
    with pytest.raises(ValueError, match="unknown scan method 'fast'; valid: .*fused") as info:
        SHM(memory_size=8, scan_method="fast")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("platform, kernel", [("tpu", "shm_fused_forward_tpu"), ("cuda", "shm_fused_forward")])
def test_fused_kernel_is_chosen_by_the_lowering_platform(platform, kernel):
    """The structure is picked when lowering (platform_dependent), so compiling for a TPU from a CPU host gets the
    Mosaic kernel. Lowering only: that the kernels compile is tests/aot's job."""
    carry, a, b, w, k, q = _problem(0, 8, 2, 16)
    starts = jnp.zeros((8, 2), bool)
    text = (
        jax.jit(lambda *args: fused_shm_scan(*args)[1])
        .trace(carry, starts, a, b, w, k, q)
        .lower(lowering_platforms=(platform,))
        .as_text()
    )
    other = {"tpu": 'shm_fused_forward"', "cuda": "shm_fused_forward_tpu"}[platform]
    assert kernel in text and other not in text


def test_product_form_scans_under_vmap_match_reference_gradients():
    """PPO vmaps the whole training step over seeds: the kernels' custom gradients must batch correctly."""
    seeds, length, batch, hsz = 3, 6, 2, 4
    problems = [_problem(seed, length, batch, hsz) for seed in range(seeds)]
    carry, a, b, w, k, q = (jnp.stack(parts) for parts in zip(*problems))
    starts = jnp.zeros((seeds, length, batch), bool).at[:, 2, 1].set(True).at[1, 4, 0].set(True)

    def grads(scan):
        loss = lambda c, s, *v: jnp.sum(scan(c, s, *v)[1] ** 2)  # noqa: E731
        return jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 2, 3, 4, 5, 6))))(carry, starts, a, b, w, k, q)

    reference = grads(_reference)
    for scan in (
        functools.partial(product_form_scan, chunk_size=4),
        functools.partial(fused_shm_scan, chunk_size=4, interpret=True),
        functools.partial(fused_shm_scan, interpret=True, target="tpu"),
    ):
        jax.tree.map(assert_scaled_close, grads(scan), reference)
