"""Sum a ``SHM_JAX_COMPILE_PROFILE`` file (tests/conftest.py) per module and list the tests that compile the most.

Usage: ``SHM_JAX_COMPILE_PROFILE=/tmp/p.jsonl python -m pytest -q; python -m tests.compile_profile /tmp/p.jsonl``.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(path: str, top: int = 40) -> None:
    rows = [json.loads(line) for line in open(path)]
    keys = ("compile_s", "trace_s", "lower_s", "programs")
    total = {k: sum(r.get(k, 0) for r in rows) for k in keys}
    print(f"{len(rows)} tests: " + ", ".join(f"{k} {v:.0f}" for k, v in total.items()))
    modules: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(keys, 0.0))
    for r in rows:
        for k in keys:
            modules[r["test"].split("::")[0]][k] += r.get(k, 0)
    print("\nper module (compile_s, trace_s + lower_s, programs):")
    for name, m in sorted(modules.items(), key=lambda kv: -kv[1]["compile_s"])[:top]:
        print(f"{m['compile_s']:8.1f} {m['trace_s'] + m['lower_s']:7.1f} {m['programs']:6.0f}  {name}")
    print("\nper test:")
    for r in sorted(rows, key=lambda r: -r.get("compile_s", 0))[:top]:
        traced = r.get("trace_s", 0) + r.get("lower_s", 0)
        print(f"{r.get('compile_s', 0):8.1f} {traced:7.1f} {r.get('programs', 0):6d}  {r['test']}")


if __name__ == "__main__":
    main(sys.argv[1])
