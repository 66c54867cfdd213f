"""End-to-end recurrent-PPO throughput (rollout + update) of SHM next to GRU and FFM, same task, same run.

    python -m benchmarks.ppo_throughput            # paper-popgym scaled to a CPU (24 min on 2 busy cores,
                                                   # 14 of them the hidden-1024 GRU; --memories shm gru ffm: ~10)
    python -m benchmarks.ppo_throughput --quick    # smoke run: tiny sizes, seconds per memory
    python -m benchmarks.ppo_throughput --sizes 128 --memories shm gru --out /tmp/bench

What is trained: the ``paper-popgym`` preset (shm_jax.config.PRESETS) with every structural choice kept --
whole-sequence minibatches of 8 environments x the full rollout length, 30 epochs, the agent's widths and time
encoding, the paper's memory outputs (SHM shortcut + projection to 1024, FFM output 1024) -- and only the number
of parallel environments scaled down: 16 instead of 64 (2 minibatches of 8 sequences instead of 8), one seed
instead of 3. So one update does a quarter of the paper's minibatch steps, each of exactly the paper's shape.

Memories, at each memory size H of ``--sizes`` (128: the paper's Easy size; 32: its Hard size):

- ``shm``: SHM with an H x H memory (state H² floats per environment);
- ``gru``: GRU with hidden size H (the same "H", state H);
- ``gru-equal-state``: GRU with hidden size H² (SHM's state size), run only where H² <= ``--max-gru-hidden``;
- ``ffm``: the paper preset's FFM (32 traces x 4 contexts, output 1024; independent of H, run once).

What one measurement is: the jitted ``train_chunk`` of ``--updates-per-call`` PPO updates (each = rollout of
``num_steps`` vmapped env steps + GAE + epochs x minibatches of whole-sequence forward+backward + Adam), compiled
apart (``lower().compile()``), one warm-up call, then the median of ``--repeats`` calls, each ended by
``block_until_ready`` on the new state. Env steps/s = updates x num_envs x num_steps / median time. The rollout
alone (jitted ``rollout``) is timed the same way; "learn" = update - rollout (GAE and the epochs).

Writes ``<out>/ppo_throughput_<device>[_quick].json`` (device, CPU model, cores, load average at start and end,
versions, git commit, settings, the targets (``TARGETS``), one row per (memory, H), SHM/GRU ratios inside this run)
and the table ``<out>/ppo_throughput[_<device>][_quick].md`` (regenerate it with ``python -m benchmarks.make_tables
<json>``; the report: benchmarks/ppo_throughput_report.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import jax
import numpy as np

from benchmarks.common import REPO_ROOT, close_record, device_slug, record_header, timed_calls
from benchmarks.ppo_throughput_report import ppo_ratios
from benchmarks.tables import save_and_tabulate
from shm_jax.build import build
from shm_jax.presets import from_preset

PRESET = "paper-popgym"
MEMORIES = ("shm", "gru", "gru-equal-state", "ffm")

# The largest SHM / baseline update-time ratio asked for, written into the record (the report reads it from there):
# a GRU of the same H (SHM does H² work per step, the GRU H), and a GRU of SHM's state size (H² units).
TARGETS = {"max_update_time_ratio": {"gru": 3.0, "gru-equal-state": 2.0}}


@dataclasses.dataclass(frozen=True)
class Scale:
    """How the paper-popgym preset is scaled (everything else comes from the preset)."""

    env_id: str
    num_envs: int  # paper: 64
    num_steps: int  # paper: 1024 (the sequence length every minibatch trains on)
    num_minibatches: int  # paper: 8 (so 8 whole sequences per minibatch)
    update_epochs: int  # paper: 30
    sizes: tuple[int, ...]
    updates_per_call: int
    repeats: int
    max_gru_hidden: int


FULL = Scale(
    env_id="RepeatPreviousEasy",
    num_envs=16,
    num_steps=1024,
    num_minibatches=2,
    update_epochs=30,
    sizes=(128, 32),
    updates_per_call=1,
    repeats=3,
    max_gru_hidden=1024,
)
QUICK = Scale(
    env_id="RepeatPreviousEasy",
    num_envs=4,
    num_steps=32,
    num_minibatches=2,
    update_epochs=2,
    sizes=(8,),
    updates_per_call=1,
    repeats=2,
    max_gru_hidden=1024,
)


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmarked agent: a memory core at memory size H (``memory_kwargs`` None: not run, ``why_not``)."""

    label: str
    memory: str
    size: int
    memory_kwargs: dict | None
    why_not: str = ""


