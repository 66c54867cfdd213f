"""LabyrinthEscape / LabyrinthExplore: maze structure, oracle returns, the original's step rules on a
shared maze (the original popgym env driven through a stand-in for mazelib), and the maze law
against a plain-Python hunt-and-kill with mazelib's random hunt."""

from __future__ import annotations

import collections
import importlib.machinery
import random
import sys
import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax import envs
from shm_jax.envs.popgym.labyrinth import LabyrinthEscape

LEVELS = ("Easy", "Medium", "Hard")
CELLS = {"Easy": 5, "Medium": 7, "Hard": 9}
MOVES = {(0, -1): 0, (0, 1): 1, (-1, 0): 2, (1, 0): 3}
L = 1024


def build(env_id):
    spec = envs.resolve(env_id)
    env = spec.factory(**spec.kwargs)
    return env, env.default_params


def reset_many(env, params, n, seed):
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    obs, states = jax.jit(jax.vmap(lambda k: env.reset_env(k, params)))(keys)
    return np.asarray(obs), jax.tree.map(np.asarray, states)


def neighbours(grid, cell):
    h, w = grid.shape
    for (dr, dc), action in MOVES.items():
        r, c = cell[0] + dr, cell[1] + dc
        if 0 <= r < h and 0 <= c < w and grid[r, c] != 1:
            yield (r, c), action


def shortest_path_actions(grid, start, goal):
    prev = {tuple(start): None}
    queue = collections.deque([tuple(start)])
    while queue:
        cell = queue.popleft()
        for nxt, action in neighbours(grid, cell):
            if nxt not in prev:
                prev[nxt] = (cell, action)
                queue.append(nxt)
    actions, cell = [], tuple(goal)
    while prev[cell] is not None:
        cell, action = prev[cell]
        actions.append(action)
    return actions[::-1], len(prev)


def exploration_actions(grid, start):
    """Depth-first tour that visits every reachable cell, cut after the last new cell."""
    back = {(0, -1): 1, (0, 1): 0, (-1, 0): 3, (1, 0): 2}
    seen, actions, new_at = {tuple(start)}, [], []

    def visit(cell):
        for nxt, action in neighbours(grid, cell):
            if nxt not in seen:
                seen.add(nxt)
                actions.append(action)
                new_at.append(len(actions))
                visit(nxt)
                actions.append(back[(nxt[0] - cell[0], nxt[1] - cell[1])])

    visit(tuple(start))
    return actions[: new_at[-1]]


def replay(env, params, states, actions):
    """step_env along fixed action sequences. actions: int32[N, T]. Returns numpy obs [N, T, 10],
    reward, terminated, truncated, success [N, T]."""

    def one(state, acts):
        def body(state, a):
            obs, state, reward, term, info = env.step_env(jax.random.PRNGKey(0), state, a, params)
            return state, (obs, reward, term, env.is_truncated(state, params), info["success"])

        return jax.lax.scan(body, state, acts)[1]

    return tuple(np.asarray(x) for x in jax.jit(jax.vmap(one))(states, jnp.asarray(actions, jnp.int32)))


def pad(seqs, length=None):
    length = length or max(len(s) for s in seqs)
    out = np.zeros((len(seqs), length), np.int32)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


