"""Supervised memory probes: can an agent's trunk compute what a memory task asks, learned by regression?

Each probe draws fresh random sequences (B sequences of T steps, every sequence one episode from t = 0) and
regresses a target that needs one memory skill, through the study's agents' real trunks (``shm_jax.build``:
feature map, time encoding, pre layer, memory core, post layer; a linear read-out on top):

- ``previous``: x_t ~ N(0, I_4), y_t = x_{t-1}: the sliding window of RepeatPrevious;
- ``velocity``: x_t = (cos phi_t, sin phi_t) of an angle whose velocity w_t drifts (a random walk in
  [-0.5, 0.5]), y_t = w_t = phi_t - phi_{t-1}: what a stateless pendulum's policy needs from two observations;
- ``first``: x_t ~ N(0, I_4), y_t = x_0: RepeatFirst's long recall;
- ``mean``: x_t ~ N(0, I_4), y_t = the running mean of x_0..x_t: CountRecall's running count.

Reported: R^2 = 1 - MSE / Var(y) on a held-out batch, steps t >= 1 (y_0 of ``previous`` and ``velocity`` is
undefined), per probe and agent, after ``steps`` Adam updates. A memoryless agent (``mlp``) is the floor:
it can reach R^2 ~ 0 on ``previous`` and ``first`` and only what x_t alone tells on ``velocity``/``mean``.

    python -m experiments.memory_probe                  # the study's agents, every probe -> results/memory-probe/
    python -m experiments.memory_probe --agents GRU SHM --probes previous --steps 500
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from tqdm import tqdm

from experiments.definitions import SHM_AGENT_STUDY, Agent
from shm_jax.agents.trunk import RecurrentTrunk
from shm_jax.build import make_memory_core, make_trunk
from shm_jax.presets import from_preset

OUT = Path(__file__).resolve().parent / "results" / "memory-probe"
INPUT_SIZE = 4
MAX_SPEED = 0.5


def _gaussian(key: jax.Array, length: int, batch: int) -> jax.Array:
    return jax.random.normal(key, (length, batch, INPUT_SIZE))


def previous(key: jax.Array, length: int, batch: int) -> tuple[jax.Array, jax.Array]:
    """x float32[T, B, 4], y = x shifted by one step (y_0 = 0, never scored)."""
    x = _gaussian(key, length, batch)
    return x, jnp.concatenate([jnp.zeros_like(x[:1]), x[:-1]])


def velocity(key: jax.Array, length: int, batch: int) -> tuple[jax.Array, jax.Array]:
    """x float32[T, B, 2] = (cos, sin) of the angle, y float32[T, B, 1] = the last step's angular change."""
    k_angle, k_speed, k_drift = jax.random.split(key, 3)
    speed0 = jax.random.uniform(k_speed, (batch,), minval=-MAX_SPEED, maxval=MAX_SPEED)
    drift = 0.1 * jax.random.normal(k_drift, (length, batch))
    speed = jax.lax.scan(lambda w, d: (jnp.clip(w + d, -MAX_SPEED, MAX_SPEED),) * 2, speed0, drift)[1]
    speed = speed.at[0].set(0.0)  # the angle moves from step 1 on
    angle = jax.random.uniform(k_angle, (batch,), maxval=2 * math.pi) + jnp.cumsum(speed, axis=0)
    return jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1), speed[..., None]


def first(key: jax.Array, length: int, batch: int) -> tuple[jax.Array, jax.Array]:
    """x float32[T, B, 4], y = x_0 at every step."""
    x = _gaussian(key, length, batch)
    return x, jnp.broadcast_to(x[:1], x.shape)


def mean(key: jax.Array, length: int, batch: int) -> tuple[jax.Array, jax.Array]:
    """x float32[T, B, 4], y = mean of x_0..x_t."""
    x = _gaussian(key, length, batch)
    return x, jnp.cumsum(x, axis=0) / jnp.arange(1, length + 1)[:, None, None]


PROBES: dict[str, Callable[[jax.Array, int, int], tuple[jax.Array, jax.Array]]] = {
    "previous": previous,
    "velocity": velocity,
    "first": first,
    "mean": mean,
}
LEARNER_OPTIONS = {"lr"}  # an agent's options that shape the learner, not the trunk (the probe has its own Adam)
MEMORYLESS = Agent("MLP (no memory)", "mlp", {})
# Beyond the study's columns: the calibrations that decide how SHM forgets (learned, none).
EXTRA_AGENTS = (MEMORYLESS, Agent("SHM neural θ", "shm-neural-theta"), Agent("SHM C = 1", "shm-c1"))


class ProbeNet(nn.Module):
    """An agent's trunk with a linear read-out: (x[T, B, D], noise) -> y_hat float32[T, B, outputs]."""

    trunk: RecurrentTrunk
    outputs: int

    @nn.compact
    def __call__(self, x: jax.Array, noise=None) -> jax.Array:
        T, B = x.shape[:2]
        starts = jnp.zeros((T, B), bool).at[0].set(True)
        _, features = self.trunk(self.trunk.initialize_carry(B), x, starts, noise)
        return nn.Dense(self.outputs, name="read_out")(features.astype(jnp.float32))


def agent_trunk(agent: Agent) -> RecurrentTrunk:
    """The trunk the study's default-preset run builds for ``agent`` (its memory, memory kwargs, options)."""
    options = {k: v for k, v in (agent.options or {}).items() if k not in LEARNER_OPTIONS}
    config = from_preset("default", memory=agent.memory, memory_kwargs=agent.memory_kwargs or {}, **options)
    return make_trunk(config.agent, make_memory_core(config.agent))


