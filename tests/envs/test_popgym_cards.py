"""Card games and MultiarmedBandit: exact lengths and oracle returns (as the original popgym gives them),
random-policy returns against the spec's reference values, and step-by-step equivalence with the original numpy popgym
(same hidden deck /
bandit probabilities, same actions).

One compiled program per id serves all three tests (oracle and random episodes, replay of the original).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax import envs
from shm_jax.envs.popgym import deck

pytest.importorskip("popgym")
from popgym.envs import (  # noqa: E402
    autoencode as pg_autoencode,
)
from popgym.envs import (
    concentration as pg_concentration,
)
from popgym.envs import (
    count_recall as pg_count_recall,
)
from popgym.envs import (
    higher_lower as pg_higher_lower,
)
from popgym.envs import (
    multiarmed_bandit as pg_bandit,
)
from popgym.envs import (
    repeat_first as pg_repeat_first,
)
from popgym.envs import (
    repeat_previous as pg_repeat_previous,
)

from tests.helpers import quick_subset

LEVELS = ("Easy", "Medium", "Hard")
CARD_GAMES = ("Autoencode", "RepeatPrevious", "RepeatFirst", "CountRecall", "HigherLower", "Concentration")
TASKS = CARD_GAMES + ("MultiArmedBandit",)
ALL_IDS = [f"{t}{lv}" for t in TASKS for lv in LEVELS]

# Verified on the original popgym.
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
SPEC_CONCENTRATION_HEURISTIC = (0.815, 0.814, 0.701)  # perfect-memory heuristic, 200 episodes
NUM_EPISODES = 256  # fresh episodes per id, split between policies by MODE_COUNTS


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
            ~state.face_up
            & (state.values == state.values[jnp.maximum(state.pending, 0)])
            & (positions != state.pending)
        )
        return jnp.where(state.pending < 0, first, partner)
    if task == "MultiArmedBandit":
        return jnp.argmax(state.probs)
    raise AssertionError(task)


def memory_heuristic_action(env, state, seen):
    """Concentration with perfect memory of every card flipped so far (it reads values of ``seen`` positions only):
    first flip: a remembered face-down pair if there is one, else the first unseen face-down card; second flip:
    the remembered partner of the pending card if there is one, else the first other unseen face-down card."""
    positions = jnp.arange(env.num_cards)
    down = ~state.face_up
    known, unseen = seen & down, down & ~seen
    equal = (state.values[:, None] == state.values[None, :]) & (positions[:, None] != positions[None, :])
    known_pair = known & jnp.any(equal & known[None, :], axis=1)
    first = jnp.where(
        known_pair.any(), jnp.argmax(known_pair), jnp.where(unseen.any(), jnp.argmax(unseen), jnp.argmax(down))
    )
    pending = jnp.maximum(state.pending, 0)
    partner = known & (state.values == state.values[pending]) & (positions != pending)
    other = unseen & (positions != pending)
    fallback = jnp.where(other.any(), jnp.argmax(other), jnp.argmax(down & (positions != pending)))
    second = jnp.where(partner.any(), jnp.argmax(partner), fallback)
    return jnp.where(state.pending < 0, first, second)


ORACLE, RANDOM, GIVEN, HEURISTIC = 0, 1, 2, 3
# Per id: how many fresh episodes act with which policy (NUM_EPISODES in all).
MODE_COUNTS = {"Concentration": {ORACLE: 32, RANDOM: 112, HEURISTIC: 112}}
DEFAULT_MODE_COUNTS = {ORACLE: NUM_EPISODES // 2, RANDOM: NUM_EPISODES // 2}
NUM_REPLAYED = 12  # episodes of the original replayed per id
REPLAY_ORACLE_PROBS = (0.0, 0.5, 0.9, 1.0)  # per replayed episode: chance of the original's rewarding action


def rollout_program(env, task, params, horizon):
    """The one compiled program per id: ``horizon`` steps of ``step_env`` + ``is_truncated`` (no auto-reset: that
    would pay a fresh shuffle every step; test_all_ids covers gymnax ``step``) from either a fresh ``reset_env``
    or a given state, acting with the oracle, uniformly at random, or given actions (per episode ``mode``).
    Returns per-step (obs, reward, terminated, truncated) with leading axes [episodes, horizon], and the final
    states [episodes]."""
    space = env.action_space(params)

    def one(reset_key, given_state, use_given_state, mode, given_actions, act_keys, step_keys):
        _, fresh = env.reset_env(reset_key, params)
        state = jax.tree.map(lambda g, f: jnp.where(use_given_state, g, f), given_state, fresh)

        def body(carry, xs):
            state, seen = carry
            given, act_key, step_key = xs
            heuristic = memory_heuristic_action(env, state, seen) if task == "Concentration" else given
            action = jnp.select(
                [mode == ORACLE, mode == RANDOM, mode == HEURISTIC],
                [oracle_action(task, env, state), space.sample(act_key), heuristic],
                given,
            )
            obs, state, reward, terminated, _ = env.step_env(step_key, state, action, params)
            seen = seen.at[jnp.clip(action, 0, seen.shape[0] - 1)].set(True)
            return (state, seen), (obs, reward, terminated, env.is_truncated(state, params))

        seen = jnp.zeros(env.num_actions, bool)  # positions flipped so far (used by the Concentration heuristic)
        (final, _), outputs = jax.lax.scan(body, (state, seen), (given_actions, act_keys, step_keys))
        return outputs, final

    # Optimisation level 0 halves XLA's compile time; these programs run for milliseconds.
    return jax.jit(jax.vmap(one), compiler_options={"xla_backend_optimization_level": 0})


def first_episode_summary(reward, terminated, truncated):
    """Return, length and ending of each row's first episode. Inputs [episodes, horizon] numpy arrays."""
    done = terminated | truncated
    length = np.where(done.any(1), done.argmax(1) + 1, done.shape[1])
    alive = np.arange(done.shape[1])[None, :] < length[:, None]
    rows = np.arange(len(length))
    return dict(
        ret=(reward * alive).sum(1),
        length=length,
        term=terminated[rows, length - 1],
        trunc=truncated[rows, length - 1],
    )