def cases(scale: Scale, memories: tuple[str, ...]) -> list[Case]:
    """Every (memory, H) of the run, in table order. FFM's size does not depend on H: it runs once."""
    out = []
    for i, hsz in enumerate(scale.sizes):
        for label in memories:
            if label == "shm":
                paper = from_preset(PRESET, memory="shm", env_id=scale.env_id).agent.memory_kwargs
                out.append(Case(label, "shm", hsz, {**paper, "memory_size": hsz}))
            elif label == "gru":
                out.append(Case(label, "gru", hsz, {"hidden_size": hsz}))
            elif label == "gru-equal-state":
                hidden = hsz * hsz
                if hidden <= scale.max_gru_hidden:
                    out.append(Case(label, "gru", hsz, {"hidden_size": hidden}))
                else:
                    weights = 3 * (hidden * hidden + hidden * 64)  # recurrent + input kernels, input width 64
                    out.append(
                        Case(
                            label,
                            "gru",
                            hsz,
                            None,
                            why_not=(
                                f"GRU hidden {hidden} > --max-gru-hidden {scale.max_gru_hidden}: {weights / 1e9:.1f} G "
                                f"weights ({weights * 4 / 2**30:.1f} GiB float32), hours per update on a CPU"
                            ),
                        )
                    )
            elif label == "ffm":
                if i == 0:
                    out.append(
                        Case(
                            label,
                            "ffm",
                            hsz,
                            dict(from_preset(PRESET, memory="ffm", env_id=scale.env_id).agent.memory_kwargs),
                        )
                    )
            else:
                raise ValueError(f"memories: unknown memory {label!r}; valid: {', '.join(MEMORIES)}")
    return out


def _config(scale: Scale, case: Case):
    steps_per_update = scale.num_envs * scale.num_steps
    return from_preset(
        PRESET,
        env_id=scale.env_id,
        memory=case.memory,
        memory_kwargs=case.memory_kwargs,
        num_envs=scale.num_envs,
        num_steps=scale.num_steps,
        num_minibatches=scale.num_minibatches,
        update_epochs=scale.update_epochs,
        num_seeds=1,
        total_timesteps=steps_per_update * scale.updates_per_call,
    )


def _state_floats(trainer) -> int:
    """Reals in one environment's memory carry (complex counts twice)."""
    carry = trainer.network.memory.initialize_carry(1)
    return int(sum(np.size(x) * (2 if np.iscomplexobj(x) else 1) for x in jax.tree.leaves(carry)))


def measure_case(scale: Scale, case: Case, seed: int = 0) -> dict:
    """Compile, warm up and time ``updates_per_call`` PPO updates and the rollout alone for one case."""
    built = build(_config(scale, case))
    trainer, hyperparameters = built.algorithm, built.hyperparameters
    state = jax.jit(trainer.init)(jax.random.PRNGKey(seed))
    param_count = int(sum(np.size(p) for p in jax.tree.leaves(state.params)))

    chunk = jax.jit(trainer.train_chunk, static_argnums=2)
    start = time.perf_counter()
    compiled = chunk.lower(state, hyperparameters, scale.updates_per_call).compile()
    compile_s = time.perf_counter() - start
    state, metrics = compiled(state, hyperparameters)  # warm-up
    jax.block_until_ready(state)
    finite = bool(np.all(np.asarray(metrics["finite"])))

    holder = {"state": state}

    def one_call():
        holder["state"], _ = compiled(holder["state"], hyperparameters)
        return holder["state"]

    times = timed_calls(one_call, scale.repeats)
    rollout = jax.jit(trainer.rollout).lower(holder["state"]).compile()
    jax.block_until_ready(rollout(holder["state"]))  # warm-up
    rollout_times = timed_calls(lambda: rollout(holder["state"]), scale.repeats)

    steps_per_update = scale.num_envs * scale.num_steps
    median = statistics.median(times)
    rollout_median = statistics.median(rollout_times)
    update_s = median / scale.updates_per_call
    return {
        "status": "ok",
        "memory_kwargs": case.memory_kwargs,
        "param_count": param_count,
        "state_floats_per_env": _state_floats(trainer),
        "finite": finite,
        "compile_s": compile_s,
        "time_s_all": times,
        "time_s_median": median,
        "update_s": update_s,
        "steps_per_s": steps_per_update * scale.updates_per_call / median,
        "rollout_s_all": rollout_times,
        "rollout_s": rollout_median,
        "rollout_steps_per_s": steps_per_update / rollout_median,
        "learn_s": update_s - rollout_median,
    }


