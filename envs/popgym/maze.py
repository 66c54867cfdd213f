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

WALL = 1
FREE = 0

# (d_row, d_col) of the four neighbours in cell coordinates
_OFFSETS = ((0, -1), (0, 1), (-1, 0), (1, 0))


def _uniform_true_index(u: jax.Array, mask: jax.Array) -> jax.Array:
    """Index of a True entry of bool[n] ``mask`` chosen by the uniform draw u in [0, 1)."""
    k = jnp.floor(u * jnp.sum(mask)).astype(jnp.int32)
    return jnp.argmax(jnp.cumsum(mask) > k)


def _unvisited_neighbours(visited: jax.Array) -> jax.Array:
    """bool[4, h, w]: for each cell, whether its neighbour in each direction exists and is unvisited."""
    padded = jnp.pad(~visited, 1, constant_values=False)
    h, w = visited.shape
    return jnp.stack([padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w] for dr, dc in _OFFSETS])


def hunt_and_kill(key: jax.Array, cells_h: int, cells_w: int) -> jax.Array:
    """A perfect maze. Returns int32[2*cells_h + 1, 2*cells_w + 1] with WALL=1, FREE=0."""
    n_cells = cells_h * cells_w
    key_start, key_draws = jax.random.split(key)
    first = jax.random.randint(key_start, (), 0, n_cells)
    draws = jax.random.uniform(key_draws, (max(n_cells - 1, 1), 2))
    offsets = jnp.array(_OFFSETS)
    visited = jnp.zeros((cells_h, cells_w), bool).at[first // cells_w, first % cells_w].set(True)
    grid = jnp.full((2 * cells_h + 1, 2 * cells_w + 1), WALL, jnp.int32)
    grid = grid.at[2 * (first // cells_w) + 1, 2 * (first % cells_w) + 1].set(FREE)

    def carve(i, carry):
        grid, visited, current = carry
        open_dirs = _unvisited_neighbours(visited)  # bool[4, h, w]
        stuck = ~jnp.any(open_dirs[:, current[0], current[1]])
        frontier = (visited & jnp.any(open_dirs, axis=0)).reshape(-1)
        resume = _uniform_true_index(draws[i, 0], frontier)
        head = jnp.where(stuck, jnp.stack([resume // cells_w, resume % cells_w]), current)
        direction = _uniform_true_index(draws[i, 1], open_dirs[:, head[0], head[1]])
        nxt = head + offsets[direction]
        grid = grid.at[2 * nxt[0] + 1, 2 * nxt[1] + 1].set(FREE)
        grid = grid.at[head[0] + nxt[0] + 1, head[1] + nxt[1] + 1].set(FREE)  # the wall between
        return grid, visited.at[nxt[0], nxt[1]].set(True), nxt

    start = jnp.stack([first // cells_w, first % cells_w])
    grid, _, _ = jax.lax.fori_loop(0, n_cells - 1, carve, (grid, visited, start))
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