def play_original(task, level, env, params, horizon, step_keys):
    """Run NUM_REPLAYED episodes of the original (its own shuffles, our payout draws for the bandit), actions mixing
    its rewarding action and random ones. Returns our reset states built from its hidden state (batched), our reset
    observations, its reset observations, the actions [E, horizon] and its per-step records."""
    rng = np.random.default_rng(0)
    draws = np.asarray(jax.vmap(jax.vmap(lambda k: jax.random.uniform(k, (), jnp.float32)))(step_keys))
    states, resets, actions, records = [], [], np.zeros((NUM_REPLAYED, horizon), np.int32), []
    for e in range(NUM_REPLAYED):
        np_env = original_env(task, level)
        np_obs, _ = np_env.reset(seed=1000 + e)
        if task == "MultiArmedBandit":  # its probabilities into our state; our payout draws into it
            obs0, state = env.reset_env(jax.random.key(0), params)
            state = state.replace(probs=jnp.asarray(np_env.bandits, jnp.float32))
            np_env._np_random = _FixedUniforms(draws[e])
        else:  # the original's deck(s), dealt as given
            obs0, state = env.reset_from_deck(*[jnp.asarray(d) for d in original_decks(task, np_env)])
        states.append(state)
        resets.append((np.asarray(obs0), np.asarray(np_obs)))
        p_oracle, episode = REPLAY_ORACLE_PROBS[e % len(REPLAY_ORACLE_PROBS)], []
        for t in range(horizon):
            best = original_oracle(task, np_env)
            a = best if best is not None and rng.random() < p_oracle else int(rng.integers(env.num_actions))
            actions[e, t] = a
            obs, reward, terminated, truncated, _ = np_env.step(a)
            episode.append((np.asarray(obs), reward, terminated, truncated))
            if terminated or truncated:
                break
        records.append(episode)
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states), resets, actions, records


