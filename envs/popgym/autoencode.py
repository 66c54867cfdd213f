"""Autoencode (original popgym ``envs/autoencode.py``): watch a deck of cards, then recite it backwards.

Timeline for N = 52 * num_decks cards (c_t = t-th card dealt, only its suit matters):

- reset shows ``(1, suit(c_0))``; mode 1 = WATCH, 0 = PLAY.
- watch steps t = 0 .. N-2 deal c_{t+1} with reward 0; the step that deals the last card c_{N-1} already shows
  mode 0, i.e. ``(0, suit(c_{N-1}))``.
- play steps t = N-1 .. 2N-2: the action must be the suit of c_{2N-2-t} (reverse order, starting with c_{N-1});
  reward +1/N if right, -1/N if wrong; observation ``(0, 0)``. The step that recalls c_0 terminates.

Episode length 2N-1 (103 / 207 / 311), terminated (never truncated); a perfect policy returns exactly 1.0.
Observation int32[2] = (mode, suit), space MultiDiscrete([2, 4]). Action Discrete(4), a suit; out-of-range
actions are clipped to [0, 3].
"""

from __future__ import annotations

import jax.numpy as jnp

from shm_jax.envs import registry
from shm_jax.envs.popgym import card_game, deck
from shm_jax.envs.popgym.card_game import EnvParams  # noqa: F401  (this game's params)
from shm_jax.envs.popgym.card_game import SuitDeckState as EnvState  # noqa: F401  (this game's state)
from shm_jax.envs.spaces import MultiDiscrete

WATCH, PLAY = 1, 0


class Autoencode(card_game.OneDeckGame):
    """Autoencode with ``num_decks`` decks (Easy 1, Medium 2, Hard 3). See the module docstring."""

    attribute = "suits"
    num_actions = deck.NUM_SUITS

    def __init__(self, num_decks: int = 1):
        super().__init__(num_decks)
        self.episode_length = 2 * self.num_cards - 1

    def first_observation(self, cards):
        return jnp.stack([jnp.int32(WATCH), cards[0]])

    def score(self, state, cards, dealt, action):
        n, t = self.num_cards, state.time
        watching = t < n - 1
        # Watch: show card t + 1 (the last one with the PLAY flag).
        watch_obs = jnp.stack([jnp.where(dealt == n - 1, PLAY, WATCH).astype(jnp.int32), cards[dealt]])
        # Play: recall card 2N-2-t (clamped into range so a step after the end cannot index out of bounds).
        target = cards[jnp.clip(2 * n - 2 - t, 0, n - 1)]
        play_reward = card_game.right_or_wrong(action == target, n)
        return jnp.where(watching, watch_obs, jnp.zeros(2, jnp.int32)), jnp.where(watching, 0.0, play_reward)

    def observation_space(self, params=None):
        return MultiDiscrete([2, deck.NUM_SUITS])


registry.register_levels("Autoencode", Autoencode, num_decks=(1, 2, 3))
