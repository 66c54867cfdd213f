"""Seconds per gradient update of memorax's recurrent SAC (memorax 1.0.1 from PyPI) at the shape of shm-jax's
``meta-gru`` case (``benchmarks/sac_throughput.py``: paper-meta on Wind-50-150 with a GRU critic), timed the way
that harness times shm-jax's, for the side-by-side row of its record.

memorax is not one of the project's dependencies for this: run the script with a throwaway venv's python (it imports
only memorax, what memorax itself is built on: jax, flax, optax, numpy; and the standard library; nothing of
shm-jax), with the project's jax/jaxlib/flax versions so that the library is the only difference::

    ~/.pyenv/versions/3.12.1/bin/python -m venv /tmp/mx     # or any python3.12
    /tmp/mx/bin/pip install memorax==1.0.1 jax==0.10.2 jaxlib==0.10.2 flax==0.12.8
    JAX_PLATFORMS=cpu /tmp/mx/bin/python benchmarks/memorax_sac.py --out benchmarks/results/memorax_sac_cpu.json
    # then, in the project venv, merge it into shm-jax's record (JSON and markdown table):
    python -m benchmarks.sac_throughput --from-json benchmarks/results/sac_throughput_cpu.json \\
        --memorax-json benchmarks/results/memorax_sac_cpu.json

About half a minute on a 2-core CPU; run it on an otherwise idle machine (the load average before and after is
recorded). ``--quick`` is a smoke run with tiny sizes.

What memorax 1.0.1's SAC is (``memorax/algorithms/sac.py``): an actor ``Network`` (feature extractor -> sequence
model -> head; here a tanh-Gaussian ``heads.SquashedGaussian``), a critic module the user writes (SAC calls it like a
Network and reads ``head1`` / ``head2`` with their ``loss``), a learned ``heads.Alpha`` and optax optimisers. The
replay buffer is a flashbax trajectory buffer of per-step transitions (obs, prev_done, action, reward, next_obs,
done) from ``num_envs`` parallel environments, one row per environment; ``buffers.make_episode_buffer`` samples
``batch_size`` windows of ``sample_sequence_length`` consecutive transitions that start at an episode start
(prev_done), optionally with a burn-in prefix that only warms the memories up. One update (``SAC._update``):
sample, then the critic step (actor over next_obs from a zero carry, target critic over next_obs, critic over obs
with grad), the actor step (actor over obs with grad, critic over obs with the sampled actions), then the alpha
step (on the entropy of the actor at the environments' *current* step, not on the batch), and the target by
``periodic_incremental_update`` inside the critic step. Memories reset where prev_done (done for the next_obs pass).

This script builds it at the closest shape to meta-gru that it supports (defaults; see ``DIFFERENCES``): Wind-like
2-D navigation with 100-step episodes and a 5-wide observation (position, previous action, first-step flag, as
shm-jax's Wind observation with --prev-action), 10 environments, 100 warm-up episodes of random actions, a buffer
sized for the whole paper run (510,000 transitions); batch 64 windows of 100 transitions = whole episodes, no
burn-in; actor: obs -> Dense 40 -> Dense 40 (ReLU) -> GRU-64 -> Dense 64 (the post layer), 128, 128 (ReLU) ->
SquashedGaussian(2); critic: one trunk of the same shape (obs -> 40 -> 40 -> GRU-64 -> 64) and two heads, each
Dense 128, 128 (ReLU) over [features || action] -> 1; Adam 3e-4 everywhere, gamma 0.9, tau 0.005 every update,
alpha learned from 1 towards entropy -2. Timed: a jitted ``lax.scan`` of K (default 20) ``SAC._update`` calls
(sample + critic + actor + alpha), compiled apart (``lower().compile()``), one warm-up call, the median of R (default
5) calls / K; and, apart, the buffer's sample alone the same way (its cost grows with the buffer's size).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from memorax.algorithms import SAC, SACConfig
from memorax.buffers import make_episode_buffer
from memorax.networks import MLP, RNN, FeatureExtractor, Network, heads

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("memorax", "jax", "jaxlib", "flax", "optax", "numpy", "flashbax", "distrax", "chex", "gymnax")

# shm-jax's meta-gru case (paper-meta preset on Wind-50-150, memory="gru"): what this script mirrors.
META_GRU = dict(
    episode_length=100,  # T: 100 steps, T + 1 = 101 observations per stored episode
    batch_size=64,
    num_envs=10,
    warmup_episodes=100,
    capacity_episodes=5100,  # 100 warm-up + 500 iterations x 10 episodes (the buffer holds the whole run)
    obs_size=5,
    action_size=2,
    feature_size=40,  # feature map and pre layer widths
    hidden_size=64,  # GRU-64 actor and critic
    post_size=64,  # the preset's post layer is the memory's width on Wind (pomdp-baselines' rnn_hidden_size)
    head_hidden_size=128,
    head_layers=2,
    lr=3e-4,
    gamma=0.9,
    tau=0.005,
    initial_alpha=1.0,
    updates_per_call=20,
)
QUICK = dict(batch_size=4, hidden_size=8, feature_size=16, post_size=16, head_hidden_size=16, updates_per_call=2)

SHM_JAX_NETWORKS = (
    "shm-jax meta-gru: actor obs(5) -> feature map 40 (ReLU) -> pre 40 (ReLU) -> GRU-64 -> post 64 (ReLU) || "
    "shortcut ReLU(Linear(obs -> 40)) -> 128 -> 128 (ReLU) -> Linear(4): mean, log_std (56,972 parameters); "
    "critic: one trunk (obs -> 40 -> 40 -> GRU-64 -> post 64) || shortcut ReLU(Linear([obs || action] -> 40)) "
    "shared by two heads 128 -> 128 (ReLU) -> 1 (86,746 parameters)"
)
DIFFERENCES = (
    "sequences: memorax stores per-step transitions (obs and next_obs each, in 10 per-environment rows) and samples "
    "windows of 100 transitions starting at an episode start (here: exactly one whole episode, no burn-in); "
    "shm-jax stores whole episodes (T + 1 = 101 observations) and samples episode slots uniformly",
    "passes per update: memorax runs the networks over obs and next_obs as two 100-step sequences: actor forward "
    "over next_obs, target critic over next_obs, critic forward+backward over obs, actor forward+backward over obs, "
    "critic over obs with the sampled actions (one actor forward more than shm-jax, which reuses one actor pass "
    "over the 101 observations for the target and the actor loss); the target critic's memory over next_obs starts "
    "at o_1 (it never sees o_0)",
    "alpha: memorax's alpha step runs the actor over the environments' current step (10 observations), not the "
    "batch; shm-jax uses the batch's mean log-probability",
    "sampling: memorax's episode-start sampler builds start-probability rows over the buffer's time axis "
    "(batch x 51,000 at the paper run's 510,000 transitions) every sample; shm-jax draws slot indices "
    "(sample_s in the memorax record is the sampler alone)",
    "networks: no observation shortcut in memorax's Network (its head sees only the memory's features), so the "
    "actor head is Dense 64 (the post layer), 128, 128 over the 64 features instead of [post 64 || shortcut 40] "
    "(104 wide) -> 128 -> 128; the critic heads read [features || action] (66 wide) as memorax's "
    "ContinuousQNetwork does, instead of [features || ReLU(Linear([obs || action] -> 40))] (104 wide); "
    "tanh-Gaussian from two Dense(2) (mean, log_std clipped to [-10, 2]) instead of one Linear(4) (clip [-20, 2])",
    "critic heads: memorax 1.0.1 ships no twin critic for this SAC and its ContinuousQNetwork returns [B, L] while "
    "SAC squeezes a trailing axis from the critic's output, so the script's critic (a memorax Network trunk with "
    "two heads) keeps q as [B, L, 1] and squeezes it in the heads' loss (0.5 x mean squared error each, unmasked; "
    "shm-jax: masked MSE)",
    "GRU: both flax's GRUCell in a flax scan; memorax resets the carry with jnp.where at every step (mask), shm-jax "
    "likewise at episode starts",
    "initialisation (lecun normal vs the agent's scheme) and the observation contents (a Wind-like task written "
    "here, random warm-up episodes) do not change the shapes or the cost",
)


# --- the environment: Wind-like 2-D navigation with memorax's (old gymnax) step signature --------------------------


@struct.dataclass
class WindState:
    pos: jax.Array
    wind: jax.Array
    t: jax.Array


class Box:
    """The action space memorax asks for (``shape``, ``sample``): [-1, 1]^n."""

    def __init__(self, n: int):
        self.shape = (n,)

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.uniform(key, self.shape, jnp.float32, -1.0, 1.0)


class WindLike:
    """SHM's Wind task's dynamics (start (0, 0), goal (0, 1) radius 0.01, pos += 0.1 a + w, w ~ U(-0.1, 0.1)^2,
    reward 1 in the goal, ``episode_length`` steps) with an observation of width 5 as shm-jax's with --prev-action:
    (x, y, previous action, first-step flag). ``step`` auto-resets and returns (obs, state, reward, done, info), the
    five values memorax 1.0.1's SAC unpacks (gymnax 1.0's ``Environment.step`` returns six)."""

    def __init__(self, episode_length: int):
        self.episode_length = episode_length

    def action_space(self, params: Any) -> Box:
        return Box(2)

    def _obs(self, pos, action, first):
        return jnp.concatenate([pos, action, first[None].astype(jnp.float32)])

    def reset(self, key: jax.Array, params: Any):
        wind = jax.random.uniform(key, (2,), jnp.float32, -0.1, 0.1)
        pos = jnp.zeros((2,), jnp.float32)
        state = WindState(pos=pos, wind=wind, t=jnp.int32(0))
        return self._obs(pos, jnp.zeros((2,), jnp.float32), jnp.bool_(True)), state

    def step(self, key: jax.Array, state: WindState, action: jax.Array, params: Any):
        action = jnp.clip(action, -1.0, 1.0)
        pos = state.pos + 0.1 * action + state.wind
        reward = (jnp.linalg.norm(pos - jnp.array([0.0, 1.0])) <= 0.01).astype(jnp.float32)
        t = state.t + 1
        done = t >= self.episode_length
        reset_obs, reset_state = self.reset(key, params)
        next_state = WindState(pos=pos, wind=state.wind, t=t)
        state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, next_state)
        obs = jnp.where(done, reset_obs, self._obs(pos, action, jnp.bool_(False)))
        return obs, state, reward, done, {}


# --- networks: memorax's parts; the twin critic is the module SAC 1.0.1 expects (head1 / head2) --------------------


class PolicyHead(nn.Module):
    """A ReLU MLP, then memorax's SquashedGaussian (kwargs such as ``temperature`` pass through)."""

    features: tuple[int, ...]
    action_dim: int

    @nn.compact
    def __call__(self, x, **kwargs):
        return heads.SquashedGaussian(action_dim=self.action_dim)(MLP(features=self.features)(x), **kwargs)


