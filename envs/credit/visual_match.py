"""Visual Match (SHM's passive ``VisualMatch-SR-v0``, the TVT pycolab task).

Explore (``explore_len`` = 15 actions): the player stands at (2, 5) inside a 3x3 ring; one of the 8 ring cells
(uniform) shows the target colour, the other 7 are walls; nothing can move, so the view is constant.
Distractor (``distractor_len`` = D): the shared apple room (+``apple_reward`` per apple, 21-frame respawn).
Reward (``reward_len`` = 10): a room with three coloured doors in row 1 at columns 2, 5, 8, player start (5, 5)
(4 moves to the middle door, 7 to the side ones). Stepping onto any door makes all three vanish (the cells
become floor); +``final_reward`` (10) if it had the target colour. One choice per episode; the chapter still
runs its full length. Success = the target door was touched; a uniformly random door choice succeeds 1/3.

Colours: ``params.door_colours`` int32[3] gives the colour (0 red, 1 green, 2 blue) of the doors at columns
2, 5, 8. The original draws this layout once per environment instance (unseeded); here it is a parameter,
(0, 1, 2) by default, fixed for every episode of a params value (set it from your own seed to vary it, e.g.
``params.replace(door_colours=jax.random.permutation(key, 3))``; it must be a permutation of 0..2).
The target door is uniform per episode; the explore chapter shows ``door_colours[target]``.

Episode length T = 15 + D + 10: 275 (D = 250), 525 (D = 500). Observation uint8[75] (egocentric 5x5 RGB,
CHW), Discrete(4) N/S/W/E (clipped). See ``envs.credit.story`` for the timing rules.

Registered ids: ``VisualMatch250``, ``VisualMatch500``, ``VisualMatch-Short`` (D = 30, T = 55).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from shm_jax.envs.credit import board
from shm_jax.envs.credit.story import ChapterEnv, CreditParams, CreditState, check_lengths
from shm_jax.envs.registry import register

EXPLORE_ART = (
    "           ",
    "    ###    ",
    "    # #    ",
    "    ###    ",
    "           ",
    "           ",
    "           ",
)
REWARD_ART = (
    "###########",
    "# b  c  e #",
    "#         #",
    "#         #",
    "####   ####",
    "   # + #   ",
    "   #####   ",
)
EXPLORE_START = (2, 5)
RING_CELLS = board.cells_of(EXPLORE_ART, "#")  # int32[8, 2], row-major
DOOR_CELLS = np.concatenate([board.cells_of(REWARD_ART, c) for c in "bce"])  # int32[3, 2]: cols 2, 5, 8


@struct.dataclass
class VisualMatchParams(CreditParams):
    """CreditParams plus door_colours: int32[3], colour index (0 red, 1 green, 2 blue) of each door."""

    door_colours: Any = None


class VisualMatch(ChapterEnv):
    """Visual Match; constructor: explore_len=15, distractor_len=250, reward_len=10, final_reward=10.0."""

    LAYOUTS = np.stack(
        [board.wall_codes(EXPLORE_ART), board.wall_codes(board.DISTRACTOR_ART), board.wall_codes(REWARD_ART)]
    )
    REWARD_START = tuple(board.cells_of(REWARD_ART, "+")[0])

    def __init__(
        self, explore_len: int = 15, distractor_len: int = 250, reward_len: int = 10, final_reward: float = 10.0
    ):
        check_lengths(explore_len, distractor_len, reward_len)
        self._defaults = dict(
            explore_len=explore_len, distractor_len=distractor_len, reward_len=reward_len, final_reward=final_reward
        )

    @property
    def default_params(self) -> VisualMatchParams:
        return VisualMatchParams(door_colours=jnp.arange(3, dtype=jnp.int32), **self._defaults)

    @property
    def name(self) -> str:
        return "VisualMatch"

    def _reset_task(self, key, params) -> dict:
        key_target, key_cell = jax.random.split(key)
        return dict(
            player=jnp.asarray(EXPLORE_START, jnp.int32),
            target=jax.random.randint(key_target, (), 0, 3, jnp.int32),
            colour_cell=jnp.asarray(RING_CELLS)[jax.random.randint(key_cell, (), 0, len(RING_CELLS))],
        )

    def _task_objects(self, state: CreditState, params) -> tuple[CreditState, jax.Array]:
        on_door = jnp.all(state.player[None, :] == jnp.asarray(DOOR_CELLS), axis=1)  # bool[3]
        touched = (state.chapter == board.REWARD) & ~state.door_used & on_door.any()
        correct = touched & on_door[state.target]
        state = state.replace(door_used=state.door_used | touched, solved=state.solved | correct)
        return state, jnp.where(correct, params.final_reward, 0.0)

    def colour_codes(self, params) -> jax.Array:
        """int32[3]: the cell code (RED/GREEN/BLUE) of each door."""
        return board.RED + jnp.asarray(params.door_colours, jnp.int32)

    def _objects(self, state: CreditState, params) -> list:
        colours = self.colour_codes(params)
        doors_shown = (state.chapter == board.REWARD) & ~state.door_used
        return (
            [(state.colour_cell, colours[state.target], state.chapter == board.EXPLORE), (None, board.PLAYER, True)]
            # drawn above the player (pycolab z-order), though never under it while shown
            + [(jnp.asarray(DOOR_CELLS[i]), colours[i], doors_shown) for i in range(3)]
        )


_SHORT_DISTRACTOR = 30
for _id, _d, _aliases in (
    ("VisualMatch250", 250, ("VisualMatch-250",)),
    ("VisualMatch500", 500, ("VisualMatch-500",)),
    ("VisualMatch-Short", _SHORT_DISTRACTOR, ()),
):
    register(_id, VisualMatch, aliases=_aliases, needs_prev_action=False, family="credit", distractor_len=_d)
