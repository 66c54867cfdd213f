"""MineSweeper with the board hidden (original popgym ``popgym/envs/minesweeper.py``, after PR #38).

The agent clicks one cell per step and hears how many mines lie in the clicked cell's 3 x 3
neighbourhood. Ids: MinesweeperEasy / Medium / Hard (popjym) with aliases MineSweeperEasy / ... (popgym):
4x4 with 2 mines, 6x6 with 6, 8x8 with 10.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from shm_jax.envs.registry import register
from shm_jax.envs.spaces import MultiDiscrete

DIFFICULTIES = {"easy": ((4, 4), 2), "medium": ((6, 6), 6), "hard": ((8, 8), 10)}


@struct.dataclass
class EnvState(environment.EnvState):
    """mines: bool[R, C]; viewed: bool[R, C] clear cells already revealed; neighbours: int32[R, C]
    mines in each cell's 3 x 3 neighbourhood (itself included); hit_mine: bool a mine was clicked;
    time: int32 steps taken this episode."""

    mines: jax.Array
    viewed: jax.Array
    neighbours: jax.Array
    hit_mine: jax.Array
    time: jax.Array


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 14


def neighbour_counts(mines: jax.Array) -> jax.Array:
    """int32[R, C]: number of mines in the 3 x 3 block centred on each cell (the cell included)."""
    padded = jnp.pad(mines.astype(jnp.int32), 1)
    rows, cols = mines.shape
    return sum(padded[i : i + rows, j : j + cols] for i in range(3) for j in range(3))


class MineSweeper(environment.Environment[EnvState, EnvParams]):
    """Hidden-board MineSweeper, original popgym semantics (HEAD, after PR #38).

    - Action: ``MultiDiscrete([R, C])`` = (row, column), int32[2]. Out-of-range components are
      CLIPPED to the board.
    - Observation: int32 scalar in Discrete(min(mines + 1, 10)): mines in the 3 x 3 neighbourhood of
      the clicked cell (the cell itself included, so a clicked mine counts); 0 at reset.
    - Reward, with M = R*C - mines: +1/M for revealing a new clear cell; -0.5 - 1/M for a mine
      (terminates); -0.5/(M - 2) for re-clicking a revealed cell. A perfect game returns exactly 1 in M steps.
    - Terminated on a mine or a win (no clear cell left); truncated (``is_truncated``) at M steps when
      not terminated. Unlike popjym, a win ends the episode.
    - ``info["success"]``: the board was cleared.
    """

    def __init__(self, difficulty: str = "easy"):
        super().__init__()
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty: must be one of {sorted(DIFFICULTIES)}, got {difficulty!r}")
        self.difficulty = difficulty
        self.dims, self.num_mines = DIFFICULTIES[difficulty]
        self.num_clear = self.dims[0] * self.dims[1] - self.num_mines

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.num_clear)

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        num_cells = self.dims[0] * self.dims[1]
        mine_cells = jax.random.permutation(key, num_cells)[: self.num_mines]
        mines = jnp.zeros(num_cells, bool).at[mine_cells].set(True).reshape(self.dims)
        return jnp.int32(0), self.state_from_mines(mines)

    def state_from_mines(self, mines: jax.Array) -> EnvState:
        """A fresh episode's state for a given bool[R, C] mine layout (used by reset and tests)."""
        mines = jnp.asarray(mines, bool)
        return EnvState(
            mines=mines,
            viewed=jnp.zeros_like(mines),
            neighbours=neighbour_counts(mines),
            hit_mine=jnp.bool_(False),
            time=jnp.int32(0),
        )

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        action = jnp.asarray(action, jnp.int32).reshape(2)
        row = jnp.clip(action[0], 0, self.dims[0] - 1)
        col = jnp.clip(action[1], 0, self.dims[1] - 1)
        is_mine = state.mines[row, col]
        seen = state.viewed[row, col]
        success_scale = 1.0 / self.num_clear
        reward = jnp.where(
            is_mine,
            -0.5 - success_scale,
            jnp.where(seen, -0.5 / (self.num_clear - 2), success_scale),
        ).astype(jnp.float32)
        viewed = state.viewed.at[row, col].set(state.viewed[row, col] | ~is_mine)
        won = jnp.all(viewed | state.mines)
        state = state.replace(viewed=viewed, hit_mine=is_mine, time=state.time + 1)
        obs = state.neighbours[row, col]
        return obs, state, reward, is_mine | won, {"success": won & ~is_mine}

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        terminated = state.hit_mine | jnp.all(state.viewed | state.mines)
        return (state.time >= params.max_steps_in_episode) & ~terminated

    @property
    def name(self) -> str:
        return "MineSweeper"

    @property
    def num_actions(self) -> int:
        return self.dims[0] * self.dims[1]

    def action_space(self, params: EnvParams | None = None) -> MultiDiscrete:
        return MultiDiscrete(self.dims)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(min(self.num_mines + 1, 10))


for _level in ("Easy", "Medium", "Hard"):
    register(
        f"Minesweeper{_level}",
        MineSweeper,
        aliases=(f"MineSweeper{_level}",),
        needs_prev_action=True,
        family="popgym",
        difficulty=_level.lower(),
    )
