"""The command line's parsing: training options (tyro, over every config section and the chosen algorithm's own),
``--sweep NAME=V1,V2``, presets read before tyro so ``--help`` shows their values, the evaluate command, and
``--resume``'s checks. A bad option raises a one-line ConfigError before anything compiles.

Imports tyro and the config (gymnax, hence JAX): ``shm_jax.cli`` imports it after joining a distributed job.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import sys
from typing import Annotated, Literal

import tyro

from shm_jax.algorithms import base as algorithms
from shm_jax.config import TrainConfig, field_names, flat_view, resumable, validate, with_overrides
from shm_jax.options import ConfigError
from shm_jax.presets import PRESETS, from_preset
from shm_jax.training import rundir

DESCRIPTION = """Train (or evaluate) a recurrent agent with a memory core on a partially observable task.

Usage (`shm-jax`, `python -m shm_jax` and `python train.py` in a checkout are the same command):
  shm-jax                                          # the default preset (learns in minutes on a laptop CPU)
  shm-jax train --algo ppo --env RepeatPreviousEasy   # `train` may be left out; --algo picks the learner (default ppo)
  shm-jax --env AutoencodeEasy --memory shm --num-seeds 4
  shm-jax --preset paper-popgym --env RepeatPreviousHard
  shm-jax --sweep lr=1e-4,3e-4 --num-seeds 3       # every setting x every seed in one program
  shm-jax --resume runs/RepeatPreviousEasy-gru-20260101-120000
  shm-jax evaluate runs/RepeatPreviousEasy-gru-20260101-120000 --episodes 64   # (or: eval)
  shm-jax --version

Every run writes runs/<env>-<memory>-<UTC time>/: config.json, versions.json, devices.json, metrics.jsonl,
csv/<setting>_seed<i>.csv, summary.json (final return and MMER per run, mean +- std per setting),
learning_curve.png, checkpoints/ and, with --tensorboard (needs tensorboardX; skipped otherwise),
tensorboard/. Checkpoints are saved after the first update and then every 10 minutes (--checkpoint-minutes);
Ctrl-C stops after the running update, saves and exits 130 (SIGTERM: 143); --resume continues it.

Several processes (hosts) on one run, with jax.distributed (docs/distributed.md); launch options, not saved in
config.json, so a run saved on N processes resumes on M:
  shm-jax --distributed ...                        # Slurm, Open MPI, Cloud TPU, Kubernetes: detected by jax
  shm-jax --coordinator-address 10.0.0.1:1234 --num-processes 2 --process-id 0 [--local-device-ids 0,1] ...
