"""Playing-card decks shared by the POPGym card games (original ``popgym/core/deck.py`` semantics).

A deck is ``num_decks`` standard 52-card decks concatenated, ``N = 52 * num_decks`` cards. Card id ``i`` in
``[0, N)`` has the attributes the original assigns by position before shuffling:

- suit   = i mod 4            (4 suits; the original tiles the 4 suits 13 times)
- rank   = (i div 4) mod 13   (13 ranks, each repeated for the 4 suits)
- colour = i mod 2            (2 colours, alternating)

Each episode the deck is shuffled (a uniform permutation) and dealt in order: ``cards[t]`` is the t-th card
dealt. The original deals from the END of its shuffled index array, so its deal order is ``idx[::-1]``
(see :func:`deal_order_from_popgym_idx`, used by the cross-check tests).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

CARDS_PER_DECK = 52
NUM_SUITS = 4
NUM_RANKS = 13
NUM_COLORS = 2

# Number of distinct values of each attribute a game can look at.
ATTRIBUTE_SIZES = {"suits": NUM_SUITS, "ranks": NUM_RANKS, "colors": NUM_COLORS}


def num_cards(num_decks: int) -> int:
    """Total number of cards N in ``num_decks`` concatenated decks."""
    if int(num_decks) < 1:
        raise ValueError(f"num_decks must be a positive integer, got {num_decks!r}")
    return CARDS_PER_DECK * int(num_decks)


def check_attribute(attribute: str) -> int:
    """Number of distinct values of ``attribute``; ValueError for an unknown name."""
    if attribute not in ATTRIBUTE_SIZES:
        raise ValueError(f"deck attribute must be one of {sorted(ATTRIBUTE_SIZES)}, got {attribute!r}")
    return ATTRIBUTE_SIZES[attribute]


def card_attribute(cards: jax.Array, attribute: str) -> jax.Array:
    """The ``attribute`` ("suits", "ranks" or "colors") of card ids. cards: int32[...] -> int32[...]."""
    check_attribute(attribute)
    cards = jnp.asarray(cards, jnp.int32)
    if attribute == "suits":
        return cards % NUM_SUITS
    if attribute == "ranks":
        return (cards // NUM_SUITS) % NUM_RANKS
    return cards % NUM_COLORS


def shuffled_deck(key: jax.Array, num_decks: int) -> jax.Array:
    """A uniformly shuffled deck in deal order. Returns int32[52 * num_decks] card ids."""
    return jax.random.permutation(key, num_cards(num_decks)).astype(jnp.int32)


def deal_order_from_popgym_idx(idx: np.ndarray) -> np.ndarray:
    """The original deck's shuffled ``idx`` array -> card ids in the order the original deals them."""
    return np.asarray(idx)[::-1].astype(np.int32)