def run_probe(
    agent: Agent, probe: str, *, steps: int, length: int = 32, batch: int = 32, lr: float = 1e-3, seed: int = 0
) -> dict:
    """Train ``agent``'s ProbeNet on ``probe`` for ``steps`` Adam updates: {"r2", "r2_curve", "seconds", ...}."""
    if probe not in PROBES:
        raise ValueError(f"probe: unknown {probe!r}; valid: {', '.join(PROBES)}")
    make_batch = PROBES[probe]
    x0, y0 = make_batch(jax.random.key(0), length, batch)
    net = ProbeNet(agent_trunk(agent), y0.shape[-1])
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(lr))
    key_init, key_train, key_eval = jax.random.split(jax.random.key(seed), 3)
    params = net.init(key_init, x0, net.trunk.sample_noise(key_init, length, batch))

    def loss_fn(params, key):
        k_data, k_noise = jax.random.split(key)
        x, y = make_batch(k_data, length, batch)
        error = (net.apply(params, x, net.trunk.sample_noise(k_noise, length, batch)) - y)[1:]
        return jnp.mean(error**2), (jnp.mean(error**2, axis=(0, 1)), jnp.var(y[1:], axis=(0, 1)))

    def r2(params, key):
        _, (mse, var) = loss_fn(params, key)
        return 1.0 - jnp.mean(mse / var)

    @jax.jit
    def train(params, opt_state, keys):
        def step(carry, key):
            params, opt_state = carry
            grads = jax.grad(lambda p: loss_fn(p, key)[0])(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), keys)
        return params, opt_state, r2(params, key_eval)

    opt_state = optimizer.init(params)
    chunks = 10
    curve, start = [], time.perf_counter()
    for chunk_keys in jax.random.split(key_train, steps - steps % chunks).reshape(chunks, -1):
        params, opt_state, score = train(params, opt_state, chunk_keys)
        curve.append(float(score))
    return {
        "agent": agent.label,
        "probe": probe,
        "r2": curve[-1],
        "r2_curve": curve,
        "steps": steps - steps % chunks,
        "length": length,
        "batch": batch,
        "seconds": round(time.perf_counter() - start, 1),
    }


def _column(result: dict) -> str:
    return f"{result['probe']} T={result['length']}"


def table(results: list[dict]) -> str:
    """A markdown table: one row per agent, one column per probe and sequence length, R^2."""
    columns = list(dict.fromkeys(map(_column, results)))
    agents = list(dict.fromkeys(r["agent"] for r in results))
    score = {(r["agent"], _column(r)): r["r2"] for r in results}
    lines = ["| agent | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for agent in agents:
        cells = [f"{score[(agent, c)]:.3f}" if (agent, c) in score else "" for c in columns]
        lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Path:
    # The study's columns that differ only in learner options probe the same trunk as another column: left out.
    study = [a for a in SHM_AGENT_STUDY.agents if not a.options or set(a.options) - LEARNER_OPTIONS]
    agents = {a.label: a for a in (*study, *EXTRA_AGENTS)}
    parser = argparse.ArgumentParser(prog="python -m experiments.memory_probe", description=__doc__.splitlines()[0])
    parser.add_argument("--agents", nargs="+", default=list(agents), choices=list(agents), metavar="LABEL")
    parser.add_argument("--probes", nargs="+", default=list(PROBES), choices=list(PROBES))
    parser.add_argument("--steps", type=int, default=1000, help="Adam updates per probe and agent")
    parser.add_argument("--length", type=int, default=32, help="steps per sequence (one episode)")
    parser.add_argument("--batch", type=int, default=32, help="sequences per update")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    for field, least in (("steps", 10), ("length", 2), ("batch", 1)):
        if getattr(args, field) < least:
            parser.error(f"--{field}: must be at least {least}, got {getattr(args, field)}")
    results = []
    cells = [(a, p) for a in args.agents for p in args.probes]
    for label, probe in tqdm(cells, desc="probes", unit="probe"):
        results.append(run_probe(agents[label], probe, steps=args.steps, length=args.length, batch=args.batch))
        tqdm.write(f"{label:<28} {probe:<9} R^2 {results[-1]['r2']:.3f} ({results[-1]['seconds']} s)")
    for result in results:
        result.update(device=jax.devices()[0].device_kind, load_average=list(os.getloadavg()))
        result["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = write_results(args.out, results)
    print(table(json.loads(path.read_text())["results"]))
    return path


def write_results(out: Path, results: list[dict]) -> Path:
    """Merge ``results`` into ``out``/results.json (a new run of an (agent, probe, length) replaces the old one) and
    write README.md's table from the merged results; returns the JSON's path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    new = {(r["agent"], _column(r)) for r in results}
    old = json.loads(path.read_text())["results"] if path.is_file() else []
    kept = [r for r in old if (r["agent"], _column(r)) not in new]
    merged = kept + results
    path.write_text(json.dumps({"results": merged}, indent=1) + "\n")
    steps = sorted({r["steps"] for r in merged})
    (out / "README.md").write_text(
        f"# Memory probes: R^2 of a linear read-out of each agent's trunk after {'/'.join(map(str, steps))} Adam "
        "updates\n\nT: steps per sequence (one episode). `python -m experiments.memory_probe`; what each probe asks: "
        "the module docstring of `experiments/memory_probe.py`; when and where each number was measured: "
        "`results.json`.\n\n" + table(merged) + "\n"
    )
    return path


if __name__ == "__main__":
    main()
