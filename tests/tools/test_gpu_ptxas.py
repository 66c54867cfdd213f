"""The fused kernel's Triton code for GPUs, compiled to PTX for sm_80 and sm_90 and assembled by ptxas, from this
CPU host: every configuration ``fused_shm_scan`` ships (its rows/warps per H) must assemble without register spills.

Needs the ``aot`` extra (CUDA jaxlib plugin for Triton -> PTX, nvidia-cuda-nvcc-cu12 for ptxas); without it these
tests fail with the install command. One lowering per H, both kernels and both archs assembled from it.
"""

import pytest

from shm_jax.memory.pallas_shm import gpu_block_config
from shm_jax.tools import aot

# H = 72 (the paper's Medium size) runs padded to 128, so these four are every shipped configuration.
SHIPPED_H = (32, 64, 128, 256)

pytestmark = pytest.mark.optimized  # compiled as a deployment compiles (tests/conftest.py)


@pytest.fixture(scope="module")
def reports():
    return aot.ptxas_reports([{"batch": 8, "length": 1024, "hidden": h} for h in SHIPPED_H])


@pytest.mark.slow
def test_every_shipped_gpu_kernel_assembles_without_spills(reports):
    seen = {(r["hidden"], r["kernel"], r["arch"]) for r in reports}
    assert seen == {
        (h, k, a) for h in SHIPPED_H for k in ("shm_fused_forward", "shm_fused_backward") for a in aot.GPU_ARCHS
    }
    for r in reports:
        where = f"H={r['hidden']} {r['kernel']} {r['arch']}"
        assert r["spill_stores"] == 0 and r["spill_loads"] == 0, where
        assert 0 < r["registers"] < 255, where
        assert r["num_warps"] == gpu_block_config(r["hidden"])[1], where


@pytest.mark.slow
def test_ppo_minibatch_fills_the_gpu_at_the_paper_sizes(reports):
    """8 sequences (paper-popgym's minibatch) give at least as many programs as an A100 has SMs (108) at H = 128."""
    programs = {r["hidden"]: r["programs"] for r in reports}
    assert programs[128] >= 108
    assert all(programs[h] == 8 * (h // gpu_block_config(h)[0]) for h in SHIPPED_H)


def test_ptxas_report_parsing_rejects_unexpected_output():
    with pytest.raises(RuntimeError, match="unexpected ptxas"):
        aot.parse_ptxas("ptxas info: nothing here")
    parsed = aot.parse_ptxas(
        "ptxas info    : Function properties for k\n    8 bytes stack frame, 4 bytes spill "
        "stores, 4 bytes spill loads\nptxas info    : Used 255 registers, used 1 barriers"
    )
    assert parsed == {"registers": 255, "stack_bytes": 8, "spill_stores": 4, "spill_loads": 4}
