"""``python -m shm_jax ...``: the command line (``shm_jax.cli``)."""

import sys

from shm_jax.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m shm_jax"))
