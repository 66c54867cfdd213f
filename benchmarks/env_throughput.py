"""Environment steps per second of every registered id, next to the original numpy popgym on the same machine.

    python -m benchmarks.env_throughput            # 8192 envs x 200 steps, 5 repeats (about 15 s an id)
    python -m benchmarks.env_throughput --quick    # smoke run: 1024 envs x 64 steps, 1 repeat
    python -m benchmarks.env_throughput --ids RepeatPreviousEasy AutoencodeEasy --note "idle machine"

What one JAX measurement is: the raw environment with the project's auto-reset (``envs.make(id, prev_action=False,
flatten=False, log=False)``: no observation wrappers; under vmap only the envs whose episode ended compute a reset,
``envs/autoreset.py``) stepped under ``jit(vmap(lax.scan))`` over ``B`` envs and ``T`` steps, uniform-random
actions drawn before the timed call (as for the numpy env). Compile time is taken apart (``lower().compile()``);
the run time is the median of the repeats, each ended by ``block_until_ready``; steps/s = B * T / time.
The original: one numpy env (the popgym class of the same task and level), uniform-random actions drawn before
timing, ``reset`` on every episode end, the median of the same number of repeats of a fixed number of steps (ids
the original lacks are left empty). Each rate comes with its spread, (max - min) / median of its repeats.

Writes ``<out>/env_throughput_<device>[_quick].json`` (device, versions, host, load average at start and end,
settings, one row per id) and the table ``<out>/env_throughput[_<device>][_quick].md`` (the CPU run owns the
plain name).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import REPO_ROOT, device_slug, load_average, timed_calls, versions
from shm_jax import envs


def spread(times: list[float]) -> float:
    """(max - min) / median of repeated timings: the run-to-run noise reported next to each rate."""
    return (max(times) - min(times)) / statistics.median(times)


def jax_steps_per_second(env_id: str, batch: int, steps: int, repeats: int) -> dict:
    """Compile time and median steps/s of ``batch`` raw envs x ``steps`` auto-resetting steps, random actions.

    The actions are drawn before the timed call (as for the numpy env), one per env and step, uniform over the
    action space; the step keys are split inside the program (an env needs them)."""
    env, params = envs.make(env_id, prev_action=False, flatten=False, log=False)
    space = env.action_space(params)

    def run(key, actions):
        key_reset, key_steps = jax.random.split(key)
        _, state = env.reset(key_reset, params)

        def body(carry, xs):
            state, total = carry
            key_step, action = xs
            obs, state, reward, _, _, _ = env.step(key_step, state, action, params)
            # A checksum of every observation and reward, so XLA cannot drop any part of the step.
            checksum = reward + sum(jnp.sum(leaf.astype(jnp.float32)) for leaf in jax.tree.leaves(obs))
            return (state, total + checksum), None

        (_, total), _ = jax.lax.scan(body, (state, jnp.float32(0.0)), (jax.random.split(key_steps, steps), actions))
        return total

    def inputs(seed):
        key_envs, key_actions = jax.random.split(jax.random.key(seed))
        action_keys = jax.random.split(key_actions, (batch, steps))
        actions = jax.jit(jax.vmap(jax.vmap(space.sample)))(action_keys)
        return jax.block_until_ready((jax.random.split(key_envs, batch), actions))

    program = jax.jit(jax.vmap(run))
    keys, actions = inputs(0)
    start = time.perf_counter()
    compiled = program.lower(keys, actions).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(keys, actions))  # warm-up
    batches = iter([inputs(r + 1) for r in range(repeats)])  # drawn before timing
    times = timed_calls(lambda: compiled(*next(batches)), repeats)
    median = statistics.median(times)
    return {"batch": batch, "steps": steps, "compile_s": compile_s, "time_s_median": median,
            "times_s": times, "spread": spread(times), "steps_per_s": batch * steps / median}  # fmt: skip


def original_class(env_id: str):
    """The original popgym class of this id (the id itself or one of its aliases), or None."""
    try:
        import popgym.envs as popgym_envs
    except ImportError:
        return None
    canonical = envs.resolve(env_id).env_id
    names = [canonical] + [a for a in envs.list_ids(include_aliases=True) if envs.resolve(a).env_id == canonical]
    for name in names:
        cls = getattr(popgym_envs, name, None)
        if cls is not None:
            return cls
    return None


def numpy_steps_per_second(cls, steps: int, repeats: int = 1) -> dict:
    """Single original env, uniform-random actions drawn before timing, reset at every episode end; the median
    of ``repeats`` timings of ``steps`` steps."""
    env = cls()
    space = env.action_space
    rng = np.random.default_rng(0)
    if hasattr(space, "nvec"):
        sample = lambda: rng.integers(0, space.nvec)  # noqa: E731
    elif hasattr(space, "n"):
        sample = lambda: int(rng.integers(space.n))  # noqa: E731
    else:
        sample = lambda: rng.uniform(space.low, space.high).astype(space.dtype)  # noqa: E731
    env.reset(seed=0)
    times = []
    for _ in range(repeats):
        actions = [sample() for _ in range(steps)]
        start = time.perf_counter()
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "class": cls.__name__,
        "steps": steps,
        "time_s": median,
        "times_s": times,
        "spread": spread(times),
        "steps_per_s": steps / median,
    }


def markdown(record: dict) -> str:
    batches = record["settings"]["batch_sizes"]
    device = record["device"]
    settings = record["settings"]
    lines = [
        f"# Environment throughput ({device['platform']}: {device['kind']}; jax {record['versions']['jax']})",
        "",
        f"Raw env with envs' auto-reset (resets only the envs that finished), `jit(vmap(lax.scan))`, random actions "
        f"drawn before timing, {settings['steps']} steps, median of {settings['repeats']}. "
        f"Original: one numpy popgym env, {settings['numpy_steps']} random steps, median of {settings['repeats']}. "
        "Noise: the largest (max - min) / median over the repeats of the row's rates. "
        f"Host: {record['host']['cpu_count']} CPUs, load average "
        + "; ".join(f"{p['loadavg_start']} -> {p['loadavg_end']}" for p in record.get("pieces") or [record["host"]])
        + (f" ({len(record['pieces'])} pieces)" if len(record.get("pieces") or []) > 1 else "")
        + f". {record['note']}",
        "",
        "| id | "
        + " | ".join(f"JAX steps/s, B={b}" for b in batches)
        + " | compile s | numpy popgym steps/s | "
        + "JAX / numpy (largest B) | noise |",
        "|---|" + "---:|" * (len(batches) + 4),
    ]
    for row in record["results"]:
        if row.get("error"):
            lines.append(f"| {row['id']} | error: {row['error']} |")
            continue
        jax_rates = {r["batch"]: r["steps_per_s"] for r in row["jax"]}
        cells = [f"{jax_rates[b]:,.0f}" if b in jax_rates else "" for b in batches]
        compile_s = max(r["compile_s"] for r in row["jax"])
        original = row.get("numpy")
        orig_rate = f"{original['steps_per_s']:,.0f}" if original and "steps_per_s" in original else "—"
        ratio = (
            f"{jax_rates[max(jax_rates)] / original['steps_per_s']:.1f}x"
            if original and "steps_per_s" in original else "—"
        )  # fmt: skip
        spreads = [r["spread"] for r in row["jax"] if "spread" in r]
        spreads += [original["spread"]] if original and "spread" in original else []
        noise = f"{max(spreads):.0%}" if spreads else "—"
        lines.append(
            f"| {row['id']} | " + " | ".join(cells) + f" | {compile_s:.1f} | {orig_rate} | {ratio} | {noise} |"
        )
    return "\n".join(lines) + "\n"


def append_piece(previous: dict, record: dict, piece: dict) -> dict:
    """``previous`` with the rows of ``record`` added (a re-measured id replaces its row) and ``piece`` listed.
    ValueError when the two runs' settings or device differ."""
    for field in ("settings", "device", "quick"):
        if previous.get(field) != record.get(field):
            raise ValueError(
                f"--append: {field} differ from the existing results ({previous.get(field)} vs "
                f"{record.get(field)}); write to another --out"
            )
    measured = {row["id"] for row in record["results"]}
    merged = dict(previous)
    merged["results"] = sorted(
        [r for r in previous["results"] if r["id"] not in measured] + record["results"], key=lambda r: r["id"]
    )
    merged["pieces"] = previous.get("pieces", []) + [piece]
    merged["host"] = {**previous["host"], "loadavg_end": record["host"]["loadavg_end"]}
    merged["note"] = " ".join(dict.fromkeys(n for n in (previous.get("note"), record.get("note")) if n))
    return merged


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1024 envs x 64 steps, 1 repeat, 2000 numpy steps")
    parser.add_argument("--ids", nargs="*", default=None, help="ids to measure (default: every canonical id)")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--numpy-steps", type=int, default=None)
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--append",
        action="store_true",
        help="add these ids to the existing results file of the same settings (a run split into "
        "pieces); each piece's load average and note are kept",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    batch_sizes = args.batch_sizes or ([1024] if quick else [8192])
    steps = args.steps or (64 if quick else 200)
    repeats = args.repeats or (1 if quick else 5)
    numpy_steps = args.numpy_steps or (2000 if quick else 10000)
    ids = args.ids or envs.list_ids()
    for env_id in ids:
        envs.resolve(env_id)  # unknown ids fail before any measurement

    device = jax.devices()[0]
    record = {
        "benchmark": "env_throughput",
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "device": {"platform": device.platform, "kind": device.device_kind, "count": jax.device_count()},
        "versions": versions(),
        "host": {
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "loadavg_start": load_average(),
        },  # fmt: skip
        "settings": {"batch_sizes": batch_sizes, "steps": steps, "repeats": repeats, "numpy_steps": numpy_steps},
        "note": args.note,
        "results": [],
    }
    for env_id in ids:
        row = {"id": env_id, "family": envs.resolve(env_id).family, "jax": []}
        try:
            for batch in batch_sizes:
                row["jax"].append(jax_steps_per_second(env_id, batch, steps, repeats))
            cls = original_class(env_id)
            if cls is not None:
                try:
                    row["numpy"] = numpy_steps_per_second(cls, numpy_steps, repeats)
                except Exception as error:  # e.g. LabyrinthEscape without mazelib
                    row["numpy"] = {"class": cls.__name__, "error": f"{type(error).__name__}: {error}"}
        except Exception as error:
            row["error"] = f"{type(error).__name__}: {error}"
        record["results"].append(row)
        rates = ", ".join(f"B={r['batch']}: {r['steps_per_s']:,.0f}/s" for r in row["jax"])
        original = row.get("numpy", {}).get("steps_per_s")
        print(f"{env_id:32s} {rates}" + (f" | numpy {original:,.0f}/s" if original else ""), flush=True)
    record["host"]["loadavg_end"] = load_average()

    args.out.mkdir(parents=True, exist_ok=True)
    tag = device_slug()
    suffix = "_quick" if quick else ""
    json_path = args.out / f"env_throughput_{tag}{suffix}.json"
    piece = {
        "ids": ids,
        "date_utc": record["date_utc"],
        "loadavg_start": record["host"]["loadavg_start"],
        "loadavg_end": record["host"]["loadavg_end"],
        "note": args.note,
    }
    record["pieces"] = [piece]
    if args.append and json_path.is_file():
        record = append_piece(json.loads(json_path.read_text()), record, piece)
    json_path.write_text(json.dumps(record, indent=1) + "\n")
    md_tag = "" if tag == "cpu" else f"_{tag}"
    (args.out / f"env_throughput{md_tag}{suffix}.md").write_text(markdown(record))
    print(f"wrote {json_path}")
    return json_path


if __name__ == "__main__":
    main()
