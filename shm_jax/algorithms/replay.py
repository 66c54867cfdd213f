"""A replay buffer of whole episodes, in pure JAX, for recurrent off-policy learners (recurrent SAC / SAC-Discrete).

Each slot holds one episode padded to ``T`` steps. Sampling returns whole episodes because that is how
pomdp-baselines trains its recurrent actor-critics (``sampled_seq_len: -1``): every sampled sequence is one whole
episode, run from a zero memory state with backpropagation through the full episode, so there is no burn-in and no
recurrent carry to store. Writes go round a ring: once the ``C`` slots are full the oldest episode is overwritten.
Sampling draws slots uniformly with replacement from the filled ones, as pomdp-baselines' ``np.random.choice`` does.

Shapes (``C`` capacity, ``T`` episode length, ``E`` episodes per add, ``B`` batch size): the storage is
batch-major (``obs [C, T+1, *obs_shape]``, ``action [C, T, *action_shape]``, ``reward/done/mask [C, T]``), episodes
are added batch-major (``[E, ...]``) and sampled time-major (``obs [T+1, B, ...]``, the rest ``[T, B]``), the layout
a recurrent network scans over. Every function is pure and jittable and can be vmapped over runs.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


class Episodes(struct.PyTreeNode):
    """E episodes, time-major or batch-major as documented per function.

    obs: [..., T+1, *obs_shape] o_0..o_T (o_{t+1} is the observation after action a_t; for an episode that ended at
    step L-1 < T-1 the rows after L are padding); action: [..., T, *action_shape]; reward: float32[..., T] (r after
    a_t); done: bool[..., T] (terminal flag: no bootstrap past step t); mask: bool[..., T] (step t belongs to the
    episode).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    done: jax.Array
    mask: jax.Array


class EpisodeBuffer(struct.PyTreeNode):
    """storage: batch-major Episodes with leading axis C (obs keeps the dtype given to :func:`empty`, so uint8
    pixels stay uint8); position: int32 scalar, the next slot to write; size: int32 scalar, the filled slots (<= C).
    """

    storage: Episodes
    position: jax.Array
    size: jax.Array


def _check_sizes(capacity: int, episode_length: int) -> None:
    if capacity < 1:
        raise ValueError(f"capacity: must be at least 1, got {capacity}")
    if episode_length < 1:
        raise ValueError(f"episode_length: must be at least 1, got {episode_length}")


def _storage_shapes(capacity, episode_length, obs, action) -> Episodes:
    """The storage's leaves as ShapeDtypeStructs (shared by :func:`empty` and :func:`num_bytes`)."""
    c, t = capacity, episode_length
    return Episodes(
        obs=jax.ShapeDtypeStruct((c, t + 1, *obs.shape), obs.dtype),
        action=jax.ShapeDtypeStruct((c, t, *action.shape), action.dtype),
        reward=jax.ShapeDtypeStruct((c, t), jnp.float32),
        done=jax.ShapeDtypeStruct((c, t), jnp.bool_),
        mask=jax.ShapeDtypeStruct((c, t), jnp.bool_),
    )


def empty(capacity: int, episode_length: int, obs: jax.ShapeDtypeStruct, action: jax.ShapeDtypeStruct) -> EpisodeBuffer:
    """An all-zero buffer of ``capacity`` episodes of ``episode_length`` steps; obs/action: one step's shape and
    dtype (no leading axes). ValueError naming the argument if capacity or episode_length is below 1."""
    _check_sizes(capacity, episode_length)
    shapes = _storage_shapes(capacity, episode_length, obs, action)
    storage = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return EpisodeBuffer(storage=storage, position=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))


def add(buffer: EpisodeBuffer, episodes: Episodes) -> EpisodeBuffer:
    """Write ``episodes`` (batch-major, leading axis E <= C) into slots position, position+1, ... mod C.

    Leaves are cast to the storage's dtypes. ValueError (at trace time) if E > C or a shape does not match.
    """
    capacity = buffer.storage.reward.shape[0]
    num = episodes.reward.shape[0]
    if num > capacity:
        raise ValueError(f"episodes: {num} episodes in one add do not fit a buffer of capacity {capacity}")
    for name in ("obs", "action", "reward", "done", "mask"):
        given, stored = getattr(episodes, name).shape, getattr(buffer.storage, name).shape
        if given[0] != num or given[1:] != stored[1:]:
            raise ValueError(f"episodes: {name} has shape {given}, expected ({num}, {', '.join(map(str, stored[1:]))})")
    # E <= C, so the E slots are distinct and the scatter has no colliding writes, wrapped or not
    slots = (buffer.position + jnp.arange(num, dtype=jnp.int32)) % capacity
    storage = jax.tree.map(
        lambda stored, new: stored.at[slots].set(new.astype(stored.dtype), unique_indices=True),
        buffer.storage,
        episodes,
    )
    return EpisodeBuffer(
        storage=storage,
        position=(buffer.position + num) % capacity,
        size=jnp.minimum(buffer.size + num, capacity),
    )


def sample(buffer: EpisodeBuffer, rng: jax.Array, batch_size: int) -> Episodes:
    """``batch_size`` whole episodes drawn uniformly with replacement from the filled slots, time-major:
    obs [T+1, B, ...] (stored dtype), action [T, B, ...], reward/done/mask [T, B]."""
    # max(size, 1): an empty buffer returns slot 0's zeros rather than an empty range
    slots = jax.random.randint(rng, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda stored: jnp.swapaxes(stored[slots], 0, 1), buffer.storage)


def num_bytes(capacity: int, episode_length: int, obs: jax.ShapeDtypeStruct, action: jax.ShapeDtypeStruct) -> int:
    """Bytes of the storage of ``empty(capacity, episode_length, obs, action)``, computed on the host."""
    _check_sizes(capacity, episode_length)
    shapes = jax.tree.leaves(_storage_shapes(capacity, episode_length, obs, action))
    return sum(math.prod(s.shape) * np.dtype(s.dtype).itemsize for s in shapes)


def episode_capacity(buffer_size: int, episode_length: int, max_episodes: int) -> int:
    """Episodes a buffer of ``buffer_size`` transitions holds, counted as pomdp-baselines does (one padding row per
    episode), capped at ``max_episodes`` (a run never collects more, so small runs do not allocate a full-size
    buffer), and at least 1."""
    if episode_length < 1:
        raise ValueError(f"episode_length: must be at least 1, got {episode_length}")
    return max(1, min(int(buffer_size) // (int(episode_length) + 1), int(max_episodes)))
