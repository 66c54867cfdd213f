"""Playing-card decks shared by the POPGym card games (original ``popgym/core/deck.py`` semantics).

A deck is ``num_decks`` standard 52-card decks concatenated, ``N = 52 * num_decks`` cards. Card id ``i`` in
``[0, N)`` has the attributes the original assigns by position before shuffling:

- suit   = i mod 4            (4 suits; the original tiles the 4 suits 13 times)
- rank   = (i div 4) mod 13   (13 ranks, each repeated for the 4 suits)
- colour = i mod 2            (2 colours, alternating)

Games that deal cards one per step deal lazily (:func:`deal`, one Fisher-Yates step per card: the card dealt at
position t is uniform over the cards not dealt yet), so a reset costs O(N) instead of a shuffle. This matters
because gymnax computes a reset on EVERY step (auto-reset). The resulting deal order is a uniform permutation, as
the original's shuffle-then-deal. A deck given in full (``in_order=True``, e.g. the original's deck replayed by
the tests) is dealt as given. Games that lay all cards out at once (Concentration) use :func:`shuffled_deck`.

``cards[t]`` is the t-th card dealt. The original deals from the END of its shuffled index array, so its deal
order is ``idx[::-1]`` (see :func:`deal_order_from_popgym_idx`, used by the cross-check tests).
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


# Up to this many cards, shuffle by ranking random keys with an all-pairs comparison (O(N^2) but sort-free);
# beyond it, jax.random.permutation (sort-based). Every gymnax step also runs reset_env (auto-reset), and on CPU a
# batched sort of 52 keys costs about 10x more than the comparisons (3x at 104, even at 208, slower at 832).
_RANK_SHUFFLE_MAX_CARDS = 208


def shuffled_deck(key: jax.Array, num_decks: int) -> jax.Array:
    """A uniformly shuffled deck in deal order. Returns int32[52 * num_decks] card ids.

    Small decks: card i goes to position rank_i, the rank of its uint32 random key (ties broken by card id, a
    bias of order N^2 / 2^33 per shuffle, < 3e-6 for N <= 208). Larger decks: ``jax.random.permutation``.
    """
    n = num_cards(num_decks)
    if n > _RANK_SHUFFLE_MAX_CARDS:
        return jax.random.permutation(key, n).astype(jnp.int32)
    keys = jax.random.bits(key, (n,), jnp.uint32)
    ids = jnp.arange(n, dtype=jnp.int32)
    before = (keys[None, :] < keys[:, None]) | ((keys[None, :] == keys[:, None]) & (ids[None, :] < ids[:, None]))
    rank = jnp.sum(before, axis=1, dtype=jnp.int32)  # rank[i] = number of cards ordered before card i
    return jnp.zeros(n, jnp.int32).at[rank].set(ids, unique_indices=True)


def deal_order_from_popgym_idx(idx: np.ndarray) -> np.ndarray:
    """The original deck's shuffled ``idx`` array -> card ids in the order the original deals them."""
    return np.asarray(idx)[::-1].astype(np.int32)


def _mul_u32_u16(v: jax.Array, s: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(high, low) 32-bit halves of v * s for uint32 v and uint32 s < 2**16, in 16-bit limbs (no 64-bit ints)."""
    a = (v >> 16) * s  # < 2**32
    b = (v & 0xFFFF) * s
    c = a + (b >> 16)  # < 2**32 - 2**16: no overflow
    return c >> 16, (c << 16) | (b & 0xFFFF)


def uniform_below(key: jax.Array, span: jax.Array) -> jax.Array:
    """An int32 uniform over [0, span) for 1 <= span < 2**16, from one 64-bit draw (a single threefry block).

    floor(x * span / 2**64) of the 64 random bits x = hi * 2**32 + lo, with multiplies and shifts only (integer
    division does not vectorise on CPU). Each value has floor or ceil(2**64 / span) of the x, a bias below
    span / 2**64, as ``jax.random.randint`` (which spends a key split and two draws on its 64 bits)."""
    hi, lo = jax.random.bits(key, (2,), jnp.uint32)
    span = jnp.asarray(span).astype(jnp.uint32)
    carry_in, _ = _mul_u32_u16(lo, span)  # floor(lo * span / 2**32) < 2**16
    high, low = _mul_u32_u16(hi, span)
    carry = low > jnp.uint32(0xFFFFFFFF) - carry_in  # low + carry_in overflows 32 bits
    return (high + carry.astype(jnp.uint32)).astype(jnp.int32)


def deal(key: jax.Array, cards: jax.Array, position: jax.Array, in_order: jax.Array) -> jax.Array:
    """Deal the card at ``position`` (clamped to N-1): swap it with a uniformly chosen position in [position, N),
    one Fisher-Yates step, unless ``in_order`` (the deck was given in full: deal it as it is).

    cards: int32[N] card ids or attributes, positions < ``position`` already dealt. Returns int32[N].
    """
    n = cards.shape[0]
    position = jnp.minimum(position, n - 1)
    other = jnp.where(in_order, position, position + uniform_below(key, n - position))
    here, there = cards[position], cards[other]
    # One scatter whose values are the two reads, so XLA can order the reads first and write in place (two
    # chained scatters copy the whole deck every step under vmap). other == position writes one value twice.
    return cards.at[jnp.stack([other, position])].set(jnp.stack([here, there]))


def deal_from_counts(
    key: jax.Array, cards: jax.Array, left: jax.Array, position: jax.Array, in_order: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Deal the card at ``position`` of a deck of which only one attribute matters, kept as counts: its value is
    drawn with probability left[v] / sum(left) (the law of the next card of a uniform shuffle) and written at
    ``position``; no other card moves. A deck given in full (``in_order``) is dealt as it is, as is a deck with
    nothing left (a step past the last card).

    cards: int32[N] attribute values, positions < ``position`` dealt; left: int32[V], how many undealt cards have
    each value. Returns (cards, left)."""
    n = cards.shape[0]
    position = jnp.minimum(position, n - 1)
    total = jnp.sum(left)
    drawn = jnp.sum(jnp.cumsum(left) <= uniform_below(key, jnp.maximum(total, 1)), dtype=jnp.int32)
    draw = ~in_order & (total > 0)
    value = jnp.where(draw, jnp.minimum(drawn, left.shape[0] - 1), cards[position])
    left = left - (draw & (jnp.arange(left.shape[0]) == value)).astype(left.dtype)
    return cards.at[position].set(value), left
