"""The fused Pallas kernel for the SHM recurrence, forward and backward, on every platform.

    C_t = 1 + tanh(a_t ⊗ b_t),   U_t = w_t ⊗ k_t,   M_t = M_{t-1} ⊙ C_t + U_t,   h_t = M_t q_t

with a_t = θ_t (rows), b_t = v_c,t (columns), w_t = η_t v_t, and M reset to 0 before a step whose start flag
is set. The kernel keeps a [rows, H] tile of M on chip, builds C_t and U_t from the per-step vectors as it
goes and never writes a [T, H, H] tensor: the forward pass stores M only at chunk boundaries
([T/L, H, H] per sequence); the backward pass re-runs one chunk at a time from its boundary and walks it in
reverse with the adjoint recurrence

    G_t = dL/dM_t = dh_t ⊗ q_t + G_{t+1} ⊙ C_{t+1}   (cut at resets)
    dC_t = G_t ⊙ M_{t-1},  dU_t = G_t,  dq_t = M_tᵀ dh_t.

Rows of M are independent (C, U and the read act row by row), so programs own blocks of rows; column-side
gradients (b, k, q) are summed over rows, so each row block writes a partial [T, H] and the wrapper adds them.

Which kernel runs is decided when the computation is lowered (``jax.lax.platform_dependent``), so
ahead-of-time compilation for another platform picks that platform's kernel:

- TPU: ``kernels.mosaic_shm`` (time blocks on the grid, aligned memory access only);
- GPU: ``kernels.triton_shm`` with block rows and warps per H from ``gpu_block_config``;
- CPU: ``kernels.triton_shm`` in Pallas' interpret mode (correct, slow: for tests).

What is compile-proven from a CPU host (tests/aot) and what still waits for a device: see the README.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from shm_jax.memory.kernels import mosaic_shm, triton_shm
from shm_jax.memory.scan import pad_time

TARGETS = ("gpu", "tpu")


class _Config(NamedTuple):
    """Static kernel settings (hashable: the custom VJP's non-differentiable argument)."""

    target: str  # "gpu" (Triton structure) or "tpu" (Mosaic structure)
    interpret: bool
    chunk: int  # steps per chunk / time block
    rows: int  # rows of M per program
    warps: int  # Triton warps per program (unused on TPU)


def gpu_block_config(hsz: int) -> tuple[int, int]:
    """(rows, warps) for the Triton kernel at a power-of-two H: 8 rows, rows·H/256 warps (2 to 8).

    From ptxas -v for sm_80 and sm_90 at every (rows in 8/16/32, warps in 2/4/8, H in 32..256), the sweep in
    benchmarks/results/compile_report.md: the backward kernel's registers per thread grow with rows·H / warps;
    32 rows spill at H = 128 with 4 warps (255 registers) and at H = 64 with 2, 16 rows at H = 256 unless with
    8 warps; 8 rows with these warps stay at <= 127 registers for every H and give B·H/8 programs: 128 for a PPO
    minibatch of 8 sequences at H = 128 (32 rows gave 32 programs for a GPU's 108-132 SMs).
    """
    rows = min(8, hsz)
    warps = max(2, min(8, rows * hsz // 256))
    return rows, warps


def default_block_rows(hsz: int) -> int:
    """Rows of M per Triton program at a (padded) H: ``gpu_block_config``'s rows, halved until they divide H."""
    rows = gpu_block_config(1 << max(0, (hsz - 1).bit_length()))[0]
    while hsz % rows:
        rows //= 2
    return max(rows, 1)


def _kernel(config: _Config):
    return mosaic_shm if config.target == "tpu" else triton_shm


def _call_kwargs(config: _Config) -> dict:
    kwargs = dict(chunk=config.chunk, rows=config.rows, interpret=config.interpret)
    if config.target == "gpu":
        kwargs["warps"] = config.warps
    return kwargs


def _row_side(x, length: int):
    """[T, B, H] -> [B, H, T'] zero-padded to T' steps."""
    return jnp.transpose(pad_time(x, length), (1, 2, 0))


def _col_side(x, length: int):
    """[T, B, H] -> [B, T', H] zero-padded to T' steps."""
    return jnp.transpose(pad_time(x, length), (1, 0, 2))


def _to_kernel_layout(starts, a, b, w, k, q, chunk):
    """Time-major [T, B, H] -> padded batch-major kernel layouts. Padded steps are identities (a = w = 0)."""
    steps = -(-starts.shape[0] // chunk) * chunk
    starts_k = jnp.transpose(pad_time(starts.astype(a.dtype), steps))[:, None, :]  # [B, 1, T']
    return (
        starts_k,
        _row_side(a, steps),
        _col_side(b, steps),
        _row_side(w, steps),
        _col_side(k, steps),
        _col_side(q, steps),
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(7,))
def _fused(carry, starts, a, b, w, k, q, config):
    return _fused_fwd(carry, starts, a, b, w, k, q, config)[0]


def _fused_fwd(carry, starts, a, b, w, k, q, config):
    length = starts.shape[0]
    kernel_inputs = _to_kernel_layout(starts, a, b, w, k, q, config.chunk)
    h, final, boundaries = _kernel(config).forward_call(carry, *kernel_inputs, **_call_kwargs(config))
    h = jnp.transpose(h, (2, 0, 1))[:length]  # [T, B, H]
    return (final, h), (kernel_inputs, boundaries)


def _fused_bwd(config, residuals, cotangents):
    kernel_inputs, boundaries = residuals
    d_final, d_h = cotangents
    length = d_h.shape[0]
    dh_k = _row_side(d_h, kernel_inputs[1].shape[-1])
    da, dw, db, dk, dq, d_carry = _kernel(config).backward_call(
        *kernel_inputs, boundaries, dh_k, d_final, **_call_kwargs(config)
    )
    row_back = lambda x: jnp.transpose(x, (2, 0, 1))[:length]  # noqa: E731  [B, H, T'] -> [T, B, H]
    col_back = lambda x: jnp.transpose(x, (1, 0, 2))[:length]  # noqa: E731  [B, T', H] -> [T, B, H]
    return d_carry, None, row_back(da), col_back(db), row_back(dw), col_back(dk), col_back(dq)


_fused.defvjp(_fused_fwd, _fused_bwd)


def _configure(
    target: str, interpret: bool, hsz: int, length: int, chunk_size: int, block_rows, num_warps, pad_hidden
) -> tuple[_Config, int]:
    """Kernel settings and the H the kernel runs at (Triton pads H to a power of two; Mosaic needs no padding)."""
    if target == "tpu":
        rows = mosaic_shm.default_block_rows(hsz) if block_rows is None else block_rows
        mosaic_shm.check_block_rows(hsz, rows)
        return _Config("tpu", interpret, mosaic_shm.time_block(length), rows, 0), hsz
    pad = (not interpret) if pad_hidden is None else pad_hidden
    padded = 1 << (hsz - 1).bit_length() if pad else hsz
    rows = default_block_rows(padded) if block_rows is None else block_rows
    warps = gpu_block_config(1 << (padded - 1).bit_length())[1] if num_warps is None else num_warps
    if padded % rows:
        raise ValueError(f"fused_shm_scan: block_rows must be a positive divisor of H = {padded}, got {block_rows!r}")
    return _Config("gpu", interpret, min(chunk_size, length), rows, warps), padded


def _run(carry, starts, a, b, w, k, q, *, target, interpret, **settings):
    hsz = carry.shape[-1]
    config, padded = _configure(target, interpret, hsz, starts.shape[0], **settings)
    extra = padded - hsz
    vectors = [jnp.pad(jnp.asarray(x, carry.dtype), [(0, 0), (0, 0), (0, extra)]) for x in (a, b, w, k, q)]
    carry_p = jnp.pad(carry, [(0, 0), (0, extra), (0, extra)])
    final, h = _fused(carry_p, starts.astype(bool), *vectors, config)
    return final[:, :hsz, :hsz], h[..., :hsz]


def _check_positive_int(name, value, allow_none=False):
    if allow_none and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"fused_shm_scan: {name} must be a positive integer, got {value!r}")


def fused_shm_scan(
    carry,
    starts,
    a,
    b,
    w,
    k,
    q,
    *,
    chunk_size: int = 64,
    block_rows: int | None = None,
    num_warps: int | None = None,
    interpret: bool | None = None,
    pad_hidden: bool | None = None,
    target: str | None = None,
):
    """The SHM recurrence and read-out by the fused kernel, with a custom gradient.

    Args:
      carry: M_0, float32[B, H, H].
      starts: bool[T, B]; M is reset to 0 before a step whose flag is set.
      a: θ_t, float[T, B, H] (rows of C);  b: v_c,t, float[T, B, H] (columns of C).
      w: η_t v_t, float[T, B, H];  k: keys [T, B, H];  q: queries [T, B, H].
      chunk_size: L, steps between stored memories on GPU/CPU (peak extra memory B·(T/L)·H² forward, B·L·H²
        backward); the TPU kernel uses 128-step time blocks (``mosaic_shm.time_block``) instead.
      block_rows: rows of M per program; must divide the (padded) H (default: per H, see ``gpu_block_config``
        and ``mosaic_shm.default_block_rows``). Unless interpret=True both platforms' kernels are traced, so an
        explicit value must suit both (TPU: a multiple of 8 or H itself).
      num_warps: Triton warps per program (default: ``gpu_block_config``).
      interpret: run Pallas in interpret mode; None = only when lowering for CPU, where nothing else exists.
      pad_hidden: zero-pad H to a power of two for the Triton structure (Triton tiles need one); None =
        whenever compiled. Padded rows and columns have a = b = w = k = q = 0, so C = 1, U = 0 there.
      target: kernel structure in interpret mode, "gpu" (default) or "tpu"; compiled runs always use the
        lowering platform's kernel.

    Returns:
      (M_T float32[B, H, H], h float32[T, B, H]).
    """
    if block_rows is not None and (not isinstance(block_rows, int) or isinstance(block_rows, bool) or block_rows <= 0):
        raise ValueError(f"fused_shm_scan: block_rows must be a positive divisor of H, got {block_rows!r}")
    if jnp.dtype(carry.dtype) != jnp.float32:
        raise ValueError(f"fused_shm_scan: carry must be float32 (the kernel's memory is float32), got {carry.dtype}")
    _check_positive_int("chunk_size", chunk_size)
    _check_positive_int("num_warps", num_warps, allow_none=True)
    if target is not None and target not in TARGETS:
        raise ValueError(f"fused_shm_scan: target must be one of {', '.join(TARGETS)} or None, got {target!r}")
    if target is not None and not interpret:
        raise ValueError(
            "fused_shm_scan: target selects the kernel in interpret mode only (interpret=True); "
            "compiled runs use the lowering platform's kernel"
        )
    settings = dict(chunk_size=chunk_size, block_rows=block_rows, num_warps=num_warps, pad_hidden=pad_hidden)
    args = (carry, starts, a, b, w, k, q)
    if interpret:
        return _run(*args, target=target or "gpu", interpret=True, **settings)
    branches = dict(
        cuda=functools.partial(_run, target="gpu", interpret=False, **settings),
        tpu=functools.partial(_run, target="tpu", interpret=False, **settings),
    )
    if interpret is None:
        branches["cpu"] = functools.partial(_run, target="gpu", interpret=True, **settings)
    return jax.lax.platform_dependent(*args, **branches)
