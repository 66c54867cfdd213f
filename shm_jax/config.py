"""Training configuration: frozen sections, field checks, and (de)serialisation.

``TrainConfig(env, agent, algorithm, run)`` holds every option of a run; ``TrainConfig()`` is the default
preset (what ``python train.py`` runs). ``algorithm`` is the section of the chosen learner (``--algo``,
default ``ppo``; each registered in ``shm_jax.algorithms``); ``config.algo`` is its name and
``config.<name>`` (e.g. ``config.ppo``) the section itself. Field docstrings double as ``--help`` text.
Every option has ONE name within an algorithm, used as the field name, the CLI flag (``--num-envs``), the
key of a flat override (``from_preset("default", num_envs=8)``) and, for the algorithm's traced
hyperparameters, the sweep name (``lr=1e-3,3e-4``).

``validate(config)`` checks every field (types, ranges, cross-field rules, sweep values by the same
rule as the plain option) and raises :class:`ConfigError` naming the field. Names that need the
package to check (memory and environment ids, memory kwargs) are checked by ``shm_jax.build``.
Presets live in ``shm_jax.presets``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from shm_jax import algorithms  # noqa: F401  (registers the built-in algorithms)
from shm_jax.agents.inits import INITS
from shm_jax.algorithms import base
from shm_jax.algorithms.base import AlgorithmConfig
from shm_jax.algorithms.ppo.config import PPOConfig
from shm_jax.options import (
    ConfigError,
    boolean,
    check_fields,
    keyword_mapping,
    non_empty_string,
    non_negative_int,
    non_negative_number,
    one_of,
    option,
    optional_boolean,
    optional_name,
    positive_int,
    positive_number,
)

OverrideValue = int | float | bool | str
SweepValues = tuple[tuple[str, tuple[float, ...]], ...]

PRECISIONS = ("float32", "bfloat16")
WANDB_MODES = ("off", "offline", "online")
ENCODERS = ("mlp", "conv", "arcade-cnn")
DEFAULT_ALGO = PPOConfig.name


def sweep_pairs(field: str, value: Any) -> None:
    """The shape of a sweep: ((name, (v1, v2, ...)), ...) with each name once. Names and values are checked
    against the algorithm's hyperparameters by :func:`validate`."""
    if not isinstance(value, (tuple, list)):
        raise ConfigError(field, f"must be a tuple of (name, values) pairs, got {value!r}")
    seen = set()
    for entry in value:
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise ConfigError(field, f"each entry must be a (name, values) pair, got {entry!r}")
        name, values = entry
        if name in seen:
            raise ConfigError(field, f"{name!r} appears twice")
        seen.add(name)
        if not isinstance(values, (tuple, list)) or not values:
            raise ConfigError(field, f"values of {name!r} must be a non-empty tuple of numbers, got {values!r}")


