"""RepeatPrevious (original popgym ``envs/repeat_previous.py``): output the suit of the card seen k-1 steps ago.

With N = 52 * num_decks cards dealt one per step (c_0 shown at reset, c_{t+1} after step t), the action at step t
(after seeing c_0 .. c_t) must be the suit of c_{t-k+1} (the current card counts as the first of the k most
recent). Steps t < k-1 pay 0; later steps pay +1/(N-k) if right, -1/(N-k) if wrong (N-k rewarded steps).

Episode length N-1 (51 / 103 / 155), terminated (never truncated); a perfect policy returns exactly 1.0.
Observation int32 scalar, the suit, space Discrete(4). Action Discrete(4); out-of-range actions are clipped to [0, 3].
"""

from __future__ import annotations

import jax.numpy as jnp

from shm_jax.envs import registry
from shm_jax.envs.popgym import card_game, deck
from shm_jax.envs.popgym.card_game import EnvParams  # noqa: F401  (this game's params)
from shm_jax.envs.popgym.card_game import SuitDeckState as EnvState  # noqa: F401  (this game's state)


class RepeatPrevious(card_game.OneDeckGame):
    """RepeatPrevious with ``num_decks`` decks and lag ``k`` (Easy 1/4, Medium 2/32, Hard 3/64)."""

    attribute = "suits"
    num_actions = deck.NUM_SUITS

    def __init__(self, num_decks: int = 1, k: int = 4):
        super().__init__(num_decks)
        if not 1 <= int(k) < self.num_cards:
            raise ValueError(
                f"RepeatPrevious: k must be in [1, {self.num_cards - 1}] for {num_decks} deck(s), got {k!r}"
            )
        self.k = int(k)

    def score(self, state, cards, dealt, action):
        n, k, t = self.num_cards, self.k, state.time
        # The dealt deck: positions before ``dealt`` are as in state.suits, and reading only the new deck lets
        # XLA update it in place.
        target = cards[jnp.clip(t - k + 1, 0, n - 1)]
        return cards[dealt], jnp.where(t >= k - 1, card_game.right_or_wrong(action == target, n - k), 0.0)


registry.register_levels("RepeatPrevious", RepeatPrevious, num_decks=(1, 2, 3), k=(4, 32, 64))
