"""Maze generation in JAX: the kind of maze the original popgym labyrinths get from mazelib.

popgym builds ``mazelib.Maze`` with ``HuntAndKill(h, w)`` (default random hunt order) and then
``generate_entrances(start_outer=True)``. That gives a (2h+1) x (2w+1) grid of walls (1) and free
cells (0): cells sit at odd (row, col), a spanning tree of passages joins them (a "perfect" maze,
long winding corridors from the random walks), and two entrances on opposite outer walls at odd
coordinates.

Hunt-and-kill here: random-walk from a random cell, carving to a uniformly chosen unvisited
neighbour, until stuck; then resume from a cell drawn uniformly among the visited cells that still
have an unvisited neighbour. mazelib's random hunt draws cells uniformly from the whole maze and
ignores the draws that cannot resume, which picks the same resume cell in law; it gives up after
(2h+1)(2w+1) draws (leaving cells unvisited with tiny probability), which this version never does.
The loop has exactly h*w - 1 carving steps, so it is a fixed-length ``fori_loop``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from shm_jax.envs.sampling import uniform_true_cell, uniform_true_index

WALL = 1
FREE = 0

# (d_row, d_col) of the four neighbours in cell coordinates
_OFFSETS = ((0, -1), (0, 1), (-1, 0), (1, 0))


def _unvisited_neighbours(visited: jax.Array) -> jax.Array:
    """bool[4, h, w]: for each cell, whether its neighbour in each direction exists and is unvisited."""
    padded = jnp.pad(~visited, 1, constant_values=False)
    h, w = visited.shape
    return jnp.stack([padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w] for dr, dc in _OFFSETS])


def hunt_and_kill(key: jax.Array, cells_h: int, cells_w: int) -> jax.Array:
    """A perfect maze. Returns int32[2*cells_h + 1, 2*cells_w + 1] with WALL=1, FREE=0.

    The loop keeps cell masks and the open passages between horizontally / vertically adjacent
    cells, updated with elementwise ``where`` (no scatters: cheap under vmap, and the auto-reset
    runs this on every step); the grid is assembled once at the end.
    """
    n_cells = cells_h * cells_w
    key_start, key_draws = jax.random.split(key)
    first = jax.random.randint(key_start, (), 0, n_cells)
    draws = jax.random.uniform(key_draws, (max(n_cells - 1, 1), 2))
    rows = jnp.arange(cells_h)[:, None]
    cols = jnp.arange(cells_w)[None, :]
    d_rows = jnp.array([dr for dr, _ in _OFFSETS])
    d_cols = jnp.array([dc for _, dc in _OFFSETS])

    def carve(i, carry):
        visited, right_open, down_open, row, col = carry
        open_dirs = _unvisited_neighbours(visited)  # bool[4, h, w]
        at_current = (rows == row) & (cols == col)
        stuck = ~jnp.any(open_dirs & at_current)
        frontier = visited & jnp.any(open_dirs, axis=0)
        resume_row, resume_col = uniform_true_cell(draws[i, 0], frontier)
        row = jnp.where(stuck, resume_row, row)
        col = jnp.where(stuck, resume_col, col)
        at_head = (rows == row) & (cols == col)
        direction = uniform_true_index(draws[i, 1], jnp.any(open_dirs & at_head, axis=(1, 2)))
        next_row, next_col = row + d_rows[direction], col + d_cols[direction]
        # the passage between head and next: a right-edge of the left cell or a down-edge of the upper one
        low_row, low_col = jnp.minimum(row, next_row), jnp.minimum(col, next_col)
        at_edge = (rows == low_row) & (cols == low_col)
        right_open = right_open | (at_edge & (next_row == row))
        down_open = down_open | (at_edge & (next_col == col))
        visited = visited | ((rows == next_row) & (cols == next_col))
        return visited, right_open, down_open, next_row, next_col

    init = (
        (rows * cells_w + cols) == first,
        jnp.zeros((cells_h, cells_w), bool),
        jnp.zeros((cells_h, cells_w), bool),
        first // cells_w,
        first % cells_w,
    )
    _, right_open, down_open, _, _ = jax.lax.fori_loop(0, n_cells - 1, carve, init)
    grid = jnp.full((2 * cells_h + 1, 2 * cells_w + 1), WALL, jnp.int32)
    grid = grid.at[1::2, 1::2].set(FREE)
    grid = grid.at[1::2, 2:-1:2].set(jnp.where(right_open[:, :-1], FREE, WALL))
    grid = grid.at[2:-1:2, 1::2].set(jnp.where(down_open[:-1, :], FREE, WALL))
    return grid


def outer_entrances(key: jax.Array, cells_h: int, cells_w: int) -> tuple[jax.Array, jax.Array]:
    """Start and end (int32[2] row, col) on opposite outer walls at odd coordinates, as mazelib's
    ``generate_entrances(start_outer=True, end_outer=True)``: the start side is uniform over N, S, W, E."""
    key_side, key_a, key_b = jax.random.split(key, 3)
    side = jax.random.randint(key_side, (), 0, 4)
    last_row, last_col = 2 * cells_h, 2 * cells_w
    along_a = 2 * jax.random.randint(key_a, (), 0, jnp.where(side < 2, cells_w, cells_h)) + 1
    along_b = 2 * jax.random.randint(key_b, (), 0, jnp.where(side < 2, cells_w, cells_h)) + 1
    starts = jnp.array([[0, -1], [last_row, -1], [-1, 0], [-1, last_col]])  # -1 = the free coordinate
    ends = jnp.array([[last_row, -1], [0, -1], [-1, last_col], [-1, 0]])
    fill = lambda fixed, along: jnp.where(fixed < 0, along, fixed).astype(jnp.int32)  # noqa: E731
    return fill(starts[side], along_a), fill(ends[side], along_b)
