"""What compiles for accelerators from this CPU host, and what it needs: TPU memory plans and GPU registers.

    python -m benchmarks.compile_report                 # everything (~15 min on a busy 2-core CPU)
    python -m benchmarks.compile_report --skip-sweep    # without the GPU rows x warps sweep
    python -m benchmarks.make_tables benchmarks/results/compile_report.json   # re-make the table

TPU (``shm_jax.tools.aot.compile_for_tpu``, libtpu for one chip of each generation's topology):
- the fused kernel, forward + gradient, at every H in {32, 64, 72, 128, 256} x T in {1, 100, 1024, 4096} (one
  program per generation);
- the paper's SHM layer forward + backward (H = 128, T = 1024, B in {8, 64}) for every scan method: compiled
  temp memory (``memory_analysis().temp_size_in_bytes``), or the compiler's out-of-memory error;
- one PPO update of paper-popgym at 8 envs with the TPU default scan;
- the SHM layer with the fused kernel for every calibration it supports, float32 and bfloat16 compute (v5e, B = 8).
GPU (``shm_jax.tools.aot.ptxas_reports``): ptxas -v registers and spills of both kernels for sm_80 and sm_90, for every
shipped configuration and (the sweep) every rows x warps tried when choosing them.

Writes benchmarks/results/compile_report.json and compile_report.md. Compile seconds are wall time on this host
(recorded with the load average); they are not device timings, none of this runs a kernel.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import jax

from benchmarks.common import git_commit
from benchmarks.tables import save_and_tabulate
from shm_jax.memory.pallas_shm import gpu_block_config
from shm_jax.memory.scan import DEFAULT_METHOD_BY_BACKEND, SCAN_METHODS
from shm_jax.tools import aot

RESULTS = Path(__file__).resolve().parent / "results"
KERNEL_H = (32, 64, 72, 128, 256)
KERNEL_T = (1, 100, 1024, 4096)
LAYER_METHODS = ("fused",) + SCAN_METHODS
SHIPPED_H = (32, 64, 128, 256)


def _timed(fn):
    start = time.perf_counter()
    try:
        return fn(), None, time.perf_counter() - start
    except Exception as err:  # a compiler's verdict (e.g. RESOURCE_EXHAUSTED) is a result here
        return None, str(err).strip().splitlines()[0][:300], time.perf_counter() - start


def tpu_rows(generations: list[str], layer_generations: list[str]) -> list[dict]:
    rows = []
    for gen in generations:
        fn, args = aot.fused_kernel_program([(t, 2, h) for t in KERNEL_T for h in KERNEL_H])
        compiled, error, seconds = _timed(lambda: aot.compile_for_tpu(fn, args, gen))
        names = aot.mosaic_kernel_names(compiled) if compiled is not None else []
        rows.append(
            {
                "what": "fused kernel fwd+grad, all H x T",
                "generation": gen,
                "ok": error is None,
                "error": error,
                "compile_s": round(seconds, 1),
                "mosaic_kernels": len(names),
                "shapes": len(KERNEL_H) * len(KERNEL_T),
            }
        )
        print(rows[-1], flush=True)
    for gen in layer_generations:
        for batch in (8, 64):
            for method in LAYER_METHODS:
                fn, args = aot.shm_layer_program(method, batch)
                compiled, error, seconds = _timed(lambda: aot.compile_for_tpu(fn, args, gen))
                memory = aot.memory_report(compiled) if compiled is not None else {}
                rows.append(
                    {
                        "what": "SHM layer fwd+bwd",
                        "generation": gen,
                        "method": method,
                        "B": batch,
                        "T": 1024,
                        "H": 128,
                        "ok": error is None,
                        "error": error,
                        "compile_s": round(seconds, 1),
                        **memory,
                    }
                )
                print(rows[-1], flush=True)
    method = DEFAULT_METHOD_BY_BACKEND["tpu"]
    fn, args = aot.ppo_update_program(num_envs=8, scan_method=method)
    compiled, error, seconds = _timed(lambda: aot.compile_for_tpu(fn, args, "v5e"))
    rows.append(
        {
            "what": "PPO update, paper-popgym, 8 envs",
            "generation": "v5e",
            "method": method,
            "ok": error is None,
            "error": error,
            "compile_s": round(seconds, 1),
            **(aot.memory_report(compiled) if compiled is not None else {}),
        }
    )
    print(rows[-1], flush=True)
    return rows


def calibration_rows(generation: str = "v5e") -> list[dict]:
    """The fused kernel inside the SHM layer for every calibration it supports, float32 and bfloat16 compute."""
    from shm_jax.memory.shm import CALIBRATIONS

    rows = []
    for calibration in [c for c in CALIBRATIONS if c != "fixed_c"]:
        for dtype in (None, "bfloat16"):
            fn, args = aot.shm_layer_program("fused", 8, dtype=dtype, calibration=calibration)
            compiled, error, seconds = _timed(lambda: aot.compile_for_tpu(fn, args, generation))
            names = aot.mosaic_kernel_names(compiled) if compiled is not None else []
            rows.append(
                {
                    "what": "SHM layer fwd+bwd, fused",
                    "generation": generation,
                    "calibration": calibration,
                    "dtype": dtype or "float32",
                    "B": 8,
                    "T": 1024,
                    "H": 128,
                    "ok": error is None,
                    "error": error,
                    "compile_s": round(seconds, 1),
                    "mosaic_kernels": len(names),
                    **(aot.memory_report(compiled) if compiled is not None else {}),
                }
            )
            print(rows[-1], flush=True)
    return rows


def gpu_rows(sweep: bool) -> list[dict]:
    cases = [{"batch": 8, "length": 1024, "hidden": h, "shipped": True} for h in SHIPPED_H]
    if sweep:
        cases += [
            {"batch": 8, "length": 1024, "hidden": h, "block_rows": r, "num_warps": w, "shipped": False}
            for h in SHIPPED_H
            for r in (8, 16, 32)
            for w in (2, 4, 8)
            if r <= h
        ]
    rows = aot.ptxas_reports(cases)
    for row in rows:
        if row["shipped"]:
            row["block_rows"], row["num_warps"] = gpu_block_config(row["hidden"])
    return rows


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "missing"


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-sweep", action="store_true", help="GPU: shipped configurations only")
    parser.add_argument("--generations", nargs="+", default=["v5e", "v6e", "v5p", "v4"])
    parser.add_argument("--layer-generations", nargs="+", default=["v5e", "v6e"])
    parser.add_argument(
        "--sections", nargs="+", default=["gpu", "tpu", "calibrations"], choices=["gpu", "tpu", "calibrations"]
    )
    parser.add_argument("--merge", action="store_true", help="update only --sections of the JSON in --out")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    commit = git_commit()
    record = {
        "benchmark": "compile_report",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "load_average_start": list(os.getloadavg()),
        "host": {"cpu_count": os.cpu_count(), "machine": platform.machine()},
        "versions": {
            "jax": jax.__version__,
            "libtpu": _version("libtpu"),
            "jax-cuda12-plugin": _version("jax-cuda12-plugin"),
            "nvidia-cuda-nvcc-cu12": _version("nvidia-cuda-nvcc-cu12"),
        },
    }
    path = Path(args.out) / "compile_report.json"
    if args.merge:  # keep the other sections of the committed run, replace the ones run now
        previous = json.loads(path.read_text())
        run = {"date": record["date"], "git_commit": commit, "load_average_start": record["load_average_start"]}
        record = {
            **previous,
            "merged_sections": {**previous.get("merged_sections", {}), **{name: run for name in args.sections}},
        }
    if "gpu" in args.sections:
        record["gpu"] = gpu_rows(sweep=not args.skip_sweep)
    if "tpu" in args.sections:
        record["tpu"] = tpu_rows(args.generations, args.layer_generations)
    if "calibrations" in args.sections:
        record["calibrations"] = calibration_rows()
    record["load_average_end"] = list(os.getloadavg())
    path.parent.mkdir(parents=True, exist_ok=True)
    save_and_tabulate(path, record)
    return path


if __name__ == "__main__":
    print(main(sys.argv[1:]))
