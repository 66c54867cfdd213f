"""The one seam every memory model implements: :class:`MemoryCore`.

A memory core is a ``flax.linen.Module`` with an ``output_size`` and three methods:

- ``initialize_carry(batch_size) -> carry``: the state at the start of an episode (pytree of
  arrays with leading axis ``B``). Pure; callable on an unbound module.
- ``sample_noise(rng, T, B) -> noise``: the per-step randomness the core needs (SHM: theta row
  indices ``int32[T, B]``), or ``None``. Pure; callable on an unbound module. The rollout samples it
  and stores it; the PPO update passes the same noise back so the update recomputes exactly what
  the policy acted with.
- ``__call__(carry, x[T, B, D], starts[T, B], noise) -> (carry, y[T, B, F])``: ``starts[t, b]``
  is true when ``x[t, b]`` is the first step of an episode; the carry is reset to
  ``initialize_carry`` before that step is processed. ``F = output_size``; ``y`` has the core's
  compute dtype, the carry keeps its float32 (or complex64) state whatever that dtype is.

The same call serves acting (``T = 1``) and training on whole sequences. Cores that expose their
internals (SHM: M_t and C_t) ``sow`` them into the ``"intermediates"`` collection when it is mutable.
``tests/memory/test_conformance.py`` checks every registered core against this contract.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp


@runtime_checkable
class MemoryCore(Protocol):
    """The memory-core contract (see the module docstring); flax modules satisfy it structurally."""

    @property
    def output_size(self) -> int: ...

    def initialize_carry(self, batch_size: int) -> Any: ...

    def sample_noise(self, rng: jax.Array, length: int, batch_size: int) -> Any: ...

    def __call__(self, carry: Any, x: jax.Array, starts: jax.Array, noise: Any = None) -> tuple[Any, jax.Array]: ...


def check_sequence_inputs(name: str, x: jax.Array, starts: jax.Array) -> None:
    """Raise a one-line ValueError when ``x``/``starts`` do not have shapes ``[T, B, D]``/``[T, B]``.

    Runs on static shapes, so the error appears at trace time, before compilation.
    """
    if x.ndim != 3:
        raise ValueError(f"{name}: x must have rank 3 [T, B, D], got shape {tuple(x.shape)}")
    if starts.ndim != 2:
        raise ValueError(f"{name}: starts must have rank 2 [T, B], got shape {tuple(starts.shape)}")
    if tuple(starts.shape) != tuple(x.shape[:2]):
        raise ValueError(f"{name}: starts shape {tuple(starts.shape)} must equal x's [T, B] = {tuple(x.shape[:2])}")


def check_positive(owner: str, **sizes: int) -> None:
    """Raise a one-line ValueError naming the first size that is not a positive integer."""
    for field, value in sizes.items():
        if not isinstance(value, (int,)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{owner}: {field} must be a positive integer, got {value!r}")


def reset_carry(carry, starts_t: jax.Array, initial):
    """Replace the carry by ``initial`` where ``starts_t[b]`` is true (``where``, never a mask product).

    carry, initial: pytrees of arrays with leading axis B; starts_t: bool[B].
    """

    def pick(c, i):
        s = starts_t.reshape(starts_t.shape + (1,) * (c.ndim - 1))
        return jnp.where(s, jnp.broadcast_to(i, c.shape).astype(c.dtype), c)

    return jax.tree.map(pick, carry, initial)
