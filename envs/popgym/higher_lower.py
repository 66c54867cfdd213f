"""HigherLower (original popgym ``envs/higher_lower.py``): guess whether the next card ranks higher or lower.

With N = 52 * num_decks cards dealt one per step (c_0 shown at reset), the action at step t guesses whether
rank(c_{t+1}) is higher (action 0) or lower (action 1) than rank(c_t): +1/N if right, -1/N if wrong, 0 on a tie.
The observation after the step is rank(c_{t+1}).

Episode length N-1 (51 / 103 / 155), terminated (never truncated). Ties pay 0, so even an omniscient policy
returns below 1. Observation int32 scalar, the rank 0..12, space Discrete(13). Action Discrete(2); out-of-range
actions are clipped to [0, 1].
"""

from __future__ import annotations

import jax.numpy as jnp

from shm_jax.envs import registry
from shm_jax.envs.popgym import card_game
from shm_jax.envs.popgym.card_game import EnvParams  # noqa: F401  (this game's params)
from shm_jax.envs.popgym.card_game import RankDeckState as EnvState  # noqa: F401  (this game's state)

HIGHER, LOWER = 0, 1


class HigherLower(card_game.OneDeckGame):
    """HigherLower with ``num_decks`` decks (Easy 1, Medium 2, Hard 3). See the module docstring."""

    attribute = "ranks"
    num_actions = 2

    def score(self, state, cards, dealt, action):
        current, following = cards[jnp.minimum(state.time, self.num_cards - 1)], cards[dealt]
        right = (following > current) == (action == HIGHER)
        return following, jnp.where(following == current, 0.0, card_game.right_or_wrong(right, self.num_cards))


registry.register_levels("HigherLower", HigherLower, num_decks=(1, 2, 3))
