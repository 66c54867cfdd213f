"""Baseline memory cores, each behind the interface of ``shm_jax.memory.base``.

- ``GRU``: a gated recurrent unit (flax ``GRUCell``) run with a sequential scan.
- ``NoMemory``: an MLP on the current input only (the memoryless control).

Every core: ``initialize_carry(B)`` and ``sample_noise(...)`` work on an unbound module;
``__call__(carry, x: float32[T, B, D], starts: bool[T, B], noise) -> (carry, y: float32[T, B, F])``
with ``F = core.output_size``; the carry is reset to ``initialize_carry`` before every start step.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from shm_jax.memory.base import check_positive, check_sequence_inputs, reset_carry


class _ResettingGRUStep(nn.Module):
    """One GRU step that first resets the hidden state where an episode starts.

    carry: float32[B, H]; inputs: (x_t: float32[B, D], start_t: bool[B]).
    """

    hidden_size: int

    @nn.compact
    def __call__(self, carry, inputs):
        x_t, start_t = inputs
        carry = reset_carry(carry, start_t, jnp.zeros_like(carry))
        carry, y_t = nn.GRUCell(features=self.hidden_size, name="cell")(carry, x_t)
        return carry, y_t


class GRU(nn.Module):
    """Gated recurrent unit; the output is the hidden state (float32[T, B, hidden_size]).

    carry: float32[B, hidden_size], zeros at an episode start.
    """

    hidden_size: int = 256

    def __post_init__(self):
        check_positive("GRU", hidden_size=self.hidden_size)
        super().__post_init__()

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def initialize_carry(self, batch_size: int) -> jax.Array:
        check_positive("GRU", batch_size=batch_size)
        return jnp.zeros((batch_size, self.hidden_size), jnp.float32)

    def sample_noise(self, rng, T: int, B: int) -> None:
        return None

    @nn.compact
    def __call__(self, carry, x, starts, noise=None):
        check_sequence_inputs("GRU", x, starts)
        steps = nn.scan(
            _ResettingGRUStep,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=0,
            out_axes=0,
        )(hidden_size=self.hidden_size, name="gru")
        return steps(carry, (x, starts.astype(bool)))


class NoMemory(nn.Module):
    """Memoryless control: y_t = Dense(relu(Dense(x_t))), float32[T, B, features].

    The carry is a dummy float32[B, 1] of zeros, passed through unchanged.
    """

    features: int = 128

    def __post_init__(self):
        check_positive("NoMemory", features=self.features)
        super().__post_init__()

    @property
    def output_size(self) -> int:
        return self.features

    def initialize_carry(self, batch_size: int) -> jax.Array:
        check_positive("NoMemory", batch_size=batch_size)
        return jnp.zeros((batch_size, 1), jnp.float32)

    def sample_noise(self, rng, T: int, B: int) -> None:
        return None

    @nn.compact
    def __call__(self, carry, x, starts, noise=None):
        check_sequence_inputs("NoMemory", x, starts)
        hidden = nn.relu(nn.Dense(self.features, name="hidden")(x))
        return carry, nn.Dense(self.features, name="out")(hidden)
