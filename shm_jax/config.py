"""Training configuration: one frozen dataclass, named presets, and validation before compiling.

``TrainConfig`` holds every option of a run; its field comments double as ``--help`` text for the CLI.
``from_preset(name, **overrides)`` starts from a named preset; ``validate(config)`` raises a one-line
``ValueError`` naming the offending field before anything is traced or compiled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal, Optional, Union

# Names of the hyperparameters that are traced leaves (``shm_jax.ppo.HParams``), hence sweepable.
SWEEPABLE = ("lr", "ent_coef", "clip_eps", "gamma", "gae_lambda", "vf_coef", "max_grad_norm")

# Environment id prefixes served outside the ``envs`` registry.
PROBE_PREFIX = "probe:"  # shm_jax.probes, e.g. "probe:Recall"
GYMNAX_PREFIX = "gymnax:"  # gymnax built-ins, e.g. "gymnax:CartPole-v1"

OverrideValue = Union[int, float, bool, str]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every option of a recurrent-PPO run (sizes, algorithm, seeds/sweeps, host loop)."""

    # --- task ---
    env_id: str = "RepeatPreviousEasy"
    """Environment id: an ``envs`` id or alias, ``probe:<Name>`` (shm_jax.probes) or ``gymnax:<id>``."""
    env_overrides: dict[str, OverrideValue] = dataclasses.field(default_factory=dict)
    """Environment constructor arguments or EnvParams fields, e.g. ``{"num_decks": 2}``."""
    prev_action: Optional[bool] = None
    """Append the previous action and an episode-start flag to observations (None: the task's default)."""

    # --- agent ---
    memory: str = "gru"
    """Memory core name (``shm_jax.memory.memory_names()``)."""
    memory_kwargs: dict[str, OverrideValue] = dataclasses.field(default_factory=dict)
    """Constructor arguments of the memory core, e.g. ``{"memory_size": 32}``."""
    feature_size: int = 128
    """Width of the observation feature map Linear(obs_dim -> feature_size)."""
    feature_norm: bool = True
    """LayerNorm without affine parameters after the feature map (else ReLU)."""
    time_encoding: bool = False
    """Blend a sinusoidal encoding of the within-episode step into the features (the paper's SHM agent)."""
    time_encoding_max_len: int = 1024
    """Period scale of the time encoding (ln(max_len) replaces ln(10000)); steps are clipped below it."""
    pre_size: int = 64
    """Width of Linear+ReLU between the features and the memory core."""
    post_size: int = 64
    """Width of Linear+ReLU after the memory core (the shared trunk of both heads)."""
    head_hidden_size: int = 64
    """Hidden width of the actor and critic heads (Linear -> Linear, no activation between)."""
    pixel_scale: Optional[bool] = None
    """Divide the raw observation by 255 (None: automatic, on when it is a uint8 image; appended previous-action
    and start-flag features are never scaled)."""
    precision: Literal["float32", "bfloat16"] = "float32"
    """Compute dtype of the network and memory core; bfloat16 is mixed precision: bf16 projections and activations,
    float32 params, memory state, loss, advantages and optimiser state."""

    # --- PPO ---
    num_envs: int = 16
    """Parallel environments per run."""
    num_steps: int = 128
    """Rollout length per update (the sequence length the memory trains on)."""
    total_timesteps: int = 500_000
    """Environment steps per run; updates = total_timesteps // (num_envs * num_steps)."""
    num_minibatches: int = 4
    """Minibatches per epoch; each holds whole sequences of num_envs / num_minibatches environments."""
    update_epochs: int = 4
    """Passes over each rollout."""
    lr: float = 3e-4
    """Adam learning rate (sweepable)."""
    anneal_lr: bool = False
    """Linearly anneal the learning rate to 0 over the run."""
    adam_eps: float = 1e-5
    """Adam epsilon."""
    gamma: float = 0.99
    """Discount (sweepable)."""
    gae_lambda: float = 0.95
    """GAE lambda (sweepable)."""
    clip_eps: float = 0.2
    """PPO ratio clip (sweepable); also clips the value change when clip_value_loss is on."""
    clip_value_loss: bool = True
    """PPO2-style clipped value loss."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient (sweepable)."""
    vf_coef: float = 0.5
    """Value loss coefficient (sweepable)."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip (sweepable)."""
    normalize_advantages: bool = True
    """Standardise advantages per minibatch."""

    # --- seeds and sweeps ---
    seed: int = 0
    """Base seed; run i uses jax.random.split(PRNGKey(seed), num_seeds)[i]."""
    num_seeds: int = 1
    """Independent runs vmapped in one program."""
    sweep: tuple[tuple[str, tuple[float, ...]], ...] = ()
    """Hyperparameter grid, e.g. (("lr", (1e-4, 3e-4)),); every combination x every seed runs in one program."""

    # --- host loop (shm_jax.trainer) ---
    updates_per_chunk: int = 10
    """PPO updates per jitted chunk between host-side logging."""
    checkpoint_every: int = 0
    """Save a checkpoint every this many chunks (0: only at the end)."""
    out_dir: str = "runs"
    """Directory under which each run writes its folder."""
    run_name: Optional[str] = None
    """Run folder name (None: derived from env, memory and time)."""
    eval_episodes: int = 32
    """Episodes of the final evaluation (0 disables)."""
    tensorboard: bool = False
    """Also write TensorBoard event files (needs tensorboardX)."""


