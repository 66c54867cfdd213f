"""Stable Hadamard Memory (Le et al., ICLR 2025) and the paper's calibration ablations.

One step, with x̂_t = LayerNorm(x_t) and bias-free projections of x̂_t:

    v_t = W_v x̂_t                   k_t = relu(W_k x̂_t) / (1e-5 + Σ relu(W_k x̂_t))
    v_c,t = W_c x̂_t                 q_t = relu(W_q x̂_t) / (1e-5 + Σ relu(W_q x̂_t))
    η_t = sigmoid(w_η · x̂_t)        U_t = η_t · v_t ⊗ k_t
    C_t = 1 + tanh(θ_t ⊗ v_c,t)     θ_t = Θ[l_t], l_t ~ Uniform{0..L-1} per (batch, step)
    M_t = M_{t-1} ⊙ C_t + U_t       h_t = M_t q_t   (read after the write)
    y_t = W_o (h_t + W_s x̂_t + b_s) + b_o    (shortcut and output projection optional)

Rows of M follow the value dimension (θ runs along them), columns the key dimension (v_c).

``clamp`` (the official pomdp-baselines SHM, ±100): M_t = clip(M_{t-1} ⊙ C_t + U_t, -clamp, clamp) after every
write. The clip is not associative, so a clamped SHM runs a per-step loop (scan_method "sequential" or None;
the log-depth, chunked and fused scans refuse it); clipped cells pass no gradient, as torch.clamp's.

The row indices l_t are the layer's *noise*: ``sample_noise(rng, T, B)`` draws them and ``__call__``
takes them as an input, so a PPO update replays exactly the C_t the policy acted with.

Calibrations (the paper's Fig. 3a ablations):

- ``random_theta`` (default, the paper's SHM): θ_t a uniformly random row of Θ per (batch, step).
- ``fixed_theta``: always row 0 of Θ, what the official POPGym code actually runs (its index
  expression truncates uniform [0, 1) floats to 0). Ignores the noise.
- ``neural_theta``: θ_t = W_θ x̂_t, a bias-free projection of the input.
- ``random_c``: C_t = 1 + tanh(a_t ⊗ b_t) with a_t, b_t ~ N(0, I) drawn as noise: random, not computed from
  the input, E[C] = 1.
- ``fixed_c``: C = 1 + tanh(W_C), one learned input-independent matrix.
- ``ones``: C = 1, pure accumulation (linear attention with SHM's update and read).

Precision (``dtype``, see ``shm_jax.memory.precision``): None / float32 is the float32 path. With bfloat16 the
LayerNorm output, the projections (v, k, q, v_c, η, neural θ) and their activations are computed in bfloat16 from
float32 parameters; the per-step vectors are cast to float32 where they enter the scan, so C_t, U_t, the memory
M_t, the recurrence and the read-out M_t q_t are float32 and the carry is always float32. The read-out is cast
back to the compute dtype before the shortcut / output projection, so y has the compute dtype.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from shm_jax.memory import base
from shm_jax.memory.pallas_shm import fused_shm_scan
from shm_jax.memory.precision import compute_dtype
from shm_jax.memory.product_scan import product_form_scan
from shm_jax.memory.projection import Linear
from shm_jax.memory.scan import (
    associative_hadamard,
    check_method,
    default_method,
    from_chunks,
    hadamard_scan,
    to_chunks,
)

CALIBRATIONS = ("random_theta", "fixed_theta", "neural_theta", "random_c", "fixed_c", "ones")
_NORM_EPS = 1e-5


def torch_kernel_init():
    """PyTorch's default Linear weight init, U(±1/sqrt(fan_in)), as the official code keeps it."""
    return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int):
    """PyTorch's default Linear bias init, U(±1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _sum_normalise(x: jax.Array) -> jax.Array:
    x = jax.nn.relu(x)
    return x / (_NORM_EPS + jnp.sum(x, axis=-1, keepdims=True))


def _outer(a: jax.Array, b: jax.Array) -> jax.Array:
    """a [..., H], b [..., H] -> [..., H, H] with [i, j] = a_i b_j."""
    return a[..., :, None] * b[..., None, :]


def _make_cu(inputs, fixed_c=None):
    """C_t and U_t from the per-step vectors; any leading axes. Shapes [..., H, H] (C may broadcast).

    fixed_c: an input-independent [H, H] calibration (the "fixed C" ablation), closed over rather than
    scanned because it has no time axis.
    """
    if fixed_c is not None:
        c = fixed_c
    elif "row" in inputs:
        c = 1.0 + jnp.tanh(_outer(inputs["row"], inputs["col"]))
    else:
        c = jnp.ones((), inputs["v"].dtype)
    u = inputs["eta"][..., None] * _outer(inputs["v"], inputs["k"])
    return c, u


def _read(memory: jax.Array, inputs) -> jax.Array:
    """h_t = M_t q_t: [..., H, H] x [..., H] -> [..., H]."""
    return jnp.einsum("...ij,...j->...i", memory, inputs["q"])


FUSED = "fused"
DEFAULT_CHUNK_SIZE = 64
# The product-form backward recomputes a chunk into two [L, B, H, H] buffers (C_t and M_t): when they fit in cache
# its passes stop streaming from DRAM. Measured on a 2-core EPYC (32 MiB L3), the scan's fwd+bwd at B = 8,
# T = 1024, H = 128: L = 64 0.33 s, 32 0.29 s, 16 0.26 s, 8 0.25 s, 4 0.30 s; at H = 32 (32 KiB per step) L = 64
# was best (measured with the earlier backward, which kept M_{t-1} ⊙ (1 - tanh²) instead of M_t).
_CHUNK_BYTES = 4 * 2**20


def sequential_chunk_size(batch: int, memory_size: int) -> int:
    """The product-form sequential path's default checkpoint interval: the largest power of two L in [8, 64]
    with L x B x H x H float32 <= 4 MiB (8 where nothing fits)."""
    per_step = 4 * batch * memory_size * memory_size
    chunk = DEFAULT_CHUNK_SIZE
    while chunk > 8 and chunk * per_step > _CHUNK_BYTES:
        chunk //= 2
    return chunk


def _product_form_scan(scan, carry, inputs, starts, chunk_size):
    """The recurrence by a product-form scan: C_t = 1 + tanh(row ⊗ col), U_t = (η v) ⊗ k ("ones": row = 0).

    scan: ``pallas_shm.fused_shm_scan`` or ``product_scan.product_form_scan`` (same contract).
    """
    if "row" in inputs:
        row, col = inputs["row"], inputs["col"]
    else:
        row = col = jnp.zeros_like(inputs["v"])
    weighted_v = inputs["eta"] * inputs["v"]
    return scan(carry, starts, row, col, weighted_v, inputs["k"], inputs["q"], chunk_size=chunk_size)


def clamped_scan(carry, inputs, starts, make_cu, bound: float, chunk_size: int, memories: bool = False):
    """M_t = clip(M_{t-1} ⊙ C_t + U_t, ±bound) (reset to 0 before a start) and h_t = M_t q_t, step by step.

    carry float32[B, H, H]; inputs: per-step vectors [T, B, ...]; starts bool[T, B]. Returns (M_T, h [T, B, H]),
    or M [T, B, H, H] when ``memories``. Plain autodiff through the loop, rematerialised per chunk of
    ``chunk_size`` steps, so the backward keeps the memory at chunk boundaries plus one chunk.
    """
    length = starts.shape[0]
    chunk = min(chunk_size, length)
    valid = to_chunks(jnp.ones(starts.shape, bool), chunk)
    xs = (jax.tree.map(lambda x: to_chunks(x, chunk), inputs), to_chunks(starts.astype(bool), chunk), valid)

    def step(memory, xs_t):
        inputs_t, start_t, valid_t = xs_t
        prev = jnp.where(start_t[:, None, None], jnp.zeros_like(memory), memory)
        c, u = make_cu(inputs_t)
        new = jnp.clip(prev * c + u, -bound, bound)
        memory = jnp.where(valid_t[:, None, None], new, memory)  # padded steps leave M unchanged
        return memory, (memory if memories else _read(memory, inputs_t))

    @jax.checkpoint
    def chunk_body(memory, xs_chunk):
        return jax.lax.scan(step, memory, xs_chunk)

    final, ys = jax.lax.scan(chunk_body, carry, xs)
    ys = from_chunks(ys, length)
    return ys if memories else (final, ys)


class SHM(nn.Module):
    """The SHM memory core (shm_jax.memory.base interface).

    Attributes:
      memory_size: H, the memory is H x H.
      projection_size: size of the output projection W_o; None returns h_t (+ shortcut) of size H.
      shortcut: add the POPGym agent's Linear(d -> H, bias) of x̂_t to the read-out.
      calibration: one of CALIBRATIONS (see the module docstring).
      num_theta: L, rows of the Θ table (128 in the paper).
      scan_method: "associative", "sequential", "chunked", "fused" (the Pallas kernel of
        ``pallas_shm``; every calibration but "fixed_c"), or None for the backend default.
      chunk_size: steps per chunk of the "chunked" scan (checkpoint interval of "sequential"/"fused"); None
        (default): 64, except the product-form "sequential" path, which takes ``sequential_chunk_size(B, H)``.
      dtype: compute dtype of the projections and per-step vectors: None / "float32" (default) or
        "bfloat16" (params, memory and carry stay float32; see the module docstring).
      clamp: None (default) or a bound b > 0: M is clipped to [-b, b] after every write (the official
        pomdp-baselines SHM uses 100); needs scan_method "sequential" or None.
    """

    memory_size: int = 128
    projection_size: int | None = None
    shortcut: bool = False
    calibration: str = "random_theta"
    num_theta: int = 128
    scan_method: str | None = None
    chunk_size: int | None = None
    dtype: Any = None
    clamp: float | None = None

    def __post_init__(self):
        compute_dtype("SHM", self.dtype)
        base.check_positive("SHM", memory_size=self.memory_size, num_theta=self.num_theta)
        if self.chunk_size is not None:
            base.check_positive("SHM", chunk_size=self.chunk_size)
        if self.projection_size is not None:
            base.check_positive("SHM", projection_size=self.projection_size)
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"SHM: unknown calibration {self.calibration!r}; valid: {', '.join(CALIBRATIONS)}")
        check_method(self.scan_method, self.chunk_size or DEFAULT_CHUNK_SIZE, extra_methods=(FUSED,))
        if self.scan_method == FUSED and self.calibration == "fixed_c":
            raise ValueError(
                "SHM: scan_method 'fused' needs C_t = 1 + tanh(row ⊗ col); calibration 'fixed_c' "
                "has no such form: use 'sequential', 'chunked' or 'associative'"
            )
        if self.clamp is not None:
            number = isinstance(self.clamp, (int, float)) and not isinstance(self.clamp, bool)
            if not number or not 0 < self.clamp < math.inf:
                raise ValueError(f"SHM: clamp must be None or a positive finite number, got {self.clamp!r}")
            if self.scan_method not in (None, "sequential"):
                raise ValueError(
                    f"SHM: clamp needs scan_method 'sequential' or None (clipping M every step is not "
                    f"associative), got {self.scan_method!r}"
                )
        super().__post_init__()

    @property
    def output_size(self) -> int:
        """F, the size of y_t (the interface name every core shares)."""
        return self.projection_size if self.projection_size is not None else self.memory_size

    @property
    def can_defer_projection(self) -> bool:
        """Whether ``defer_projection=True`` returns the output projection unapplied (see ``projection``)."""
        return self.projection_size is not None

    def initialize_carry(self, batch_size: int) -> jax.Array:
        """M_0 = 0: float32[B, H, H]."""
        return jnp.zeros((batch_size, self.memory_size, self.memory_size), jnp.float32)

    def sample_noise(self, rng: jax.Array, length: int, batch_size: int):
        """random_theta: int32[T, B] row indices; random_c: two float32[T, B, H]; otherwise None."""
        if self.calibration == "random_theta":
            return jax.random.randint(rng, (length, batch_size), 0, self.num_theta, jnp.int32)
        if self.calibration == "random_c":
            row_key, col_key = jax.random.split(rng)
            shape = (length, batch_size, self.memory_size)
            return {"row": jax.random.normal(row_key, shape), "col": jax.random.normal(col_key, shape)}
        return None

    @nn.compact
    def __call__(self, carry: jax.Array, x: jax.Array, starts: jax.Array, noise=None, defer_projection=False):
        """carry float32[B, H, H], x [T, B, D], starts bool[T, B] -> (carry float32[B, H, H], y [T, B, F]).

        y has the compute dtype (float32 by default, bfloat16 with ``dtype="bfloat16"``). With
        ``defer_projection`` and a ``projection_size``, y is the output projection left unapplied (a
        ``projection.AffineOutput``), for a consumer that folds its next linear layer into it.

        When the ``"intermediates"`` collection is mutable (``apply(..., mutable=["intermediates"])``) the layer
        also sows ``memory`` M and ``calibration`` C, float32[T, B, H, H] each, recomputed with the associative
        scan: for looking inside the memory (plots), not for training. y and the carry are the same either way.
        """
        base.check_sequence_inputs("SHM", x, starts)
        hsz = self.memory_size
        if carry.shape[-2:] != (hsz, hsz) or carry.shape[0] != x.shape[1]:
            raise ValueError(
                f"SHM: carry must have shape [B, H, H] = {(x.shape[1], hsz, hsz)}, got {tuple(carry.shape)}"
            )
        dtype = compute_dtype("SHM", self.dtype)
        x_hat = nn.LayerNorm(epsilon=1e-5, dtype=dtype, name="norm")(x)
        # One fused bias-free projection for v, k, q, v_c and η (column blocks = separate Linear layers).
        proj = nn.Dense(4 * hsz + 1, use_bias=False, kernel_init=torch_kernel_init(), dtype=dtype, name="proj")(x_hat)
        v, k, q, v_c, eta = jnp.split(proj, [hsz, 2 * hsz, 3 * hsz, 4 * hsz], axis=-1)
        inputs = {
            "v": v,
            "k": _sum_normalise(k),
            "q": _sum_normalise(q),
            "eta": jax.nn.sigmoid(eta),
        }
        calibration = self._calibration_inputs(x_hat, v_c, noise)
        fixed_c = calibration.pop("c_fixed", None)
        inputs.update(calibration)
        # The memory and its recurrence stay float32 whatever the compute dtype (a no-op for float32).
        inputs = {name: value.astype(jnp.float32) for name, value in inputs.items()}
        make_cu = functools.partial(_make_cu, fixed_c=fixed_c)
        chunk = self.chunk_size or DEFAULT_CHUNK_SIZE

        if self.is_mutable_collection("intermediates"):
            c, u = make_cu(inputs)
            if self.clamp is None:
                memories = associative_hadamard(carry, c, u, starts)
            else:
                memories = clamped_scan(carry, inputs, starts, make_cu, self.clamp, chunk, memories=True)
            self.sow("intermediates", "memory", memories)
            self.sow("intermediates", "calibration", jnp.broadcast_to(c, memories.shape))
        if self.clamp is not None:
            carry, h = clamped_scan(carry, inputs, starts, make_cu, self.clamp, chunk)
        elif self.scan_method == FUSED:
            carry, h = _product_form_scan(fused_shm_scan, carry, inputs, starts, chunk)
        elif (self.scan_method or default_method()) == "sequential" and "row" in inputs:
            # C_t = 1 + tanh(row ⊗ col): the specialised loop beats the generic one (product_scan.py).
            carry, h = _product_form_scan(
                product_form_scan, carry, inputs, starts, self.chunk_size or sequential_chunk_size(x.shape[1], hsz)
            )
        else:
            carry, h = hadamard_scan(carry, inputs, starts, make_cu, _read, method=self.scan_method, chunk_size=chunk)
        h = h.astype(dtype)
        if self.shortcut:
            h = h + nn.Dense(
                hsz,
                kernel_init=torch_kernel_init(),
                bias_init=torch_bias_init(x.shape[-1]),
                dtype=dtype,
                name="shortcut",
            )(x_hat)
        if self.projection_size is not None:
            h = Linear(
                self.projection_size,
                kernel_init=torch_kernel_init(),
                bias_init=torch_bias_init(hsz),
                dtype=dtype,
                name="out",
            )(h, defer=defer_projection)
        return carry, h

    def _calibration_inputs(self, x_hat: jax.Array, v_c: jax.Array, noise) -> dict:
        """Per-step vectors (or one fixed matrix) that define C_t for the chosen calibration."""
        hsz, (length, batch) = self.memory_size, x_hat.shape[:2]
        mode = self.calibration
        if mode in ("random_theta", "fixed_theta"):
            theta = self.param("theta", nn.initializers.xavier_uniform(), (self.num_theta, hsz))
            if mode == "fixed_theta":
                return {"row": jnp.broadcast_to(theta[0], (length, batch, hsz)), "col": v_c}
            if noise is None:
                raise ValueError("SHM: calibration 'random_theta' needs noise=core.sample_noise(rng, T, B)")
            noise = jnp.asarray(noise)
            if noise.shape != (length, batch) or not jnp.issubdtype(noise.dtype, jnp.integer):
                raise ValueError(
                    f"SHM: noise must be int[T, B] = {(length, batch)} row indices, got "
                    f"{noise.dtype}{list(noise.shape)}"
                )
            return {"row": jnp.take(theta, noise, axis=0, mode="clip"), "col": v_c}
        if mode == "neural_theta":
            row = nn.Dense(hsz, use_bias=False, kernel_init=torch_kernel_init(), dtype=x_hat.dtype, name="theta_net")(
                x_hat
            )
            return {"row": row, "col": v_c}
        if mode == "random_c":
            if noise is None:
                raise ValueError("SHM: calibration 'random_c' needs noise=core.sample_noise(rng, T, B)")
            return {"row": noise["row"], "col": noise["col"]}
        if mode == "fixed_c":
            logits = self.param("c_logits", nn.initializers.xavier_uniform(), (hsz, hsz))
            return {"c_fixed": 1.0 + jnp.tanh(logits)}
        return {}
