"""Labyrinths (original popgym ``labyrinth_escape.py``, ``labyrinth_explore.py``, ``core/maze.py``).

The agent walks a procedurally generated perfect maze (see ``envs.popgym.maze``) and sees only the
3 x 3 block around itself plus its last action. Ids: LabyrinthEscape{Easy,Medium,Hard} and
LabyrinthExplore{Easy,Medium,Hard}, maze_dims 10x10 / 14x14 / 18x18 (grids 11 / 15 / 19 cells wide),
episode_length 1024. The original warns that these mazes are solvable without memory.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from shm_jax.envs.popgym.maze import FREE, WALL, hunt_and_kill, outer_entrances
from shm_jax.envs.registry import register_levels
from shm_jax.envs.spaces import MultiDiscrete

# cell codes (popgym Cell) and actions (popgym Actions)
START, GOAL = 2, 3
NUM_CELL_CODES = 5  # FREE, OBSTACLE, START, GOAL, HIDDEN
NO_ACTION = 4  # shown at reset
_MOVES = ((0, -1), (0, 1), (-1, 0), (1, 0))  # left, right, up, down as (d_row, d_col)


@struct.dataclass
class EnvState(environment.EnvState):
    """grid: int32[H, W] cell codes; position: int32[2] (row, col); explored: bool[H, W] cells
    visited; last_action: int32 (4 = none yet); time: int32 steps taken."""

    grid: jax.Array
    position: jax.Array
    explored: jax.Array
    last_action: jax.Array
    time: jax.Array


@struct.dataclass
class ExploreState(EnvState):
    """EnvState plus two counts fixed or kept at reset, so a step reads no whole grid: num_free: int32, cells
    coded FREE (the reward's 1/F); to_visit: int32, non-wall cells not explored yet (done when 0)."""

    num_free: jax.Array
    to_visit: jax.Array


@struct.dataclass
class EnvParams(environment.EnvParams):
    """max_steps_in_episode: the original's episode_length L: each step costs 1/L and, as in the
    original (``curr_step == episode_length - 1``), episodes are truncated after L - 1 steps."""

    max_steps_in_episode: int = 1024


class Labyrinth(environment.Environment[EnvState, EnvParams]):
    """Shared maze mechanics (popgym ``MazeEnv``).

    - Action: Discrete(4): 0 left, 1 right, 2 up, 3 down. Out-of-range actions are CLIPPED to [0, 3].
      Moves into walls, or off the grid, leave the agent in place.
    - Observation: int32[10] in ``MultiDiscrete([5] * 10)``: the 3 x 3 cell codes around the agent
      (0 free, 1 wall, 2 start, 3 goal) in row-major order, walls beyond the grid, then the last action
      (4 at reset). The original slices the view and pads it at the bottom/right, so on the top row or
      left column of the grid the view is shifted by one (the agent is not in the centre); that is
      reproduced by default, and ``centered_view=True`` gives the centred view instead.
    - Truncated (``is_truncated``) after L - 1 steps, as in the original.
    """

    def __init__(self, maze_dims: tuple[int, int] = (10, 10), centered_view: bool = False):
        super().__init__()
        maze_dims = tuple(int(d) for d in maze_dims)
        if len(maze_dims) != 2 or any(d < 2 or d % 2 for d in maze_dims):
            raise ValueError(f"maze_dims: must be two even integers >= 2, got {maze_dims}")
        self.maze_dims = maze_dims
        self.cells = (maze_dims[0] // 2, maze_dims[1] // 2)
        self.grid_shape = (2 * self.cells[0] + 1, 2 * self.cells[1] + 1)
        self.centered_view = bool(centered_view)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def new_maze(self, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """grid int32[H, W] (walls/free), start int32[2], end int32[2]."""
        key_maze, key_doors = jax.random.split(key)
        grid = hunt_and_kill(key_maze, *self.cells)
        start, end = outer_entrances(key_doors, *self.cells)
        return grid, start, end

    def state_from_maze(self, grid: jax.Array, start: jax.Array, end: jax.Array) -> EnvState:
        """A fresh episode on a given maze: the start cell marked START (and the end GOAL for Escape)."""
        raise NotImplementedError

    def _fresh_state(self, grid: jax.Array, start: jax.Array) -> EnvState:
        grid = jnp.asarray(grid, jnp.int32).at[start[0], start[1]].set(START)
        explored = jnp.zeros(self.grid_shape, bool).at[start[0], start[1]].set(True)
        return EnvState(
            grid=grid,
            position=jnp.asarray(start, jnp.int32),
            explored=explored,
            last_action=jnp.int32(NO_ACTION),
            time=jnp.int32(0),
        )

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        state = self.state_from_maze(*self.new_maze(key))
        return self.observe(key, state, None, params), state

    def observe(self, key, state: EnvState, action, params: EnvParams) -> jax.Array:
        """int32[10]: the 3 x 3 view (row-major) and the last action."""
        h, w = self.grid_shape
        offsets = jnp.arange(3)
        if self.centered_view:
            rows, cols = state.position[0] - 1 + offsets, state.position[1] - 1 + offsets
        else:  # the original's slice-then-pad view
            rows = jnp.maximum(state.position[0] - 1, 0) + offsets
            cols = jnp.maximum(state.position[1] - 1, 0) + offsets
        row_ok = (rows >= 0) & (rows <= jnp.minimum(state.position[0] + 1, h - 1))
        col_ok = (cols >= 0) & (cols <= jnp.minimum(state.position[1] + 1, w - 1))
        cells = state.grid[jnp.clip(rows, 0, h - 1)[:, None], jnp.clip(cols, 0, w - 1)[None, :]]
        view = jnp.where(row_ok[:, None] & col_ok[None, :], cells, WALL)
        return jnp.concatenate([view.reshape(9), state.last_action[None]]).astype(jnp.int32)

    def _target(self, state: EnvState, action: jax.Array) -> jax.Array:
        """int32[2]: where the action leads (clipped to the grid; walls block)."""
        h, w = self.grid_shape
        step = jnp.array(_MOVES)[action]
        target = jnp.clip(state.position + step, 0, jnp.array([h - 1, w - 1]))
        blocked = state.grid[target[0], target[1]] == WALL
        return jnp.where(blocked, state.position, target)

    def _move(self, state: EnvState, action) -> tuple[EnvState, jax.Array]:
        """Apply the move; returns the new state and whether the cell entered was unexplored."""
        action = jnp.clip(jnp.asarray(action, jnp.int32).reshape(()), 0, 3)
        target = self._target(state, action)
        visited = state.explored[target[0], target[1]]
        new_cell = ~visited
        state = state.replace(
            position=target,
            # The value written is True, computed from the read so that XLA reads before writing in place
            # (a constant True would make it copy the whole grid every step to keep the read's input).
            explored=state.explored.at[target[0], target[1]].set(visited | new_cell),
            last_action=action,
            time=state.time + 1,
        )
        return state, new_cell

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.time >= params.max_steps_in_episode - 1

    @property
    def num_actions(self) -> int:
        return 4

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def observation_space(self, params: EnvParams | None = None) -> MultiDiscrete:
        return MultiDiscrete((NUM_CELL_CODES,) * 9 + (NO_ACTION + 1,))


class LabyrinthEscape(Labyrinth):
    """Find the exit (GOAL, on the outer wall opposite the start).

    Reward -1/L per step, plus 1 on reaching the exit, which terminates the episode
    (``info["success"]``). Mechanics and observation as in ``Labyrinth``.
    """

    def state_from_maze(self, grid, start, end) -> EnvState:
        state = self._fresh_state(grid, start)
        return state.replace(grid=state.grid.at[end[0], end[1]].set(GOAL))

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        state, _ = self._move(state, action)
        at_goal = state.grid[state.position[0], state.position[1]] == GOAL
        reward = (-1.0 / params.max_steps_in_episode + at_goal.astype(jnp.float32)).astype(jnp.float32)
        return self.observe(key, state, action, params), state, reward, at_goal, {"success": at_goal}


class LabyrinthExplore(Labyrinth):
    """Visit every free cell (the exit stays walled).

    Reward 1/F for entering an unvisited cell (F = free cells other than the start, so a full
    exploration earns 1), -1/L for any other step (revisits and bumps into walls). Terminated once
    every non-wall cell is visited (``info["success"]``). Mechanics and observation as in ``Labyrinth``.
    """

    def state_from_maze(self, grid, start, end) -> ExploreState:
        state = self._fresh_state(grid, start)
        # Only non-wall cells are ever explored, so "every non-wall cell explored" is "none left to visit".
        to_visit = jnp.sum(state.grid != WALL, dtype=jnp.int32) - jnp.sum(state.explored, dtype=jnp.int32)
        return ExploreState(**vars(state), num_free=jnp.sum(state.grid == FREE, dtype=jnp.int32), to_visit=to_visit)

    def step_env(self, key, state: ExploreState, action, params: EnvParams):
        state, new_cell = self._move(state, action)
        reward = jnp.where(new_cell, 1.0 / state.num_free, -1.0 / params.max_steps_in_episode).astype(jnp.float32)
        state = state.replace(to_visit=state.to_visit - new_cell.astype(jnp.int32))
        done = state.to_visit == 0
        return self.observe(key, state, action, params), state, reward, done, {"success": done}


# the original MazeEnv declares obs_requires_prev_action=True (its observation already ends in the last action;
# the wrapper adds the episode-start flag)
for _game in (LabyrinthEscape, LabyrinthExplore):
    register_levels(_game.__name__, _game, needs_prev_action=True, maze_dims=((10, 10), (14, 14), (18, 18)))