def _paper_memory_kwargs(memory: str, env_id: str) -> dict[str, Any]:
    """The paper's POPGym memory sizes (SHM m = 128 Easy / 32 Hard, 72 otherwise; projection 1024)."""
    size = 128 if env_id.endswith("Easy") else 32 if env_id.endswith("Hard") else 72
    if memory.startswith("shm"):
        return {"memory_size": size, "projection_size": 1024, "shortcut": True}
    if memory in ("linear-attention", "mlstm"):  # matrix memories: same m rule, output to post_size 1024
        return {"memory_size": size, "output_size": 1024}
    if memory == "ffm":  # FFM(memory m, context 4, out 1024); the paper's m for FFM is not reported
        return {"memory_size": 32, "context_size": 4, "output_size": 1024}
    if memory == "gru":  # tuned h not reported; 256 is one of the README's examples
        return {"hidden_size": 256}
    return {}


PRESETS: dict[str, dict[str, Any]] = {
    # What `python train.py` runs: SHM learning a POPGym Easy task on a 2-core CPU in a few minutes. SHM with its
    # own defaults (H = 128, no shortcut, no output projection; memory_kwargs stay empty so `--memory gru` alone
    # switches core) and the paper agent's time encoding: RepeatFirstEasy shows no start flag, and SHM's keys
    # depend on the current input only, so the encoded step is what singles out the first card. It leaves chance
    # (-0.5) after ~40k steps and passes 0.9 by ~75k. (On RepeatPreviousEasy SHM barely moves at this budget: a
    # fixed 3-step lag needs order, which sum-normalised keys and random calibration do not give; GRU solves it.)
    "default": dict(
        env_id="RepeatFirstEasy",
        memory="shm",
        memory_kwargs={},
        time_encoding=True,
        num_envs=16,
        num_steps=128,
        total_timesteps=204_800,  # 100 updates of 16 x 128 steps
        lr=1e-3,
        ent_coef=0.01,
    ),
    # The paper's POPGym setup (shm_model.md §10) in PureJaxRL layout: 64 envs x 1024 steps, 8 minibatches.
    "paper-popgym": dict(
        memory="shm",
        time_encoding=True,
        feature_size=128,
        feature_norm=True,
        pre_size=64,
        post_size=64,
        head_hidden_size=64,
        num_envs=64,
        num_steps=1024,
        total_timesteps=15_000_000,
        num_minibatches=8,
        update_epochs=30,
        lr=5e-5,
        anneal_lr=False,
        gamma=0.99,
        gae_lambda=1.0,
        clip_eps=0.2,
        clip_value_loss=False,
        ent_coef=0.0,
        vf_coef=1.0,
        max_grad_norm=0.5,
        num_seeds=3,
        updates_per_chunk=1,
    ),
}


def from_preset(name: str = "default", **overrides: Any) -> TrainConfig:
    """A TrainConfig from preset ``name`` with ``overrides`` applied (unknown names raise ValueError).

    For "paper-popgym", memory_kwargs default to the paper's sizes for the chosen memory and env_id.
    """
    if name not in PRESETS:
        raise ValueError(f"preset: unknown preset {name!r}; valid: {', '.join(sorted(PRESETS))}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown config field; valid fields: {', '.join(sorted(fields))}")
    values = {**PRESETS[name], **overrides}
    if name == "paper-popgym" and "memory_kwargs" not in overrides:
        values["memory_kwargs"] = _paper_memory_kwargs(
            values.get("memory", TrainConfig.memory), values.get("env_id", TrainConfig.env_id))
    return TrainConfig(**values)


