"""memory_speed's tables and plot: time, memory and compile time per (core, H, T), the fastest SHM scan, the
torch loop, SHM / GRU, growth in T, the memory target and the memorax comparison.

Targets are the record's ``targets`` (``TARGETS`` in benchmarks/memory_speed.py, written with every run).
"""

from __future__ import annotations

import math
from pathlib import Path

from benchmarks.tables import MIB, first_by_key, fmt_loads, fmt_time, ok_by_key, output_path, preamble

NN_SCAN_LABEL = "shm/sequential-autodiff"  # SHM as a linen cell in nn.scan: the memory target's baseline
MEMORAX_LABEL = "memorax/shm"  # memorax's SHMCell in nn.RNN (benchmarks/memorax_shm.py)
MEMORAX_PARTNER = "shm/as-memorax"  # the library layer computing memorax's function (no shortcut)


def derived(record: dict) -> dict:
    """The quoted numbers: fastest SHM path per (T, H), torch/JAX ratios, SHM/GRU ratios, T-growth exponents."""
    ok = ok_by_key(record["results"])
    lengths, sizes = record["settings"]["lengths"], record["settings"]["sizes"]
    fastest, leanest = {}, {}
    for t in lengths:
        for h in sizes:
            shm = [r for (label, tt, hh), r in ok.items() if tt == t and hh == h and r["family"] == "shm"]
            if shm:
                best = min(shm, key=lambda r: r["time_s_median"])
                fastest[(t, h)] = best
                with_mem = [r for r in shm if r["memory"].get("peak_estimate") is not None]
                if with_mem:
                    leanest[(t, h)] = min(with_mem, key=lambda r: r["memory"]["peak_estimate"])
    torch_rows = []
    for entry in record.get("torch_reference", []):
        if entry.get("status") != "ok":
            continue
        best = fastest.get((entry["T"], entry["H"]))
        torch_rows.append(
            {
                "T": entry["T"],
                "H": entry["H"],
                "torch_s": entry["time_s_median"],
                "torch_rss_mib": entry.get("peak_rss_growth_bytes", 0) / MIB,
                "jax_label": best["label"] if best else None,
                "jax_s": best["time_s_median"] if best else None,
                "ratio": entry["time_s_median"] / best["time_s_median"] if best else None,
            }
        )
    gru_rows = []
    for (t, h), best in sorted(fastest.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        row = {"T": t, "H": h, "shm_label": best["label"], "shm_s": best["time_s_median"]}
        for label in ("gru", "gru-equal-state"):
            other = ok.get((label, t, h))
            row[label] = best["time_s_median"] / other["time_s_median"] if other else None
        gru_rows.append(row)
    growth = {}
    labels = sorted({label for (label, _, _) in ok}, key=_label_order(record))
    for label in labels:
        for h in sizes:
            pts = [(t, ok[(label, t, h)]["time_s_median"]) for t in lengths if (label, t, h) in ok]
            if len(pts) >= 2:
                (t0, s0), (t1, s1) = pts[0], pts[-1]
                growth[(label, h)] = {
                    "per_step_us": {t: s / t * 1e6 for t, s in pts},
                    "exponent": math.log(s1 / s0) / math.log(t1 / t0),
                }
    torch_growth = None
    if len(torch_rows) >= 2:
        a, b = torch_rows[0], torch_rows[-1]
        torch_growth = math.log(b["torch_s"] / a["torch_s"]) / math.log(b["T"] / a["T"])
    return {
        "fastest": fastest,
        "leanest": leanest,
        "torch": torch_rows,
        "gru": gru_rows,
        "growth": growth,
        "torch_exponent": torch_growth,
    }


def memory_target_rows(record: dict) -> list[dict]:
    """Lean sequential SHM vs the nn.scan autodiff baseline, per (H, T), pairing rows of the same run only.

    The lean path is the fastest ``shm/sequential-<L>`` of the baseline's run; its time and peak memory are
    compared with the baseline's (a baseline skipped for memory still has its compiled estimate). At the target's
    (B, H, T) the row also says whether the record's memory target is met.
    """
    target = record["targets"]["memory"]
    rows = []
    for base in record["results"]:
        if base["label"] != NN_SCAN_LABEL or base.get("memory", {}).get("peak_estimate") is None:
            continue
        run = base.get("run", 0)
        lean = [
            r
            for r in record["results"]
            if r.get("run", 0) == run
            and r.get("status") == "ok"
            and r["label"].startswith("shm/sequential-")
            and r["label"] != NN_SCAN_LABEL
            and (r["T"], r["H"]) == (base["T"], base["H"])
        ]
        if not lean:
            continue
        best = min(lean, key=lambda r: r["time_s_median"])
        base_s = base["time_s_median"] if base.get("status") == "ok" else None
        memory_ratio = best["memory"]["peak_estimate"] / base["memory"]["peak_estimate"]
        row = {
            "H": base["H"],
            "T": base["T"],
            "B": base["B"],
            "run": run,
            "baseline": base,
            "lean": best,
            "speedup": base_s / best["time_s_median"] if base_s else None,
            "memory_ratio": memory_ratio,
        }
        if (row["B"], row["H"], row["T"]) == (target["B"], target["H"], target["T"]):
            row["meets_time"] = best["time_s_median"] <= target["max_time_s"]
            row["meets_memory"] = memory_ratio <= target["max_memory_ratio"]
        rows.append(row)
    return sorted(rows, key=lambda r: (r["run"], r["H"], r["T"]))


def _memory_target_section(record: dict) -> list[str]:
    """The memory-target table's lines (none without a baseline row)."""
    rows = memory_target_rows(record)
    if not rows:
        return []
    target = record["targets"]["memory"]
    out = [
        "",
        "## Memory target: lean sequential SHM vs a straightforward linen cell in nn.scan",
        "",
        f"`{NN_SCAN_LABEL}` is SHM written as a linen cell stepped by `nn.scan` with plain autodiff "
        "(benchmarks/linen_shm_cell.py; same function as the library layer, checked below). The lean path is "
        "the fastest `shm/sequential-L` measured in the same run. Target at B = "
        f"{target['B']}, H = {target['H']}, T = {target['T']}: lean fwd+bwd <= {target['max_time_s']} s and "
        f"peak memory <= {target['max_memory_ratio']:g} x the baseline's.",
        "",
        "| run | H | T | nn.scan autodiff (ms) | its MiB | lean path | lean (ms) | lean MiB | "
        "time baseline / lean | memory lean / baseline | target met |",
        "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        speed = f"{row['speedup']:.1f}x" if row["speedup"] else "–"
        met = "–"
        if "meets_time" in row:
            met = f"time {'yes' if row['meets_time'] else 'no'}, memory {'yes' if row['meets_memory'] else 'no'}"
        out.append(
            f"| {row['run']} | {row['H']} | {row['T']} | {fmt_time(row['baseline'])} | "
            f"{_fmt_mem(row['baseline'])} | {row['lean']['label']} | {fmt_time(row['lean'])} | "
            f"{_fmt_mem(row['lean'])} | {speed} | {row['memory_ratio']:.3f} | {met} |"
        )
    check = record.get("checks", {}).get("nn_scan_equals_shm")
    if check:
        out += [
            "",
            f"Same function: with the library layer's weights, Θ rows, resets and a random incoming memory, "
            f"max |Δy| = {check['output']:.1e} (|y| up to {check['output_scale']:.2f}), max |ΔM_T| = "
            f"{check['memory']:.1e}, max |Δ dL/dx| = {check['input_grad']:.1e}; ok = {check['ok']}.",
        ]
    return out


def memorax_rows(record: dict) -> list[dict]:
    """Library / memorax time per (variant, H, T), pairing rows of the same run only, against the record's target."""
    limit = record["targets"]["memorax"]["max_time_ratio"]
    rows = []
    for theirs in record["results"]:
        if not theirs["label"].startswith(MEMORAX_LABEL) or theirs.get("status") != "ok":
            continue
        suffix, run = theirs["label"][len(MEMORAX_LABEL) :], theirs.get("run", 0)
        ours = [
            r
            for r in record["results"]
            if r["label"] == MEMORAX_PARTNER + suffix
            and r.get("run", 0) == run
            and r.get("status") == "ok"
            and (r["T"], r["H"]) == (theirs["T"], theirs["H"])
        ]
        if ours:
            ratio = ours[0]["time_s_median"] / theirs["time_s_median"]
            rows.append(
                {
                    "variant": suffix.lstrip("-") or "random θ",
                    "H": theirs["H"],
                    "T": theirs["T"],
                    "run": run,
                    "ours": ours[0],
                    "theirs": theirs,
                    "ratio": ratio,
                    "meets_target": ratio <= limit,
                }
            )
    return sorted(rows, key=lambda r: (r["run"], r["variant"], r["H"], r["T"]))


def _memorax_section(record: dict) -> list[str]:
    """The memorax comparison's lines (none without a memorax row and its partner)."""
    rows = memorax_rows(record)
    if not rows:
        return []
    out = [
        "",
        "## Library SHM vs memorax's SHMCell (same function, same run)",
        "",
        f"`{MEMORAX_LABEL}`: memorax's `SHMCell` in flax `nn.RNN` (benchmarks/memorax_shm.py); "
        f'`{MEMORAX_PARTNER}`: `make_memory("shm", shortcut=False, projection_size=F)` with the default scan, '
        "the function memorax computes. Target: library / memorax <= "
        f"{record['targets']['memorax']['max_time_ratio']:g}.",
        "",
        "| run | calibration | H | T | memorax (ms) | library (ms) | library / memorax | target met |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        out.append(
            f"| {row['run']} | {row['variant']} | {row['H']} | {row['T']} | {fmt_time(row['theirs'])} | "
            f"{fmt_time(row['ours'])} | {row['ratio']:.2f} | {'yes' if row['meets_target'] else 'no'} |"
        )
    check = record.get("checks", {}).get("memorax_equals_shm")
    if check:
        out += [
            "",
            f"Same function: memorax's weights copied into the library's fixed-θ layer, random incoming "
            f"memory, max |Δy| = {check['output']:.1e} (|y| up to {check['output_scale']:.2f}), max |ΔM_T| "
            f"= {check['memory']:.1e}, max |Δ dL/dx| = {check['input_grad']:.1e}; ok = {check['ok']}.",
        ]
    return out


def _merged_runs_note(record: dict) -> list[str]:
    """Header lines listing the runs merged in with --merge (none for a single run)."""
    runs = record.get("merged_runs") or []
    if not runs:
        return []
    out = [
        "- Rows merged in from later runs (`--merge`; the grid tables show each core's first-run row, the "
        "memory-target table pairs rows of one run):"
    ]
    for i, r in enumerate(runs, start=1):
        load0, load1 = fmt_loads(r.get("load_average_start")), fmt_loads(r.get("load_average_end"))
        labels = sorted({e["label"] for e in record["results"] if e.get("run") == i})
        settings = r.get("settings") or {}
        budget = f", memory budget {settings['memory_budget_gb']:g} GiB" if "memory_budget_gb" in settings else ""
        out.append(
            f"  run {i}: {r.get('timestamp_utc')} (git {r.get('git_commit')}), "
            f"`--only {settings.get('only')}`{budget}, load average {load0} -> {load1}; rows: "
            + ", ".join(f"`{lab}`" for lab in labels)
            + "."
        )
    return out


def _label_order(record: dict):
    """A sort key putting labels in the order the record first measured them."""
    order = {}
    for r in record["results"]:
        order.setdefault(r["label"], len(order))
    return lambda label: order.get(label, len(order))


def _fmt_mem(entry: dict | None) -> str:
    """A row's peak-memory estimate in MiB for a table cell, in parentheses where the row was not run."""
    if entry is None or "memory" not in entry or entry["memory"].get("peak_estimate") is None:
        return "–"
    mib = entry["memory"]["peak_estimate"] / MIB
    text = f"{mib:.0f}" if mib >= 10 else f"{mib:.1f}"
    return text if entry.get("status") == "ok" else f"({text})"


def _grid_table(record: dict, cell) -> list[str]:
    """Lines of a core x (H, T) table, ``cell(row)`` in each cell (the first run's row per key)."""
    lengths, sizes = record["settings"]["lengths"], record["settings"]["sizes"]
    by_key = first_by_key(record["results"])
    cols = [(h, t) for h in sizes for t in lengths]
    lines = ["| core | " + " | ".join(f"H={h} T={t}" for h, t in cols) + " |", "|---|" + "---:|" * len(cols)]
    runs = {}
    for r in record["results"]:
        runs.setdefault(r["label"], r.get("run", 0))
    for label, run in runs.items():
        shown = f"{label} (run {run})" if run else label  # rows merged in from a later run say so
        lines.append(f"| {shown} | " + " | ".join(cell(by_key.get((label, t, h))) for h, t in cols) + " |")
    return lines


def markdown(record: dict) -> str:
    """memory_speed.md: every table of a memory_speed record."""
    d = derived(record)
    s = record["settings"]
    out = [
        *preamble(
            record,
            "Memory-core speed and memory",
            "`memory_speed_*.json`",
            "default scan",
            "The machine was shared, so absolute times are noisy: quote ratios taken inside one run.",
        ),
        f"- Workload: forward + backward of mean(y²) w.r.t. parameters and input, B = {s['batch']}, "
        f"input D = {s['input_size']}, output F = {s['output_size']}, one episode start at t = 0; "
        f"median of up to {s['repeats']} jitted calls after a warm-up (compile excluded). "
        + (
            f"`skip (~N s)`: predicted time per call above --max-call-s {s['max_call_s']:g} s. "
            if "max_call_s" in s
            else ""
        )
        + (f"The torch loop ran with {s['torch_threads']} intra-op thread(s)." if "torch_threads" in s else ""),
        f"- Memory: XLA `memory_analysis()` of the compiled fwd+bwd, temp + arguments + outputs − aliased "
        f"(MiB). Budget {s['memory_budget_gb']:g} GiB: larger estimates are skipped (shown in parentheses).",
        *_merged_runs_note(record),
        "",
        "## Time per forward+backward (ms)",
        "",
        *_grid_table(record, fmt_time),
        "",
        "## Peak memory estimate (MiB)",
        "",
        *_grid_table(record, _fmt_mem),
        "",
        "## Compile time (s)",
        "",
        *_grid_table(record, lambda e: f"{e['compile_s']:.1f}" if e and "compile_s" in e else "–"),
        "",
        "## Fastest and leanest SHM scan per size",
        "",
        "| H | T | fastest path | ms | MiB | leanest path | ms | MiB |",
        "|---:|---:|---|---:|---:|---|---:|---:|",
    ]
    for (t, h), best in sorted(d["fastest"].items(), key=lambda kv: (kv[0][1], kv[0][0])):
        lean = d["leanest"].get((t, h))
        lean_cells = f"{lean['label']} | {fmt_time(lean)} | {_fmt_mem(lean)}" if lean else "– | – | –"
        out.append(f"| {h} | {t} | {best['label']} | {fmt_time(best)} | {_fmt_mem(best)} | {lean_cells} |")
    out += ["", "## Official-style PyTorch loop vs the fastest JAX SHM path", ""]
    if d["torch"]:
        out += [
            "| H | T | torch loop (ms) | torch peak RSS growth (MiB) | fastest JAX path | JAX (ms) | torch / JAX |",
            "|---:|---:|---:|---:|---|---:|---:|",
        ]
        for row in d["torch"]:
            jax_ms = f"{row['jax_s'] * 1e3:.1f}" if row["jax_s"] else "–"
            ratio = f"{row['ratio']:.1f}x" if row["ratio"] else "–"
            out.append(
                f"| {row['H']} | {row['T']} | {row['torch_s'] * 1e3:.0f} | {row['torch_rss_mib']:.0f} | "
                f"{row['jax_label']} | {jax_ms} | {ratio} |"
            )
        if d["torch_exponent"] is not None:
            out += [
                "",
                f"The torch loop's time grows as T^{d['torch_exponent']:.2f} between the two lengths "
                "(its backward is quadratic in T, see benchmarks/torch_reference.py).",
            ]
        check = record.get("checks", {}).get("torch_equals_jax")
        if check:
            out += [
                "",
                f"Same function: with the JAX layer's weights and Θ rows copied, max |Δy| = "
                f"{check['output']:.1e} (|y| up to {check['output_scale']:.2f}), max |ΔM_T| = "
                f"{check['memory']:.1e}, max |Δ dL/dx| = {check['input_grad']:.1e} "
                f"(|dL/dx| up to {check['input_grad_scale']:.1e}); ok = {check['ok']}.",
            ]
    else:
        notes = "; ".join(e.get("note", "") for e in record.get("torch_reference", []))
        out.append(f"Not measured: {notes or 'no torch results'}.")
    out += [
        "",
        "## SHM / GRU time ratio (fastest SHM path over GRU)",
        "",
        "| H | T | fastest SHM | SHM / GRU(hidden H) | SHM / GRU(hidden H², equal state) |",
        "|---:|---:|---|---:|---:|",
    ]
    for row in d["gru"]:
        cells = [f"{row[k]:.2f}" if row[k] is not None else "–" for k in ("gru", "gru-equal-state")]
        out.append(f"| {row['H']} | {row['T']} | {row['shm_label']} | {cells[0]} | {cells[1]} |")
    lengths = s["lengths"]
    out += [
        "",
        "## Time per step across T (µs per step of the whole batch) and growth exponent",
        "",
        "Exponent = log(time(T_max) / time(T_min)) / log(T_max / T_min): 1.0 is linear in T.",
        "",
        "| core | H | " + " | ".join(f"T={t}" for t in lengths) + " | exponent |",
        "|---|---:|" + "---:|" * len(lengths) + "---:|",
    ]
    for (label, h), g in d["growth"].items():
        cells = [f"{g['per_step_us'][t]:.1f}" if t in g["per_step_us"] else "–" for t in lengths]
        out.append(f"| {label} | {h} | " + " | ".join(cells) + f" | {g['exponent']:.2f} |")
    out += _memory_target_section(record)
    out += _memorax_section(record)
    out.append("")
    return "\n".join(out)


def plot(record: dict, path: Path) -> None:
    """Saves to ``path`` the time-vs-T panels (one per H) and the time-vs-H panel of the record's first run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first_run = [r for r in record["results"] if r.get("run", 0) == 0]  # one run per figure: no merged rows
    ok = ok_by_key(first_run)
    lengths, sizes = record["settings"]["lengths"], record["settings"]["sizes"]
    labels = list(dict.fromkeys(r["label"] for r in first_run))
    shown = [lab for lab in labels if not lab.startswith("shm-")]  # ablations crowd the plot; see the table
    panels = [("T", h) for h in sorted(sizes, reverse=True)] + ([("H", None)] if len(sizes) > 1 else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5), squeeze=False)
    cmap = plt.get_cmap("tab20")
    for ax, (axis, fixed) in zip(axes[0], panels):
        for i, label in enumerate(shown):
            style = {"color": cmap(i % 20), "marker": "o", "linestyle": "-" if label.startswith("shm") else "--"}
            if axis == "T":
                pts = [(t, ok[(label, t, fixed)]["time_s_median"]) for t in lengths if (label, t, fixed) in ok]
            else:
                t_fixed = _largest_common_length(ok, label, lengths, sizes)
                pts = [(h, ok[(label, t_fixed, h)]["time_s_median"]) for h in sizes if (label, t_fixed, h) in ok]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] * 1e3 for p in pts], label=label, **style)
        torch_pts = [
            (e["T"], e["time_s_median"])
            for e in record.get("torch_reference", [])
            if e.get("status") == "ok" and axis == "T" and e["H"] == fixed
        ]
        if torch_pts:
            ax.plot(
                [p[0] for p in torch_pts],
                [p[1] * 1e3 for p in torch_pts],
                color="black",
                marker="s",
                linewidth=2,
                label="torch loop (official style)",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_ylabel("fwd+bwd time (ms)")
        if axis == "T":
            ax.set_xlabel("sequence length T")
            ax.set_title(f"time vs T, H = {fixed}, B = {record['settings']['batch']}")
        else:
            ax.set_xlabel("memory size H")
            ax.set_title("time vs H (largest T run at every H, per core)")
        ax.grid(True, which="both", alpha=0.3)
    handles = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), fontsize=8, loc="center right")
    fig.suptitle(f"memory cores on {record['host']['device_kind']} ({record['timestamp_utc']})")
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _largest_common_length(ok, label, lengths, sizes) -> int:
    """The largest T at which ``label`` ran at every H (else the smallest T)."""
    common = [t for t in lengths if all((label, t, h) in ok for h in sizes)]
    return max(common) if common else lengths[0]


def write(record: dict, json_path: Path) -> list[Path]:
    """Writes memory_speed[_<device>][_quick].md and memory_scaling[...].png next to the JSON; returns their paths."""
    md_path = output_path(json_path, "memory_speed")
    png_path = output_path(json_path, "memory_speed", "memory_scaling", ".png")
    md_path.write_text(markdown(record))
    plot(record, png_path)
    return [md_path, png_path]
