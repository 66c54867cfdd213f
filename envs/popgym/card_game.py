"""What the POPGym card games that deal one card per step have in common (see ``deck.py`` for the deck itself).

- :class:`CardGame`: ``num_decks`` decks of N = 52 * num_decks cards, no tunable params (:class:`EnvParams`), an
  episode that always ends by termination after ``episode_length`` steps (default N-1), actions clipped into
  ``Discrete(num_actions)``. Used directly by games with their own dealing (CountRecall deals two decks).
- :class:`OneDeckGame`: one deck of which only one attribute (suits or ranks) matters, dealt lazily one card per
  step; a game only says how a step scores and what it shows (:meth:`OneDeckGame.score`).
- :func:`right_or_wrong`: the +1/M or -1/M reward that every card game pays over M scored steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from shm_jax.envs.popgym import deck
from shm_jax.envs.spaces import MultiDiscrete


@struct.dataclass
class EnvParams:
    """Nothing tunable: the episode length follows from the (static) number of decks, and the episode always
    ends by termination (no time limit), so there is no ``max_steps_in_episode``."""


@struct.dataclass
class SuitDeckState(environment.EnvState):
    """suits: int32[N], suit of the t-th dealt card (positions > time not dealt yet, see ``deck.deal``);
    in_order: bool, the deck was given in full and is dealt as given; time: int32, steps taken this episode."""

    suits: jax.Array
    in_order: jax.Array


@struct.dataclass
class RankDeckState(environment.EnvState):
    """ranks: int32[N], rank of the t-th dealt card (positions > time not dealt yet, see ``deck.deal``);
    in_order: bool, the deck was given in full and is dealt as given; time: int32, steps taken this episode."""

    ranks: jax.Array
    in_order: jax.Array


_DECK_STATES = {"suits": SuitDeckState, "ranks": RankDeckState}


def right_or_wrong(right: jax.Array, num_scored: int) -> jax.Array:
    """+1/num_scored if ``right`` else -1/num_scored, so a perfect episode of num_scored such steps returns 1."""
    return jnp.where(right, 1.0, -1.0) / num_scored


class CardGame(environment.Environment):
    """A card game over ``num_decks`` decks, terminated after ``episode_length`` steps, never truncated.

    Subclasses set ``num_actions``; actions outside ``[0, num_actions)`` are clipped (:meth:`clip_action`).
    """

    def __init__(self, num_decks: int = 1):
        super().__init__()
        self.num_decks = int(num_decks)
        self.num_cards = deck.num_cards(num_decks)
        self.episode_length = self.num_cards - 1

    def fresh_deck(self, key: jax.Array, attribute: str) -> jax.Array:
        """int32[N]: ``attribute`` of a newly shuffled deck, dealt lazily (``deck.deal``)."""
        cards = deck.card_attribute(jnp.arange(self.num_cards), attribute)
        return deck.deal(key, cards, 0, jnp.array(False))

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def clip_action(self, action: jax.Array) -> jax.Array:
        return jnp.clip(jnp.asarray(action, jnp.int32), 0, self.num_actions - 1)

    def next_position(self, time: jax.Array) -> jax.Array:
        """Deck position of the card the step at ``time`` deals (clamped to the last card)."""
        return jnp.minimum(time + 1, self.num_cards - 1)

    def terminated(self, time: jax.Array) -> jax.Array:
        """Whether the step at ``time`` (steps taken before it) is the episode's last."""
        return time >= self.episode_length - 1

    def is_truncated(self, state, params):
        return jnp.array(False)

    def action_space(self, params=None):
        return spaces.Discrete(self.num_actions)


class OneDeckGame(CardGame):
    """One deck dealt one card per step (c_0 at reset, c_{t+1} by step t); only its ``attribute`` matters.

    The state keeps the attribute of every card in deal order under the attribute's name (``state.suits`` or
    ``state.ranks``, see :class:`SuitDeckState`). A game defines :meth:`score`; the observation at reset is the
    first card's attribute, space Discrete(attribute size), unless it overrides :meth:`first_observation` and
    :meth:`observation_space`.
    """

    attribute = "suits"  # which card attribute the game looks at: "suits" or "ranks"

    def cards(self, state) -> jax.Array:
        """int32[N]: the attribute of each card of ``state``'s deck, in deal order."""
        return getattr(state, self.attribute)

    def reset_env(self, key, params):
        return self._start(self.fresh_deck(key, self.attribute), jnp.array(False))

    def reset_from_deck(self, cards: jax.Array):
        """Start an episode with a given deck (int32[N] card ids in deal order, e.g. the original's), dealt as
        given. Returns (obs, state) like ``reset_env``."""
        return self._start(deck.card_attribute(cards, self.attribute), jnp.array(True))

    def _start(self, cards, in_order):
        state = _DECK_STATES[self.attribute](time=jnp.int32(0), in_order=in_order, **{self.attribute: cards})
        return self.first_observation(cards), state

    def first_observation(self, cards: jax.Array) -> jax.Array:
        """The observation at reset; cards: int32[N], the deck's attribute in deal order."""
        return cards[0]

    def score(self, state, cards, dealt, action):
        """(observation, reward) of the step from ``state`` that dealt position ``dealt`` of ``cards`` (the deck
        after dealing, int32[N]); ``action`` is already clipped. Most games show the card just dealt, cards[dealt]."""
        raise NotImplementedError

    def step_env(self, key, state, action, params):
        t = state.time
        dealt = self.next_position(t)
        cards = deck.deal(key, self.cards(state), dealt, state.in_order)
        obs, reward = self.score(state, cards, dealt, self.clip_action(action))
        state = state.replace(time=t + 1, **{self.attribute: cards})
        return obs, state, reward.astype(jnp.float32), self.terminated(t), {}

    def observation_space(self, params=None):
        return spaces.Discrete(deck.ATTRIBUTE_SIZES[self.attribute])

    def state_space(self, params=None):
        return spaces.Dict(
            {
                self.attribute: MultiDiscrete([deck.ATTRIBUTE_SIZES[self.attribute]] * self.num_cards),
                "in_order": spaces.Discrete(2),
                "time": spaces.Discrete(self.episode_length + 1),
            }
        )
