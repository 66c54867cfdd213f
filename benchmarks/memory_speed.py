"""Forward+backward time and peak memory of every memory core over sequence length T and memory size H.

    python -m benchmarks.memory_speed            # full grid, ~15 min on a 2-core CPU
    python -m benchmarks.memory_speed --quick    # smoke run: small grid, few repeats
    python -m benchmarks.memory_speed --only '^shm/sequential' --no-torch --merge   # re-run rows, add them

What one measurement is: ``jit(value_and_grad(mean(y²)))`` with respect to the parameters and the input
x: float32[T, B, D] of one core, carry = initialize_carry(B), a start flag at t = 0 only, the core's own
noise. Compile time is taken apart (``lower().compile()``); the run time is the median of several calls,
each ended by ``block_until_ready``. Memory is XLA's compiled ``memory_analysis()`` (temp + arguments +
outputs − aliased), plus the device's ``memory_stats()`` peak where the backend has one (GPU). A
configuration whose compiled estimate exceeds ``--memory-budget-gb`` is recorded as skipped with the
estimate, not run.

The baseline ``shm/sequential-autodiff`` (benchmarks/linen_shm_cell.py) is SHM written the straightforward
way, a linen cell in ``nn.scan`` with plain autodiff; the tables compare the library's lean sequential path with
it (time and peak memory, same run). ``--merge`` adds a run's rows to the existing JSON instead of replacing it
(every row keeps the run it came from; tables show the first run's row where a label was measured twice).

In the same run: the PyTorch per-step loop of the official code (benchmarks/torch_reference.py, each size
in a fresh process), a check that it computes the same function as the JAX SHM, the host, versions and
the load average at start and end, and the targets the run is judged against (``TARGETS``). Results go to
``<out>/memory_speed_<device>[_quick].json``; the table and plot are regenerated from that file by
``benchmarks.make_tables`` (the report: benchmarks/memory_speed_report.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import REPO_ROOT, close_record, device_slug, memory_analysis, record_header, timed_calls
from benchmarks.linen_shm_cell import LinenScanSHM, compare_with_shm
from benchmarks.memory_speed_report import MEMORAX_LABEL, MEMORAX_PARTNER, NN_SCAN_LABEL
from benchmarks.tables import save_and_tabulate
from shm_jax.memory import make_memory

INPUT_SIZE = 64  # D: the SHM input in the paper's POPGym agent
OUTPUT_SIZE = 128  # F: every core's output size (SHM: shortcut + projection to F)
BATCH = 8

# What a run is judged against, written into its record (the report reads them from there, so a committed JSON
# keeps the targets it was measured against). memory (issue 6): at B = 8, H = 128, T = 1024 the lean sequential
# SHM's forward+backward takes <= 0.5 s on a 2-core CPU and <= 1/4 of the peak memory of plain autodiff through a
# sequential scan (NN_SCAN_LABEL). memorax: the library layer takes <= 0.4 x the time of memorax's SHMCell.
TARGETS = {
    "memory": {"B": 8, "H": 128, "T": 1024, "max_time_s": 0.5, "max_memory_ratio": 0.25},
    "memorax": {"max_time_ratio": 0.4},
}


@dataclasses.dataclass(frozen=True)
class CoreSpec:
    """One benchmarked core. ``build(H)`` returns the module; ``None`` means not run at that H (``why``)."""

    label: str  # e.g. "shm/sequential-64"
    family: str  # "shm", "shm-ablation" or "baseline"
    build: Callable[[int], object | None]
    why_not: str = ""
    lengths: tuple[int, ...] | None = None  # run only at these T (None: every T of the grid)


def _shm(method: str | None, chunk: int | None = None, name: str = "shm") -> Callable[[int], object]:
    return lambda h: make_memory(
        name, memory_size=h, shortcut=True, projection_size=OUTPUT_SIZE, scan_method=method, chunk_size=chunk
    )


def core_specs(grid: Grid) -> list[CoreSpec]:
    """Every core: SHM per scan method and chunk size, the SHM ablations on the default scan, baselines.

    Sizes at memory size H: SHM and the matrix baselines an H x H memory; FFM an H x 4 complex trace; GRU a
    hidden state of H (and of H² = SHM's state size, run where H² <= 1024 and T <= 1024); the MLP H
    hidden units. The ablations run at ``grid.ablation_lengths`` only (they cost what the default path costs).
    """
    specs = [CoreSpec("shm/associative", "shm", _shm("associative"))]
    specs += [CoreSpec(f"shm/sequential-{c}", "shm", _shm("sequential", c)) for c in grid.sequential_chunks]
    specs += [CoreSpec(f"shm/chunked-{c}", "shm", _shm("chunked", c)) for c in grid.chunked_chunks]
    # The fused Pallas kernel: compiled on GPU/TPU; on CPU only Pallas' interpret mode exists (a test path).
    specs += [
        CoreSpec(
            f"shm/fused-{c}",
            "shm",
            lambda h, c=c: None if jax.default_backend() == "cpu" else _shm("fused", c)(h),
            why_not="Pallas kernel: interpret mode only on CPU (a test path)",
        )
        for c in grid.chunked_chunks
    ]
    specs.append(
        CoreSpec(NN_SCAN_LABEL, "shm-baseline", lambda h: LinenScanSHM(memory_size=h, projection_size=OUTPUT_SIZE))
    )
    specs += memorax_specs(grid)
    for name in ("shm-fixed-theta", "shm-neural-theta", "shm-random-c", "shm-fixed-c", "shm-c1"):
        specs.append(CoreSpec(name, "shm-ablation", _shm(None, name=name), lengths=grid.ablation_lengths))
    # Mixed precision: bf16 projections and activations, float32 memory and carry (the default scan).
    specs.append(
        CoreSpec(
            "shm-bf16",
            "shm-ablation",
            lambda h: make_memory("shm", memory_size=h, shortcut=True, projection_size=OUTPUT_SIZE, dtype="bfloat16"),
            lengths=grid.ablation_lengths,
        )
    )
    specs += [
        CoreSpec("gru", "baseline", lambda h: make_memory("gru", hidden_size=h)),
        CoreSpec(
            "gru-equal-state",
            "baseline",
            lambda h: make_memory("gru", hidden_size=h * h) if h * h <= 1024 else None,
            why_not="GRU with hidden size H² > 1024 (H=128: 16384 units, 0.8 G weights) not run",
            lengths=tuple(t for t in grid.lengths if t <= 1024),
        ),
        CoreSpec("ffm", "baseline", lambda h: make_memory("ffm", memory_size=h, output_size=OUTPUT_SIZE)),
        CoreSpec(
            "linear-attention",
            "baseline",
            lambda h: make_memory("linear-attention", memory_size=h, output_size=OUTPUT_SIZE),
        ),
        CoreSpec("mlstm", "baseline", lambda h: make_memory("mlstm", memory_size=h, output_size=OUTPUT_SIZE)),
        CoreSpec("mlp", "baseline", lambda h: make_memory("mlp", features=h)),
    ]
    return specs


def memorax_available() -> bool:
    try:
        import memorax.networks.sequence_models.shm  # noqa: F401
    except Exception:  # not installed, or one of its many dependencies missing
        return False
    return True


def memorax_specs(grid: Grid) -> list[CoreSpec]:
    """memorax's SHMCell (random and fixed θ) and the library layer computing the same function (no shortcut,
    the default scan), side by side at ``grid.ablation_lengths``; see benchmarks/memorax_shm.py."""
    from benchmarks.memorax_shm import MemoraxSHM

    why = 'memorax is not importable (pip install -e ".[bench]")'
    specs = []
    for suffix, name, sample_theta in (("", "shm", True), ("-fixed-theta", "shm-fixed-theta", False)):
        specs.append(
            CoreSpec(
                f"{MEMORAX_PARTNER}{suffix}",
                "outside",
                lambda h, n=name: make_memory(n, memory_size=h, shortcut=False, projection_size=OUTPUT_SIZE),
                lengths=grid.ablation_lengths,
            )
        )
        specs.append(
            CoreSpec(
                f"{MEMORAX_LABEL}{suffix}",
                "outside",
                lambda h, t=sample_theta: MemoraxSHM(h, OUTPUT_SIZE, sample_theta=t) if memorax_available() else None,
                why_not=why,
                lengths=grid.ablation_lengths,
            )
        )
    return specs


def _device_peak_bytes() -> int | None:
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:
        return None
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def measure_core(core, length: int, repeats: int, budget_bytes: float, seed: int = 0) -> dict:
    """Compile and time one core's forward+backward at x: float32[T=length, B, D]. Returns a result dict."""
    keys = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = jax.random.normal(keys[0], (length, BATCH, INPUT_SIZE))
    starts = jnp.zeros((length, BATCH), bool).at[0].set(True)
    noise = core.sample_noise(keys[1], length, BATCH)
    carry = core.initialize_carry(BATCH)
    params = jax.jit(core.init)(keys[2], carry, x, starts, noise)

    def loss(params_, x_):
        _, y = core.apply(params_, carry, x_, starts, noise)
        return jnp.mean(jnp.square(y))

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    start = time.perf_counter()
    compiled = step.lower(params, x).compile()
    compile_s = time.perf_counter() - start
    memory = memory_analysis(compiled)
    result = {
        "compile_s": compile_s,
        "memory": memory,
        "param_count": int(sum(np.size(p) for p in jax.tree.leaves(params))),
    }
    estimate = memory.get("peak_estimate")
    if estimate is not None and estimate > budget_bytes:
        result.update(
            status="skipped",
            note=f"compiled memory estimate {estimate / 2**30:.2f} GiB > budget {budget_bytes / 2**30:.2f} GiB",
        )
        return result
    jax.block_until_ready(compiled(params, x))  # warm-up (first-call allocations)
    times = timed_calls(lambda: compiled(params, x), repeats, max_total_s=10.0)
    result.update(
        status="ok",
        time_s_median=statistics.median(times),
        time_s_min=min(times),
        time_s_all=times,
        per_step_us=statistics.median(times) / length * 1e6,
        device_peak_bytes=_device_peak_bytes(),
    )
    return result


