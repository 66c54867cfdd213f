"""Battleship and MineSweeper: oracle lengths/returns, random returns, and step-by-step equivalence
with the original numpy popgym (same hidden board, same actions)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax import envs
from shm_jax.envs.popgym.battleship import Battleship
from tests.helpers import quick_subset

popgym_battleship = pytest.importorskip("popgym.envs.battleship")
popgym_minesweeper = pytest.importorskip("popgym.envs.minesweeper")

LEVELS = ("Easy", "Medium", "Hard")
BOARD = {"Easy": 8, "Medium": 10, "Hard": 12}
MINES_M = {"Easy": 14, "Medium": 30, "Hard": 54}
# Random-policy mean return of the original popgym over 100 episodes.
SPEC_RANDOM = {
    "Battleship": {"Easy": -0.450, "Medium": -0.432, "Hard": -0.389},
    "Minesweeper": {"Easy": -0.302, "Medium": -0.415, "Hard": -0.448},
}
N_EPISODES = 256


def build(env_id):
    spec = envs.resolve(env_id)
    env = spec.factory(**spec.kwargs)
    return env, env.default_params


def oracle_action(env, state):
    """First (row-major) cell that is worth clicking: an unhit ship cell / an unrevealed clear cell."""
    if isinstance(env, Battleship):
        target = state.board & ~state.guesses
    else:
        target = ~state.mines & ~state.viewed
    flat = jnp.argmax(target.reshape(-1))
    cols = target.shape[1]
    return jnp.stack([flat // cols, flat % cols]).astype(jnp.int32)


def first_episodes(env, params, use_oracle, seed=0):
    """Roll N_EPISODES envs with gymnax ``step`` (auto-reset) long enough for one full episode each.

    use_oracle: bool[N] per env (oracle or uniform-random actions), one compiled program for both.
    Returns numpy (return, length, terminated, truncated, success) of each env's first episode.
    """
    horizon = int(params.max_steps_in_episode)

    def run(key, oracle):
        key, key_reset = jax.random.split(key)
        _, state = env.reset(key_reset, params)

        def body(carry, _):
            state, key, done_before = carry
            key, key_act, key_step = jax.random.split(key, 3)
            random_action = env.action_space(params).sample(key_act)
            action = jnp.where(oracle, oracle_action(env, state), random_action)
            _, state, reward, term, trunc, info = env.step(key_step, state, action, params)
            live = ~done_before
            out = (reward * live, live, term & live, trunc & live, info["success"] & live & (term | trunc))
            return (state, key, done_before | term | trunc), out

        _, (rew, live, term, trunc, succ) = jax.lax.scan(body, (state, key, jnp.bool_(False)), None, horizon)
        return rew.sum(), live.sum(), term.any(), trunc.any(), succ.any()

    keys = jax.random.split(jax.random.PRNGKey(seed), len(use_oracle))
    out = jax.jit(jax.vmap(run))(keys, jnp.asarray(use_oracle))
    return tuple(np.asarray(x) for x in out)


@pytest.mark.parametrize("family", ["Battleship", "Minesweeper"])
@pytest.mark.parametrize("level", quick_subset(LEVELS, {"Easy"}))
def test_oracle_and_random_returns(family, level):
    env, params = build(f"{family}{level}")
    n_oracle = 16
    use_oracle = np.arange(N_EPISODES) < n_oracle
    ret, length, term, trunc, succ = first_episodes(env, params, use_oracle)

    # Oracle: every shot a new hit / every click a new clear cell; return exactly 1.
    np.testing.assert_allclose(ret[:n_oracle], 1.0, atol=1e-5)
    expected_len = 12 if family == "Battleship" else MINES_M[level]
    assert (length[:n_oracle] == expected_len).all()
    assert term[:n_oracle].all() and succ[:n_oracle].all() and not trunc[:n_oracle].any()

    # Random policy: mean within 4 standard errors of the spec's 100-episode figure (both samples' noise).
    rand = ret[n_oracle:]
    tol = 4 * rand.std() * np.sqrt(1 / 100 + 1 / rand.size)
    assert abs(rand.mean() - SPEC_RANDOM[family][level]) < tol, (rand.mean(), tol)
    if family == "Battleship":
        # B^2 cells, 12 ship cells: a random shooter rarely sinks everything; time limit B^2.
        assert length.max() <= BOARD[level] ** 2
        assert (trunc[n_oracle:] | term[n_oracle:]).all()
        assert trunc[n_oracle:].mean() > 0.5
    else:
        assert length.max() <= MINES_M[level]


def test_registry_ids_and_spaces():
    for level in LEVELS:
        pairs = ((f"MineSweeper{level}", f"Minesweeper{level}"), (f"Battleship{level}", f"Battleship{level}"))
        for alias, canonical in pairs:
            spec = envs.resolve(alias)
            assert spec.env_id == canonical and spec.needs_prev_action and spec.family == "popgym"
        ms, _ = build(f"Minesweeper{level}")
        bs, _ = build(f"Battleship{level}")
        assert ms.observation_space(None).n == {"Easy": 3, "Medium": 7, "Hard": 10}[level]
        assert bs.action_space(None).nvec == (BOARD[level],) * 2
        assert ms.action_space(None).nvec == {"Easy": (4, 4), "Medium": (6, 6), "Hard": (8, 8)}[level]


# ---------------------------------------------------------------------------------------------
# Equivalence with the original numpy popgym.


def record_original(np_env, n_episodes, rng, hidden):
    """Play the numpy env with a mixed policy (random cells, re-clicks, targeted cells) and record
    hidden layouts, actions and outputs. Returns lists over episodes."""
    episodes = []
    size = np.array(np_env.action_space.nvec)
    for _ in range(n_episodes):
        np_env.reset(seed=int(rng.integers(2**31)))
        layout = hidden(np_env).copy()
        # some episodes are played perfectly (wins), the others end by mines, sinking or the clock
        good_prob = 1.0 if rng.uniform() < 0.25 else rng.uniform(0.0, 0.97)
        actions, obs, rew, term, trunc = [], [], [], [], []
        clicked = []
        while True:
            u = rng.uniform()
            if u < good_prob:
                cells = np.argwhere(good_cells(np_env))
                a = cells[rng.integers(len(cells))] if len(cells) else rng.integers(size)
            elif u < good_prob + 0.1 and clicked:
                a = clicked[rng.integers(len(clicked))]  # re-click
            else:
                a = rng.integers(size)
            a = np.asarray(a, np.int64)
            clicked.append(a)
            o, r, te, tr, _ = np_env.step(a)
            actions.append(a), obs.append(o), rew.append(r), term.append(te), trunc.append(tr)
            if te or tr:
                break
        episodes.append((layout, np.array(actions), np.array(obs), np.array(rew), np.array(term), np.array(trunc)))
    return episodes


def good_cells(np_env):
    if hasattr(np_env, "board"):
        return (np_env.board == 1) & (np_env.guesses == 0)
    return np_env.hidden_grid == popgym_minesweeper.HiddenSquare.CLEAR


def replay(env, params, states, actions):
    """step_env along fixed action sequences. states: batched EnvState; actions: int32[N, T, 2].
    Returns obs, reward, terminated, truncated as numpy [N, T]."""

    def one(state, acts):
        def body(state, a):
            obs, state, reward, term, _ = env.step_env(jax.random.PRNGKey(0), state, a, params)
            return state, (obs, reward, term, env.is_truncated(state, params))

        return jax.lax.scan(body, state, acts)[1]

    return tuple(np.asarray(x) for x in jax.jit(jax.vmap(one))(states, actions))


def stack_states(states):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def compare(episodes, env, params, make_state):
    horizon = max(len(e[1]) for e in episodes)
    actions = np.zeros((len(episodes), horizon, 2), np.int32)
    for i, e in enumerate(episodes):
        actions[i, : len(e[1])] = e[1]
    states = stack_states([make_state(e[0]) for e in episodes])
    obs, rew, term, trunc = replay(env, params, states, jnp.asarray(actions))
    n_term = 0
    for i, (_, acts, o, r, te, tr) in enumerate(episodes):
        n = len(acts)
        np.testing.assert_array_equal(obs[i, :n], o, err_msg=f"episode {i} observations")
        np.testing.assert_allclose(rew[i, :n], r, rtol=1e-6, atol=1e-7, err_msg=f"episode {i} rewards")
        np.testing.assert_array_equal(term[i, :n], te, err_msg=f"episode {i} terminated")
        np.testing.assert_array_equal(trunc[i, :n], tr, err_msg=f"episode {i} truncated")
        n_term += te[-1]
    return n_term


@pytest.mark.parametrize("level", quick_subset(LEVELS, {"Easy"}))
def test_battleship_matches_original(level):
    warnings.simplefilter("ignore")
    np_env = getattr(popgym_battleship, f"Battleship{level}")()
    env, params = build(f"Battleship{level}")
    rng = np.random.default_rng(1)
    episodes = record_original(np_env, 48, rng, hidden=lambda e: e.board)

    def make_state(board):
        _, s = env.reset_env(jax.random.PRNGKey(0), params)
        return s.replace(board=jnp.asarray(board, bool))

    n_term = compare(episodes, env, params, make_state)
    assert 0 < n_term < len(episodes)  # both endings exercised


@pytest.mark.parametrize("level", LEVELS)
def test_minesweeper_matches_original(level):
    warnings.simplefilter("ignore")
    np_env = getattr(popgym_minesweeper, f"MineSweeper{level}")()
    env, params = build(f"Minesweeper{level}")
    rng = np.random.default_rng(2)
    mine = popgym_minesweeper.HiddenSquare.MINE
    episodes = record_original(np_env, 64, rng, hidden=lambda e: e.hidden_grid == mine)
    n_term = compare(episodes, env, params, env.state_from_mines)
    assert 0 < n_term < len(episodes)
    # Wins happen (an episode of exactly M steps with terminated=True and positive return).
    wins = [e for e in episodes if e[4][-1] and e[3][-1] > 0]
    assert wins


def test_boards_sampled_like_original():
    """Our reset draws the same layouts in distribution: ship/mine counts and per-cell frequency."""
    env, params = build("BattleshipEasy")
    _, states = jax.vmap(lambda k: env.reset_env(k, params))(jax.random.split(jax.random.PRNGKey(3), 1000))
    boards = np.asarray(states.board)
    assert (boards.sum((1, 2)) == 12).all()
    warnings.simplefilter("ignore")
    np_env = popgym_battleship.BattleshipEasy()
    ref = []
    for seed in range(1000):
        np_env.reset(seed=seed)
        ref.append(np_env.board.astype(bool))
    freq, ref_freq = boards.mean(0), np.mean(ref, 0)
    # per-cell frequencies agree to sampling noise (SE of a difference ~0.018), and corners are rarer
    np.testing.assert_allclose(freq, ref_freq, atol=0.07)
    assert freq[0, 0] < freq[3, 3] and ref_freq[0, 0] < ref_freq[3, 3]

    ms, ms_params = build("MinesweeperHard")
    _, ms_states = jax.vmap(lambda k: ms.reset_env(k, ms_params))(jax.random.split(jax.random.PRNGKey(4), 256))
    assert (np.asarray(ms_states.mines).sum((1, 2)) == 10).all()


def test_out_of_range_actions_are_clipped():
    for env_id, far, clipped in (("BattleshipEasy", (-3, 99), (0, 7)), ("MinesweeperMedium", (42, -1), (5, 0))):
        env, params = build(env_id)
        _, state = env.reset_env(jax.random.PRNGKey(5), params)
        out_far = env.step_env(jax.random.PRNGKey(6), state, jnp.array(far), params)
        out_ok = env.step_env(jax.random.PRNGKey(6), state, jnp.array(clipped), params)
        jax.tree.map(np.testing.assert_array_equal, out_far, out_ok)
