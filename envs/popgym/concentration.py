"""Concentration (original popgym ``envs/concentration.py``): the memory card game, one flip per step.

n = 52 * num_decks cards lie face down; only one attribute matters (Easy 1 deck / colours, Medium 2 / colours,
Hard 1 / ranks; T distinct values). The action flips the card at position a:

1. if an in-play card (this one, or the pending first flip) is already face up: reward failure x (cards in play,
   1 or 2) and the in-play set is cleared;
2. else, on the second flip of a pair: two DIFFERENT cards of equal value earn the success reward 1/(n/2) and stay
   face up; a mismatch, or the same card flipped twice, costs 2 x failure; the in-play set is cleared either way;
3. else (first flip of a pair): reward 0.

failure = -1/L with L = ceil(2n - n/(2n-1)) (104 / 208 / 104) = ``EnvParams.max_steps_in_episode``.
Terminated when every card is face up; truncated after L steps (``is_truncated``).

Observation int32[n]: per card its value if face up or in play (the flipped card(s) are shown in the observation
that the flip returns, both cards on the second flip), else T (face down); space MultiDiscrete([T + 1] * n).
Action Discrete(n); out-of-range actions are clipped to [0, n-1]. The original declares that the observation
requires the previous action (``needs_prev_action=True``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from shm_jax.envs import registry
from shm_jax.envs.popgym import deck
from shm_jax.envs.spaces import MultiDiscrete

NO_CARD = -1


@struct.dataclass
class EnvState(environment.EnvState):
    """values: int32[n] value of the card at each position; face_up: bool[n]; pending: int32, position of the
    first flip of an unfinished pair or -1; time: int32, steps taken this episode."""

    values: jax.Array
    face_up: jax.Array
    pending: jax.Array


@struct.dataclass
class EnvParams(environment.EnvParams):
    """max_steps_in_episode: the truncation length L, also the failure unit -1/L."""


class Concentration(environment.Environment[EnvState, EnvParams]):
    """Concentration with ``num_decks`` decks matching ``deck_type`` ("colors" or "ranks"). See the module docstring."""

    def __init__(self, num_decks: int = 1, deck_type: str = "ranks"):
        super().__init__()
        if deck_type not in ("colors", "ranks"):
            # Suits cannot be matched in pairs (13 cards of each suit per deck), as in the original.
            raise ValueError(f"Concentration: deck_type must be 'colors' or 'ranks', got {deck_type!r}")
        self.num_decks = int(num_decks)
        self.num_cards = deck.num_cards(num_decks)
        self.deck_type = deck_type
        self.num_values = deck.check_attribute(deck_type)
        self.face_down = self.num_values
        n = self.num_cards
        self.episode_length = math.ceil(2 * n - n / (2 * n - 1))
        self.success_reward = 1.0 / (n // 2)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.episode_length)

    def reset_env(self, key, params):
        return self.reset_from_deck(deck.shuffled_deck(key, self.num_decks))

    def reset_from_deck(self, cards: jax.Array):
        """Start an episode with the given table (int32[n] card ids by position, e.g. the original's ``idx``).
        Returns (obs, state) like ``reset_env``."""
        values = deck.card_attribute(cards, self.deck_type)
        state = EnvState(
            time=jnp.int32(0),
            values=values,
            face_up=jnp.zeros(self.num_cards, bool),
            pending=jnp.int32(NO_CARD),
        )
        return jnp.full(self.num_cards, self.face_down, jnp.int32), state

    def step_env(self, key, state, action, params):
        n = self.num_cards
        failure = -1.0 / params.max_steps_in_episode
        action = jnp.clip(jnp.asarray(action, jnp.int32), 0, n - 1)
        has_pending = state.pending != NO_CARD
        pending = jnp.maximum(state.pending, 0)
        in_play = (jnp.arange(n) == action) | (has_pending & (jnp.arange(n) == pending))
        num_in_play = 1 + has_pending.astype(jnp.int32)
        obs = jnp.where(state.face_up | in_play, state.values, self.face_down).astype(jnp.int32)

        already_up = state.face_up[action] | (has_pending & state.face_up[pending])
        second_flip = has_pending & ~already_up
        match = second_flip & (state.values[pending] == state.values[action]) & (pending != action)
        reward = jnp.where(
            already_up,
            failure * num_in_play,
            jnp.where(second_flip, jnp.where(match, self.success_reward, 2.0 * failure), 0.0),
        ).astype(jnp.float32)
        face_up = state.face_up | (match & in_play)
        new_pending = jnp.where(already_up | second_flip, NO_CARD, action).astype(jnp.int32)
        state = state.replace(time=state.time + 1, face_up=face_up, pending=new_pending)
        return obs, state, reward, match & jnp.all(face_up), {}

    @property
    def num_actions(self) -> int:
        return self.num_cards

    def action_space(self, params=None):
        return spaces.Discrete(self.num_cards)

    def observation_space(self, params=None):
        return MultiDiscrete([self.num_values + 1] * self.num_cards)

    def state_space(self, params=None):
        return spaces.Dict(
            {
                "values": MultiDiscrete([self.num_values] * self.num_cards),
                "face_up": MultiDiscrete([2] * self.num_cards),
                "pending": spaces.Discrete(self.num_cards + 1),
                "time": spaces.Discrete(self.episode_length + 1),
            }
        )


registry.register_levels(
    "Concentration", Concentration, needs_prev_action=True, num_decks=(1, 2, 1), deck_type=("colors", "colors", "ranks")
)
