"""Ahead-of-time compiles for TPU from this CPU host (libtpu's compiler for a topology's chip; nothing runs).

Compiling, not lowering: XLA's TPU passes and Mosaic's layout and alignment checks run, so a kernel that Mosaic
rejects (the old kernel's 1-wide loads at a dynamic lane index) fails here. Needs the ``aot`` extra; without it
these tests fail with the install command, they do not skip.

Cost: one compile per test; the whole module is ~3 minutes of one core (see README, "What is compile-proven").
"""

import jax
import pytest

from shm_jax.memory.scan import DEFAULT_METHOD_BY_BACKEND, SCAN_METHODS
from shm_jax.tools import aot

pytestmark = [pytest.mark.slow, pytest.mark.optimized]  # AOT compiles: outside the quick tier, as a deployment compiles


GIB = 2**30
HBM_GIB = {"v5e": 16, "v6e": 32}
# Every distinct kernel body: each H's row block (32 / 32 / 24 / 32 / 16 rows) and both time-block kinds (the whole
# sequence when T <= 128, 128-step blocks beyond); T = 4096 adds only grid steps to T = 1024's kernel.
KERNEL_SHAPES = [(1, 8, 128), (100, 8, 72), (1024, 8, 32), (1024, 8, 64), (4096, 2, 256)]


def _fused_kernels(compiled):
    names = aot.mosaic_kernel_names(compiled)
    return names.count("shm_fused_forward_tpu"), names.count("shm_fused_backward_tpu")


@pytest.mark.parametrize("generation", ["v5e", "v6e"])
def test_fused_kernel_forward_and_gradient_compile_for_tpu(generation):
    fn, args = aot.fused_kernel_program(KERNEL_SHAPES)
    compiled = aot.compile_for_tpu(fn, args, generation)
    assert _fused_kernels(compiled) == (len(KERNEL_SHAPES), len(KERNEL_SHAPES))


def test_fused_kernel_gradient_under_vmap_compiles_for_tpu():
    """Training vmaps the whole PPO step over seeds: the batched kernels (an extra grid axis) must compile too."""
    fn, (problems, starts) = aot.fused_kernel_program([(300, 2, 128)])
    batched = lambda tree: jax.tree.map(lambda s: jax.ShapeDtypeStruct((3,) + s.shape, s.dtype), tree)  # noqa: E731
    compiled = aot.compile_for_tpu(jax.vmap(fn), (batched(problems), batched(starts)), "v5e")
    assert _fused_kernels(compiled) == (1, 1)


@pytest.mark.parametrize("method", [m for m in SCAN_METHODS if m != "associative"] + ["fused"])
def test_shm_layer_forward_backward_compiles_for_tpu_v5e(method):
    """The paper's SHM layer (H = 128, T = 1024) at a PPO minibatch of 64 sequences, each scan method, on the Colab
    TPU (the associative scan's 8 sequences below; 64 is the size whose memory could fail to fit)."""
    fn, args = aot.shm_layer_program(method, 64)
    compiled = aot.compile_for_tpu(fn, args, "v5e")
    assert aot.memory_report(compiled)["temp_bytes"] < HBM_GIB["v5e"] * GIB
    assert _fused_kernels(compiled) == ((1, 1) if method == "fused" else (0, 0))


def test_associative_scan_compiles_at_8_sequences_and_does_not_fit_v5e_at_64():
    """The log-depth scan materialises [T, B, H, H] several times: ~6 GiB at B = 8, ~35 GiB at B = 64."""
    compiled = aot.compile_for_tpu(*aot.shm_layer_program("associative", 8), "v5e")
    assert aot.memory_report(compiled)["temp_bytes"] > 4 * GIB
    with pytest.raises(Exception, match="RESOURCE_EXHAUSTED"):
        aot.compile_for_tpu(*aot.shm_layer_program("associative", 64), "v5e")


def test_shm_layer_compiles_for_tpu_v6e():
    """A second generation: the fused kernel under bfloat16 compute at B = 64 (the TPU default scan's layer is
    compiled for v5e above; the fused kernel alone for v6e by the first test)."""
    compiled = aot.compile_for_tpu(*aot.shm_layer_program("fused", 64, dtype="bfloat16"), "v6e")
    assert aot.memory_report(compiled)["temp_bytes"] < HBM_GIB["v6e"] * GIB
    assert _fused_kernels(compiled) == (1, 1)


def test_paper_popgym_ppo_update_compiles_for_tpu_v5e():
    """One whole PPO update (rollout of 1024 steps, GAE, 30 epochs) of the paper-popgym preset at 8 envs, SHM with
    the TPU default scan (picked explicitly: on this host the default resolves for CPU)."""
    fn, args = aot.ppo_update_program(num_envs=8, scan_method=DEFAULT_METHOD_BY_BACKEND["tpu"])
    compiled = aot.compile_for_tpu(fn, args, "v5e")
    assert 0 < aot.memory_report(compiled)["temp_bytes"] < HBM_GIB["v5e"] * GIB
