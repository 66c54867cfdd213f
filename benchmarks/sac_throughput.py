"""Seconds per recurrent SAC(-Discrete) update at the SHM paper's shapes, env steps/s, compile time, peak memory, and
the CPU time each paper run would take from these rates, for SHM and GRU critics side by side in one run.

    python -m benchmarks.sac_throughput                   # credit and meta, SHM and GRU critics (~5-10 min, 2-core CPU)
    python -m benchmarks.sac_throughput --quick           # smoke run: tiny widths, batch 4 (1-1.5 min, compile-bound)
    python -m benchmarks.sac_throughput --cases credit-shm pointrobot-shm --repeats 5

Cases (``CASES``): ``paper-credit`` (sacd on VisualMatch250, T = 275: 32 episodes x 276 observations per update, GRU-128
actor) and ``paper-meta`` (sac on Wind-50-150, T = 100: 64 x 101, GRU-64 actor), each with the preset's SHM-24 critic
and with a GRU critic of the preset's hidden size (``memory="gru"``); ``pointrobot-shm`` (paper-meta on
PointRobot-50-150, T = 200, 32 x 201, GRU-128 actor + SHM-24 critic) on request. Built with ``from_preset(preset,
env_id=..., memory=..., num_seeds=1)`` and ``build``.

What one case measures, on the state of a freshly ``init``-ed run (its buffer holds the warm-up episodes; shapes are
what matter):

- seconds per gradient update: a jitted ``lax.scan`` of K updates, each sampling ``batch_size`` whole episodes from the
  buffer (``replay.sample``) and running ``SAC.gradient_step`` (critic, actor, alpha, target), as ``SAC.update``
  does. Compiled apart (``lower().compile()``: the compile column), one warm-up call, the median of R calls, / K
  (K = 10 credit, 20 meta; R = 5, fewer once 3 calls add up to ``--max-total-s``).
- collection: ``SAC.collect(actor_params, rng, num_envs)`` jitted alone, timed the same way (median of
  max(R, 5) calls): the seconds an iteration spends stepping the environments with the actor.
- env steps/s of a whole iteration = num_envs x T / (updates_per_iter x s/update + collection s); the record also
  keeps the updates-only rate (the two terms apart). Buffer writes and init's warm-up are not timed (tiny).
- memory: the algorithm's shape-only ``memory_estimate(hp, 1).per_run`` (a lower bound) and XLA's
  ``memory_analysis()`` of the compiled K-update program (temp, argument, output bytes; the error when unavailable).
- projected CPU hours of one seed of the paper run = (num_updates x updates_per_iter x s/update + num_updates x
  collection s) / 3600, from the preset's budget; the preset's seed count is recorded next to it.

memorax's recurrent SAC side by side: ``benchmarks/memorax_sac.py`` (run under a throwaway Python 3.12 venv with
memorax 1.0.1; its docstring says how) times memorax's SAC at the meta-gru shape and writes its own record;
``--memorax-json FILE`` merges that record into this one (the ``memorax`` section: both s/update, the ratio memorax
s/update / shm-jax meta-gru s/update, both loads, every difference of the two setups) and the markdown shows it under
the table. With ``--from-json`` it rewrites that record's JSON and table; with a fresh run it merges after the cases.

Not included: see ``NOT_INCLUDED`` (``NOT_INCLUDED_WITH_MEMORAX`` once memorax's record is merged). Writes
``<out>/sac_throughput_<device>[_quick].json`` and ``.md`` next to it (``--from-json FILE`` remakes the table from a
record). Every record carries the device, the load average at start and end and before each case, and the git commit.

    python -m benchmarks.sac_throughput --from-json benchmarks/results/sac_throughput_cpu.json \\
        --memorax-json benchmarks/results/memorax_sac_cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks.common import (
    RESULTS_DIR,
    close_record,
    device_slug,
    load_average,
    memory_analysis,
    record_header,
    timed_calls,
)
from shm_jax.algorithms import replay
from shm_jax.build import build
from shm_jax.presets import PRESETS, from_preset

# name -> preset, task, critic memory (the actor is the preset's GRU) and K, the gradient updates per timed call.
CASES: dict[str, dict[str, Any]] = {
    "credit-shm": dict(preset="paper-credit", env_id="VisualMatch250", memory="shm", updates_per_call=10),
    "credit-gru": dict(preset="paper-credit", env_id="VisualMatch250", memory="gru", updates_per_call=10),
    "meta-shm": dict(preset="paper-meta", env_id="Wind-50-150", memory="shm", updates_per_call=20),
    "meta-gru": dict(preset="paper-meta", env_id="Wind-50-150", memory="gru", updates_per_call=20),
    "pointrobot-shm": dict(preset="paper-meta", env_id="PointRobot-50-150", memory="shm", updates_per_call=20),
}
DEFAULT_CASES = ("credit-shm", "credit-gru", "meta-shm", "meta-gru")

# --quick: the same presets with a short credit task, batch 4 and tiny widths (a smoke test of the code path only).
QUICK_TASKS = {"paper-credit": "VisualMatch-Short", "paper-meta": "Wind-50-150"}
QUICK_SIZES = dict(batch_size=4, feature_size=16, pre_size=16, post_size=16, head_hidden_size=16, buffer_size=20_000)
QUICK_MEMORY_KWARGS = {
    "shm": {"memory_size": 4, "clamp": 100.0, "shortcut": True, "projection_size": 16},
    "gru": {"hidden_size": 8},
}
QUICK_ACTOR_KWARGS = {"hidden_size": 8}
QUICK_UPDATES_PER_CALL = 2

NOT_INCLUDED = (
    "memorax's SAC is not timed side by side: it has only continuous SAC (no credit rows) and trains on fixed-length "
    "sequences of stored per-step transitions with its own networks and flashbax buffer, so a like-for-like harness "
    "is its own piece of work (memorax 1.0.1 from PyPI installs and imports on Python 3.12 without `lox`; the "
    "development head needs Python 3.12 and the git-only `lox`, ../shared/specs/recurrent_offpolicy.md section 5)."
)
NOT_INCLUDED_WITH_MEMORAX = (
    "memorax at the other shapes: memorax 1.0.1 has no SAC-Discrete (no credit rows), and its SAC is timed with a "
    "GRU critic only (the meta-gru shape; no memorax SHM-critic row); its collection, env steps/s and projected hours "
    "are not measured (memorax interleaves environment steps with updates, train_frequency)."
)
# Loads (1-minute averages) further apart than this are called out under the side-by-side table.
LOAD_GAP = 0.5
MIB = 2**20


def case_config(name: str, quick: bool):
    """The TrainConfig of case ``name`` (quick: its tiny smoke-test version)."""
    case = CASES[name]
    if not quick:
        return from_preset(case["preset"], env_id=case["env_id"], memory=case["memory"], num_seeds=1)
    return from_preset(
        case["preset"],
        env_id=QUICK_TASKS[case["preset"]],
        memory=case["memory"],
        memory_kwargs=QUICK_MEMORY_KWARGS[case["memory"]],
        actor_memory_kwargs=QUICK_ACTOR_KWARGS,
        num_seeds=1,
        **QUICK_SIZES,
    )


def _compile(fn, *args) -> tuple[Any, float]:
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def measure(name: str, quick: bool, updates_per_call: int, repeats: int, max_total_s: float) -> dict[str, Any]:
    """Compile, warm up and time one case: seconds per gradient update, collection, memory, projected hours."""
    config = case_config(name, quick)
    built = build(config)
    sac, hp = built.algorithm, built.hyperparameters
    load_before = load_average()
    state = jax.jit(sac.init)(jax.random.PRNGKey(0))
    parts = state.learner  # the Learner pytree gradient_step reads and returns
    K = updates_per_call

    def updates(parts, buffer, hp, rng):
        def one(parts, key):
            k_sample, k_step = jax.random.split(key)
            parts, metrics = sac.gradient_step(parts, replay.sample(buffer, k_sample, sac.batch_size), hp, k_step)
            return parts, metrics["critic_loss"] + metrics["actor_loss"]

        return jax.lax.scan(one, parts, jax.random.split(rng, K))

    compiled, compile_s = _compile(updates, parts, state.buffer, hp, jax.random.PRNGKey(1))
    holder = {"parts": compiled(parts, state.buffer, hp, jax.random.PRNGKey(2))[0], "key": jax.random.PRNGKey(3)}

    def one_call():
        holder["key"], key = jax.random.split(holder["key"])
        holder["parts"], holder["losses"] = compiled(holder["parts"], state.buffer, hp, key)
        return holder["parts"]

    times = timed_calls(one_call, repeats, max_total_s)
    update_s = statistics.median(times) / K

    collect_compiled, collect_compile_s = _compile(
        lambda p, k: sac.collect(p, k, sac.num_envs), state.learner.actor_params, jax.random.PRNGKey(4)
    )
    jax.block_until_ready(collect_compiled(state.learner.actor_params, jax.random.PRNGKey(5)))  # warm-up
    collect_times = timed_calls(
        lambda: collect_compiled(state.learner.actor_params, jax.random.PRNGKey(6)), max(repeats, 5)
    )
    collect_s = statistics.median(collect_times)

    estimate = sac.memory_estimate(hp, 1)
    steps_per_iter = sac.num_envs * sac.episode_length
    iteration_s = sac.updates_per_iter * update_s + collect_s
    total_updates = sac.num_updates * sac.updates_per_iter
    algo_config = config.algorithm
    return {
        "case": name,
        "status": "ok",
        "preset": CASES[name]["preset"],
        "env_id": config.env.env_id,
        "algo": config.algo,
        "actor_memory": algo_config.actor_memory or config.agent.memory,
        "actor_memory_size": core_size(sac.actor.memory),
        "critic_memory": algo_config.critic_memory or config.agent.memory,
        "critic_memory_size": core_size(sac.critic.memory),
        "memory_kwargs": dict(config.agent.memory_kwargs),
        "actor_memory_kwargs": dict(algo_config.actor_memory_kwargs),
        "critic_memory_kwargs": dict(algo_config.critic_memory_kwargs),
        "episode_length": sac.episode_length,
        "batch_size": sac.batch_size,
        "num_envs": sac.num_envs,
        "updates_per_iter": sac.updates_per_iter,
        "num_updates": sac.num_updates,
        "warmup_episodes": sac.warmup_episodes,
        "capacity": sac.capacity,
        "steps_per_iter": steps_per_iter,
        "updates_per_call": K,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "compile_s": compile_s,
        "time_s_all": times,
        "update_s": update_s,
        "collect_compile_s": collect_compile_s,
        "collect_time_s_all": collect_times,
        "collect_s": collect_s,
        "iteration_s": iteration_s,
        "steps_per_s": steps_per_iter / iteration_s,
        "steps_per_s_updates_only": steps_per_iter / (sac.updates_per_iter * update_s),
        "finite": bool(jnp.all(jnp.isfinite(holder["losses"]))),
        "memory_estimate_per_run_bytes": estimate.per_run,
        "memory_estimate": {
            "state": estimate.state,
            "rollout": estimate.rollout,
            "gradients": estimate.gradients,
            "backward_residuals": estimate.backward_residuals,
            "largest_array": estimate.largest_array,
        },
        "xla_memory": memory_analysis(compiled),
        "paper_total_updates": total_updates,
        "projected_hours_per_seed": (total_updates * update_s + sac.num_updates * collect_s) / 3600,
        "paper_num_seeds": PRESETS[CASES[name]["preset"]].get("num_seeds", 1),
    }


def core_size(core: Any) -> int | None:
    """The built memory core's size: SHM's memory_size H, a GRU's hidden_size (None for a core with neither)."""
    for field in ("memory_size", "hidden_size"):
        if isinstance(getattr(core, field, None), int):
            return getattr(core, field)
    return None