def optional_text(field: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(field, f"must be None or a non-empty string, got {value!r}")


def wandb_tags(field: str, value: Any) -> None:
    """A tuple of W&B tags, each 1 to 64 characters (W&B's limit)."""
    if not isinstance(value, (tuple, list)):
        raise ConfigError(field, f"must be a tuple of strings, got {value!r}")
    for tag in value:
        if not isinstance(tag, str) or not 1 <= len(tag.strip()) <= 64:
            raise ConfigError(field, f"each tag must be a string of 1 to 64 characters, got {tag!r}")


# ----------------------------------------------------------------------------------------------------
# The sections


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """The task."""

    env_id: str = option("RepeatFirstEasy", non_empty_string)
    """Environment id: an ``envs`` id or alias (``envs.list_ids()``), ``probe:<Name>`` or ``gymnax:<id>``."""
    env_overrides: dict[str, OverrideValue] = option({}, keyword_mapping)
    """Environment constructor arguments or EnvParams fields, e.g. ``{"num_decks": 2}``."""
    prev_action: bool | None = option(None, optional_boolean)
    """Append the previous action and an episode-start flag to observations (None: the task's default)."""


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """The network: the recurrent trunk (encoder -> memory core -> post) and the heads (``shm_jax.agents``)."""

    memory: str = option("shm", non_empty_string)
    """Memory core name (``shm_jax.memory.memory_names()``)."""
    memory_kwargs: dict[str, OverrideValue] = option({}, keyword_mapping)
    """Constructor arguments of the memory core, e.g. ``{"memory_size": 32}``."""
    feature_size: int = option(128, positive_int)
    """Width of the observation feature map Linear(obs_dim -> feature_size)."""
    feature_norm: bool = option(True, boolean)
    """LayerNorm without affine parameters after the feature map (else ReLU)."""
    time_encoding: bool = option(True, boolean)
    """Blend a sinusoidal encoding of the within-episode step into the features (the paper's SHM agent)."""
    time_encoding_max_len: int = option(1024, positive_int)
    """Period scale of the time encoding (ln(max_len) replaces ln(10000)); steps are clipped below it."""
    pre_size: int = option(64, positive_int)
    """Width of Linear+ReLU between the features and the memory core."""
    post_size: int = option(64, positive_int)
    """Width of Linear+ReLU after the memory core (the shared trunk of both heads)."""
    memory_norm: bool | None = option(None, optional_boolean)
    """LayerNorm without affine parameters on the memory core's output, before the post layer (None: automatic, on
    for trunks around an SHM core, off for the others; the paper presets set False, the paper's agent). SHM's
    read-out M_t q_t starts about 100x smaller than a GRU's state (k and q are sum-normalised) and grows along the
    episode; the norm gives the post layer a unit-scale input from the first step (experiments/README.md: the
    default SHM agent's study)."""
    readout_scale: float = option(1.0, positive_number)
    """Multiplies the memory core's output before the post layer (after ``memory_norm``). A study option: SHM's
    bare read-out starts about 100x smaller than a GRU's state; a fixed gain rescales it without normalising each
    step."""
    head_hidden_size: int = option(64, positive_int)
    """Hidden width of the actor and critic heads (Linear -> Linear, no activation between)."""
    encoder: Literal["mlp", "conv", "arcade-cnn"] = option("mlp", one_of(*ENCODERS))
    """Observation encoder before the feature map: "mlp" (the flat observation), "conv" (pomdp-baselines' image
    encoder: Conv(C -> 8, 2x2) + ReLU, Conv(8 -> 16, 2x2) + ReLU, flattened) or "arcade-cnn" (the POPGym Arcade
    baselines' CNN: conv 64 5x5/2, maxpool 2, conv 128 3x3/2, maxpool 2, conv 256 3x3/2, maxpool 3/1, conv 512 1x1, on
    pixels / 255); the two convolutional ones need image observations."""
    pixel_scale: bool | None = option(None, optional_boolean)
    """Divide the raw observation by 255 (None: automatic, on when it is a uint8 image; appended previous-action
    and start-flag features are never scaled)."""
    network_init: Literal["orthogonal", "official"] = option("orthogonal", one_of(*INITS))
    """Init of the encoder and heads: "orthogonal" (gain sqrt(2) pre/post, zero biases) or "official" (the official
    POPGym agent: orthogonal gain 1, final layers N(0, 0.01), PyTorch's default biases); the SHM core keeps its own."""
    precision: Literal["float32", "bfloat16"] = option("float32", one_of(*PRECISIONS))
    """Compute dtype of the network and memory core; bfloat16 is mixed precision: bf16 projections and activations,
    float32 params, memory state, loss, advantages and optimiser state."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Seeds, sweeps and the host loop (``shm_jax.training``)."""

    seed: int = option(0, non_negative_int)
    """Base seed; run i uses jax.random.split(PRNGKey(seed), num_seeds)[i]."""
    num_seeds: int = option(1, positive_int)
    """Independent runs vmapped in one program."""
    sweep: SweepValues = option((), sweep_pairs)
    """Hyperparameter grid, e.g. (("lr", (1e-4, 3e-4)),); every combination x every seed runs in one program."""
    updates_per_chunk: int = option(1, positive_int)
    """Updates per jitted call. Between calls the host logs, checkpoints and checks for Ctrl-C, so 1 (the
    default) stops within one update; raise it only when updates take milliseconds."""
    checkpoint_every: int = option(0, non_negative_int)
    """Also save a checkpoint every this many chunks (0: only by time, see checkpoint_minutes)."""
    checkpoint_minutes: float = option(10.0, non_negative_number)
    """Save a checkpoint after the first chunk and then whenever this many minutes of training have passed since
    the last one (0: no time-based saves), so a kill loses at most this much; saves are written in the background."""
    keep_checkpoints: int = option(3, positive_int)
    """How many of the newest checkpoints to keep on disk."""
    out_dir: str = option("runs", non_empty_string)
    """Directory under which each run writes its folder."""
    run_name: str | None = option(None, optional_name)
    """Run folder name (None: derived from env, memory and time)."""
    eval_episodes: int = option(32, non_negative_int)
    """Episodes of the final evaluation (0 disables)."""
    tensorboard: bool = option(False, boolean)
    """Also write TensorBoard event files (needs tensorboardX)."""
    wandb: Literal["off", "offline", "online"] = option("off", one_of(*WANDB_MODES))
    """Also log to Weights & Biases, one W&B run per (setting, seed): "offline" (files in the run directory, upload
    later with ``wandb sync``) or "online" (needs ``wandb login``); needs the wandb extra."""
    wandb_project: str = option("shm-jax", non_empty_string)
    """W&B project."""
    wandb_entity: str | None = option(None, optional_text)
    """W&B entity (team or user; None: your default)."""
    wandb_group: str | None = option(None, optional_text)
    """W&B group of the run's (setting, seed) runs (None: the run directory's name)."""
    wandb_tags: tuple[str, ...] = option((), wandb_tags)
    """W&B tags of every (setting, seed) run, e.g. --wandb-tags baseline gru."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every option of a run; ``TrainConfig()`` is the default preset.

    algorithm: the chosen learner's section (``PPOConfig()`` by default); ``config.algo`` names it and
    ``config.ppo`` (``config.<algo>``) reads it.
    """

    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    agent: AgentConfig = dataclasses.field(default_factory=AgentConfig)
    algorithm: AlgorithmConfig = dataclasses.field(default_factory=PPOConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)

    @property
    def algo(self) -> str:
        """The ``--algo`` name of the chosen learner."""
        return self.algorithm.name

    def __getattr__(self, name: str) -> Any:
        # config.ppo (config.<algo>): the algorithm's section under its own name, as config.json spells it
        if not name.startswith("_"):
            try:
                section = object.__getattribute__(self, "algorithm")
            except AttributeError:
                section = None
            if section is not None and name == section.name:
                return section
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


SECTIONS: dict[str, type] = {"env": EnvConfig, "agent": AgentConfig, "run": RunConfig}
"""The sections every run has; the algorithm's section comes from ``shm_jax.algorithms``."""
_SECTION_OF: dict[str, str] = {f.name: section for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
ALGO_FIELD = "algo"


def _algorithm_fields(algo: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(base.get(algo).config_type)}


def field_names(algo: str = DEFAULT_ALGO) -> list[str]:
    """Every option name of a run of ``algo`` (flat, as the CLI and ``with_overrides`` spell them)."""
    return sorted({ALGO_FIELD, *_SECTION_OF, *_algorithm_fields(algo)})


def sweepable(algo: str = DEFAULT_ALGO) -> tuple[str, ...]:
    """The traced hyperparameters of ``algo`` (its hyperparameter pytree's fields): what ``--sweep`` varies."""
    return base.hyperparameter_names(base.get(algo))


HOST_LOOP_OPTIONS = (
    "eval_episodes",
    "checkpoint_every",
    "checkpoint_minutes",
    "keep_checkpoints",
    "tensorboard",
    "updates_per_chunk",
    "wandb",
    "wandb_project",
    "wandb_entity",
    "wandb_group",
    "wandb_tags",
)


def resumable(algo: str = DEFAULT_ALGO) -> tuple[str, ...]:
    """Options ``--resume`` may change: traced hyperparameters and host-loop settings (the saved state fits)."""
    return sweepable(algo) + HOST_LOOP_OPTIONS


def with_overrides(config: TrainConfig, **overrides: Any) -> TrainConfig:
    """``config`` with options replaced by their flat names, e.g. ``with_overrides(c, lr=1e-3, memory="gru")``.

    ``algo="NAME"`` switches to that algorithm's section (its defaults) before the other options apply.
    """
    algo = overrides.pop(ALGO_FIELD, config.algo)
    if not isinstance(algo, str):
        raise ConfigError(ALGO_FIELD, f"must be an algorithm name, got {algo!r}")
    algorithm = config.algorithm if algo == config.algo else base.get(algo).config_type()
    own = _algorithm_fields(algo)
    unknown = sorted(set(overrides) - set(_SECTION_OF) - set(own))
    if unknown:
        raise ConfigError(unknown[0], f"unknown config field; valid fields: {', '.join(field_names(algo))}")
    sections = {}
    for section in SECTIONS:
        values = {k: v for k, v in overrides.items() if _SECTION_OF.get(k) == section}
        sections[section] = dataclasses.replace(getattr(config, section), **values)
    algorithm = dataclasses.replace(algorithm, **{k: v for k, v in overrides.items() if k in own})
    return TrainConfig(algorithm=algorithm, **sections)


def flat_view(config: TrainConfig) -> dict[str, Any]:
    """Every option by its flat name: ``{"algo": "ppo", "env_id": ..., "lr": ..., ...}``."""
    view = {name: getattr(getattr(config, section), name) for name, section in _SECTION_OF.items()}
    view.update({f.name: getattr(config.algorithm, f.name) for f in dataclasses.fields(config.algorithm)})
    view[ALGO_FIELD] = config.algo
    return view


# ----------------------------------------------------------------------------------------------------
# Validation


def validate(config: TrainConfig) -> TrainConfig:
    """Check every field and the cross-field rules; raise a one-line ConfigError naming the field.

    Returns the config unchanged so calls can be chained.
    """
    if not isinstance(config, TrainConfig):
        raise ConfigError("config", f"must be a TrainConfig, got {type(config).__name__}")
    for section, cls in SECTIONS.items():
        values = getattr(config, section)
        if not isinstance(values, cls):
            raise ConfigError(section, f"must be a {cls.__name__}, got {type(values).__name__}")
        check_fields(values)
    algorithm = config.algorithm
    if not isinstance(algorithm, AlgorithmConfig):
        raise ConfigError(
            ALGO_FIELD, f"the algorithm section must be an AlgorithmConfig, got {type(algorithm).__name__}"
        )
    spec = base.get(algorithm.name)
    if not isinstance(algorithm, spec.config_type):
        raise ConfigError(ALGO_FIELD, f"section of {algorithm.name!r} must be a {spec.config_type.__name__}")
    check_fields(algorithm)
    _check_sweep(config)
    algorithm.check_rules()
    if "dtype" in config.agent.memory_kwargs:
        dtype = config.agent.memory_kwargs["dtype"]
        raise ConfigError(
            "memory_kwargs",
            f"'dtype' is set by the precision option (got memory_kwargs dtype {dtype!r}); use precision={dtype!r}",
        )
    return config


def _check_sweep(config: TrainConfig) -> None:
    """Swept names are the algorithm's hyperparameters; each value obeys the rule of the plain option."""
    names = sweepable(config.algo)
    fields = _algorithm_fields(config.algo)
    for name, values in config.run.sweep:
        if name not in names:
            raise ConfigError("sweep", f"unknown sweep name {name!r}; sweepable: {', '.join(names)}")
        for v in values:
            try:
                fields[name].metadata["check"](name, v)
            except ConfigError as err:
                raise ConfigError("sweep", f"{name}={v!r}: {str(err).split(': ', 1)[1]}") from None


# ----------------------------------------------------------------------------------------------------
# JSON-ready dicts (config.json)


RECORD_KEYS = ("resumed",)
"""Keys config.json may hold next to the sections: a record of the run, not options (see ``rundir.record_resume``)."""


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def to_dict(config: TrainConfig) -> dict[str, Any]:
    """``{"env": {...}, "agent": {...}, "<algo>": {...}, "run": {...}}`` with JSON types (tuples become lists).

    The algorithm's section is keyed by its name, so the keys say which algorithm ran.
    """

    def section(obj: Any) -> dict[str, Any]:
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}

    return {
        "env": section(config.env),
        "agent": section(config.agent),
        config.algo: section(config.algorithm),
        "run": section(config.run),
    }


def _from_json(name: str, value: Any) -> Any:
    if name == "sweep":
        return (
            tuple(
                (entry[0], tuple(entry[1])) if isinstance(entry, (list, tuple)) and len(entry) == 2 else entry
                for entry in value
            )
            if isinstance(value, (list, tuple))
            else value
        )
    if isinstance(value, list):
        return tuple(value)
    return value


def from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """The inverse of :func:`to_dict`; also reads the flat one-level dicts older runs saved.

    Options missing from ``data`` keep their defaults; unknown names raise ConfigError.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("config", f"must be a JSON object, got {type(data).__name__}")
    algos = [key for key in data if key in base.names() and isinstance(data[key], Mapping)]
    if len(algos) > 1:
        raise ConfigError(ALGO_FIELD, f"config holds sections of several algorithms: {', '.join(algos)}")
    algo = algos[0] if algos else data.get(ALGO_FIELD, DEFAULT_ALGO)
    own = _algorithm_fields(algo)
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in RECORD_KEYS or key == ALGO_FIELD:
            continue
        if (key in SECTIONS or key == algo) and isinstance(value, Mapping):
            for name, item in value.items():
                known = name in own if key == algo else _SECTION_OF.get(name) == key
                if not known:
                    raise ConfigError(f"{key}.{name}", f"unknown option in section {key!r}")
                flat[name] = item
        else:
            flat[key] = value
    return with_overrides(TrainConfig(), algo=algo, **{k: _from_json(k, v) for k, v in flat.items()})
