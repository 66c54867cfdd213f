"""Card games and MultiarmedBandit: exact lengths and oracle returns (spec §3 / §6), random-policy returns against
the spec's reference values, and step-by-step equivalence with the original numpy popgym (same hidden deck /
bandit probabilities, same actions).

One compiled program per id for the oracle/random rollouts and one per id for the replay against the original.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.popgym import deck

pytest.importorskip("popgym")
from popgym.envs import (  # noqa: E402
    autoencode as pg_autoencode,
    concentration as pg_concentration,
    count_recall as pg_count_recall,
    higher_lower as pg_higher_lower,
    multiarmed_bandit as pg_bandit,
    repeat_first as pg_repeat_first,
    repeat_previous as pg_repeat_previous,
)

LEVELS = ("Easy", "Medium", "Hard")
CARD_GAMES = ("Autoencode", "RepeatPrevious", "RepeatFirst", "CountRecall", "HigherLower", "Concentration")
TASKS = CARD_GAMES + ("MultiArmedBandit",)
ALL_IDS = [f"{t}{lv}" for t in TASKS for lv in LEVELS]

# Spec §3 / §6 (verified on the original).
SPEC_LENGTH = {
    "Autoencode": (103, 207, 311),
    "RepeatPrevious": (51, 103, 155),
    "RepeatFirst": (51, 415, 831),
    "CountRecall": (51, 103, 207),
    "HigherLower": (51, 103, 155),
    "Concentration": (52, 104, 52),  # omniscient oracle: n steps (n/2 matched pairs); truncation at 104/208/104
    "MultiArmedBandit": (200, 400, 600),
}
SPEC_TRUNCATION = {"Concentration": (104, 208, 104), "MultiArmedBandit": (200, 400, 600)}
SPEC_RANDOM = {  # random-policy mean return of the original: 100 episodes (50 for Concentration)
    "Autoencode": (-0.498, -0.490, -0.511),
    "RepeatPrevious": (-0.494, -0.501, -0.486),
    "RepeatFirst": (-0.516, -0.503, -0.497),
    "CountRecall": (-0.928, -0.926, -0.884),
    "HigherLower": (-0.001, 0.017, 0.009),
    "Concentration": (-0.196, -0.186, -0.837),
    "MultiArmedBandit": (0.011, 0.011, 0.016),
}
SPEC_RANDOM_EPISODES = {"Concentration": 50}
SPEC_HIGHER_LOWER_OMNISCIENT = (0.904, 0.875, 0.923)  # one seed each
NUM_EPISODES = 256  # per id: half oracle, half random


def build(env_id):
    """The raw (unwrapped) environment and its default params."""
    spec = envs.resolve(env_id)
    env = spec.factory(**spec.kwargs)
    return env, env.default_params


def task_of(env_id):
    return next(t for t in TASKS if env_id.startswith(t))


# ------------------------------------------------------------------------------------------ oracles (JAX)


def oracle_action(task, env, state):
    """An action chosen from the hidden state that earns the best reward available at this step."""
    t = state.time
    if task == "Autoencode":  # watch: anything; play: cards in reverse order
        return state.suits[jnp.clip(2 * env.num_cards - 2 - t, 0, env.num_cards - 1)]
    if task == "RepeatPrevious":
        return state.suits[jnp.maximum(t - env.k + 1, 0)]
    if task == "RepeatFirst":
        return state.suits[0]
    if task == "CountRecall":
        return state.counts[state.queries[t]]
    if task == "HigherLower":
        nxt = state.ranks[jnp.minimum(t + 1, env.num_cards - 1)]
        return jnp.where(nxt > state.ranks[t], 0, 1)
    if task == "Concentration":  # first face-down card, then its partner
        positions = jnp.arange(env.num_cards)
        first = jnp.argmax(~state.face_up)
        partner = jnp.argmax(
            ~state.face_up & (state.values == state.values[jnp.maximum(state.pending, 0)]) & (positions != state.pending)
        )
        return jnp.where(state.pending < 0, first, partner)
    if task == "MultiArmedBandit":
        return jnp.argmax(state.probs)
    raise AssertionError(task)


def first_episodes(env_id, num_episodes=NUM_EPISODES, seed=0):
    """One episode in each of ``num_episodes`` envs, from ``reset_env`` through ``step_env`` + ``is_truncated``
    (no auto-reset: that would pay a fresh shuffle on every step; test_all_ids covers gymnax ``step``).
    The first half act with the oracle, the second half uniformly at random.
    Returns (oracle, random): dicts of numpy arrays ret/length/term/trunc [num_episodes // 2]."""
    task = task_of(env_id)
    env, params = build(env_id)
    horizon = SPEC_TRUNCATION.get(task, SPEC_LENGTH[task])[LEVELS.index(env_id[len(task):])]
    space = env.action_space(params)

    def run(key, use_oracle):
        key, key_reset = jax.random.split(key)
        _, state = env.reset_env(key_reset, params)

        def body(carry, key):
            state, alive, ret, length, term, trunc = carry
            key_act, key_step = jax.random.split(key)
            action = jnp.where(use_oracle, oracle_action(task, env, state), space.sample(key_act))
            _, state, reward, terminated, _ = env.step_env(key_step, state, action, params)
            truncated = env.is_truncated(state, params)
            ret = ret + jnp.where(alive, reward, 0.0)
            length = length + alive.astype(jnp.int32)
            term, trunc = term | (alive & terminated), trunc | (alive & truncated)
            alive = alive & ~(terminated | truncated)
            return (state, alive, ret, length, term, trunc), None

        init = (state, jnp.array(True), jnp.float32(0.0), jnp.int32(0), jnp.array(False), jnp.array(False))
        (_, _, ret, length, term, trunc), _ = jax.lax.scan(body, init, jax.random.split(key, horizon + 1))
        return ret, length, term, trunc

    keys = jax.random.split(jax.random.key(seed), num_episodes)
    use_oracle = jnp.arange(num_episodes) < num_episodes // 2
    ret, length, term, trunc = jax.jit(jax.vmap(run))(keys, use_oracle)
    out = dict(ret=np.asarray(ret), length=np.asarray(length), term=np.asarray(term), trunc=np.asarray(trunc))
    half = num_episodes // 2
    return {k: v[:half] for k, v in out.items()}, {k: v[half:] for k, v in out.items()}


@pytest.fixture(scope="module", params=ALL_IDS)
def rollouts(request):
    return request.param, first_episodes(request.param)


def test_oracle_length_and_return(rollouts):
    env_id, (oracle, _) = rollouts
    task = task_of(env_id)
    level = LEVELS.index(env_id[len(task):])
    env, _ = build(env_id)
    length = SPEC_LENGTH[task][level]
    np.testing.assert_array_equal(oracle["length"], length)
    if task == "MultiArmedBandit":  # time limit only
        assert oracle["trunc"].all() and not oracle["term"].any()
        n = env.num_bandits
        expected = (n - 1) / (n + 1)  # best arm known: E[2 max p - 1] (derived)
        stderr = oracle["ret"].std() / math.sqrt(len(oracle["ret"]))
        assert abs(oracle["ret"].mean() - expected) < 4 * stderr + 1e-3, (oracle["ret"].mean(), expected)
        return
    assert oracle["term"].all() and not oracle["trunc"].any()
    if task == "HigherLower":
        # Ties pay 0: the omniscient return is (non-tie steps)/N, expected 12/13 at every level (derived:
        # P(adjacent tie) = (4d-1)/(52d-1)). The spec's single-seed values must look like draws of it.
        n = env.num_cards
        assert (oracle["ret"] <= (n - 1) / n + 1e-6).all() and (oracle["ret"] > 0.7).all()
        stderr = oracle["ret"].std() / math.sqrt(len(oracle["ret"]))
        assert abs(oracle["ret"].mean() - 12 / 13) < 4 * stderr
        assert abs(SPEC_HIGHER_LOWER_OMNISCIENT[level] - oracle["ret"].mean()) < 3 * oracle["ret"].std()
        return
    np.testing.assert_allclose(oracle["ret"], 1.0, atol=1e-5)


def test_random_policy_matches_spec(rollouts):
    """Mean random-policy return within 4 standard errors of the difference between our mean (128 episodes) and
    the spec's (100 episodes, 50 for Concentration), the standard deviation estimated from our episodes."""
    env_id, (_, rand) = rollouts
    task = task_of(env_id)
    level = LEVELS.index(env_id[len(task):])
    ref, n_ref = SPEC_RANDOM[task][level], SPEC_RANDOM_EPISODES.get(task, 100)
    sd = rand["ret"].std()
    tol = 4 * sd * math.sqrt(1 / len(rand["ret"]) + 1 / n_ref)
    assert abs(rand["ret"].mean() - ref) < tol, (env_id, rand["ret"].mean(), ref, tol)
    if task in SPEC_TRUNCATION:
        assert rand["length"].max() <= SPEC_TRUNCATION[task][level]
    else:
        np.testing.assert_array_equal(rand["length"], SPEC_LENGTH[task][level])


# ------------------------------------------------------------------------------------------ the original


ORIGINAL_CLASSES = {
    "Autoencode": pg_autoencode,
    "RepeatPrevious": pg_repeat_previous,
    "RepeatFirst": pg_repeat_first,
    "CountRecall": pg_count_recall,
    "HigherLower": pg_higher_lower,
    "Concentration": pg_concentration,
    "MultiArmedBandit": pg_bandit,
}


def original_env(task, level):
    name = "MultiarmedBandit" if task == "MultiArmedBandit" else task
    return getattr(ORIGINAL_CLASSES[task], f"{name}{level}")()


def original_decks(task, np_env):
    """Card ids in the order our ``reset_env`` draws them (one array per ``deck.shuffled_deck`` call)."""
    if task == "CountRecall":
        return [
            deck.deal_order_from_popgym_idx(np_env.value_deck.idx),
            deck.deal_order_from_popgym_idx(np_env.query_deck.idx),
        ]
    if task == "Concentration":  # positions on the table, not a deal order
        return [np.asarray(np_env.deck.idx, np.int32)]
    return [deck.deal_order_from_popgym_idx(np_env.deck.idx)]


def original_oracle(task, np_env):
    """The rewarding action read from the original's hidden state (None: every action is as good)."""
    if task == "Autoencode":
        return None if np_env.mode == pg_autoencode.Mode.WATCH else int(np_env.deck.suits_idx[np_env.deck["system"][-1]])
    if task == "RepeatPrevious":
        hand = np_env.deck["player"]
        return int(np_env.deck.suits_idx[hand[-np_env.k]]) if len(hand) >= np_env.k else None
    if task == "RepeatFirst":
        return int(np_env.card)
    if task == "CountRecall":
        return int(np_env.counts[np_env.query])
    if task == "HigherLower":
        d = np_env.deck
        current, following = d.ranks_idx[d["player"][-1]], d.ranks_idx[d.idx[len(d) - 1]]
        return 0 if following > current else 1
    if task == "Concentration":
        d = np_env.deck
        values = np_env.deck_idx_type[d.idx]
        down = [i for i in range(d.num_cards) if i not in d["face_up_idx"]]
        if not d["in_play_idx"]:
            return down[0]
        first = d["in_play_idx"][0]
        return next(i for i in down if i != first and values[i] == values[first])
    if task == "MultiArmedBandit":
        return int(np.argmax(np_env.bandits))
    raise AssertionError(task)


class _FixedUniforms:
    """Stands in for the original bandit's ``np_random``: returns the payout draws our env makes."""

    def __init__(self, draws):
        self.draws = list(draws)

    def random(self):
        return self.draws.pop(0)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_matches_original_step_by_step(env_id, monkeypatch):
    task = task_of(env_id)
    level = env_id[len(task):]
    env, params = build(env_id)
    num_episodes, oracle_probs = 12, (0.0, 0.5, 0.9, 1.0)
    horizon = SPEC_TRUNCATION.get(task, SPEC_LENGTH[task])[LEVELS.index(level)]
    rng = np.random.default_rng(0)
    step_keys = jax.random.split(jax.random.key(1), num_episodes * horizon).reshape(num_episodes, horizon)
    draws = np.asarray(jax.vmap(jax.vmap(lambda k: jax.random.uniform(k, (), jnp.float32)))(step_keys))

    states, actions, expected = [], np.zeros((num_episodes, horizon), np.int32), []
    for e in range(num_episodes):
        np_env = original_env(task, level)
        np_obs, _ = np_env.reset(seed=1000 + e)
        # Our reset with the original's hidden state: its deck (patched shuffle) or its bandit probabilities.
        if task == "MultiArmedBandit":
            obs0, state = jnp.int32(0), env.reset_env(jax.random.key(0), params)[1].replace(
                probs=jnp.asarray(np_env.bandits, jnp.float32)
            )
            np_env._np_random = _FixedUniforms(draws[e])
        else:
            decks = original_decks(task, np_env)
            monkeypatch.setattr(deck, "shuffled_deck", lambda key, num_decks: jnp.asarray(decks.pop(0)))
            obs0, state = env.reset_env(jax.random.key(0), params)
        np.testing.assert_array_equal(np.asarray(obs0), np.asarray(np_obs), err_msg=f"{env_id} reset, episode {e}")
        states.append(state)

        p_oracle, records = oracle_probs[e % len(oracle_probs)], []
        for t in range(horizon):
            best = original_oracle(task, np_env)
            a = best if best is not None and rng.random() < p_oracle else int(rng.integers(env.num_actions))
            actions[e, t] = a
            obs, reward, terminated, truncated, _ = np_env.step(a)
            records.append((np.asarray(obs), reward, terminated, truncated))
            if terminated or truncated:
                break
        expected.append(records)

    batched = jax.tree.map(lambda *xs: jnp.stack(xs), *states)

    def replay(state, acts, keys):
        def body(s, xs):
            a, k = xs
            obs, s, reward, terminated, _ = env.step_env(k, s, a, params)
            return s, (obs, reward, terminated, env.is_truncated(s, params))

        return jax.lax.scan(body, state, (acts, keys))[1]

    obs, rewards, terms, truncs = jax.device_get(jax.jit(jax.vmap(replay))(batched, jnp.asarray(actions), step_keys))
    ends = set()
    for e, records in enumerate(expected):
        for t, (np_obs, np_reward, np_term, np_trunc) in enumerate(records):
            where = f"{env_id} episode {e} step {t}"
            np.testing.assert_array_equal(obs[e, t], np_obs, err_msg=where)
            assert rewards[e, t] == pytest.approx(np_reward, abs=1e-7), where
            assert (bool(terms[e, t]), bool(truncs[e, t])) == (bool(np_term), bool(np_trunc)), where
        ends.add((bool(records[-1][2]), bool(records[-1][3])))
    assert all(r[-1][2] or r[-1][3] for r in expected), "every original episode ended within the horizon"
    if task == "Concentration":
        assert (True, False) in ends and (False, True) in ends, "both endings exercised"