"""

SweepType = tuple[tuple[str, tuple[float, ...]], ...]
ARG_ALIASES = {"--env": "--env-id"}  # short spellings for common options


# ----------------------------------------------------------------------------------------------------
# --sweep NAME=V1,V2 [NAME=V1,V2 ...]


def parse_sweep(items: list[str]) -> SweepType:
    """``["lr=1e-4,3e-4", "ent_coef=0,0.01"]`` -> ``(("lr", (1e-4, 3e-4)), ("ent_coef", (0.0, 0.01)))``."""
    sweep = []
    for item in items:
        for part in item.split():
            name, sep, values = part.partition("=")
            if not sep or not name or not values:
                raise ConfigError("sweep", f"expected NAME=V1,V2,... (e.g. lr=1e-4,3e-4), got {part!r}")
            try:
                numbers = tuple(float(v) for v in values.split(","))
            except ValueError:
                raise ConfigError(
                    "sweep", f"values of {name!r} must be numbers separated by commas, got {values!r}"
                ) from None
            sweep.append((name.replace("-", "_"), numbers))
    return tuple(sweep)


def _format_sweep(sweep: SweepType) -> list[str]:
    return [f"{name}={','.join(f'{v:g}' for v in values)}" for name, values in sweep]


def _registry() -> tyro.constructors.ConstructorRegistry:
    registry = tyro.constructors.ConstructorRegistry()

    @registry.primitive_rule
    def sweep_rule(info: tyro.constructors.PrimitiveTypeInfo):
        if info.type != SweepType:
            return None
        return tyro.constructors.PrimitiveConstructorSpec(
            nargs="*",
            metavar="NAME=V1,V2",
            instance_from_str=parse_sweep,
            is_instance=lambda x: isinstance(x, tuple),
            str_from_instance=_format_sweep,
        )

    return registry


# ----------------------------------------------------------------------------------------------------
# Commands


@dataclasses.dataclass(frozen=True)
class TrainCommand:
    """Train recurrent agents (every sweep setting x every seed in one jitted program)."""

    config: Annotated[TrainConfig, tyro.conf.arg(name="")]
    algo: str = "ppo"
    """The learner (its options are listed below; see --algo NAME --help for another's)."""
    preset: Literal[tuple(PRESETS)] = "default"  # type: ignore[valid-type]
    """Start from this preset; every other option overrides it (its defaults show with --preset X --help)."""
    resume: str | None = None
    """Continue the run saved in this run directory from its newest intact checkpoint, with its config.json;
    hyperparameters (e.g. --lr) and host-loop options given next to it change (recorded in config.json)."""


@dataclasses.dataclass(frozen=True)
class EvalCommand:
    """Evaluate a run's latest checkpoint on fresh episodes (held-out tasks for meta-RL); writes RUN_DIR/eval.json."""

    run_dir: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="RUN_DIR")]
    """The run directory (runs/<env>-<memory>-<time>)."""
    episodes: int | None = None
    """Episodes per agent (default: the run's eval_episodes, or 32)."""
    policy: Literal["both", "greedy", "sampled"] = "both"
    """Greedy (mode) actions, sampled actions, or both."""
    seed: int = 0
    """Seed of the evaluation episodes."""


def _apply_aliases(argv: list[str]) -> list[str]:
    out = []
    for arg in argv:
        head, sep, tail = arg.partition("=")
        out.append(ARG_ALIASES.get(head, head) + sep + tail if head in ARG_ALIASES else arg)
    return out


def _preset_from_argv(argv: list[str]) -> tuple[str, dict[str, str]]:
    """The --preset value (and --algo, --env-id, --memory, which choose the option set and some presets'
    defaults), read before tyro so the preset's values become the defaults that --help shows and other
    options override."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default="default")
    pre.add_argument("--algo")
    pre.add_argument("--env-id")
    pre.add_argument("--memory")
    known, _ = pre.parse_known_args(argv)
    if known.preset not in PRESETS:
        raise ConfigError("preset", f"unknown preset {known.preset!r}; valid: {', '.join(sorted(PRESETS))}")
    if known.algo is not None:
        algorithms.get(known.algo)  # one-line error for an unknown name
    chosen = {
        k: v for k, v in (("algo", known.algo), ("env_id", known.env_id), ("memory", known.memory)) if v is not None
    }
    return known.preset, chosen


def _command_types(algo: str) -> tuple[type, type]:
    """(TrainCommand, TrainConfig) whose config's algorithm section is ``algo``'s own, so tyro lists that
    algorithm's options (TrainConfig's field is typed by the base class)."""
    section = algorithms.get(algo).config_type
    if section is type(TrainConfig().algorithm):
        return TrainCommand, TrainConfig
    config_type = dataclasses.make_dataclass(
        "TrainConfig",
        [("algorithm", section, dataclasses.field(default_factory=section))],
        bases=(TrainConfig,),
        frozen=True,
    )
    command_type = dataclasses.make_dataclass(
        "TrainCommand", [("config", Annotated[config_type, tyro.conf.arg(name="")])], bases=(TrainCommand,), frozen=True
    )
    return command_type, config_type


_BOX_CHARS = "".join(chr(c) for c in range(0x2500, 0x2580))  # the Unicode box-drawing block tyro draws with


def tyro_cli(cls, argv: list[str], **kwargs):
    """tyro.cli, with its boxed parse errors turned into one ConfigError line (help output unchanged)."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(cls, args=argv, **kwargs)
    except SystemExit as exc:
        text = captured.getvalue()
        if not exc.code:
            sys.stderr.write(text)
            raise
        # tyro draws a box: a title line, the message (wrapped over lines), a rule, then help text
        lines = [
            line.strip(_BOX_CHARS + " ")
            for line in text.splitlines()
            if line.strip(_BOX_CHARS + " ") or set(line.strip()) <= set("─│ ") and "─" in line
        ]
        title = next((line.strip() for line in lines if line), "invalid arguments")
        body = []
        for line in lines[lines.index(title) + 1 :] if title in lines else []:
            if not line:  # the rule under the message
                break
            body.append(line)
        message = " ".join(body) or title
        raise ConfigError(
            "arguments", f"{message.rstrip(':. ')} (see {kwargs.get('prog', 'shm-jax')} --help)"
        ) from None


