"""RepeatPrevious (original popgym ``envs/repeat_previous.py``): output the suit of the card seen k-1 steps ago.

With N = 52 * num_decks cards dealt one per step (c_0 shown at reset, c_{t+1} after step t), the action at step t
(after seeing c_0 .. c_t) must be the suit of c_{t-k+1} (the current card counts as the first of the k most
recent). Steps t < k-1 pay 0; later steps pay +1/(N-k) if right, -1/(N-k) if wrong (N-k rewarded steps).

Episode length N-1 (51 / 103 / 155), terminated (never truncated); a perfect policy returns exactly 1.0.
Observation int32 scalar, the suit, space Discrete(4). Action Discrete(4); out-of-range actions are clipped to [0, 3].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs import registry
from envs.popgym import deck
from envs.spaces import MultiDiscrete


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


class RepeatPrevious(environment.Environment[EnvState, EnvParams]):
    """RepeatPrevious with ``num_decks`` decks and lag ``k`` (Easy 1/4, Medium 2/32, Hard 3/64)."""

    def __init__(self, num_decks: int = 1, k: int = 4):
        super().__init__()
        self.num_decks = int(num_decks)
        self.num_cards = deck.num_cards(num_decks)
        if not 1 <= int(k) < self.num_cards:
            raise ValueError(f"RepeatPrevious: k must be in [1, {self.num_cards - 1}] for {num_decks} deck(s), got {k!r}")
        self.k = int(k)
        self.episode_length = self.num_cards - 1

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
        return suits[0], EnvState(time=jnp.int32(0), suits=suits, in_order=in_order)

    def step_env(self, key, state, action, params):
        n, k, t = self.num_cards, self.k, state.time
        action = jnp.clip(jnp.asarray(action, jnp.int32), 0, deck.NUM_SUITS - 1)
        target = state.suits[jnp.clip(t - k + 1, 0, n - 1)]
        scored = t >= k - 1
        reward = jnp.where(scored, jnp.where(action == target, 1.0, -1.0) / (n - k), 0.0).astype(jnp.float32)
        dealt = jnp.minimum(t + 1, n - 1)
        suits = deck.deal(key, state.suits, dealt, state.in_order)
        return suits[dealt], state.replace(time=t + 1, suits=suits), reward, t >= n - 2, {}

    def is_truncated(self, state, params):
        return jnp.array(False)

    @property
    def num_actions(self) -> int:
        return deck.NUM_SUITS

    def action_space(self, params=None):
        return spaces.Discrete(deck.NUM_SUITS)

    def observation_space(self, params=None):
        return spaces.Discrete(deck.NUM_SUITS)

    def state_space(self, params=None):
        return spaces.Dict(
            {
                "suits": MultiDiscrete([deck.NUM_SUITS] * self.num_cards),
                "in_order": spaces.Discrete(2),
                "time": spaces.Discrete(self.episode_length + 1),
            }
        )


for _level, _decks, _k in (("Easy", 1, 4), ("Medium", 2, 32), ("Hard", 3, 64)):
    registry.register(
        f"RepeatPrevious{_level}", RepeatPrevious, needs_prev_action=False, family="popgym", num_decks=_decks, k=_k
    )
