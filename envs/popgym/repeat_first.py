"""RepeatFirst (original popgym ``envs/repeat_first.py``): keep outputting the suit of the first card.

With N = 52 * num_decks cards dealt one per step (c_0 shown at reset, c_{t+1} after step t), every action must be
the suit of c_0: +1/(N-1) if right, -1/(N-1) if wrong.

Episode length N-1 (51 / 415 / 831), terminated (never truncated); a perfect policy returns exactly 1.0.
Observation int32 scalar, the suit, space Discrete(4). Action Discrete(4); out-of-range actions are clipped to [0, 3].
"""

from __future__ import annotations

from shm_jax.envs import registry
from shm_jax.envs.popgym import card_game, deck
from shm_jax.envs.popgym.card_game import EnvParams  # noqa: F401  (this game's params)
from shm_jax.envs.popgym.card_game import SuitDeckState as EnvState  # noqa: F401  (this game's state)


class RepeatFirst(card_game.OneDeckGame):
    """RepeatFirst with ``num_decks`` decks (Easy 1, Medium 8, Hard 16). See the module docstring."""

    attribute = "suits"
    num_actions = deck.NUM_SUITS

    def score(self, state, cards, dealt, action):
        return cards[dealt], card_game.right_or_wrong(action == cards[0], self.num_cards - 1)


registry.register_levels("RepeatFirst", RepeatFirst, num_decks=(1, 8, 16))