class QHead(nn.Module):
    """A ReLU MLP over [features || action] -> Dense(1), q kept as [..., 1] (SAC 1.0.1 squeezes that axis)."""

    features: tuple[int, ...]

    @nn.compact
    def __call__(self, x, *, action, **kwargs):
        h = MLP(features=self.features)(jnp.concatenate([x, action], axis=-1))
        return nn.Dense(1)(h), {}

    @nn.nowrap
    def loss(self, output, aux, targets):
        return 0.5 * jnp.square(output[..., 0] - targets).mean()


class TwinQCritic(nn.Module):
    """One memorax Network trunk (feature extractor -> RNN -> post Dense) and two Q heads: SAC calls it as a
    Network and gets (carry, ((q1, aux1), (q2, aux2)))."""

    trunk: Network
    head1: QHead
    head2: QHead

    @nn.compact
    def __call__(self, observation, mask, action, reward, done, initial_carry=None, **kwargs):
        carry, x = self.trunk(observation, mask, action, reward, done, initial_carry)
        return carry, (self.head1(x, action=action), self.head2(x, action=action))

    @nn.nowrap
    def initialize_carry(self, input_shape):
        return self.trunk.initialize_carry(input_shape)


def trunk(sizes: dict, head: nn.Module) -> Network:
    return Network(
        feature_extractor=FeatureExtractor(observation_extractor=MLP(features=(sizes["feature_size"],) * 2)),
        torso=RNN(cell=nn.GRUCell(features=sizes["hidden_size"])),
        head=head,
    )


