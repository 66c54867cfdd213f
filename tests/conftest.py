"""Settings every test process shares (xdist workers and the subprocesses tests start inherit them).

- The CPU backend: the suite's sizes and tolerances are set for it. With the ``aot`` extra installed, jax would
  otherwise try to start the CUDA and TPU plugins it brings (for compile-only checks) and print their failures on
  every machine without those devices; the TPU and GPU compiles of tests/tools do not need the plugins as backends.
- One persistent compilation cache (``.jax_cache/`` in the checkout, or ``JAX_COMPILATION_CACHE_DIR``): tests that
  compile the same program (the same config and shapes) compile it once per run, whichever worker or subprocess
  asks first; the cache also carries over between local runs. The terminal summary counts its hits and misses.
- XLA's cheap compile (``JAX_DISABLE_MOST_OPTIMIZATIONS``: LLVM at -O0, no expensive LLVM passes; XLA's HLO passes,
  fusion included, still run): the suite is compile-bound (most tests run their programs for milliseconds), and this
  cuts a training program's compile time by about a third (CPU time 8.8 s -> 5.6 s for a tiny PPO train) while its
  results differ from the optimised build's only in the last bits of float32. Modules marked ``optimized`` (learning
  runs, whose budgets and thresholds were set on optimised code and which run long enough for -O0 to cost more than
  it saves; the TPU/GPU ahead-of-time compiles, which check what a real deployment compiles) get the full optimisation.
- XLA's older CPU fusion emitters (``--xla_cpu_use_fusion_emitters=false`` added to ``XLA_FLAGS`` unless it names the
  flag): the MLIR fusion emitters, XLA's default since 2025, compile the suite's programs more slowly on CPU
  (benchmarks/results/suite_compile_flags_cpu.md); both kinds compute the same functions.
Set any of these variables yourself to override.

``SHM_JAX_COMPILE_PROFILE=FILE`` appends one JSON line per test to FILE: its XLA compile seconds and program count and
its tracing + lowering seconds (where the suite's minutes go: ``python -m tests.compile_profile FILE`` sums them).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(REPO / ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")  # -1: cache every entry, whatever its size
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
if "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_use_fusion_emitters=false".strip()

import json  # noqa: E402

import jax  # noqa: E402  (after the environment above, which jax reads at import)
import pytest  # noqa: E402

_CACHE_EVENTS = {"/jax/compilation_cache/cache_hits": "hits", "/jax/compilation_cache/cache_misses": "misses"}
_counts = {"hits": 0, "misses": 0}


def _count(event: str, **_) -> None:
    if event in _CACHE_EVENTS:
        _counts[_CACHE_EVENTS[event]] += 1


jax.monitoring.register_event_listener(_count)

_PROFILE = os.environ.get("SHM_JAX_COMPILE_PROFILE")
_COMPILE_EVENTS = {
    "/jax/core/compile/backend_compile_duration": "compile_s",
    "/jax/core/compile/jaxpr_trace_duration": "trace_s",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
}
_test_profile: dict[str, float] = {}
_xdist_controller = False  # set in pytest_configure: with -n N the tests run (and are timed) in the workers


def _time(event: str, duration: float, **_) -> None:
    if event in _COMPILE_EVENTS:
        name = _COMPILE_EVENTS[event]
        _test_profile[name] = _test_profile.get(name, 0.0) + duration
        if name == "compile_s":
            _test_profile["programs"] = _test_profile.get("programs", 0) + 1


if _PROFILE:
    jax.monitoring.register_event_duration_secs_listener(_time)

    def pytest_runtest_logstart(nodeid, location):
        _test_profile.clear()

    def pytest_runtest_logfinish(nodeid, location):
        if _xdist_controller:
            return
        with open(_PROFILE, "a") as f:  # one short line per write: the workers' lines do not interleave
            f.write(json.dumps({"test": nodeid, "pid": os.getpid(), **_test_profile}) + "\n")


def pytest_configure(config):
    global _xdist_controller
    _xdist_controller = bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")
    config.addinivalue_line(
        "markers",
        "optimized: (a module's pytestmark) compile with XLA's full optimisation (learning runs, TPU/GPU AOT "
        "compiles), not the suite's cheap compile (tests/conftest.py)",
    )


@pytest.fixture(autouse=True, scope="module")
def _full_optimisation_when_marked(request):
    """Modules marked ``optimized`` (``pytestmark``) compile with XLA's full optimisation, their module-scoped fixtures
    included (the suite's default is the cheap compile)."""
    if request.node.get_closest_marker("optimized") is None:
        yield
        return
    before = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", before)


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):  # an xdist worker: hand the counts to the controller
        session.config.workeroutput["jax_cache"] = dict(_counts)


def pytest_testnodedown(node, error):
    for key, value in getattr(node, "workeroutput", {}).get("jax_cache", {}).items():
        _counts[key] += value


def pytest_terminal_summary(terminalreporter):
    hits, misses = _counts["hits"], _counts["misses"]
    terminalreporter.write_line(
        f"jax compilation cache ({os.environ['JAX_COMPILATION_CACHE_DIR']}): {hits} hits, "
        f"{misses} misses in the test processes (subprocesses not counted)"
    )


def pytest_collection_modifyitems(session, config, items):
    """Run the modules of long tests first: pytest-xdist's ``load`` scheduling hands tests out in this order, so the
    long ones (learning runs, AOT compiles, subprocess end-to-end runs: the ``slow`` ones) start while the other worker
    still has work, and the run ends on short tests that balance the two workers instead of one worker finishing a
    40 s test alone. Whole modules move (their tests stay together and in their order, so a module-scoped fixture is
    set up once per worker): modules whose tests are all slow first, then by their share of slow tests."""

    def module(item):
        return item.nodeid.split("::")[0]

    counts: dict[str, tuple[int, int]] = {}
    for item in items:
        slow, total = counts.get(module(item), (0, 0))
        counts[module(item)] = (slow + (item.get_closest_marker("slow") is not None), total + 1)
    rank = {name: -slow / total for name, (slow, total) in counts.items()}
    items.sort(key=lambda item: rank[module(item)])  # stable: collection order within a rank and within a module