def run(scale: Scale, memories: tuple[str, ...] = MEMORIES) -> dict:
    """Measure every case of ``scale``; returns the JSON-ready record (one progress line per case)."""
    record = {
        **record_header("ppo_throughput"),
        "settings": {
            "preset": PRESET,
            **dataclasses.asdict(scale),
            "seeds": 1,
            "steps_per_update": scale.num_envs * scale.num_steps,
            "sequences_per_minibatch": scale.num_envs // scale.num_minibatches,
        },
        "targets": TARGETS,
        "results": [],
    }
    began = time.perf_counter()
    todo = cases(scale, memories)
    for i, case in enumerate(todo):
        entry = {"label": case.label, "memory": case.memory, "H": case.size}
        if case.memory_kwargs is None:
            entry.update(status="not-run", note=case.why_not)
        else:
            try:
                entry.update(measure_case(scale, case))
            except Exception as err:  # record and go on: one broken case must not lose the run
                entry.update(status="error", note=f"{type(err).__name__}: {str(err).splitlines()[0][:300]}")
            jax.clear_caches()
        record["results"].append(entry)
        print(f"[{i + 1}/{len(todo)}] {time.perf_counter() - began:6.0f}s  {_describe(entry)}", flush=True)
    record["ratios"] = ppo_ratios(record)
    return close_record(record, began)


def _describe(entry: dict) -> str:
    head = f"{entry['label']:<16} H={entry['H']:<4}"
    if entry.get("status") != "ok":
        return f"{head} {entry.get('status')}: {entry.get('note', '')}"
    return (
        f"{head} {entry['steps_per_s']:9.0f} env steps/s  update {entry['update_s']:.2f} s "
        f"(rollout {entry['rollout_s']:.2f} s)  compile {entry['compile_s']:.1f} s"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--memories", nargs="+", default=list(MEMORIES), choices=MEMORIES)
    parser.add_argument("--sizes", nargs="+", type=_positive, default=None, help="memory sizes H (default 128 32)")
    parser.add_argument("--env-id", default=None, help="task (default RepeatPreviousEasy)")
    parser.add_argument("--num-envs", type=_positive, default=None)
    parser.add_argument("--num-steps", type=_positive, default=None)
    parser.add_argument("--num-minibatches", type=_positive, default=None)
    parser.add_argument("--update-epochs", type=_positive, default=None)
    parser.add_argument("--updates-per-call", type=_positive, default=None)
    parser.add_argument("--repeats", type=_positive, default=None)
    parser.add_argument(
        "--max-gru-hidden",
        type=_positive,
        default=None,
        help="largest GRU hidden size run as gru-equal-state (default 1024)",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    return parser.parse_args(argv)


def scale_from_args(args: argparse.Namespace) -> Scale:
    scale = QUICK if args.quick else FULL
    overrides = {
        name: getattr(args, name)
        for name in (
            "env_id",
            "num_envs",
            "num_steps",
            "num_minibatches",
            "update_epochs",
            "updates_per_call",
            "repeats",
            "max_gru_hidden",
        )
        if getattr(args, name) is not None
    }
    if args.sizes:
        overrides["sizes"] = tuple(args.sizes)
    scale = dataclasses.replace(scale, **overrides)
    if scale.num_envs % scale.num_minibatches:
        raise ValueError(f"num_minibatches: must divide num_envs={scale.num_envs}, got {scale.num_minibatches}")
    return scale


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    scale = scale_from_args(args)
    record = run(scale, tuple(dict.fromkeys(args.memories)))
    record["settings"]["quick"] = args.quick
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    path = args.out / f"ppo_throughput_{device_slug()}{suffix}.json"
    save_and_tabulate(path, record)
    return path


if __name__ == "__main__":
    main()