def build(sizes: dict) -> SAC:
    """memorax's SAC at ``sizes`` (META_GRU, optionally with QUICK's overrides)."""
    T, n_envs = sizes["episode_length"], sizes["num_envs"]
    cfg = SACConfig(
        name="sac",
        actor_lr=sizes["lr"],
        critic_lr=sizes["lr"],
        alpha_lr=sizes["lr"],
        num_envs=n_envs,
        num_eval_envs=n_envs,
        buffer_size=sizes["capacity_episodes"] * T,
        gamma=sizes["gamma"],
        tau=sizes["tau"],
        train_frequency=n_envs,
        target_update_frequency=1,
        batch_size=sizes["batch_size"],
        initial_alpha=sizes["initial_alpha"],
        target_entropy_scale=1.0,
        learning_starts=sizes["warmup_episodes"] * T,
        max_grad_norm=0.0,  # unused by memorax's SAC (clipping would be in the optimisers; shm-jax clips none)
        burn_in_length=0,
    )
    head = (sizes["head_hidden_size"],) * sizes["head_layers"]
    actor = trunk(sizes, PolicyHead(features=(sizes["post_size"], *head), action_dim=sizes["action_size"]))
    critic = TwinQCritic(
        trunk=trunk(sizes, MLP(features=(sizes["post_size"],))), head1=QHead(features=head), head2=QHead(features=head)
    )
    buffer = make_episode_buffer(
        max_length=cfg.buffer_size,
        min_length=cfg.batch_size,
        sample_batch_size=cfg.batch_size,
        sample_sequence_length=T,
        add_batch_size=n_envs,
        add_sequences=True,
    )
    return SAC(
        cfg=cfg,
        env=WindLike(T),
        env_params=None,
        actor_network=actor,
        critic_network=critic,
        alpha_network=heads.Alpha(initial_alpha=cfg.initial_alpha),
        actor_optimizer=optax.adam(sizes["lr"]),
        critic_optimizer=optax.adam(sizes["lr"]),
        alpha_optimizer=optax.adam(sizes["lr"]),
        buffer=buffer,
    )


