"""Env steps per second of PQN and PPO with the same agent, memory and task, measured in one run.

    python -m benchmarks.learner_throughput                 # RepeatFirstEasy, SHM and GRU, 16 envs x 128 steps
    python -m benchmarks.learner_throughput --quick         # smoke run: tiny sizes

Both learners run the default preset's agent and rollout shape with the same epochs and minibatches (4 x 4 of whole
sequences), so what differs is the learner: PPO's actor-critic, GAE and clipped objective against PQN's Q network,
Q(lambda) targets and squared TD error. One measurement: the jitted ``train_chunk`` of ``--updates-per-call`` updates
(rollout + targets + epochs x minibatches of forward+backward + Adam), compiled apart, one warm-up call, then the median
of ``--repeats`` calls, PPO's and PQN's calls alternating. The ratio PQN / PPO (env steps/s) is taken inside the run.
The target (issue: PQN at least as fast per env step as PPO with the same epochs and minibatches) is written into the
record.

Writes ``<out>/learner_throughput_<device>[_quick].json`` and ``.md`` next to it (``--from-json FILE`` remakes the
table from a record).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax

from benchmarks.common import RESULTS_DIR, close_record, measured_on, record_header, timed_calls, write_record
from shm_jax.build import build
from shm_jax.presets import from_preset

TARGETS = {"min_pqn_over_ppo_steps_per_s": 1.0}
SHAPE = dict(num_envs=16, num_steps=128, num_minibatches=4, update_epochs=4)
QUICK_SHAPE = dict(
    num_envs=4,
    num_steps=16,
    num_minibatches=2,
    update_epochs=1,
    feature_size=16,
    pre_size=16,
    post_size=16,
    head_hidden_size=16,
)
MEMORIES = {"shm": {}, "gru": {"hidden_size": 128}}
QUICK_MEMORIES = {"shm": {"memory_size": 8}, "gru": {"hidden_size": 8}}


def _compiled(algo: str, memory: str, memory_kwargs: dict, shape: dict, env_id: str, updates: int):
    """(a call running ``updates`` updates of one learner on its own state, compile seconds, env steps per call)."""
    steps = shape["num_envs"] * shape["num_steps"]
    config = from_preset(
        "default",
        algo=algo,
        env_id=env_id,
        memory=memory,
        memory_kwargs=memory_kwargs,
        total_timesteps=steps * updates,
        **shape,
    )
    built = build(config)
    algorithm, hyperparameters = built.algorithm, built.hyperparameters
    state = jax.jit(algorithm.init)(jax.random.PRNGKey(0))
    start = time.perf_counter()
    compiled = jax.jit(algorithm.train_chunk, static_argnums=2).lower(state, hyperparameters, updates).compile()
    compile_s = time.perf_counter() - start
    holder = {"state": compiled(state, hyperparameters)[0]}  # warm-up

    def one_call():
        holder["state"], _ = compiled(holder["state"], hyperparameters)
        return holder["state"]

    return one_call, compile_s, steps * updates


def measure_pair(memory: str, memory_kwargs: dict, shape: dict, env_id: str, updates: int, repeats: int) -> list:
    """PPO's and PQN's records for one memory. Their calls alternate (PPO, PQN, PPO, ...), so a change of the
    machine's speed during the run (load, clock) reaches both alike; each record: env steps/s of the median call."""
    learners = {algo: _compiled(algo, memory, memory_kwargs, shape, env_id, updates) for algo in ("ppo", "pqn")}
    times: dict[str, list[float]] = {algo: [] for algo in learners}
    for _ in range(repeats):
        for algo, (call, _, _) in learners.items():
            times[algo] += timed_calls(call, 1)
    records = []
    for algo, (_, compile_s, steps) in learners.items():
        median = statistics.median(times[algo])
        records.append(
            {
                "algo": algo,
                "memory": memory,
                "memory_kwargs": memory_kwargs,
                "compile_s": compile_s,
                "time_s_all": times[algo],
                "update_s": median / updates,
                "steps_per_s": steps / median,
            }
        )
    return records


def markdown(record: dict) -> str:
    """The results table: one row per memory, PQN and PPO side by side, their ratio against the target."""
    target = record["targets"]["min_pqn_over_ppo_steps_per_s"]
    rows = {(r["memory"], r["algo"]): r for r in record["results"]}
    settings = record["settings"]
    lines = [
        "# PQN and PPO throughput, same agent and task",
        "",
        f"{measured_on(record, 'benchmarks.learner_throughput')} {settings['env_id']}, {settings['shape']}, "
        f"{settings['updates_per_call']} updates per call, median of {settings['repeats']} calls each "
        "(PPO's and PQN's alternating).",
        "",
        "| memory | PPO env steps/s | PQN env steps/s | PQN / PPO | target | PQN / PPO of neighbouring calls |",
        "|---|---:|---:|---:|---|---|",
    ]
    for memory in dict.fromkeys(r["memory"] for r in record["results"]):
        ppo, pqn = rows[(memory, "ppo")], rows[(memory, "pqn")]
        ratio = pqn["steps_per_s"] / ppo["steps_per_s"]
        met = "met" if ratio >= target else "missed"
        speeds = f"{ppo['steps_per_s']:,.0f} | {pqn['steps_per_s']:,.0f}"
        verdict = f"| {memory} {ppo['memory_kwargs'] or ''} | {speeds} | {ratio:.2f} | >= {target:g}: {met} |"
        lines.append(f"{verdict} {_pairwise(ppo, pqn)} |")
    lines += [
        "",
        "PQN / PPO is the ratio of the two medians (the target's measure); the last column is the median and the",
        "interquartile range of the ratios of neighbouring PPO and PQN calls, how far the machine's noise reaches.",
    ]
    return "\n".join(lines) + "\n"


def _pairwise(ppo: dict, pqn: dict) -> str:
    """Median (IQR) of PPO call time / PQN call time over neighbouring calls; "-" without per-call times."""
    pairs = [a / b for a, b in zip(ppo.get("time_s_all", []), pqn.get("time_s_all", []))]
    if len(pairs) < 4:
        return "-"
    low, _, high = statistics.quantiles(pairs, n=4)
    return f"{statistics.median(pairs):.3f} ({low:.3f}-{high:.3f})"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--env-id", default="RepeatFirstEasy")
    parser.add_argument("--updates-per-call", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", default=str(RESULTS_DIR))
    parser.add_argument("--from-json", help="remake the markdown table of this record and exit")
    args = parser.parse_args(argv)
    if args.from_json:
        path = Path(args.from_json)
        path.with_suffix(".md").write_text(markdown(json.loads(path.read_text())))
        return path
    shape, memories = (QUICK_SHAPE, QUICK_MEMORIES) if args.quick else (SHAPE, MEMORIES)
    began = time.perf_counter()
    record = record_header("learner_throughput")
    record["targets"] = TARGETS
    record["settings"] = {
        "env_id": args.env_id,
        "shape": shape,
        "updates_per_call": args.updates_per_call,
        "repeats": args.repeats,
    }
    record["results"] = [
        row
        for memory, kwargs in memories.items()
        for row in measure_pair(memory, kwargs, shape, args.env_id, args.updates_per_call, args.repeats)
    ]
    close_record(record, began)
    return write_record(record, args.out, "learner_throughput", args.quick, markdown)


if __name__ == "__main__":
    main()
