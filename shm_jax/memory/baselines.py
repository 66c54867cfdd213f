"""Baseline memory cores, each behind the interface of ``shm_jax.memory.base``.

- ``GRU``: a gated recurrent unit (flax ``GRUCell``) run with a sequential scan.
- ``NoMemory``: an MLP on the current input only (the memoryless control).
- Hadamard Memory Framework (HMF) special cases, M_t = M_{t-1} ⊙ C_t + U_t, run by
  ``shm_jax.memory.scan.hadamard_scan`` (associative, sequential or chunked; all reset-aware):
  ``LinearAttention`` (C = 1), ``ScalarGated`` (mLSTM-like scalar forget gate C = f_t·1) and
  ``FFM`` (Fast and Forgetful Memory: fixed complex decay per (trace, context) element).

Every core: ``initialize_carry(B)`` and ``sample_noise(...)`` work on an unbound module;
``__call__(carry, x: float32[T, B, D], starts: bool[T, B], noise) -> (carry, y: float32[T, B, F])``
with ``F = core.output_size``; the carry is reset to ``initialize_carry`` before every start step.

Precision: every core has a ``dtype`` field (``shm_jax.memory.precision``): None / "float32" is the float32 path;
"bfloat16" computes the Dense layers and activations in bfloat16 from float32 parameters while the recurrent
state stays float32 (complex64 for FFM): the HMF cores cast their per-step vectors to float32 where they enter
the scan, and the GRU's blend (1 - z) n + z h promotes to the float32 carry. y has the compute dtype.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from shm_jax.memory.base import check_positive, check_sequence_inputs, reset_carry
from shm_jax.memory.initializers import orthogonal
from shm_jax.memory.precision import compute_dtype
from shm_jax.memory.projection import Linear
from shm_jax.memory.scan import check_method, hadamard_scan


class _ResettingGRUStep(nn.Module):
    """One GRU step that first resets the hidden state where an episode starts.

    carry: float32[B, H]; inputs: (x_t: float32[B, D], start_t: bool[B]).
    """

    hidden_size: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, carry, inputs):
        x_t, start_t = inputs
        carry = reset_carry(carry, start_t, jnp.zeros_like(carry))
        # GRUCell's matmuls run in ``dtype``; its blend (1 - z) n + z h promotes to the float32 carry.
        # The recurrent kernel uses the vmap-safe orthogonal init (shm_jax.memory.initializers: flax's batched QR can
        # deadlock jaxlib's CPU LAPACK when seeds are initialised under vmap); same values as flax's.
        carry, y_t = nn.GRUCell(
            features=self.hidden_size, dtype=self.dtype, recurrent_kernel_init=orthogonal(), name="cell"
        )(carry, x_t)
        return carry.astype(jnp.float32), y_t


class GRU(nn.Module):
    """Gated recurrent unit; the output is the hidden state (float32[T, B, hidden_size]).

    carry: float32[B, hidden_size], zeros at an episode start.
    """

    hidden_size: int = 256
    dtype: Any = None  # compute dtype: None / "float32" or "bfloat16" (the carry stays float32)

    def __post_init__(self):
        compute_dtype("GRU", self.dtype)
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
        )(hidden_size=self.hidden_size, dtype=compute_dtype("GRU", self.dtype), name="gru")
        carry, ys = steps(carry, (x, starts.astype(bool)))
        return carry, ys.astype(compute_dtype("GRU", self.dtype))


class NoMemory(nn.Module):
    """Memoryless control: y_t = Dense(relu(Dense(x_t))), float32[T, B, features].

    The carry is a dummy float32[B, 1] of zeros, passed through unchanged.
    """

    features: int = 128
    dtype: Any = None  # compute dtype: None / "float32" or "bfloat16"

    def __post_init__(self):
        compute_dtype("NoMemory", self.dtype)
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
        dtype = compute_dtype("NoMemory", self.dtype)
        hidden = nn.relu(nn.Dense(self.features, dtype=dtype, name="hidden")(x))
        return carry, nn.Dense(self.features, dtype=dtype, name="out")(hidden)


# ---------------------------------------------------------------------------------------------------
# HMF special cases. Parameters are used only outside the scan: the projections run on the whole
# [T, B, ...] sequence first, and ``make_cu`` / ``read`` are pure jnp functions of the per-step
# projections (they must work for any number of leading axes, see shm_jax.memory.scan).


def _elu_plus_one(z: jax.Array) -> jax.Array:
    """The positive feature map of linear attention (Katharopoulos et al. 2020): elu(z) + 1 > 0."""
    return nn.elu(z) + 1.0


def _with_ones_row(v: jax.Array) -> jax.Array:
    """[..., H] -> [..., H + 1]: an extra constant value component.

    Writing [v; 1] ⊗ k makes the last row of the memory the (decayed) sum of the keys, i.e. the
    normaliser n_t of linear attention / mLSTM, so one scan carries both M_t and n_t.
    """
    return jnp.concatenate([v, jnp.ones_like(v[..., :1])], axis=-1)


def _numerator_and_normaliser(memory: jax.Array, q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """memory: [..., H + 1, H] (rows 0..H-1: M, row H: n); q: [..., H] -> (M q [..., H], n·q [...])."""
    numerator = jnp.einsum("...ij,...j->...i", memory[..., :-1, :], q)
    normaliser = jnp.einsum("...j,...j->...", memory[..., -1, :], q)
    return numerator, normaliser


class _MatrixMemory(nn.Module):
    """Shared sizes, carry and scan options of the matrix-memory HMF cores (value × key memory)."""

    memory_size: int = 128
    output_size: int = 128
    scan_method: str | None = None  # None: the backend default of hadamard_scan
    chunk_size: int = 64
    dtype: Any = None  # compute dtype: None / "float32" or "bfloat16" (memory and carry stay float32)

    def __post_init__(self):
        compute_dtype(type(self).__name__, self.dtype)
        check_positive(type(self).__name__, memory_size=self.memory_size, output_size=self.output_size)
        check_method(self.scan_method, self.chunk_size)
        super().__post_init__()

    @property
    def can_defer_projection(self) -> bool:
        """``defer_projection=True`` returns the output projection W_o unapplied (see ``projection``)."""
        return True

    def initialize_carry(self, batch_size: int) -> jax.Array:
        """float32[B, H + 1, H]: the memory M (rows 0..H-1) and the key normaliser n (row H), zeros."""
        check_positive(type(self).__name__, batch_size=batch_size)
        return jnp.zeros((batch_size, self.memory_size + 1, self.memory_size), jnp.float32)

    def sample_noise(self, rng, T: int, B: int) -> None:
        return None

    @property
    def _dtype(self):
        return compute_dtype(type(self).__name__, self.dtype)

    def _scan(self, carry, inputs, starts, make_cu, read):
        """The HMF scan in float32 (inputs cast where they enter it); h comes back in the compute dtype."""
        inputs = {name: value.astype(jnp.float32) for name, value in inputs.items()}
        carry, h = hadamard_scan(
            carry, inputs, starts.astype(bool), make_cu, read, method=self.scan_method, chunk_size=self.chunk_size
        )
        return carry, h.astype(self._dtype)

    def _norm(self, x: jax.Array) -> jax.Array:
        return nn.LayerNorm(dtype=self._dtype, name="norm")(x)

    def _project(self, x_hat: jax.Array, name: str) -> jax.Array:
        return nn.Dense(self.memory_size, use_bias=False, dtype=self._dtype, name=name)(x_hat)

    def _output(self, x_hat: jax.Array, h: jax.Array, defer: bool = False):
        """y = W_o (h + shortcut(x̂)) + b_o, the same read-out as the SHM layer, so only (C, U) differ; with
        ``defer``, W_o unapplied (a ``projection.AffineOutput``)."""
        shortcut = nn.Dense(self.memory_size, dtype=self._dtype, name="shortcut")(x_hat)
        return Linear(self.output_size, dtype=self._dtype, name="out")(h + shortcut, defer=defer)


class LinearAttention(_MatrixMemory):
    """Linear attention (Katharopoulos et al. 2020) as the HMF case C_t = 1, U_t = v_t ⊗ φ(k_t).

    x̂ = LayerNorm(x); v = W_v x̂, k = φ(W_k x̂), q = φ(W_q x̂) with φ = elu + 1;
    M_t = M_{t-1} + v_t ⊗ k_t, n_t = n_{t-1} + k_t; h_t = M_t q_t / (n_t · q_t + eps);
    y_t = W_o (h_t + W_s x̂_t + b_s) + b_o: float32[T, B, output_size].
    carry: float32[B, memory_size + 1, memory_size] (M and n), zeros at an episode start.
    """

    eps: float = 1e-6

    @nn.compact
    def __call__(self, carry, x, starts, noise=None, defer_projection=False):
        check_sequence_inputs("LinearAttention", x, starts)
        x_hat = self._norm(x)
        inputs = {
            "v": _with_ones_row(self._project(x_hat, "value")),
            "k": _elu_plus_one(self._project(x_hat, "key")),
            "q": _elu_plus_one(self._project(x_hat, "query")),
        }

        def make_cu(step):
            update = step["v"][..., :, None] * step["k"][..., None, :]
            return jnp.ones((1, 1), update.dtype), update

        def read(memory, step):
            numerator, normaliser = _numerator_and_normaliser(memory, step["q"])
            return numerator / (normaliser[..., None] + self.eps)

        carry, h = self._scan(carry, inputs, starts, make_cu, read)
        return carry, self._output(x_hat, h, defer_projection)


class ScalarGated(_MatrixMemory):
    """mLSTM-like matrix memory (Beck et al. 2024, xLSTM): a scalar forget gate as the calibration.

    x̂ = LayerNorm(x); v = W_v x̂, k = W_k x̂ / √H, q = W_q x̂; gates f, i = sigmoid(scalar), o = sigmoid(W x̂);
    C_t = f_t·1, U_t = i_t·v_t ⊗ k_t (and n_t = f_t n_{t-1} + i_t k_t);
    h_t = o_t ⊙ M_t q_t / max(|n_t · q_t|, 1); y_t = W_o (h_t + W_s x̂_t + b_s) + b_o.
    Differences from mLSTM: sigmoid (not exponential) input gate, so no max-stabiliser state is needed
    and the recurrence stays a pure HMF scan; one head. The forget-gate bias starts at
    ``forget_bias`` (sigmoid(3) ≈ 0.95) so the memory starts out remembering, as in xLSTM.
    carry: float32[B, memory_size + 1, memory_size] (M and n), zeros at an episode start.
    """

    forget_bias: float = 3.0

    @nn.compact
    def __call__(self, carry, x, starts, noise=None, defer_projection=False):
        check_sequence_inputs("ScalarGated", x, starts)
        x_hat = self._norm(x)
        forget = nn.sigmoid(
            nn.Dense(1, bias_init=nn.initializers.constant(self.forget_bias), dtype=self._dtype, name="forget_gate")(
                x_hat
            )
        )
        write = nn.sigmoid(nn.Dense(1, dtype=self._dtype, name="input_gate")(x_hat))
        inputs = {
            "f": forget[..., None],  # [T, B, 1, 1]: one scalar per step broadcast over the memory
            "iv": write * _with_ones_row(self._project(x_hat, "value")),
            "k": self._project(x_hat, "key") / jnp.sqrt(float(self.memory_size)),
            "q": self._project(x_hat, "query"),
        }

        def make_cu(step):
            return step["f"], step["iv"][..., :, None] * step["k"][..., None, :]

        def read(memory, step):
            numerator, normaliser = _numerator_and_normaliser(memory, step["q"])
            return numerator / jnp.maximum(jnp.abs(normaliser), 1.0)[..., None]

        carry, h = self._scan(carry, inputs, starts, make_cu, read)
        h = nn.sigmoid(nn.Dense(self.memory_size, dtype=self._dtype, name="output_gate")(x_hat)) * h
        return carry, self._output(x_hat, h, defer_projection)


class FFM(nn.Module):
    """Fast and Forgetful Memory (Morad et al., NeurIPS 2023) as a reset-aware associative HMF scan.

    [a, thru, g] = W x + b with a: [memory_size], thru: [output_size], g: [memory_size + output_size];
    in-gate, out-gate = sigmoid(g);
    S_t = γ ⊙ S_{t-1} + (a_t ⊙ in-gate_t) ⊗ 1_context, γ[m, c] = exp(-|α_m| + i ω_c) (complex, fixed per element);
    z_t = W_mix [Re S_t, Im S_t] + b_mix; y_t = LayerNorm(z_t) ⊙ out-gate_t + thru_t ⊙ (1 - out-gate_t).
    Initialisation: ω_c = 2π / linspace(min_period, max_period, context_size) (the original), α_m =
    linspace(ln(100)/max_period, 0.5, memory_size) (slowest trace keeps 1% after max_period steps, as the
    original's ``forgotten_at``; fastest 0.5 as memax).
    Unlike the upstream JAX code (absolute time stamps, flags not OR-ed: not associative), every step is
    one (C = γ, U, flag) element of the resettable monoid, so all scan methods give the sequential result.
    carry: complex64[B, memory_size, context_size], zeros at an episode start. The original's
    ``hidden_size`` is unused there and not a field here.
    """

    memory_size: int = 32
    context_size: int = 4
    output_size: int = 128
    min_period: int = 1
    max_period: int = 1024
    scan_method: str | None = None
    chunk_size: int = 64
    dtype: Any = None  # compute dtype: None / "float32" or "bfloat16" (the trace state stays complex64)

    def __post_init__(self):
        compute_dtype("FFM", self.dtype)
        check_positive(
            "FFM",
            memory_size=self.memory_size,
            context_size=self.context_size,
            output_size=self.output_size,
            min_period=self.min_period,
            max_period=self.max_period,
        )
        check_method(self.scan_method, self.chunk_size)
        super().__post_init__()

    def initialize_carry(self, batch_size: int) -> jax.Array:
        check_positive("FFM", batch_size=batch_size)
        return jnp.zeros((batch_size, self.memory_size, self.context_size), jnp.complex64)

    def sample_noise(self, rng, T: int, B: int) -> None:
        return None

    def _decay(self) -> jax.Array:
        """γ: complex64[memory_size, context_size], |γ| = exp(-|α|) ≤ 1."""
        low = math.log(100.0) / self.max_period
        alpha = self.param(
            "alpha", lambda _, shape: jnp.linspace(low, 0.5, shape[0], dtype=jnp.float32), (self.memory_size,)
        )
        omega = self.param(
            "omega",
            lambda _, shape: 2 * jnp.pi / jnp.linspace(self.min_period, self.max_period, shape[0], dtype=jnp.float32),
            (self.context_size,),
        )
        shape = (self.memory_size, self.context_size)
        real = jnp.broadcast_to(-jnp.abs(alpha)[:, None], shape)
        return jnp.exp(jax.lax.complex(real, jnp.broadcast_to(omega[None, :], shape)))

    @nn.compact
    def __call__(self, carry, x, starts, noise=None):
        check_sequence_inputs("FFM", x, starts)
        m, f = self.memory_size, self.output_size
        dtype = compute_dtype("FFM", self.dtype)
        trace_in, thru, gates = jnp.split(nn.Dense(2 * m + 2 * f, dtype=dtype, name="pre")(x), [m, m + f], axis=-1)
        gates = nn.sigmoid(gates)
        in_gate, out_gate = gates[..., :m], gates[..., m:]
        gamma = self._decay()
        written = (trace_in * in_gate).astype(jnp.complex64)

        def make_cu(step):
            update = jnp.broadcast_to(step[..., :, None], step.shape + (self.context_size,))
            return gamma, update

        def read(state, step):
            return state

        carry, states = hadamard_scan(
            carry, written, starts.astype(bool), make_cu, read, method=self.scan_method, chunk_size=self.chunk_size
        )
        features = jnp.concatenate([states.real, states.imag], axis=-1).reshape(states.shape[:2] + (-1,))
        mixed = nn.Dense(f, dtype=dtype, name="mix")(features)
        mixed = nn.LayerNorm(use_scale=False, use_bias=False, dtype=dtype, name="norm")(mixed)
        return carry, mixed * out_gate + thru * (1.0 - out_gate)