def memory_label(memory: str, size: int | None) -> str:
    """'SHM-24', 'GRU-128', or the core's name when it has no size."""
    return memory.upper() if size is None else f"{memory.upper()}-{size}"


def _mib(num_bytes: float | None) -> str:
    return "n/a" if num_bytes is None else f"{num_bytes / MIB:,.1f}"


def markdown(record: dict) -> str:
    """The results table: one row per case."""
    host, settings = record["host"], record["settings"]
    quick = settings["quick"]
    per_call = ", ".join(f"{name} K = {case['updates_per_call']}" for name, case in settings["cases"].items())
    lines = [
        "# Recurrent SAC throughput at the paper's shapes"
        + (" (quick: tiny sizes, a smoke test only)" if quick else ""),
        "",
        f"`python -m benchmarks.sac_throughput{' --quick' if quick else ''}` on {host['cpu_model']} "
        f"({host['cpu_count']} cores, {host['backend']}: {host['device_kind']}), {record['timestamp_utc']}, git "
        f"{record['git_commit']}, load average {record['load_average_start']} -> {record['load_average_end']}. "
        f"s/update: K updates per timed call ({per_call}), the median of up to "
        f"{settings['repeats']} calls after a warm-up (every call's time and the load before each case are in the "
        "JSON); collection: the median of its own calls. env steps/s = num_envs x T / (updates per iteration x "
        "s/update + collection s). Projected hours: one seed of the preset's budget (total updates x s/update + "
        "iterations x collection s), the preset's seed count in parentheses. Estimate: "
        "`memory_estimate(hp, 1).per_run` (a lower bound); XLA temp: the compiled K-update program's temporaries.",
        "",
        "| task | actor / critic memory | batch x (T+1) | s/update | collection s/iteration | env steps/s | compile s "
        "| estimate MiB | XLA temp MiB | projected CPU h per seed (seeds) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in record["results"]:
        if r.get("status") != "ok":
            lines.append(f"| {r['case']} | {r.get('status')} | | | | | | | | |")
            continue
        memories = (
            f"{memory_label(r['actor_memory'], r['actor_memory_size'])} / "
            f"{memory_label(r['critic_memory'], r['critic_memory_size'])}"
        )
        temp = r["xla_memory"].get("temp")
        lines.append(
            f"| {r['env_id']} ({r['algo']}) | {memories} | {r['batch_size']} x {r['episode_length'] + 1} "
            f"| {r['update_s']:.3g} | {r['collect_s']:.3g} | {r['steps_per_s']:,.1f} | {r['compile_s']:.1f} "
            f"| {_mib(r['memory_estimate_per_run_bytes'])} | {_mib(temp)} "
            f"| {r['projected_hours_per_seed']:,.1f} ({r['paper_num_seeds']}) |"
        )
    if record.get("memorax"):
        lines += ["", *memorax_markdown(record["memorax"])]
    lines += ["", f"Not included: {record['not_included']}"]
    return "\n".join(lines) + "\n"


def memorax_section(record: dict, memorax: dict, source: str | None = None) -> dict[str, Any]:
    """The side-by-side section of ``record`` for a ``benchmarks/memorax_sac.py`` record: both s/update, the ratio
    memorax / shm-jax, both loads (the loads before the two timings and whether they differ by more than LOAD_GAP),
    the shapes and every difference memorax's record lists. ValueError when the record lacks the compared case or
    only one of the two is a --quick record."""
    if bool(memorax.get("quick")) != bool(record["settings"].get("quick")):
        raise ValueError("--memorax-json: merge a --quick memorax record only into a --quick record (and vice versa)")
    case = memorax.get("compared_with", {}).get("case", "meta-gru")
    ours = next((r for r in record["results"] if r.get("case") == case and r.get("status") == "ok"), None)
    if ours is None:
        raise ValueError(f"--memorax-json: this record has no successful {case!r} row to compare with")
    theirs = memorax["result"]
    ok = theirs.get("status") == "ok"
    ours_load, theirs_load = ours.get("load_average_before"), theirs.get("load_average_before")
    gap = abs(ours_load[0] - theirs_load[0]) if ours_load and theirs_load else None  # 1-minute load averages
    versions = memorax.get("versions", {})
    return {
        "source": source,
        "case": case,
        "status": theirs.get("status"),
        "timestamp_utc": memorax.get("timestamp_utc"),
        "versions": versions,
        "host": memorax.get("host"),
        "shape": memorax.get("shape"),
        "networks": memorax.get("networks"),
        "differences": list(memorax.get("differences", [])),
        "shm_jax": {
            "env_id": ours["env_id"],
            "algo": ours["algo"],
            "memories": f"{memory_label(ours['actor_memory'], ours['actor_memory_size'])} / "
            f"{memory_label(ours['critic_memory'], ours['critic_memory_size'])}",
            "batch_size": ours["batch_size"],
            "observations_per_sequence": ours["episode_length"] + 1,
            "update_s": ours["update_s"],
            "compile_s": ours["compile_s"],
            "updates_per_call": ours.get("updates_per_call"),
            "load_average_before": ours_load,
            "load_average_after": ours.get("load_average_after"),
            "timestamp_utc": record.get("timestamp_utc"),
        },
        "memorax": {
            "version": versions.get("memorax"),
            "python": versions.get("python"),
            "jax": versions.get("jax"),
            "update_s": theirs.get("update_s"),
            "sample_s": theirs.get("sample_s"),
            "compile_s": theirs.get("compile_s"),
            "updates_per_call": theirs.get("updates_per_call"),
            "time_s_all": theirs.get("time_s_all"),
            "finite": theirs.get("finite"),
            "xla_temp_bytes": (theirs.get("xla_memory") or {}).get("temp"),
            "actor_params": theirs.get("actor_params"),
            "critic_params": theirs.get("critic_params"),
            "load_average_before": theirs_load,
            "load_average_after": theirs.get("load_average_after"),
        },
        "ratio_memorax_over_shm_jax": theirs["update_s"] / ours["update_s"] if ok else None,
        "load_gap_1min": gap,
        "different_loads": gap is not None and gap > LOAD_GAP,
    }


def merge_memorax(record: dict, memorax: dict, source: str | None = None) -> dict:
    """``record`` with the side-by-side ``memorax`` section and the matching ``not_included`` sentence (in place)."""
    record["memorax"] = memorax_section(record, memorax, source)
    record["not_included"] = NOT_INCLUDED_WITH_MEMORAX
    return record


def memorax_markdown(section: dict) -> list[str]:
    """The side-by-side table of a merged memorax section, its notes and the differences."""
    ours, theirs, shape = section["shm_jax"], section["memorax"], section.get("shape") or {}
    lines = [
        f"## Side by side: memorax {theirs['version']}'s recurrent SAC at the {section['case']} shape",
        "",
        "| implementation | task | actor / critic memory | batch x sequence | s/update | memorax ÷ shm-jax | compile s "
        "| load before (1, 5, 15 min) |",
        "|---|---|---|---|---:|---:|---:|---|",
        f"| shm-jax ({section['case']} row above) | {ours['env_id']} ({ours['algo']}) | {ours['memories']} "
        f"| {ours['batch_size']} x {ours['observations_per_sequence']} observations (whole episodes) "
        f"| {ours['update_s']:.3g} | 1 | {ours['compile_s']:.1f} | {ours['load_average_before']} |",
    ]
    if section["status"] != "ok":
        lines.append(f"| memorax {theirs['version']} | {section['status']} | | | | | | |")
    else:
        hidden = shape.get("hidden_size")
        lines.append(
            f"| memorax {theirs['version']} (`benchmarks/memorax_sac.py`) | Wind-like, written in the script (sac) "
            f"| GRU-{hidden} / GRU-{hidden} | {shape.get('batch_size')} x {shape.get('sequence_length')} transitions "
            f"(obs and next_obs; burn-in {shape.get('burn_in_length', 0)}) | {theirs['update_s']:.3g} "
            f"| {section['ratio_memorax_over_shm_jax']:.2f} | {theirs['compile_s']:.1f} "
            f"| {theirs['load_average_before']} |"
        )
    lines += [
        "",
        f"Both: s/update = the median of a jitted `lax.scan` of K updates (replay sample + the whole gradient step) "
        f"/ K after a compile and a warm-up call (shm-jax K = {ours['updates_per_call']}, memorax K = "
        f"{theirs['updates_per_call']}), same machine, memorax's in a Python {theirs['python']} venv with jax "
        f"{theirs['jax']} (record {section.get('source') or 'memorax_sac'}, {section['timestamp_utc']}). memorax's "
        f"sampler alone: {_fmt(theirs['sample_s'])} s per sample of the batch. Parameters: memorax actor "
        f"{_count(theirs['actor_params'])}, critic {_count(theirs['critic_params'])}.",
    ]
    if section["different_loads"]:
        lines += [
            "",
            f"Measured at different loads: shm-jax's {section['case']} timing started at load "
            f"{ours['load_average_before']}, memorax's at {theirs['load_average_before']} (2 cores; other jobs ran "
            "on the machine), so the ratio carries that difference too.",
        ]
    lines += ["", "Differences that make the comparison imperfect:", ""]
    lines += [f"- {item}" for item in section["differences"]]
    if section.get("networks"):
        lines += [f"- networks: {section['networks']}"]
    return lines


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _count(n: int | None) -> str:
    return "n/a" if n is None else f"{n:,}"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny widths and batch 4: a smoke run")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), help=f"default: {' '.join(DEFAULT_CASES)}")
    parser.add_argument("--updates-per-call", type=int, help="K for every case (default: CASES' K, quick 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per case after the warm-up (default 5)")
    parser.add_argument(
        "--max-total-s", type=float, default=150.0, help="stop a case's timed calls after 3 once they add up to this"
    )
    parser.add_argument("--out", default=str(RESULTS_DIR))
    parser.add_argument("--from-json", help="remake the markdown table of this record and exit")
    parser.add_argument(
        "--memorax-json",
        help="merge this benchmarks/memorax_sac.py record as the side-by-side memorax section (with --from-json: "
        "rewrites that record's JSON too)",
    )
    args = parser.parse_args(argv)
    memorax = json.loads(Path(args.memorax_json).read_text()) if args.memorax_json else None
    source = Path(args.memorax_json).name if args.memorax_json else None
    if args.from_json:
        path = Path(args.from_json)
        record = json.loads(path.read_text())
        if memorax is not None:
            merge_memorax(record, memorax, source)
            path.write_text(json.dumps(record, indent=2) + "\n")
        path.with_suffix(".md").write_text(markdown(record))
        return path
    names = args.cases or list(DEFAULT_CASES)
    default_k = QUICK_UPDATES_PER_CALL if args.quick else None
    ks = {name: args.updates_per_call or default_k or CASES[name]["updates_per_call"] for name in names}
    began = time.perf_counter()
    record = record_header("sac_throughput")
    record["settings"] = {
        "quick": args.quick,
        "cases": {name: dict(CASES[name], updates_per_call=ks[name]) for name in names},
        "quick_overrides": (
            dict(QUICK_SIZES, memory_kwargs=QUICK_MEMORY_KWARGS, actor_memory_kwargs=QUICK_ACTOR_KWARGS)
            if args.quick
            else None
        ),
        "repeats": args.repeats,
        "max_total_s": args.max_total_s,
        "compilation_cache_dir": jax.config.jax_compilation_cache_dir,
    }
    record["not_included"] = NOT_INCLUDED
    record["results"] = []
    for name in names:
        print(f"{name}: K = {ks[name]}, R = {args.repeats} ...", flush=True)
        try:
            row = measure(name, args.quick, ks[name], args.repeats, args.max_total_s)
        except Exception as err:  # keep the other cases of a long unattended run
            row = {"case": name, "status": f"error: {type(err).__name__}: {str(err).splitlines()[0][:200]}"}
        print(f"  {row.get('update_s', row['status'])}", flush=True)
        record["results"].append(row)
    close_record(record, began)
    if memorax is not None:
        merge_memorax(record, memorax, source)
    path = Path(args.out) / f"sac_throughput_{device_slug()}{'_quick' if args.quick else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    path.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    return path


if __name__ == "__main__":
    main()
