"""How long test files take with XLA's CPU fusion emitters on and off (tests/conftest.py turns them off).

    python -m benchmarks.suite_compile_flags                      # the default files, 2 rounds
    python -m benchmarks.suite_compile_flags --files tests/memory/test_shm.py --rounds 3

Each run is ``python -m pytest -q -n 0`` over ``--files`` in a fresh process with an empty compilation cache, so
every program compiles; the two settings alternate within a round, and the ratio off/on is taken per round (the
machine's load drifts between rounds, less within one). The default files mix compile-bound tests (most of the suite)
with two learning tests, which run at XLA's full optimisation. Writes ``<out>/suite_compile_flags_<device>.json`` and
``.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO_ROOT, RESULTS_DIR, close_record, measured_on, record_header, write_record

DEFAULT_FILES = (
    "tests/algorithms/ppo/test_seeds_sweeps.py",
    "tests/envs/test_credit.py",
    "tests/memory/test_shm.py",
    "tests/algorithms/ppo/test_ppo_learning.py",
)
SETTINGS = {"emitters on (XLA default)": "true", "emitters off (the suite's)": "false"}


def run_files(files: list[str], emitters: str) -> float:
    """Wall seconds of one pytest run over ``files`` with ``--xla_cpu_use_fusion_emitters=<emitters>``."""
    with tempfile.TemporaryDirectory() as cache:
        env = {
            **os.environ,
            "XLA_FLAGS": f"--xla_cpu_use_fusion_emitters={emitters}",
            "JAX_COMPILATION_CACHE_DIR": cache,
            "JAX_PLATFORMS": "cpu",
        }
        command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", *files]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"pytest failed with emitters={emitters}:\n{result.stdout[-2000:]}")
    return elapsed


def markdown(record: dict) -> str:
    rows = [
        "# Test files' wall time with XLA's CPU fusion emitters on and off",
        "",
        f"{measured_on(record, 'benchmarks.suite_compile_flags')} jax {record['versions']['jax']}. Files: "
        f"{', '.join(record['files'])}; fresh compilation cache per run, `-n 0`.",
        "",
        "| round | " + " | ".join(SETTINGS) + " | off / on |",
        "|---|" + "---|" * (len(SETTINGS) + 1),
    ]
    for i, r in enumerate(record["rounds"], 1):
        rows.append(f"| {i} | " + " | ".join(f"{r[name]:.1f} s" for name in SETTINGS) + f" | {r['ratio']:.2f} |")
    rows += ["", f"Median off / on: **{record['median_ratio']:.2f}**.", ""]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="+", default=list(DEFAULT_FILES))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    began = time.perf_counter()
    record = record_header("suite_compile_flags")
    record["files"] = args.files
    record["rounds"] = []
    for i in range(args.rounds):
        order = list(SETTINGS.items()) if i % 2 == 0 else list(reversed(SETTINGS.items()))
        times = {name: run_files(args.files, value) for name, value in order}
        on, off = times["emitters on (XLA default)"], times["emitters off (the suite's)"]
        record["rounds"].append({**times, "ratio": off / on})
        print(f"round {i + 1}: on {on:.1f} s, off {off:.1f} s", flush=True)
    record["median_ratio"] = statistics.median(r["ratio"] for r in record["rounds"])
    return write_record(close_record(record, began), args.out, "suite_compile_flags", False, markdown)


if __name__ == "__main__":
    main()
