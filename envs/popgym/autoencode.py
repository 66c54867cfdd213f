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

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs import registry
from envs.popgym import deck
from envs.spaces import MultiDiscrete

WATCH, PLAY = 1, 0


@struct.dataclass
class EnvState(environment.EnvState):
    """suits: int32[N], suit of the t-th dealt card (positions > time not dealt yet, see ``deck.deal``);
    in_order: bool, the deck was given in full and is dealt as given; time: int32, steps taken this episode."""

    suits: jax.Array
    in_order: jax.Array


@struct.dataclass
class EnvParams:
    """Nothing tunable: the episode length follows from the (static) number of decks, and the episode always
    ends by termination (no time limit), so there is no ``max_steps_in_episode``."""


class Autoencode(environment.Environment[EnvState, EnvParams]):
    """Autoencode with ``num_decks`` decks (Easy 1, Medium 2, Hard 3). See the module docstring."""

    def __init__(self, num_decks: int = 1):
        super().__init__()
        self.num_decks = int(num_decks)
        self.num_cards = deck.num_cards(num_decks)
        self.episode_length = 2 * self.num_cards - 1

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def reset_env(self, key, params):
        suits = deck.card_attribute(jnp.arange(self.num_cards), "suits")
        return self._start(deck.deal(key, suits, 0, jnp.array(False)), jnp.array(False))

    def reset_from_deck(self, cards: jax.Array):
        """Start an episode with a given deck (int32[N] card ids in deal order, e.g. the original's), dealt as
        given. Returns (obs, state) like ``reset_env``."""
        return self._start(deck.card_attribute(cards, "suits"), jnp.array(True))

    def _start(self, suits, in_order):
        state = EnvState(time=jnp.int32(0), suits=suits, in_order=in_order)
        return jnp.stack([jnp.int32(WATCH), suits[0]]), state

    def step_env(self, key, state, action, params):
        n = self.num_cards
        t = state.time
        action = jnp.clip(jnp.asarray(action, jnp.int32), 0, deck.NUM_SUITS - 1)
        watching = t < n - 1
        # Watch: deal card t + 1 (the last one is shown with the PLAY flag).
        dealt = jnp.minimum(t + 1, n - 1)
        suits = deck.deal(key, state.suits, dealt, state.in_order)
        watch_obs = jnp.stack([jnp.where(dealt == n - 1, PLAY, WATCH).astype(jnp.int32), suits[dealt]])
        # Play: recall card 2N-2-t (clamped into range so a step after the end cannot index out of bounds).
        target = suits[jnp.clip(2 * n - 2 - t, 0, n - 1)]
        play_reward = jnp.where(action == target, 1.0, -1.0) / n
        obs = jnp.where(watching, watch_obs, jnp.zeros(2, jnp.int32))
        reward = jnp.where(watching, 0.0, play_reward).astype(jnp.float32)
        terminated = t >= 2 * n - 2
        return obs, state.replace(time=t + 1, suits=suits), reward, terminated, {}

    def is_truncated(self, state, params):
        return jnp.array(False)

    @property
    def num_actions(self) -> int:
        return deck.NUM_SUITS

    def action_space(self, params=None):
        return spaces.Discrete(deck.NUM_SUITS)

    def observation_space(self, params=None):
        return MultiDiscrete([2, deck.NUM_SUITS])

    def state_space(self, params=None):
        return spaces.Dict(
            {
                "suits": MultiDiscrete([deck.NUM_SUITS] * self.num_cards),
                "in_order": spaces.Discrete(2),
                "time": spaces.Discrete(self.episode_length + 1),
            }
        )


for _level, _decks in (("Easy", 1), ("Medium", 2), ("Hard", 3)):
    registry.register(f"Autoencode{_level}", Autoencode, needs_prev_action=False, family="popgym", num_decks=_decks)