def parse_train_args(argv: list[str], prog: str = "shm-jax") -> TrainCommand:
    """Parse training options; a bad option raises a one-line ConfigError before anything compiles."""
    argv = _apply_aliases(argv)
    preset, chosen = _preset_from_argv(argv)
    config = from_preset(preset, **chosen)
    command_type, config_type = _command_types(config.algo)
    # tyro turns a non-empty dict default into one flag per key with the prefix omitted, so two such dicts sharing a key
    # (--memory-kwargs and a SAC preset's --actor-memory-kwargs, both with hidden_size) would clash. The algorithm's
    # dicts are therefore parsed as KEY VALUE lists and keep the preset's value unless given.
    held = {
        f.name: getattr(config.algorithm, f.name)
        for f in dataclasses.fields(config.algorithm)
        if isinstance(getattr(config.algorithm, f.name), dict) and getattr(config.algorithm, f.name)
    }
    section = dataclasses.replace(config.algorithm, **{name: {} for name in held})
    typed = config_type(env=config.env, agent=config.agent, algorithm=section, run=config.run)
    default = command_type(config=typed, preset=preset, algo=config.algo)
    command = tyro_cli(
        command_type,
        argv,
        default=default,
        prog=prog,
        registry=_registry(),
        config=(tyro.conf.OmitArgPrefixes,),
        description=DESCRIPTION,
    )
    parsed = command.config
    kept = {name: value for name, value in held.items() if not getattr(parsed.algorithm, name)}
    algorithm = dataclasses.replace(parsed.algorithm, **kept)
    plain = TrainConfig(env=parsed.env, agent=parsed.agent, algorithm=algorithm, run=parsed.run)
    return TrainCommand(config=plain, algo=command.algo, preset=command.preset, resume=command.resume)


def _given_options(argv: list[str]) -> set[str]:
    """The option names written on the command line (``--lr 1e-3``, ``--lr=1e-3``, ``--no-tensorboard``)."""
    names = field_names(_preset_from_argv(argv)[1].get("algo", TrainConfig().algo))
    flags = {f"--{name.replace('_', '-')}": name for name in names}
    flags.update({f"--no-{name.replace('_', '-')}": name for name in names})
    return {flags[arg.split("=")[0]] for arg in _apply_aliases(argv) if arg.split("=")[0] in flags}


def resume_config(command: TrainCommand, argv: list[str]) -> tuple[TrainConfig, dict[str, tuple]]:
    """The saved config of ``--resume RUN`` with the options given next to it: only hyperparameters and host-loop
    settings may change (ConfigError for anything that shapes the saved state). Returns (config, {name: (old, new)})."""
    saved = rundir.load_config(command.resume, purpose="resume")
    if "--preset" in {arg.split("=")[0] for arg in argv}:
        raise ConfigError("preset", "cannot be combined with --resume (the run keeps its saved config)")
    wanted = {name: flat_view(command.config)[name] for name in sorted(_given_options(argv))}
    swept = {name for name, _ in saved.run.sweep}
    allowed = resumable(saved.algo)
    for name in wanted:
        if name in swept:
            raise ConfigError(name, "is swept in this run; it cannot be changed on --resume")
        if name not in allowed:
            raise ConfigError(
                name,
                f"cannot change on --resume (the saved state depends on it); options that can: {', '.join(allowed)}",
            )
    old = flat_view(saved)
    changes = {name: (old[name], value) for name, value in wanted.items() if value != old[name]}
    return validate(with_overrides(saved, **{name: new for name, (_, new) in changes.items()})), changes