@pytest.fixture(scope="module", params=ALL_IDS)
def rollouts(request):
    """Per id, one program run over NUM_EPISODES fresh episodes (MODE_COUNTS: oracle, random, heuristic) then the
    NUM_REPLAYED episodes of the original replayed with its hidden state and actions.
    Returns (env_id, {mode: first-episode summary}, (reset observations, original records, our replay outputs))."""
    env_id = request.param
    task = task_of(env_id)
    level = env_id[len(task) :]
    env, params = build(env_id)
    horizon = SPEC_TRUNCATION.get(task, SPEC_LENGTH[task])[LEVELS.index(level)]
    total = NUM_EPISODES + NUM_REPLAYED
    keys = jax.random.split(jax.random.key(2), 3 * total * horizon).reshape(3, total, horizon)
    reset_keys, act_keys, step_keys = keys[0, :, 0], keys[1], keys[2]
    replay_states, resets, replay_actions, records = play_original(
        task, level, env, params, horizon, step_keys[NUM_EPISODES:]
    )
    counts = MODE_COUNTS.get(task, DEFAULT_MODE_COUNTS)
    modes = np.concatenate([np.full(c, m) for m, c in counts.items()] + [np.full(NUM_REPLAYED, GIVEN)])
    mode = jnp.asarray(modes)
    # Fresh episodes start from reset_env (lazily dealt decks), except HigherLower's omniscient oracle, which must
    # see the next card: it starts from a deck shuffled in full and dealt in order.
    use_given_state = np.arange(total) >= NUM_EPISODES
    if task == "HigherLower":
        use_given_state |= modes == ORACLE
        decks = jax.vmap(lambda k: deck.shuffled_deck(k, env.num_decks))(jax.random.split(jax.random.key(4), total))
        full_states = jax.vmap(env.reset_from_deck)(decks)[1]
    else:
        full_states = jax.tree.map(lambda x: jnp.zeros((total, *x.shape[1:]), x.dtype), replay_states)
    given_states = jax.tree.map(lambda full, replay: full.at[NUM_EPISODES:].set(replay), full_states, replay_states)
    actions = jnp.concatenate([jnp.zeros((NUM_EPISODES, horizon), jnp.int32), jnp.asarray(replay_actions)])
    program = rollout_program(env, task, params, horizon)
    (obs, reward, terminated, truncated), final = jax.device_get(
        program(reset_keys, given_states, jnp.asarray(use_given_state), mode, actions, act_keys, step_keys)
    )
    summary = first_episode_summary(reward[:NUM_EPISODES], terminated[:NUM_EPISODES], truncated[:NUM_EPISODES])
    by_mode = {m: {k: v[modes[:NUM_EPISODES] == m] for k, v in summary.items()} for m in counts}
    by_mode["final"] = jax.tree.map(lambda x: x[:NUM_EPISODES][modes[:NUM_EPISODES] == RANDOM], final)
    replayed = jax.tree.map(lambda x: x[NUM_EPISODES:], (obs, reward, terminated, truncated))
    return env_id, by_mode, (resets, records, replayed)


def test_oracle_length_and_return(rollouts):
    env_id, by_mode, _ = rollouts
    oracle = by_mode[ORACLE]
    task = task_of(env_id)
    level = LEVELS.index(env_id[len(task) :])
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


@pytest.mark.parametrize(
    "rollouts", quick_subset([f"Concentration{lv}" for lv in LEVELS], lambda i: i.endswith("Easy")), indirect=True
)
def test_concentration_memory_heuristic_matches_spec(rollouts):
    """A perfect-memory player of the original returns 0.815 / 0.814 / 0.701 (200 episodes)."""
    env_id, by_mode, _ = rollouts
    level = LEVELS.index(env_id[len("Concentration") :])
    ret = by_mode[HEURISTIC]["ret"]
    tol = 4 * ret.std() * math.sqrt(1 / len(ret) + 1 / 200)
    assert abs(ret.mean() - SPEC_CONCENTRATION_HEURISTIC[level]) < tol, (ret.mean(), tol)


DEALT = {"Autoencode": ("suits",), "RepeatPrevious": ("suits",), "RepeatFirst": ("suits",),
         "HigherLower": ("ranks",), "CountRecall": ("values", "queries")}  # fmt: skip


@pytest.mark.parametrize(
    "rollouts", quick_subset([f"{t}{lv}" for t in DEALT for lv in LEVELS], lambda i: i.endswith("Easy")), indirect=True
)
def test_lazy_dealing_deals_every_card_once_in_uniform_order(rollouts):
    """After a whole lazily dealt episode (random policy), each deck holds exactly the deck's multiset of card
    attributes, and equal attributes follow each other at the rate of a uniform shuffle, (N/T - 1)/(N - 1),
    within 4 standard errors (pooled over episodes and positions)."""
    env_id, by_mode, _ = rollouts
    task = task_of(env_id)
    env, _ = build(env_id)
    n = env.num_cards
    assert not np.asarray(by_mode["final"].in_order).any()
    for field in DEALT[task]:
        dealt = np.asarray(getattr(by_mode["final"], field))
        attribute = {"suits": "suits", "ranks": "ranks"}.get(field, getattr(env, "deck_type", None))
        full = np.sort(np.asarray(deck.card_attribute(np.arange(n), attribute)))
        np.testing.assert_array_equal(np.sort(dealt, axis=1), np.broadcast_to(full, dealt.shape))
        types = deck.ATTRIBUTE_SIZES[attribute]
        p = (n / types - 1) / (n - 1)
        same = dealt[:, 1:] == dealt[:, :-1]
        stderr = math.sqrt(p * (1 - p) / same.size)
        assert abs(same.mean() - p) < 4 * stderr, (field, same.mean(), p)


