"""HigherLower (original popgym ``envs/higher_lower.py``): guess whether the next card ranks higher or lower.

With N = 52 * num_decks cards dealt one per step (c_0 shown at reset), the action at step t guesses whether
rank(c_{t+1}) is higher (action 0) or lower (action 1) than rank(c_t): +1/N if right, -1/N if wrong, 0 on a tie.
The observation after the step is rank(c_{t+1}).

Episode length N-1 (51 / 103 / 155), terminated (never truncated). Ties pay 0, so even an omniscient policy
returns below 1. Observation int32 scalar, the rank 0..12, space Discrete(13). Action Discrete(2); out-of-range
actions are clipped to [0, 1].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs import registry
from envs.popgym import deck
from envs.spaces import MultiDiscrete

HIGHER, LOWER = 0, 1


@struct.dataclass
class EnvState(environment.EnvState):
    """ranks: int32[N], rank of the t-th dealt card (positions > time not dealt yet, see ``deck.deal``);
    in_order: bool, the deck was given in full and is dealt as given; time: int32, steps taken this episode."""

    ranks: jax.Array
    in_order: jax.Array


@struct.dataclass
class EnvParams:
    """Nothing tunable: the episode length follows from the (static) number of decks, and the episode always
    ends by termination (no time limit), so there is no ``max_steps_in_episode``."""


class HigherLower(environment.Environment[EnvState, EnvParams]):
    """HigherLower with ``num_decks`` decks (Easy 1, Medium 2, Hard 3). See the module docstring."""

    def __init__(self, num_decks: int = 1):
        super().__init__()
        self.num_decks = int(num_decks)
        self.num_cards = deck.num_cards(num_decks)
        self.episode_length = self.num_cards - 1

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def reset_env(self, key, params):
        ranks = deck.card_attribute(jnp.arange(self.num_cards), "ranks")
        return self._start(deck.deal(key, ranks, 0, jnp.array(False)), jnp.array(False))

    def reset_from_deck(self, cards: jax.Array):
        """Start an episode with a given deck (int32[N] card ids in deal order, e.g. the original's), dealt as
        given. Returns (obs, state) like ``reset_env``."""
        return self._start(deck.card_attribute(cards, "ranks"), jnp.array(True))

    def _start(self, ranks, in_order):
        return ranks[0], EnvState(time=jnp.int32(0), ranks=ranks, in_order=in_order)

    def step_env(self, key, state, action, params):
        n, t = self.num_cards, state.time
        action = jnp.clip(jnp.asarray(action, jnp.int32), HIGHER, LOWER)
        dealt = jnp.minimum(t + 1, n - 1)
        ranks = deck.deal(key, state.ranks, dealt, state.in_order)
        current, following = ranks[jnp.minimum(t, n - 1)], ranks[dealt]
        right = (following > current) == (action == HIGHER)
        reward = jnp.where(following == current, 0.0, jnp.where(right, 1.0, -1.0) / n).astype(jnp.float32)
        return following, state.replace(time=t + 1, ranks=ranks), reward, t >= n - 2, {}

    def is_truncated(self, state, params):
        return jnp.array(False)

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params=None):
        return spaces.Discrete(deck.NUM_RANKS)

    def state_space(self, params=None):
        return spaces.Dict(
            {
                "ranks": MultiDiscrete([deck.NUM_RANKS] * self.num_cards),
                "in_order": spaces.Discrete(2),
                "time": spaces.Discrete(self.episode_length + 1),
            }
        )


for _level, _decks in (("Easy", 1), ("Medium", 2), ("Hard", 3)):
    registry.register(f"HigherLower{_level}", HigherLower, needs_prev_action=False, family="popgym", num_decks=_decks)
