"""Collect train.py run folders into one JSON and a markdown table (agent measurements; no re-running).

    python -m benchmarks.collect_runs OUT_STEM LABEL=RUN_DIR[@LOAD] ...

LABEL names the agent (the table's column); the task is read from each run's config.json. LOAD is the
``uptime`` load average recorded next to the run. Writes OUT_STEM.json (per seed: final return, MMER, greedy and
sampled evaluation; per cell mean ± std over seeds; the exact options) and OUT_STEM.md.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def _mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "n": len(values)}


def _eval(summary: dict, policy: str) -> list[float]:
    for entry in summary.get("evaluation", []):
        if entry["policy"] == policy:
            return [r["mean_return"] for r in entry["per_run"]]
    return []


def read_run(label: str, run_dir: Path, load: str | None) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    runs = summary["per_run"]
    row = {
        "label": label,
        "env_id": config["env"]["env_id"],
        "run_dir": run_dir.name,
        "load": load,
        "agent": config["agent"],
        "ppo": config["ppo"],
        "seeds": summary["seeds"],
        "env_steps_per_run": summary["env_steps_per_run"],
        "timing": summary["timing"],
        "final_return": [r["final_return"] for r in runs],
        "mmer": [r["mmer"] for r in runs],
        "eval_greedy": _eval(summary, "greedy"),
        "eval_sampled": _eval(summary, "sampled"),
    }
    for key in ("final_return", "mmer", "eval_greedy", "eval_sampled"):
        if row[key]:
            row[f"{key}_stats"] = _mean_std(row[key])
    return row


def _cell(row: dict, key: str) -> str:
    stats = row.get(f"{key}_stats")
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}" if stats else "n/a"


def markdown(rows: list[dict]) -> str:
    labels = list(dict.fromkeys(r["label"] for r in rows))
    envs = list(dict.fromkeys(r["env_id"] for r in rows))
    by_key = {(r["env_id"], r["label"]): r for r in rows}
    lines = [
        "Final return (last 10% of updates) / MMER, mean ± std over seeds (population std).",
        "",
        "| task | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for env in envs:
        cells = []
        for label in labels:
            row = by_key.get((env, label))
            cells.append(f"{_cell(row, 'final_return')} / {_cell(row, 'mmer')}" if row else "not run")
        lines.append(f"| {env} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| task | agent | seeds | steps/run | per-seed final return | eval greedy | eval sampled | train s | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        finals = ", ".join(f"{v:.3f}" for v in r["final_return"])
        lines.append(
            f"| {r['env_id']} | {r['label']} | {len(r['seeds'])} | {r['env_steps_per_run']} | {finals} | "
            f"{_cell(r, 'eval_greedy')} | {_cell(r, 'eval_sampled')} | {r['timing']['train_seconds']:.0f} "
            f"| {r['load'] or 'n/a'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    out, rows = Path(argv[0]), []
    for spec in argv[1:]:
        label, _, rest = spec.partition("=")
        path, _, load = rest.partition("@")
        rows.append(read_run(label, Path(path), load or None))
    out.with_suffix(".json").write_text(json.dumps({"runs": rows}, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