def test_random_policy_matches_spec(rollouts):
    """Mean random-policy return within 4 standard errors of the difference between our mean (128 episodes, 112 for
    Concentration) and the spec's (100 episodes, 50 for Concentration), the standard deviation estimated from ours."""
    env_id, by_mode, _ = rollouts
    rand = by_mode[RANDOM]
    task = task_of(env_id)
    level = LEVELS.index(env_id[len(task) :])
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
        return (
            None if np_env.mode == pg_autoencode.Mode.WATCH else int(np_env.deck.suits_idx[np_env.deck["system"][-1]])
        )
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


def test_matches_original_step_by_step(rollouts):
    """Same hidden deck / probabilities and same actions: identical reset and step observations, rewards (to
    float32 precision) and terminated/truncated flags, for every step of NUM_REPLAYED episodes of the original."""
    env_id, _, (resets, records, (obs, rewards, terms, truncs)) = rollouts
    task = task_of(env_id)
    ends = set()
    for e, episode in enumerate(records):
        np.testing.assert_array_equal(resets[e][0], resets[e][1], err_msg=f"{env_id} reset, episode {e}")
        for t, (np_obs, np_reward, np_term, np_trunc) in enumerate(episode):
            where = f"{env_id} episode {e} step {t}"
            np.testing.assert_array_equal(obs[e, t], np_obs, err_msg=where)
            assert rewards[e, t] == pytest.approx(np_reward, abs=1e-7), where
            assert (bool(terms[e, t]), bool(truncs[e, t])) == (bool(np_term), bool(np_trunc)), where
        ends.add((bool(episode[-1][2]), bool(episode[-1][3])))
    assert all(ep[-1][2] or ep[-1][3] for ep in records), "every original episode ended within the horizon"
    if task == "Concentration":
        assert (True, False) in ends and (False, True) in ends, "both endings exercised"


@pytest.mark.parametrize("num_decks", [1, 8])  # the all-pairs ranking shuffle and jax.random.permutation
def test_shuffled_deck_is_a_uniform_permutation(num_decks):
    n, shuffles = deck.num_cards(num_decks), 4096
    decks = np.asarray(jax.jit(jax.vmap(lambda k: deck.shuffled_deck(k, num_decks)))(
        jax.random.split(jax.random.key(3), shuffles)
    ))  # fmt: skip
    assert decks.dtype == np.int32
    np.testing.assert_array_equal(np.sort(decks, axis=1), np.broadcast_to(np.arange(n), decks.shape))
    # Where card 0 lands and which card is dealt first: chi-square over 13 equal bins of positions / card ids,
    # 12 degrees of freedom, 0.1% critical value 32.9.
    for values in (np.argmax(decks == 0, axis=1), decks[:, 0]):
        counts = np.bincount(values * 13 // n, minlength=13)
        chi2 = ((counts - shuffles / 13) ** 2 / (shuffles / 13)).sum()
        assert chi2 < 32.9, chi2


@pytest.mark.parametrize("span", [1, 3, 52, 207])
def test_uniform_below_is_uniform_over_its_span(span):
    """deck.uniform_below (the deal's draw): floor(x * span / 2**64) of its key's 64 random bits exactly, values
    in [0, span), chi-square over min(span, 13) bins (0.1% critical values)."""
    draws = 20000
    keys = jax.random.split(jax.random.key(5), draws)
    values = np.asarray(jax.jit(jax.vmap(lambda k: deck.uniform_below(k, span)))(keys))
    assert values.dtype == np.int32 and values.min() >= 0 and values.max() < span
    if span == 1:
        return
    bins = min(span, 13)
    counts = np.bincount(values * bins // span, minlength=bins)
    expected = np.array([sum(1 for v in range(span) if v * bins // span == b) for b in range(bins)]) * draws / span
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < {2: 13.8, 12: 32.9}[bins - 1], chi2
    bits = np.asarray(jax.vmap(lambda k: jax.random.bits(k, (2,), jnp.uint32))(keys[:500])).astype(object)
    np.testing.assert_array_equal(values[:500], [((int(h) << 32) + int(lo)) * span >> 64 for h, lo in bits])