@pytest.mark.parametrize("level", LEVELS)
def test_maze_structure_and_escape_oracle(level):
    env, params = build(f"LabyrinthEscape{level}")
    n, k = 16, CELLS[level]
    obs, states = reset_many(env, params, n, seed=1)
    assert obs.shape == (n, 10) and obs.dtype == np.int32 and (obs[:, 9] == 4).all()
    size = 2 * k + 1
    paths = []
    for i in range(n):
        grid, start = states.grid[i], tuple(states.position[i])
        assert grid.shape == (size, size)
        assert (grid[1::2, 1::2] == 0).all()  # every cell open
        interior = grid[1:-1, 1:-1]
        assert (interior == 0).sum() == 2 * k * k - 1  # k^2 cells + k^2 - 1 passages: a spanning tree
        assert grid[start] == 2 and (grid == 2).sum() == 1 and (grid == 3).sum() == 1
        goal = tuple(np.argwhere(grid == 3)[0])
        # entrances on opposite outer walls, at odd coordinates
        on_wall = lambda p: p[0] in (0, size - 1) or p[1] in (0, size - 1)  # noqa: E731
        assert on_wall(start) and on_wall(goal) and (start[0] + goal[0] == size - 1 or start[1] + goal[1] == size - 1)
        assert sum(c % 2 for c in start) == 1 and sum(c % 2 for c in goal) == 1
        actions, reachable = shortest_path_actions(grid, start, goal)
        assert reachable == 2 * k * k - 1 + 2  # connected: all cells, passages and both entrances
        paths.append(actions)
    out_obs, rew, term, trunc, succ = replay(env, params, jax.tree.map(jnp.asarray, states), pad(paths))
    for i, actions in enumerate(paths):
        m = len(actions)
        # oracle: the shortest path escapes at step m with return 1 - m/L
        assert term[i, m - 1] and succ[i, m - 1] and not term[i, : m - 1].any() and not trunc[i, :m].any()
        np.testing.assert_allclose(rew[i, :m].sum(), 1.0 - m / L, atol=1e-5)
        assert out_obs[i, m - 1, 9] == actions[-1]


@pytest.mark.parametrize("level", ["Easy", "Hard"])
def test_explore_oracle(level):
    env, params = build(f"LabyrinthExplore{level}")
    _, states = reset_many(env, params, 8, seed=2)
    k = CELLS[level]
    tours = [exploration_actions(states.grid[i], states.position[i]) for i in range(8)]
    assert (states.grid == 3).sum() == 0  # Explore has no goal cell
    _, rew, term, trunc, succ = replay(env, params, jax.tree.map(jnp.asarray, states), pad(tours))
    free = 2 * k * k - 1  # free cells other than the start
    for i, tour in enumerate(tours):
        m = len(tour)
        assert term[i, m - 1] and succ[i, m - 1] and not term[i, : m - 1].any()
        np.testing.assert_allclose(rew[i, :m].sum(), 1.0 - (m - free) / L, atol=1e-5)
        # every new cell pays exactly 1/F
        np.testing.assert_allclose(np.sort(rew[i, :m])[-free:], 1.0 / free, rtol=1e-5)


def test_truncation_and_clipping():
    env, params = build("LabyrinthExploreEasy")
    _, states = reset_many(env, params, 1, seed=3)
    # push into the outer wall from the start (a no-op move) until the time limit
    row, col = states.position[0]
    outward = 2 if row == 0 else 3 if row == 10 else 0 if col == 0 else 1
    _, rew, term, trunc, _ = replay(env, params, jax.tree.map(jnp.asarray, states), np.full((1, L), outward))
    assert not term[0].any() and trunc[0, L - 2] and not trunc[0, : L - 2].any()  # L - 1 steps, as the original
    np.testing.assert_allclose(rew[0, : L - 1], -1.0 / L, rtol=1e-6)
    # out-of-range actions are clipped to the nearest valid one
    state = jax.tree.map(lambda x: jnp.asarray(x[0]), states)
    for far, near in ((99, 3), (-7, 0)):
        a = env.step_env(jax.random.PRNGKey(0), state, jnp.int32(far), params)
        b = env.step_env(jax.random.PRNGKey(0), state, jnp.int32(near), params)
        jax.tree.map(np.testing.assert_array_equal, a, b)


def test_view_at_the_border():
    """On the top row the original's view is shifted (rows 0, 1, then padding); centered_view fixes it."""
    grid = np.ones((11, 11), np.int32)
    grid[1::2, 1::2] = 0
    grid[0, 3] = 2  # start on the north wall
    wall_row = [1, 1, 1]
    cases = ((False, (grid[0, 2:5], grid[1, 2:5], wall_row)), (True, (wall_row, grid[0, 2:5], grid[1, 2:5])))
    for centered, expected_rows in cases:
        env = LabyrinthEscape((10, 10), centered_view=centered)
        state = env.state_from_maze(jnp.asarray(grid), jnp.array([0, 3]), jnp.array([10, 5]))
        obs = np.asarray(env.observe(None, state, None, env.default_params))
        np.testing.assert_array_equal(obs[:9].reshape(3, 3), np.stack(expected_rows))
        assert obs[9] == 4


