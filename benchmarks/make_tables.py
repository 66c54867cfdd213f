"""Markdown tables (and a scaling plot) from a benchmark JSON, re-runnable without re-measuring.

    python -m benchmarks.make_tables benchmarks/results/memory_speed_cpu.json
    python -m benchmarks.make_tables benchmarks/results/ppo_throughput_cpu.json
    python -m benchmarks.make_tables benchmarks/results/compile_report.json

memory_speed: writes, next to the JSON, ``memory_speed.md`` and ``memory_scaling.png`` (CPU) or
``memory_speed_<device>.md`` / ``memory_scaling_<device>.png`` (other devices), with ``_quick`` appended
for ``--quick`` runs. ppo_throughput: ``ppo_throughput[_<device>][_quick].md`` the same way (no plot).
compile_report: ``compile_report.md``. The tables are made by each benchmark's report
(``benchmarks/memory_speed_report.py``, ``ppo_throughput_report.py``, ``compile_report_tables.py``), chosen by the
record's ``benchmark`` name in ``benchmarks.tables.write_tables``.
"""

from __future__ import annotations

import sys

from benchmarks.tables import write_tables

if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(
            "usage: python -m benchmarks.make_tables benchmarks/results/"
            "{memory_speed,ppo_throughput}_<device>[_quick].json | compile_report.json"
        )
    for p in write_tables(sys.argv[1]):
        print(f"wrote {p}")