def run_torch_reference(length: int, hsz: int, repeats: int, threads: int) -> dict:
    """The official-style PyTorch loop at (B, T, H) in a fresh process (so its peak RSS is its own)."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.torch_reference",
        str(BATCH),
        str(length),
        str(hsz),
        str(INPUT_SIZE),
        str(OUTPUT_SIZE),
        str(repeats),
        str(threads),
    ]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"status": "error", "note": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return {"status": "ok", **json.loads(proc.stdout.strip().splitlines()[-1])}


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Grid:
    lengths: tuple[int, ...]
    sizes: tuple[int, ...]
    sequential_chunks: tuple[int, ...]  # checkpoint intervals of the lean sequential scan
    chunked_chunks: tuple[int, ...]  # associative-scan block lengths of the chunked scan
    ablation_lengths: tuple[int, ...]
    repeats: int
    torch_lengths: tuple[int, ...]
    torch_size: int
    torch_repeats: int


FULL = Grid(
    lengths=(256, 1024, 4096),
    sizes=(32, 128),
    sequential_chunks=(8, 16, 64, 256),
    chunked_chunks=(16, 64),
    ablation_lengths=(1024,),
    repeats=5,
    torch_lengths=(256, 1024),
    torch_size=32,
    torch_repeats=3,
)
QUICK = Grid(
    lengths=(64, 256),
    sizes=(32,),
    sequential_chunks=(64,),
    chunked_chunks=(16,),
    ablation_lengths=(256,),
    repeats=3,
    torch_lengths=(64, 256),
    torch_size=32,
    torch_repeats=2,
)


def predicted_call_s(done: list[dict], label: str, length: int, hsz: int) -> float | None:
    """Guess one call's time from this core's finished runs: linear in T at the same H, else ∝ H² at the same T."""
    same_h = [r for r in done if r["label"] == label and r["H"] == hsz and r["T"] < length and r.get("status") == "ok"]
    if same_h:
        prev = max(same_h, key=lambda r: r["T"])
        return prev["time_s_median"] * length / prev["T"]
    same_t = [r for r in done if r["label"] == label and r["T"] == length and r["H"] < hsz and r.get("status") == "ok"]
    if same_t:
        prev = max(same_t, key=lambda r: r["H"])
        return prev["time_s_median"] * (hsz / prev["H"]) ** 2
    return None


def run(
    grid: Grid,
    budget_gb: float,
    only: str | None = None,
    max_call_s: float = 15.0,
    torch_threads: int = 1,
    with_torch: bool = True,
) -> dict:
    """Every (core, T, H) of ``grid``; returns the JSON-ready record (printed line by line as it goes).

    A configuration whose predicted single-call time (``predicted_call_s``) exceeds ``max_call_s`` is
    recorded as skipped with the prediction.
    """
    record = {
        **record_header("memory_speed"),
        "settings": {
            "batch": BATCH,
            "input_size": INPUT_SIZE,
            "output_size": OUTPUT_SIZE,
            "memory_budget_gb": budget_gb,
            "max_call_s": max_call_s,
            "torch_threads": torch_threads,
            "only": only,
            **dataclasses.asdict(grid),
        },
        "targets": TARGETS,
        "results": [],
        "torch_reference": [],
        "checks": {},
    }
    budget_bytes = budget_gb * 2**30
    specs = [s for s in core_specs(grid) if only is None or re.search(only, s.label)]
    jobs = [(s, t, h) for h in grid.sizes for t in grid.lengths for s in specs if s.lengths is None or t in s.lengths]
    torch_ok = with_torch and torch_available()
    with_nn_scan = any(s.label == NN_SCAN_LABEL for s in specs)
    total = len(jobs) + (len(grid.torch_lengths) + 1 if torch_ok else 0) + with_nn_scan
    done = 0
    began = time.perf_counter()

    def progress(text: str) -> None:
        elapsed = time.perf_counter() - began
        print(f"[{done:3d}/{total}] {elapsed:6.0f}s  {text}", flush=True)

    for spec, length, hsz in jobs:
        entry = {"label": spec.label, "family": spec.family, "T": length, "H": hsz, "B": BATCH}
        core = spec.build(hsz)
        guess = predicted_call_s(record["results"], spec.label, length, hsz)
        if core is None:
            entry.update(status="not-run", note=spec.why_not)
        elif guess is not None and guess > max_call_s:
            entry.update(
                status="skipped",
                predicted_call_s=guess,
                note=f"predicted {guess:.0f} s per call > --max-call-s {max_call_s:g}",
            )
        else:
            entry["scan_method"] = getattr(core, "scan_method", None)
            entry["chunk_size"] = getattr(core, "chunk_size", None)
            try:
                entry.update(measure_core(core, length, grid.repeats, budget_bytes))
            except Exception as err:  # record and go on: one broken core must not lose the run
                entry.update(status="error", note=f"{type(err).__name__}: {str(err).splitlines()[0][:300]}")
            jax.clear_caches()
        record["results"].append(entry)
        done += 1
        progress(_describe(entry))

    if with_nn_scan:
        check = compare_with_shm(input_size=INPUT_SIZE)
        check["ok"] = check["output"] < 1e-4 * max(check["output_scale"], 1.0) and check["input_grad"] < 1e-4 * max(
            check["input_grad_scale"], 1.0
        )
        record["checks"]["nn_scan_equals_shm"] = check
        done += 1
        progress(f"{NN_SCAN_LABEL} == library SHM: max |dy| {check['output']:.1e}, ok={check['ok']}")
    if any(s.label.startswith(MEMORAX_LABEL) for s in specs) and memorax_available():
        from benchmarks.memorax_shm import compare_with_shm as compare_with_memorax

        check = compare_with_memorax(input_size=INPUT_SIZE)
        check["ok"] = check["output"] < 1e-4 * max(check["output_scale"], 1.0) and check["input_grad"] < 1e-4 * max(
            check["input_grad_scale"], 1.0
        )
        record["checks"]["memorax_equals_shm"] = check
        progress(f"memorax SHMCell == library SHM (fixed θ): max |dy| {check['output']:.1e}, ok={check['ok']}")
    if torch_ok:
        from benchmarks.torch_reference import compare_with_jax

        check = compare_with_jax(
            memory_size=grid.torch_size, input_size=INPUT_SIZE, output_size=OUTPUT_SIZE, length=64, batch=BATCH
        )
        check["ok"] = (
            check["output"] < 1e-4 * max(check["output_scale"], 1.0)
            and check["input_grad"] < 1e-4 * check["input_grad_scale"]
        )
        record["checks"]["torch_equals_jax"] = check
        done += 1
        progress(f"torch reference == JAX SHM: max |dy| {check['output']:.1e}, ok={check['ok']}")
        for length in grid.torch_lengths:
            entry = {
                "label": "torch-loop",
                "T": length,
                "H": grid.torch_size,
                "B": BATCH,
                **run_torch_reference(length, grid.torch_size, grid.torch_repeats, torch_threads),
            }
            record["torch_reference"].append(entry)
            done += 1
            progress(_describe(entry))
    else:
        note = "torch is not importable" if with_torch else "--no-torch"
        record["torch_reference"].append({"status": "skipped", "note": note})
    return close_record(record, began)


def merge_records(existing: dict, new: dict) -> dict:
    """``existing`` with ``new``'s rows appended, each tagged ``run`` (0 = the existing record's own run).

    The header (host, versions, settings, targets, torch results) stays the existing run's; ``new``'s timestamp, git
    commit, load averages, settings and wall time go to ``merged_runs`` (run i is ``merged_runs[i - 1]``), its
    checks are added. Ratios should only pair rows of the same run; tables show the first run's row per key.
    """
    merged = json.loads(json.dumps(existing))  # deep copy
    runs = merged.setdefault("merged_runs", [])
    run_index = len(runs) + 1
    runs.append(
        {
            key: new.get(key)
            for key in (
                "timestamp_utc",
                "git_commit",
                "load_average_start",
                "load_average_end",
                "wall_s",
                "settings",
                "host",
            )
        }
    )
    for entry in merged["results"]:
        entry.setdefault("run", 0)
    merged["results"] += [{**entry, "run": run_index} for entry in new["results"]]
    merged.setdefault("checks", {}).update(new.get("checks", {}))
    return merged


def _describe(entry: dict) -> str:
    head = f"{entry['label']:<22} T={entry['T']:<5} H={entry['H']:<4}"
    if entry.get("status") != "ok":
        return f"{head} {entry.get('status')}: {entry.get('note', '')}"
    text = f"{head} {entry['time_s_median'] * 1e3:9.1f} ms"
    if "compile_s" in entry:
        text += f"  (compile {entry['compile_s']:.1f} s)"
    peak = entry.get("memory", {}).get("peak_estimate")
    if peak is not None:
        text += f"  {peak / 2**20:8.1f} MiB"
    if "peak_rss_growth_bytes" in entry:
        text += f"  rss +{entry['peak_rss_growth_bytes'] / 2**20:.0f} MiB"
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small grid and few repeats (smoke run)")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results",
        help="results folder (JSON, markdown table, PNG)",
    )
    parser.add_argument(
        "--memory-budget-gb",
        type=float,
        default=None,
        help="skip configurations whose compiled memory estimate exceeds this "
        "(default 12 on CPU, 90%% of the device memory on an accelerator)",
    )
    parser.add_argument(
        "--max-call-s",
        type=float,
        default=15.0,
        help="skip a configuration whose predicted time per call (from the same core at a "
        "smaller T or H) exceeds this many seconds",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads for the reference loop (0: torch's default; on a loaded "
        "2-core host its 2-thread OpenMP pool ran 10-20x slower than 1 thread)",
    )
    parser.add_argument("--only", default=None, help="regular expression on core labels (e.g. '^shm/')")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference loop and its check")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="add this run's rows to the existing JSON in --out (tagged with this run) instead of overwriting it",
    )
    args = parser.parse_args(argv)
    if args.memory_budget_gb is not None and args.memory_budget_gb <= 0:
        parser.error("--memory-budget-gb must be positive")
    if args.max_call_s <= 0:
        parser.error("--max-call-s must be positive")
    if args.torch_threads < 0:
        parser.error("--torch-threads must be >= 0")
    return args


def _default_budget_gb() -> float:
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = _device_peak_bytes_limit(device)
        if stats:
            return 0.9 * stats / 2**30
    return 12.0


def _device_peak_bytes_limit(device) -> int | None:
    try:
        stats = device.memory_stats()
    except Exception:
        return None
    return int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else None


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    budget = args.memory_budget_gb if args.memory_budget_gb is not None else _default_budget_gb()
    grid = QUICK if args.quick else FULL
    record = run(grid, budget, args.only, args.max_call_s, args.torch_threads, with_torch=not args.no_torch)
    record["settings"]["quick"] = args.quick
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    path = args.out / f"memory_speed_{device_slug()}{suffix}.json"
    if args.merge and path.exists():
        record = merge_records(json.loads(path.read_text()), record)
    save_and_tabulate(path, record)
    return path


if __name__ == "__main__":
    main()
