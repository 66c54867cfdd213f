"""ppo_throughput's table: env steps/s, update / rollout / learn time per (memory, H), and SHM / baseline ratios.

Targets are the record's ``targets`` (``TARGETS`` in benchmarks/ppo_throughput.py, written with every run).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.tables import output_path, preamble

BASELINES = ("gru", "gru-equal-state", "ffm")


def ppo_ratios(record: dict) -> list[dict]:
    """Per H: SHM env steps/s over each baseline's (above 1: SHM faster) and SHM / baseline update time, with the
    record's update-time target for that baseline (None: no target) and whether it is met.

    Pairs rows of one ppo_throughput run. GRU rows pair with SHM at the same H; the single FFM row (its size
    does not follow H) pairs with every H. Ordered by H as measured, then gru, gru-equal-state, ffm.
    """
    limits = record["targets"]["max_update_time_ratio"]
    ok = [r for r in record["results"] if r.get("status") == "ok"]
    out = []
    for shm in (r for r in ok if r["label"] == "shm"):
        for label in BASELINES:
            for base in ok:
                if base["label"] != label or (label != "ffm" and base["H"] != shm["H"]):
                    continue
                out.append(
                    {
                        "H": shm["H"],
                        "shm_state": shm["state_floats_per_env"],
                        "baseline": label,
                        "baseline_H": base["H"],
                        "baseline_state": base["state_floats_per_env"],
                        "shm_over_baseline_steps_per_s": shm["steps_per_s"] / base["steps_per_s"],
                        "shm_over_baseline_update_time": shm["update_s"] / base["update_s"],
                        "within_2x": shm["update_s"] <= 2.0 * base["update_s"],
                        "target": limits.get(label),
                        "meets_target": (
                            shm["update_s"] <= limits[label] * base["update_s"] if label in limits else None
                        ),
                    }
                )
    return out


def _fmt_s(seconds: float) -> str:
    """Seconds with three significant digits (0.0123, 1.23, 12.3, 123)."""
    return f"{seconds:.3g}" if abs(seconds) < 100 else f"{seconds:.0f}"


def markdown(record: dict) -> str:
    """The end-to-end PPO throughput table of a ppo_throughput JSON, with the SHM / baseline ratios."""
    s = record["settings"]
    limits = record["targets"]["max_update_time_ratio"]
    out = [
        *preamble(
            record,
            "End-to-end PPO throughput",
            "`ppo_throughput_*.json` (written by `python -m benchmarks.ppo_throughput`)",
            "default SHM scan",
            "Other jobs shared the machine: quote the ratios inside this run, not the absolute rates.",
        ),
        f"- Setup: the `{s['preset']}` preset on `{s['env_id']}`, scaled: {s['num_envs']} envs x {s['num_steps']} "
        f"steps per update ({s['steps_per_update']:,} env steps), {s['num_minibatches']} minibatches of "
        f"{s['sequences_per_minibatch']} whole sequences, {s['update_epochs']} epochs, {s['seeds']} seed "
        f"(the paper: 64 envs x 1024 steps, 8 minibatches of 8 sequences, 30 epochs, 3 seeds).",
        f"- Measurement: jitted `train_chunk` of {s['updates_per_call']} update(s) (rollout + GAE + epochs), "
        f"compile excluded, one warm-up call, median of {s['repeats']} calls ended by `block_until_ready`. "
        "Rollout: jitted `rollout` alone, same way; learn = update − rollout.",
        "",
        "| memory | H | state floats / env | params | env steps/s | update (s) | rollout (s) | learn (s) | "
        "rollout steps/s | compile (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in record["results"]:
        if r.get("status") != "ok":
            out.append(
                f"| {r['label']} | {r['H']} | {r.get('status')}: {r.get('note', '')} | " + " | ".join(["–"] * 7) + " |"
            )
            continue
        out.append(
            f"| {r['label']} | {r['H']} | {r['state_floats_per_env']:,} | {r['param_count']:,} | "
            f"{r['steps_per_s']:,.0f} | {_fmt_s(r['update_s'])} | {_fmt_s(r['rollout_s'])} | "
            f"{_fmt_s(r['learn_s'])} | "
            f"{r['rollout_steps_per_s']:,.0f} | {r['compile_s']:.1f} |"
        )
    out += [
        "",
        "## SHM / baseline (same run)",
        "",
        f"Steps/s ratio above 1: SHM trains faster. Targets for SHM's update time: at most {limits['gru']:g}x a "
        f"GRU of the same H (`gru`), within {limits['gru-equal-state']:g}x of a GRU of SHM's state size "
        "(`gru-equal-state`, H² units). State: floats of memory per environment (SHM H², GRU its hidden size, "
        "FFM its complex traces x 2; FFM's size does not follow H, so its one row pairs with every H).",
        "",
        "| H | SHM state | baseline | baseline state | SHM / baseline env steps/s | SHM / baseline update time "
        "| target | met |",
        "|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for row in ppo_ratios(record):
        target = row.get("target")
        met = "–" if target is None else ("yes" if row["meets_target"] else "no")
        out.append(
            f"| {row['H']} | {row['shm_state']:,} | {row['baseline']} | {row['baseline_state']:,} | "
            f"{row['shm_over_baseline_steps_per_s']:.2f} | {row['shm_over_baseline_update_time']:.2f} | "
            f"{'–' if target is None else f'≤ {target:g}'} | {met} |"
        )
    out.append("")
    return "\n".join(out)


def write(record: dict, json_path: Path) -> list[Path]:
    """Writes ppo_throughput[_<device>][_quick].md next to the JSON; returns its path."""
    md_path = output_path(json_path, "ppo_throughput")
    md_path.write_text(markdown(record))
    return [md_path]
