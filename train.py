"""Train (or evaluate) a recurrent agent: ``python train.py --help``. The same command as the installed ``shm-jax``
and ``python -m shm_jax`` (``shm_jax/cli.py``), kept here so a checkout trains with one command:

  python train.py                                  # the default preset (learns in minutes on a laptop CPU)
  python train.py --env AutoencodeEasy --memory shm --num-seeds 4
  python train.py eval runs/<run> --episodes 64    # (or: evaluate)
"""

import sys

from shm_jax import cli


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, prog="python train.py")


if __name__ == "__main__":
    sys.exit(main())
