"""Ahead-of-time compilation for accelerators from a CPU host: what proves a path compiles without a device.

- TPU: ``compile_for_tpu`` runs XLA's TPU compiler and Mosaic (libtpu) for a device of a TPU topology
  (``jax.experimental.topologies``, e.g. "v5e:2x2"); nothing is executed.
- GPU: ``ptxas_reports`` lowers a function for CUDA, takes each Pallas Triton kernel's IR, compiles it to PTX with
  jaxlib's Triton compiler (the CUDA plugin's handler) and assembles the PTX with ``ptxas -v`` for an sm_XX,
  reporting registers and spills per kernel.

Both need the ``aot`` extra (``pip install -e ".[aot]"``: libtpu, the CUDA jaxlib plugin without CUDA libraries,
and nvidia-cuda-nvcc-cu12 for ptxas). The CUDA plugin registers its Triton compiler only when CUDA validation is
skipped, which it is when JAX_PLATFORMS names CPU alone; ``ptxas_reports`` re-runs itself in such a subprocess
when this process was started otherwise (``python -m shm_jax.tools.aot`` is that subprocess).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import topologies
from jaxlib.mlir import ir

from shm_jax.build import build
from shm_jax.memory.pallas_shm import fused_shm_scan
from shm_jax.memory.shm import SHM
from shm_jax.presets import from_preset

# Compiling needs no chip, so several processes (pytest workers) may hold libtpu at once; without this the second
# one fails on libtpu's single-process lockfile.
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

INSTALL_HINT = 'pip install -e ".[aot]"'
TPU_TOPOLOGIES = {"v5e": "v5e:2x2", "v6e": "v6e:2x2", "v5p": "v5p:2x2x1", "v4": "v4:2x2x1"}
GPU_ARCHS = ("sm_80", "sm_90")


class AotUnavailable(RuntimeError):
    """The aot extra (libtpu / CUDA plugin / ptxas) is missing: a one-line message with the install command."""


# ---- TPU --------------------------------------------------------------------------------------------------------


def tpu_device(generation: str):
    """The first device of a TPU topology, e.g. "v5e" -> a v5e chip of "v5e:2x2" (no TPU needed)."""
    if generation not in TPU_TOPOLOGIES:
        raise ValueError(f"aot: unknown TPU generation {generation!r}; valid: {', '.join(TPU_TOPOLOGIES)}")
    try:
        import libtpu  # noqa: F401
    except ImportError:
        raise AotUnavailable(f"aot: TPU compilation needs libtpu: {INSTALL_HINT}") from None

    return topologies.get_topology_desc(platform="tpu", topology_name=TPU_TOPOLOGIES[generation]).devices[0]


def compile_for_tpu(fn: Callable, args: Any, generation: str):
    """``jax.jit(fn)`` compiled for one chip of a TPU ``generation``; args: a pytree of ShapeDtypeStructs/arrays.

    Returns the ``jax.stages.Compiled`` (``memory_analysis()``, ``as_text()``); raises what the TPU compiler
    (XLA or Mosaic) raises.
    """
    sharding = jax.sharding.SingleDeviceSharding(tpu_device(generation))
    specs = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), args)
    return jax.jit(fn).trace(*specs).lower().compile()


def memory_report(compiled) -> dict[str, int]:
    """Bytes XLA plans for a compiled program: temp (scratch the program allocates), arguments, outputs, code."""
    stats = compiled.memory_analysis()
    return {
        "temp_bytes": int(stats.temp_size_in_bytes),
        "argument_bytes": int(stats.argument_size_in_bytes),
        "output_bytes": int(stats.output_size_in_bytes),
        "code_bytes": int(stats.generated_code_size_in_bytes),
    }


def mosaic_kernel_names(compiled) -> list[str]:
    """Names of the Mosaic (Pallas TPU) kernels in a compiled TPU program, one per call site."""
    calls = re.findall(
        r'^\s*(?:ROOT )?%([A-Za-z_][\w-]*?)(?:\.\d+)? = .*custom_call_target="tpu_custom_call"',
        compiled.as_text(),
        re.MULTILINE,
    )
    return sorted(calls)


# ---- the programs the compile checks compile ------------------------------------------------------------------


def fused_kernel_program(shapes: list[tuple[int, int, int]]):
    """Forward + gradient of SHM's fused kernel at every (T, B, H) in ``shapes``, summed into one program.

    Returns (fn, args): fn(*args) -> gradients; args are ShapeDtypeStructs. One compile covers all shapes.
    """

    def loss(problems, starts):
        total = 0.0
        for (carry, a, b, w, k, q), flags in zip(problems, starts):
            final, h = fused_shm_scan(carry, flags, a, b, w, k, q)
            total = total + jnp.sum(h * h) + jnp.sum(final)
        return total

    spec = lambda *shape, dtype=jnp.float32: jax.ShapeDtypeStruct(shape, dtype)  # noqa: E731
    problems = [(spec(b, h, h), *[spec(t, b, h)] * 5) for t, b, h in shapes]
    starts = [spec(t, b, dtype=jnp.bool_) for t, b, _ in shapes]
    return jax.grad(loss), (problems, starts)


def shm_layer_program(
    method: str | None,
    batch: int,
    length: int = 1024,
    hidden: int = 128,
    *,
    dtype: str | None = None,
    calibration: str = "random_theta",
    features: int = 64,
):
    """Forward + backward of one SHM layer (the paper's POPGym layer: shortcut, projection 1024) at [T, B].

    Returns (fn, args): fn(params, x, starts, noise) -> (loss, parameter gradients); args ShapeDtypeStructs.
    """
    core = SHM(
        memory_size=hidden,
        projection_size=1024,
        shortcut=True,
        calibration=calibration,
        scan_method=method,
        dtype=dtype,
    )
    x = jax.ShapeDtypeStruct((length, batch, features), jnp.float32)
    starts = jax.ShapeDtypeStruct((length, batch), jnp.bool_)
    noise = jax.eval_shape(lambda: core.sample_noise(jax.random.PRNGKey(0), length, batch))
    params = jax.eval_shape(
        lambda: core.init(
            jax.random.PRNGKey(0),
            core.initialize_carry(batch),
            jnp.zeros(x.shape),
            jnp.zeros(starts.shape, bool),
            core.sample_noise(jax.random.PRNGKey(0), length, batch),
        )
    )

    def loss(params, x, starts, noise):
        final, y = core.apply(params, core.initialize_carry(x.shape[1]), x, starts, noise)
        return jnp.mean(y.astype(jnp.float32) ** 2) + jnp.mean(final)

    return jax.value_and_grad(loss), (params, x, starts, noise)


def ppo_update_program(num_envs: int = 8, scan_method: str | None = None, **overrides):
    """One PPO update (rollout, GAE, 30 epochs of minibatches) of the paper-popgym preset.

    num_envs with num_minibatches=1 keeps the paper's minibatch ([1024 steps, 8 sequences] at 64 envs / 8
    minibatches) at a reduced env count. Returns (fn, args): fn(state, hyperparameters) -> (state, metrics).
    """
    config = from_preset("paper-popgym", num_envs=num_envs, num_minibatches=1, num_seeds=1, **overrides)
    if scan_method is not None:
        memory_kwargs = dict(config.agent.memory_kwargs, scan_method=scan_method)
        config = from_preset(
            "paper-popgym", num_envs=num_envs, num_minibatches=1, num_seeds=1, memory_kwargs=memory_kwargs, **overrides
        )
    built = build(config)
    state = jax.eval_shape(built.algorithm.init, jax.random.PRNGKey(0))
    hyperparameters = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(jax.numpy.shape(x), jax.numpy.result_type(x)), built.hyperparameters
    )
    return built.algorithm.update, (state, hyperparameters)


# ---- GPU --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TritonKernel:
    """One Pallas Triton kernel as lowered for CUDA: its name, Triton IR (bytecode) and launch settings."""

    name: str
    ir: bytes
    num_warps: int
    num_stages: int
    grid: tuple[int, int, int]


def triton_kernels(fn: Callable, *args) -> list[TritonKernel]:
    """The Pallas Triton kernels of ``jax.jit(fn)`` lowered for CUDA (args: ShapeDtypeStructs or arrays).

    jaxlib <= 0.10.2 (the project's current stack) embeds each kernel's Triton IR in the lowered module
    (``__gpu$xla.gpu.triton``) for XLA to compile; that IR is what ``assemble`` compiles to PTX.
    """
    module = jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).compiler_ir("stablehlo")
    kernels = []

    def visit(op):
        for region in op.regions:
            for block in region.blocks:
                for child in block.operations:
                    target = (
                        ir.StringAttr(child.attributes["call_target_name"]).value
                        if child.operation.name == "stablehlo.custom_call"
                        else ""
                    )
                    if target == "triton_kernel_call_ffi":
                        raise RuntimeError(
                            "aot: this jaxlib compiles Triton to PTX while lowering (jaxlib > 0.10.2); "
                            "triton_kernels reads the Triton IR that jaxlib <= 0.10.2 embeds"
                        )
                    if "triton" in target:
                        config = ir.DictAttr(child.attributes["mhlo.backend_config"])
                        integer = lambda key: ir.IntegerAttr(config[key]).value  # noqa: E731
                        kernels.append(
                            TritonKernel(
                                ir.StringAttr(config["name"]).value,
                                ir.StringAttr(config["ir"]).value_bytes,
                                integer("num_warps"),
                                integer("num_stages"),
                                (integer("grid_x"), integer("grid_y"), integer("grid_z")),
                            )
                        )
                    visit(child.operation)

    visit(module.operation)
    return kernels


def ptxas_path() -> str:
    """ptxas from the nvidia-cuda-nvcc-cu12 wheel (or PATH)."""
    try:
        import nvidia.cuda_nvcc as nvcc

        candidate = os.path.join(list(nvcc.__path__)[0], "bin", "ptxas")
        if os.path.exists(candidate):
            return candidate
    except ImportError:
        pass
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(folder, "ptxas")
        if os.path.exists(candidate):
            return candidate
    raise AotUnavailable(f"aot: ptxas not found (nvidia-cuda-nvcc-cu12): {INSTALL_HINT}")


def _triton_compiler():
    from jax._src.lib import triton

    if not triton.has_compilation_handler("CUDA"):
        return None
    return triton


def parse_ptxas(log: str) -> dict[str, int]:
    """registers, spill_stores, spill_loads, stack_bytes from ``ptxas -v`` output (one kernel)."""
    registers = re.search(r"Used (\d+) registers", log)
    spills = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", log)
    if registers is None or spills is None:
        raise RuntimeError(f"aot: unexpected ptxas -v output: {log[-300:]!r}")
    return {
        "registers": int(registers.group(1)),
        "stack_bytes": int(spills.group(1)),
        "spill_stores": int(spills.group(2)),
        "spill_loads": int(spills.group(3)),
    }


def assemble(kernel: TritonKernel, arch: str) -> dict[str, Any]:
    """PTX of one kernel for ``arch`` ("sm_80", "sm_90"), assembled by ``ptxas -v``: the report as a dict."""
    triton = _triton_compiler()
    if triton is None:
        raise AotUnavailable(
            "aot: the CUDA plugin's Triton compiler is not registered in this process "
            f"(run with JAX_PLATFORMS=cpu and {INSTALL_HINT})"
        )
    major_minor = f"{arch[3:-1]}.{arch[-1]}"
    result = triton.compile(
        "CUDA", kernel.ir, major_minor, num_warps=kernel.num_warps, num_ctas=1, num_stages=kernel.num_stages
    )
    target = re.search(r"^\.target\s+(\w+)", result.asm, re.MULTILINE).group(1)  # sm_90a where Triton wants it
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"{kernel.name}.ptx")
        with open(path, "w") as f:
            f.write(result.asm)
        done = subprocess.run(
            [ptxas_path(), "-v", f"--gpu-name={target}", path, "-o", os.devnull],
            capture_output=True,
            text=True,
            timeout=300,
        )
    if done.returncode:
        raise RuntimeError(f"aot: ptxas failed for {kernel.name} ({target}): {done.stderr.strip()[-500:]}")
    return {
        "kernel": kernel.name,
        "arch": arch,
        "ptx_target": target,
        "num_warps": kernel.num_warps,
        "programs": kernel.grid[0] * kernel.grid[1] * kernel.grid[2],
        "shared_bytes": int(result.smem_bytes),
        **parse_ptxas(done.stderr),
    }


def fused_kernel_cases(cases: list[dict]) -> list[dict[str, Any]]:
    """ptxas reports for SHM's fused kernel, forward and backward, per case and arch (in this process).

    cases: dicts with batch, length, hidden (H) and optional block_rows / num_warps for ``fused_shm_scan``.
    """
    reports = []
    for case in cases:
        batch, length, hsz = case["batch"], case["length"], case["hidden"]
        knobs = {key: case[key] for key in ("block_rows", "num_warps") if case.get(key) is not None}

        def loss(carry, starts, a, b, w, k, q):
            final, h = fused_shm_scan(carry, starts, a, b, w, k, q, interpret=False, **knobs)
            return jnp.sum(h) + jnp.sum(final)

        spec = lambda *shape, dtype=jnp.float32: jax.ShapeDtypeStruct(shape, dtype)  # noqa: E731
        args = [spec(batch, hsz, hsz), spec(length, batch, dtype=jnp.bool_)] + [spec(length, batch, hsz)] * 5
        for kernel in triton_kernels(jax.grad(loss, argnums=(0, 2, 3, 4, 5, 6)), *args):
            for arch in case.get("archs", GPU_ARCHS):
                reports.append({**case, **assemble(kernel, arch)})
    return reports


def ptxas_reports(cases: list[dict]) -> list[dict[str, Any]]:
    """``fused_kernel_cases`` here if this process can compile Triton to PTX, else in a JAX_PLATFORMS=cpu child."""
    if _triton_compiler() is not None:
        return fused_kernel_cases(cases)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-m", "shm_jax.tools.aot"],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if done.returncode:
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        if "AotUnavailable" in last:
            raise AotUnavailable(last.split("AotUnavailable: ", 1)[-1])
        raise RuntimeError(last)
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(fused_kernel_cases(json.loads(sys.stdin.read()))))