def _fail(field: str, message: str) -> None:
    raise ValueError(f"{field}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(config: TrainConfig) -> TrainConfig:
    """Check every field; raise a one-line ValueError naming the field and what is allowed.

    Builds the environment and memory core objects (cheap, Python only) to check names and kwargs.
    Returns the config unchanged so calls can be chained.
    """
    for field in ("feature_size", "pre_size", "post_size", "head_hidden_size", "num_envs", "num_steps",
                  "total_timesteps", "num_minibatches", "update_epochs", "num_seeds", "updates_per_chunk",
                  "time_encoding_max_len"):
        value = getattr(config, field)
        if not _is_int(value) or value <= 0:
            _fail(field, f"must be a positive integer, got {value!r}")
    for field in ("checkpoint_every", "eval_episodes", "seed"):
        value = getattr(config, field)
        if not _is_int(value) or value < 0:
            _fail(field, f"must be a non-negative integer, got {value!r}")
    if config.num_envs % config.num_minibatches:
        _fail("num_minibatches", f"must divide num_envs={config.num_envs} (minibatches hold whole "
              f"environment sequences), got {config.num_minibatches}")
    if config.total_timesteps < config.num_envs * config.num_steps:
        _fail("total_timesteps", f"must be at least num_envs*num_steps={config.num_envs * config.num_steps} "
              f"(one update), got {config.total_timesteps}")
    _check_positive_float(config, "lr", "adam_eps", "clip_eps", "max_grad_norm")
    _check_non_negative_float(config, "ent_coef", "vf_coef")
    _check_unit_interval(config, "gamma", "gae_lambda")
    _validate_sweep(config.sweep)
    _validate_precision(config)
    _validate_memory(config)
    _validate_env(config)
    return config


def _check_positive_float(config: TrainConfig, *fields: str) -> None:
    for field in fields:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            _fail(field, f"must be a positive number, got {value!r}")


def _check_non_negative_float(config: TrainConfig, *fields: str) -> None:
    for field in fields:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            _fail(field, f"must be a non-negative number, got {value!r}")


def _check_unit_interval(config: TrainConfig, *fields: str) -> None:
    for field in fields:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            _fail(field, f"must be in [0, 1], got {value!r}")


def _validate_sweep(sweep: Any) -> None:
    if not isinstance(sweep, (tuple, list)):
        _fail("sweep", f"must be a tuple of (name, values) pairs, got {sweep!r}")
    seen = set()
    for entry in sweep:
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            _fail("sweep", f"each entry must be a (name, values) pair, got {entry!r}")
        name, values = entry
        if name not in SWEEPABLE:
            _fail("sweep", f"unknown sweep name {name!r}; sweepable: {', '.join(SWEEPABLE)}")
        if name in seen:
            _fail("sweep", f"{name!r} appears twice")
        seen.add(name)
        if (not isinstance(values, (tuple, list)) or not values
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values)):
            _fail("sweep", f"values of {name!r} must be a non-empty tuple of numbers, got {values!r}")


def _validate_precision(config: TrainConfig) -> None:
    from shm_jax.memory.precision import PRECISIONS

    if not isinstance(config.precision, str) or config.precision not in PRECISIONS:
        _fail("precision", f"must be one of {', '.join(map(repr, PRECISIONS))}, got {config.precision!r}")
    if isinstance(config.memory_kwargs, Mapping) and "dtype" in config.memory_kwargs:
        _fail("memory_kwargs", f"'dtype' is set by the precision field (got memory_kwargs dtype "
              f"{config.memory_kwargs['dtype']!r}); use precision={config.memory_kwargs['dtype']!r}")


def _validate_memory(config: TrainConfig) -> None:
    from shm_jax.memory import make_memory, memory_names

    if config.memory not in memory_names():
        _fail("memory", f"unknown memory {config.memory!r}; valid: {', '.join(memory_names())}")
    try:
        make_memory(config.memory, dtype=config.precision, **dict(config.memory_kwargs))
    except (TypeError, ValueError) as err:
        _fail("memory_kwargs", f"invalid for memory {config.memory!r}: {str(err).splitlines()[0]}")


def _validate_env(config: TrainConfig) -> None:
    from shm_jax.ppo import make_env  # late import: ppo imports this module

    try:
        make_env(config)
    except ValueError as err:
        message = str(err).splitlines()[0].removeprefix("env: ")
        field = "env_overrides" if config.env_overrides and "override" in message else "env_id"
        if message.startswith(("env_id:", "env_overrides:")):
            raise ValueError(message) from None
        _fail(field, message)
    except TypeError as err:
        _fail("env_overrides", f"invalid for {config.env_id!r}: {str(err).splitlines()[0]}")