def test_registry_and_spaces():
    for kind in ("Escape", "Explore"):
        for level in LEVELS:
            spec = envs.resolve(f"Labyrinth{kind}{level}")
            assert spec.needs_prev_action and spec.family == "popgym"
    env, params = build("LabyrinthEscapeHard")
    assert env.observation_space(params).nvec == (5,) * 10 and env.action_space(params).n == 4
    assert env.grid_shape == (19, 19)


# ---------------------------------------------------------------------------------------------
# The original's step rules on a shared maze: popgym's labyrinth modules import mazelib, which is
# not installed; a stand-in module hands them our maze (grid, start, end) instead of generating one.


@pytest.fixture
def original_labyrinths(monkeypatch):
    pytest.importorskip("popgym.envs")  # load popgym first, so it registers without the labyrinths
    queue = []

    class Maze:
        def __init__(self):
            self.generator = None

        def generate(self):
            self._grid, self._start, self._end = queue.pop(0)
            self.grid = self._grid.copy()

        def generate_entrances(self, start_outer=True, end_outer=True):
            self.start, self.end = self._start, self._end

    class HuntAndKill:
        def __init__(self, *dims):
            self.dims = dims

    mazelib = types.ModuleType("mazelib")
    mazelib.Maze = Maze
    generate = types.ModuleType("mazelib.generate")
    hak = types.ModuleType("mazelib.generate.HuntAndKill")
    hak.HuntAndKill = HuntAndKill
    for mod in (mazelib, generate, hak):
        mod.__spec__ = importlib.machinery.ModuleSpec(mod.__name__, None)
    for name, mod in (("mazelib", mazelib), ("mazelib.generate", generate), ("mazelib.generate.HuntAndKill", hak)):
        monkeypatch.setitem(sys.modules, name, mod)
    for name in ("popgym.core.maze", "popgym.envs.labyrinth_escape", "popgym.envs.labyrinth_explore"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import popgym.envs.labyrinth_escape as escape
    import popgym.envs.labyrinth_explore as explore

    return queue, escape, explore


@pytest.mark.parametrize("kind", ["Escape", "Explore"])
def test_step_rules_match_original(kind, original_labyrinths):
    warnings.simplefilter("ignore")
    queue, escape, explore = original_labyrinths
    env, params = build(f"Labyrinth{kind}Easy")
    n = 8
    _, states = reset_many(env, params, n, seed=4)
    # the plain maze (walls/free) and its entrances, recovered from our reset states
    mazes = []
    for i in range(n):
        grid = states.grid[i].copy()
        start = tuple(int(v) for v in states.position[i])
        end = tuple(int(v) for v in np.argwhere(grid == 3)[0]) if kind == "Escape" else None
        if end is None:  # Explore keeps the end walled; any opposite-wall odd cell serves the original
            end = (10 - start[0], start[1]) if start[0] in (0, 10) else (start[0], 10 - start[1])
        grid[grid >= 2] = 1
        mazes.append((grid.astype(np.int8), start, end))
    np_env = (escape.LabyrinthEscapeEasy if kind == "Escape" else explore.LabyrinthExploreEasy)()
    rng = np.random.default_rng(5)
    records, actions = [], []
    for i, maze in enumerate(mazes):
        queue.append(maze)
        obs0, _ = np_env.reset(seed=i)
        if kind == "Escape":
            plan = shortest_path_actions(np_env.maze.grid, maze[1], maze[2])[0]
        else:
            plan = exploration_actions(np_env.maze.grid, maze[1])
        # a quarter follow the oracle, a quarter the oracle with random detours, half act at random
        acts, rows = [], []
        p_plan = (1.0, 0.0, 0.8, 0.0)[i % 4]
        while True:
            before = np_env.position
            detour = not (plan and rng.uniform() < p_plan)
            a = int(rng.integers(4)) if detour else plan.pop(0)
            o, r, te, tr, _ = np_env.step(a)
            if detour and plan and np_env.position != before:
                plan.insert(0, {0: 1, 1: 0, 2: 3, 3: 2}[a])  # walk the detour back later
            acts.append(a), rows.append((o, r, te, tr))
            if te or tr:
                break
        records.append((obs0, rows))
        actions.append(acts)
    np.testing.assert_array_equal(
        np.asarray(jax.vmap(lambda s: env.observe(None, s, None, params))(jax.tree.map(jnp.asarray, states))),
        np.stack([r[0] for r in records]),
    )
    obs, rew, term, trunc, _ = replay(env, params, jax.tree.map(jnp.asarray, states), pad(actions, L))
    endings = set()
    for i, (_, rows) in enumerate(records):
        m = len(rows)
        np.testing.assert_array_equal(obs[i, :m], np.stack([r[0] for r in rows]), err_msg=f"maze {i} obs")
        np.testing.assert_allclose(rew[i, :m], [r[1] for r in rows], rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(term[i, :m], [r[2] for r in rows])
        np.testing.assert_array_equal(trunc[i, :m], [r[3] for r in rows])
        endings.add((rows[-1][2], rows[-1][3]))
    assert (True, False) in endings and (False, True) in endings  # goal/explored and time limit both seen


# ---------------------------------------------------------------------------------------------
# The maze law: our hunt-and-kill against a plain-Python one with mazelib's random hunt.


def python_hunt_and_kill(k, rnd):
    size = 2 * k + 1
    grid = np.ones((size, size), np.int8)
    row, col = rnd.randrange(1, size, 2), rnd.randrange(1, size, 2)
    grid[row, col] = 0

    def unvisited(r, c):
        return [
            (r + dr, c + dc)
            for dr, dc in ((0, 2), (0, -2), (2, 0), (-2, 0))
            if 0 < r + dr < size and 0 < c + dc < size and grid[r + dr, c + dc] == 1
        ]

    for trial in range(size * size + 1):
        if grid[row, col] == 0:
            nbrs = unvisited(row, col)
            while nbrs:
                nr, nc = rnd.choice(nbrs)
                grid[nr, nc] = 0
                grid[(nr + row) // 2, (nc + col) // 2] = 0
                row, col = nr, nc
                nbrs = unvisited(row, col)
        row, col = rnd.randrange(1, size, 2), rnd.randrange(1, size, 2)
    return grid


def maze_stats(grid):
    """(number of dead-end cells, number of junction cells) of a perfect maze grid."""
    cells = grid[1::2, 1::2] == 0
    k = cells.shape[0]
    degree = np.zeros((k, k), int)
    degree[:, :-1] += grid[1::2, 2:-1:2] == 0
    degree[:, 1:] += grid[1::2, 2:-1:2] == 0
    degree[:-1, :] += grid[2:-1:2, 1::2] == 0
    degree[1:, :] += grid[2:-1:2, 1::2] == 0
    return (degree == 1).sum(), (degree >= 3).sum()


def test_maze_law_matches_hunt_and_kill():
    env, params = build("LabyrinthExploreMedium")
    n = 300
    keys = jax.random.split(jax.random.PRNGKey(6), n)
    grids = np.asarray(jax.jit(jax.vmap(lambda key: env.new_maze(key)[0]))(keys))
    rnd = random.Random(7)
    ref = [python_hunt_and_kill(CELLS["Medium"], rnd) for _ in range(n)]
    ours = np.array([maze_stats(g) for g in grids], float)
    theirs = np.array([maze_stats(g) for g in ref], float)
    se = np.sqrt(ours.var(0) / n + theirs.var(0) / n)
    assert (np.abs(ours.mean(0) - theirs.mean(0)) < 4 * se + 0.05).all(), (ours.mean(0), theirs.mean(0), se)
    # and unlike uniform spanning trees, hunt-and-kill has few dead ends: a sanity bound on the kind
    assert ours[:, 0].mean() < 0.25 * CELLS["Medium"] ** 2
