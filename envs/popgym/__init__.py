"""The POPGym suite (original popgym semantics) as gymnax 1.0 environments.

Importing this package registers every id. One module per environment family.
"""

from shm_jax.envs.popgym import (  # noqa: F401  (imported for their register() calls)
    autoencode,
    battleship,
    cartpole,
    concentration,
    count_recall,
    higher_lower,
    labyrinth,
    minesweeper,
    multiarmed_bandit,
    pendulum,
    repeat_first,
    repeat_previous,
)
