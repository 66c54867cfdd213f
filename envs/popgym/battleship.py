"""Battleship with the board hidden (original popgym ``popgym/envs/battleship.py``).

The agent fires at one cell per step and only hears "new hit" (1) or not (0). Four ships of lengths
2, 3, 3, 4 (12 cells) hide on a B x B board. Ids: BattleshipEasy / Medium / Hard (B = 8 / 10 / 12).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from shm_jax.envs.registry import register
from shm_jax.envs.sampling import uniform_true_cell
from shm_jax.envs.spaces import MultiDiscrete


@struct.dataclass
class EnvState(environment.EnvState):
    """board: bool[B, B] ship cells; guesses: bool[B, B] cells fired at; hits: int32 new hits so far;
    time: int32 steps taken this episode."""

    board: jax.Array
    guesses: jax.Array
    hits: jax.Array
    time: jax.Array


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 64


class Battleship(environment.Environment[EnvState, EnvParams]):
    """Hidden-board Battleship, original popgym semantics.

    - Action: ``MultiDiscrete([B, B])`` = (row, column), int32[2]. Out-of-range components are
      CLIPPED to [0, B-1].
    - Observation: int32 scalar in Discrete(2): 1 if this shot was a new hit, else 0 (re-shooting a
      hit cell counts as a miss); 0 at reset.
    - Reward: +1/12 on a new hit, -1/(L - 12) otherwise, L = max_steps_in_episode (B^2 by default, as
      the original ties both to the board); an all-hit episode returns exactly 1.
    - Terminated once all 12 ship cells are hit; truncated (``is_truncated``) after B^2 steps.
    - Ship placement: each ship in turn uniformly over the straight, in-bounds, non-overlapping
      placements given the ships already placed (the original's rejection sampler has the same law).
    - ``info["success"]``: all ships sunk.
    """

    def __init__(self, board_size: int = 10, ship_sizes: tuple[int, ...] = (2, 3, 3, 4)):
        super().__init__()
        if board_size < max(ship_sizes):
            raise ValueError(f"board_size: must be >= the longest ship {max(ship_sizes)}, got {board_size}")
        self.board_size = int(board_size)
        self.ship_sizes = tuple(int(s) for s in ship_sizes)
        self.needed_hits = sum(self.ship_sizes)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.board_size**2)

    def _place_ships(self, key: jax.Array) -> jax.Array:
        """bool[B, B] board with each ship placed uniformly among the valid placements left.

        A placement is (direction, row, col): the ship covers ``size`` cells from (row, col) going
        right (direction 0) or down (direction 1). Windowed sums test overlap in O(B^2) per ship.
        """
        b = self.board_size
        rows = jnp.arange(b)[:, None]
        cols = jnp.arange(b)[None, :]
        occupied = jnp.zeros((b, b), jnp.int32)
        for key_ship, size in zip(jax.random.split(key, len(self.ship_sizes)), self.ship_sizes):
            padded = jnp.pad(occupied, ((0, size), (0, size)), constant_values=1)  # off-board = taken
            right = sum(padded[:b, k : k + b] for k in range(size))
            down = sum(padded[k : k + b, :b] for k in range(size))
            # a 1-cell ship has one placement per cell, not two
            valid = jnp.stack([right == 0, (down == 0) & (size > 1)])  # bool[2, B, B]
            # index (direction * B + row, col) of the uniformly chosen placement; searched row by row
            # (see envs/sampling.py: a flat search over 2B^2 entries made resets cost more than steps)
            line, col = uniform_true_cell(jax.random.uniform(key_ship), valid.reshape(2 * b, b))
            direction, row = line // b, line % b
            horizontal = (rows == row) & (cols >= col) & (cols < col + size)
            vertical = (cols == col) & (rows >= row) & (rows < row + size)
            occupied = occupied + jnp.where(direction == 0, horizontal, vertical).astype(jnp.int32)
        return occupied > 0

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        board = self._place_ships(key)
        state = EnvState(
            board=board,
            guesses=jnp.zeros_like(board),
            hits=jnp.int32(0),
            time=jnp.int32(0),
        )
        return jnp.int32(0), state

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        row, col = self._clip_action(action)
        guessed = state.guesses[row, col]
        new_hit = state.board[row, col] & ~guessed
        hits = state.hits + new_hit.astype(jnp.int32)
        state = state.replace(
            # True, computed from the read so that XLA reads before writing in place (see labyrinth._move).
            guesses=state.guesses.at[row, col].set(guessed | ~guessed),
            hits=hits,
            time=state.time + 1,
        )
        miss_penalty = -1.0 / (params.max_steps_in_episode - self.needed_hits)
        reward = jnp.where(new_hit, 1.0 / self.needed_hits, miss_penalty).astype(jnp.float32)
        terminated = hits == self.needed_hits
        obs = new_hit.astype(jnp.int32)
        return obs, state, reward, terminated, {"success": terminated}

    def _clip_action(self, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        action = jnp.clip(jnp.asarray(action, jnp.int32).reshape(2), 0, self.board_size - 1)
        return action[0], action[1]

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.time >= params.max_steps_in_episode

    @property
    def name(self) -> str:
        return "Battleship"

    @property
    def num_actions(self) -> int:
        return self.board_size**2

    def action_space(self, params: EnvParams | None = None) -> MultiDiscrete:
        return MultiDiscrete((self.board_size, self.board_size))

    def observation_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(2)


for _level, _size in (("Easy", 8), ("Medium", 10), ("Hard", 12)):
    register(f"Battleship{_level}", Battleship, needs_prev_action=True, family="popgym", board_size=_size)