# --- the record ---------------------------------------------------------------------------------------------------


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def memory_analysis(compiled) -> dict[str, Any]:
    try:
        stats = compiled.memory_analysis()
    except Exception as err:  # some backends do not implement it
        return {"error": repr(err)}
    if stats is None:
        return {"error": "memory_analysis() returned None"}
    out = {
        name: int(getattr(stats, f"{name}_size_in_bytes", 0))
        for name in ("temp", "argument", "output", "alias", "generated_code")
    }
    out["peak_estimate"] = out["temp"] + out["argument"] + out["output"] - out["alias"]
    return out


def timed_calls(call, repeats: int, max_total_s: float | None = None) -> list[float]:
    """As ``benchmarks.common.timed_calls``: wall times of ``repeats`` blocked calls, stopping after at least three
    once ``max_total_s`` is spent."""
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - start)
        if max_total_s is not None and len(times) >= 3 and sum(times) > max_total_s:
            break
    return times


def num_params(tree) -> int:
    return int(sum(x.size for x in jax.tree.leaves(tree)))


LEARNER_FIELDS = (
    "actor_params",
    "critic_params",
    "critic_target_params",
    "alpha_params",
    "actor_optimizer_state",
    "critic_optimizer_state",
    "alpha_optimizer_state",
)


