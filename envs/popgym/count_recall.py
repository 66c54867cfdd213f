"""CountRecall (original popgym ``envs/count_recall.py``, after popgym PR #41): count cards of the queried type.

Two independently shuffled decks of N = 52 * num_decks cards: a value deck and a query deck. Reset deals the first
pair; each step deals the next pair. Only one attribute of each card matters (Easy colours, Medium suits, Hard
ranks; T distinct types). The action at step t (after seeing the values v_0 .. v_t and the query q_t) must be the
number of value cards of type q_t among v_0 .. v_t (the current card included): +1/(N-1) if right, -1/(N-1) if
wrong.

Episode length N-1 (51 / 103 / 207), terminated (never truncated); a perfect policy returns exactly 1.0.
Observation int32[2] = (value type, query type), space MultiDiscrete([T, T]). Action Discrete(max_count + 1) with
max_count = N / T (27 / 27 / 17 actions: a count can equal max_count); out-of-range actions are clipped.
The original's ``error_clamp`` argument is never used there, so it is not offered here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from shm_jax.envs import registry
from shm_jax.envs.popgym import card_game, deck
from shm_jax.envs.popgym.card_game import EnvParams  # noqa: F401  (this game's params)
from shm_jax.envs.spaces import MultiDiscrete


@struct.dataclass
class EnvState(environment.EnvState):
    """values, queries: int32[N] card types in deal order (positions > time not dealt yet: placeholders for a
    shuffled deck, see ``deck.deal_from_counts``); values_left, queries_left: int32[T] undealt cards of each type;
    counts: int32[T] value cards of each type dealt so far (current one included); in_order: bool, the decks were
    given in full and are dealt as given; time: int32, steps taken this episode."""

    values: jax.Array
    queries: jax.Array
    values_left: jax.Array
    queries_left: jax.Array
    counts: jax.Array
    in_order: jax.Array


class CountRecall(card_game.CardGame):
    """CountRecall with ``num_decks`` decks counting ``deck_type`` ("colors", "suits" or "ranks").

    Easy 1 deck / colors, Medium 2 / suits, Hard 4 / ranks. See the module docstring.
    """

    def __init__(self, num_decks: int = 1, deck_type: str = "colors"):
        super().__init__(num_decks)
        self.deck_type = deck_type
        self.num_types = deck.check_attribute(deck_type)
        self.max_count = self.num_cards // self.num_types

    def reset_env(self, key, params):
        # Only each card's type matters, so a shuffled deck is dealt from counts (deck.deal_from_counts): a step
        # then touches one card of each deck, whatever N.
        key_values, key_queries = jax.random.split(key)
        types = deck.card_attribute(jnp.arange(self.num_cards), self.deck_type)
        full = jnp.full(self.num_types, self.num_cards // self.num_types, jnp.int32)
        values, values_left = deck.deal_from_counts(key_values, types, full, 0, jnp.array(False))
        queries, queries_left = deck.deal_from_counts(key_queries, types, full, 0, jnp.array(False))
        return self._start(values, queries, values_left, queries_left, jnp.array(False))

    def reset_from_deck(self, value_cards: jax.Array, query_cards: jax.Array):
        """Start an episode with given decks (int32[N] card ids in deal order each, e.g. the original's), dealt
        as given. Returns (obs, state) like ``reset_env``."""
        values = deck.card_attribute(value_cards, self.deck_type)
        queries = deck.card_attribute(query_cards, self.deck_type)
        types = jnp.arange(self.num_types)
        left = [jnp.sum(cards[1:, None] == types, axis=0, dtype=jnp.int32) for cards in (values, queries)]
        return self._start(values, queries, *left, jnp.array(True))

    def _start(self, values, queries, values_left, queries_left, in_order):
        counts = jnp.zeros(self.num_types, jnp.int32).at[values[0]].add(1)
        state = EnvState(
            time=jnp.int32(0),
            values=values,
            queries=queries,
            values_left=values_left,
            queries_left=queries_left,
            counts=counts,
            in_order=in_order,
        )
        return jnp.stack([values[0], queries[0]]), state

    def step_env(self, key, state, action, params):
        n, t = self.num_cards, state.time
        dealt = self.next_position(t)
        key_values, key_queries = jax.random.split(key)
        values, values_left = deck.deal_from_counts(key_values, state.values, state.values_left, dealt, state.in_order)
        queries, queries_left = deck.deal_from_counts(
            key_queries, state.queries, state.queries_left, dealt, state.in_order
        )
        # The current query from the dealt deck (positions before ``dealt`` are unchanged): reading only the new
        # decks lets XLA deal them in place.
        target = state.counts[queries[jnp.minimum(t, n - 1)]]
        reward = card_game.right_or_wrong(self.clip_action(action) == target, n - 1).astype(jnp.float32)
        value, query = values[dealt], queries[dealt]
        counts = state.counts.at[value].add(jnp.where(t + 1 <= n - 1, 1, 0))
        state = state.replace(
            time=t + 1,
            values=values,
            queries=queries,
            values_left=values_left,
            queries_left=queries_left,
            counts=counts,
        )
        return jnp.stack([value, query]), state, reward, self.terminated(t), {}

    @property
    def num_actions(self) -> int:
        return self.max_count + 1

    def observation_space(self, params=None):
        return MultiDiscrete([self.num_types, self.num_types])

    def state_space(self, params=None):
        types = MultiDiscrete([self.num_types] * self.num_cards)
        return spaces.Dict(
            {
                "values": types,
                "queries": types,
                "values_left": MultiDiscrete([self.max_count + 1] * self.num_types),
                "queries_left": MultiDiscrete([self.max_count + 1] * self.num_types),
                "counts": MultiDiscrete([self.max_count + 1] * self.num_types),
                "in_order": spaces.Discrete(2),
                "time": spaces.Discrete(self.episode_length + 1),
            }
        )


registry.register_levels("CountRecall", CountRecall, num_decks=(1, 2, 4), deck_type=("colors", "suits", "ranks"))
