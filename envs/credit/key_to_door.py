"""Key-to-Door (SHM's ``KeytoDoor-SR-v0``, the TVT pycolab task, synthetic-returns variant).

Explore (``explore_len`` = 10 actions): a walled room split by a wall with a 3-cell doorway (row 3, cols 4-6);
the key is uniform over the 10 cells rows 1-2 x cols 3-7, the player start uniform over the 10 cells
rows 4-5 x cols 3-7 (independent). Stepping onto the key picks it up (``has_key``, the key disappears) and a
white indicator is drawn at board cell (0, 5) for exactly that one frame (it is in view: the player is then
on row 1 or 2). The longest key path is 8 moves.
Distractor (``distractor_len`` = D): the shared apple room; the key flag is carried through it.
Reward (``reward_len`` = 3): a small room, player start (3, 5), door at (1, 5) visible from the start. The door
is impassable without the key; with the key, moving onto it (North, North) gives +``final_reward`` (10) once
and uses up the key (the door then stays open). The door is drawn above the player.
Success = the door was opened (requires the key from the explore chapter). Return = apples + 10 * success.

Episode length T = 10 + D + 3: 263 (D = 250), 513 (D = 500). Observation uint8[75] (egocentric 5x5 RGB, CHW),
Discrete(4) N/S/W/E (clipped). See ``envs.credit.story`` for the timing rules.

Registered ids: ``KeyToDoor250``, ``KeyToDoor500``, ``KeyToDoor-Short`` (D = 30, T = 43).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from shm_jax.envs.credit import board
from shm_jax.envs.credit.story import ChapterEnv, CreditParams, CreditState, check_lengths
from shm_jax.envs.registry import register

EXPLORE_ART = (
    "  #######  ",
    "  #kkkkk#  ",
    "  #kkkkk#  ",
    "  ##   ##  ",
    "  #+++++#  ",
    "  #+++++#  ",
    "  #######  ",
)
REWARD_ART = (
    "           ",
    "   ##d##   ",
    "   #   #   ",
    "   # + #   ",
    "   #   #   ",
    "   #####   ",
    "           ",
)
KEY_CELLS = board.cells_of(EXPLORE_ART, "k")  # int32[10, 2]
START_CELLS = board.cells_of(EXPLORE_ART, "+")  # int32[10, 2]
DOOR_CELL = board.cells_of(REWARD_ART, "d")[0]  # (1, 5)
INDICATOR_CELL = np.array([0, 5], np.int32)


class KeyToDoor(ChapterEnv):
    """Key-to-Door; constructor: explore_len=10, distractor_len=250, reward_len=3, final_reward=10.0."""

    LAYOUTS = np.stack(
        [board.wall_codes(EXPLORE_ART), board.wall_codes(board.DISTRACTOR_ART), board.wall_codes(REWARD_ART)]
    )
    REWARD_START = tuple(board.cells_of(REWARD_ART, "+")[0])

    def __init__(
        self, explore_len: int = 10, distractor_len: int = 250, reward_len: int = 3, final_reward: float = 10.0
    ):
        check_lengths(explore_len, distractor_len, reward_len)
        self._defaults = dict(
            explore_len=explore_len, distractor_len=distractor_len, reward_len=reward_len, final_reward=final_reward
        )

    @property
    def default_params(self) -> CreditParams:
        return CreditParams(**self._defaults)

    @property
    def name(self) -> str:
        return "KeyToDoor"

    def _reset_task(self, key, params) -> dict:
        key_key, key_start = jax.random.split(key)
        return dict(
            key_cell=jnp.asarray(KEY_CELLS)[jax.random.randint(key_key, (), 0, len(KEY_CELLS))],
            player=jnp.asarray(START_CELLS)[jax.random.randint(key_start, (), 0, len(START_CELLS))],
        )

    def _blocked(self, state: CreditState, params) -> jax.Array:
        door_closed = (state.chapter == board.REWARD) & ~(state.has_key | state.door_used)
        blocked = super()._blocked(state, params)
        return blocked | (board.cell_mask(jnp.asarray(DOOR_CELL)) & door_closed)

    def _task_objects(self, state: CreditState, params) -> tuple[CreditState, jax.Array]:
        pick = (state.chapter == board.EXPLORE) & (state.key_pickup_frame < 0) & board.at(state.player, state.key_cell)
        opened = (state.chapter == board.REWARD) & state.has_key & board.at(state.player, DOOR_CELL)
        state = state.replace(
            has_key=(state.has_key | pick) & ~opened,
            key_pickup_frame=jnp.where(pick, state.chapter_frame, state.key_pickup_frame).astype(jnp.int32),
            door_used=state.door_used | opened,
            solved=state.solved | opened,
        )
        return state, jnp.where(opened, params.final_reward, 0.0)

    def _objects(self, state: CreditState, params) -> list:
        explore = state.chapter == board.EXPLORE
        indicator = explore & (state.key_pickup_frame == state.chapter_frame)  # only on the pickup frame
        return [
            (state.key_cell, board.KEY, explore & (state.key_pickup_frame < 0)),
            (jnp.asarray(INDICATOR_CELL), board.INDICATOR, indicator),
            (None, board.PLAYER, True),
            (jnp.asarray(DOOR_CELL), board.DOOR, state.chapter == board.REWARD),
        ]  # above the player


for _id, _d, _aliases in (
    ("KeyToDoor250", 250, ("KeytoDoor250", "KeyToDoor-250")),
    ("KeyToDoor500", 500, ("KeytoDoor500", "KeyToDoor-500")),
    ("KeyToDoor-Short", 30, ()),
):
    register(_id, KeyToDoor, aliases=_aliases, needs_prev_action=False, family="credit", distractor_len=_d)