def measure(sizes: dict, repeats: int, max_total_s: float) -> dict[str, Any]:
    """Build, fill the buffer with the warm-up episodes, compile and time K updates per call; the sampler apart."""
    agent = build(sizes)
    K, T = sizes["updates_per_call"], sizes["episode_length"]
    load_before = load_average()
    key, state = agent.init(jax.random.key(0))
    key, state = agent.warmup(key, state, num_steps=sizes["warmup_episodes"] * T)
    jax.block_until_ready(state)

    def updates(state, key):
        def one(state, k):
            state, info = agent._update(k, state)
            return state, info["critic_loss"] + info["actor_loss"]

        state, losses = jax.lax.scan(one, state, jax.random.split(key, K))
        return {f: getattr(state, f) for f in LEARNER_FIELDS}, losses  # the buffer stays an input only

    start = time.perf_counter()
    compiled = jax.jit(updates).lower(state, jax.random.key(1)).compile()
    compile_s = time.perf_counter() - start
    parts, _ = compiled(state, jax.random.key(2))  # warm-up
    holder = {"state": state.replace(**parts), "key": jax.random.key(3)}

    def one_call():
        holder["key"], k = jax.random.split(holder["key"])
        parts, holder["losses"] = compiled(holder["state"], k)
        holder["state"] = holder["state"].replace(**parts)
        return parts

    times = timed_calls(one_call, repeats, max_total_s)
    update_s = statistics.median(times) / K

    def samples(buffer_state, key):
        def one(c, k):
            batch = agent.buffer.sample(buffer_state, k).experience
            return c + batch.obs.sum() + batch.next_obs.sum(), None

        return jax.lax.scan(one, jnp.float32(0.0), jax.random.split(key, K))[0]

    sample_compiled = jax.jit(samples).lower(state.buffer_state, jax.random.key(4)).compile()
    jax.block_until_ready(sample_compiled(state.buffer_state, jax.random.key(5)))
    sample_times = timed_calls(lambda: sample_compiled(state.buffer_state, jax.random.key(6)), max(repeats, 5))

    batch = agent.buffer.sample(state.buffer_state, jax.random.key(7)).experience
    starts_ok = bool(jnp.all(batch.prev_done[:, 0])) and not bool(jnp.any(batch.prev_done[:, 1:]))
    return {
        "status": "ok",
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "updates_per_call": K,
        "compile_s": compile_s,
        "time_s_all": times,
        "update_s": update_s,
        "sample_time_s_all": sample_times,
        "sample_s": statistics.median(sample_times) / K,
        "finite": bool(jnp.all(jnp.isfinite(holder["losses"]))),
        "xla_memory": memory_analysis(compiled),
        "actor_params": num_params(state.actor_params),
        "critic_params": num_params(state.critic_params),
        "buffer_transitions_filled": int(state.buffer_state.current_index) * sizes["num_envs"],
        "sampled_windows_are_whole_episodes": starts_ok,
        "sampled_batch_shape": list(batch.obs.shape),
    }


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny widths and batch 4: a smoke run")
    parser.add_argument("--updates-per-call", type=int, help="K (default 20 as meta-gru, quick 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls after the warm-up (default 5)")
    parser.add_argument("--max-total-s", type=float, default=150.0, help="stop after 3 calls once they add up to this")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results" / "memorax_sac_cpu.json"))
    args = parser.parse_args(argv)
    sizes = dict(META_GRU, **(QUICK if args.quick else {}))
    if args.updates_per_call:
        sizes["updates_per_call"] = args.updates_per_call
    began = time.perf_counter()
    devices = jax.devices()
    record: dict[str, Any] = {
        "benchmark": "memorax_sac",
        "timestamp_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {
            "backend": jax.default_backend(),
            "jax_devices": [str(d) for d in devices],
            "device_kind": devices[0].device_kind,
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
        },
        "versions": versions(),
        "git_commit": git_commit(),
        "command": [Path(sys.executable).name, *sys.argv],
        "load_average_start": load_average(),
        "quick": args.quick,
        "compared_with": {"benchmark": "sac_throughput", "case": "meta-gru", "preset": "paper-meta"},
        "shape": {
            **sizes,
            "sequence_length": sizes["episode_length"],
            "burn_in_length": 0,
            "buffer_transitions": sizes["capacity_episodes"] * sizes["episode_length"],
            "label": (
                f"{sizes['batch_size']} x {sizes['episode_length']} transitions (obs and next_obs), "
                f"GRU-{sizes['hidden_size']} / GRU-{sizes['hidden_size']}"
            ),
        },
        "networks": (
            f"memorax: actor obs({sizes['obs_size']}) -> MLP {sizes['feature_size']}, {sizes['feature_size']} -> "
            f"GRU-{sizes['hidden_size']} -> MLP {sizes['post_size']}, "
            f"{', '.join([str(sizes['head_hidden_size'])] * sizes['head_layers'])} -> SquashedGaussian("
            f"{sizes['action_size']}); critic: one trunk obs -> {sizes['feature_size']}, {sizes['feature_size']} -> "
            f"GRU-{sizes['hidden_size']} -> {sizes['post_size']}, two heads [features || action] -> "
            f"{', '.join([str(sizes['head_hidden_size'])] * sizes['head_layers'])} -> 1; " + SHM_JAX_NETWORKS
        ),
        "differences": list(DIFFERENCES),
    }
    print(f"memorax SAC at meta-gru's shape: K = {sizes['updates_per_call']}, R = {args.repeats} ...", flush=True)
    try:
        record["result"] = measure(sizes, args.repeats, args.max_total_s)
    except Exception as err:
        record["result"] = {"status": f"error: {type(err).__name__}: {str(err).splitlines()[0][:300]}"}
    record["load_average_end"] = load_average()
    record["wall_s"] = time.perf_counter() - began
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    result = record["result"]
    print(json.dumps({k: result.get(k) for k in ("status", "update_s", "sample_s", "compile_s", "finite")}))
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
