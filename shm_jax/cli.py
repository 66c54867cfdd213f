"""The command line: ``shm-jax`` (console script), ``python -m shm_jax`` and, in a checkout, ``python train.py``.

  shm-jax [train] [OPTIONS]            train (``train`` may be left out: the bare form is the training command)
  shm-jax evaluate RUN_DIR [OPTIONS]   evaluate a saved run (``eval`` is the same command)
  shm-jax --version

Launch options of a distributed job (``--distributed``, ``--coordinator-address`` ...: docs/distributed.md) are taken
out of the arguments and the job is joined BEFORE the parser and the trainer are imported: importing gymnax (hence
the config) starts JAX's backend, after which ``jax.distributed.initialize`` is too late. This module therefore
imports only the standard library and ``shm_jax`` (no JAX) at the top, and the rest inside :func:`main`.
"""

from __future__ import annotations

import sys

from shm_jax import __version__
from shm_jax.options import ConfigError

COMMANDS = {"train": "train", "evaluate": "evaluate", "eval": "evaluate"}


def split_command(argv: list[str]) -> tuple[str, list[str]]:
    """("train" | "evaluate", the remaining arguments): a leading ``train``, ``evaluate`` or ``eval`` names the
    command; anything else is the bare form, the training command (it takes no positional argument)."""
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]], argv[1:]
    return "train", argv


def main(argv: list[str] | None = None, prog: str = "shm-jax") -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit code. ``prog`` is how the user
    called it (shown in ``--help`` and in error messages)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--version"], ["-V"]):
        print(f"shm-jax {__version__}")
        return 0
    command, argv = split_command(argv)
    # Imported here, not at the top: distributed imports jax (no backend yet), the commands import the trainer
    # (gymnax starts the backend), which must come after the job is joined.
    from shm_jax.training import distributed

    try:
        launch, argv = distributed.split_launch_args(argv)  # launch options: not part of the run's config
        distributed.initialize(launch)
    except ConfigError as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    from shm_jax import cli_run

    return cli_run.run(command, argv, prog)
