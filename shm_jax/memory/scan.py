"""The Hadamard Memory Framework recurrence with episode resets, three interchangeable ways.

    M_t = M_{t-1} ⊙ C_t + U_t,   M reset to 0 before every step whose start flag is set.

The pairs (C, U) form a monoid, (C_a, U_a) then (C_b, U_b) = (C_a ⊙ C_b, U_a ⊙ C_b + U_b), with identity
(1, 0). Resets make it a *resettable* monoid: when the later element starts an episode it is kept as it
is and everything before it is dropped; the flags are OR-ed, which is what keeps the operator
associative (Morad et al., NeurIPS 2024). Selection is done with ``jnp.where``: a multiplicative mask
would turn an overflowed partial product into NaN (inf · 0).

Implementations (same results, different cost):

- ``associative``: ``jax.lax.associative_scan`` over (C, U, flag); log depth; materialises C and U
  for the whole sequence ([T, B, *S]).
- ``sequential``: ``lax.scan`` that builds C_t and U_t inside the step from the per-step vectors and
  reads out inside the loop, so no [T, *S]-sized input is ever formed (only what autodiff keeps).
- ``chunked``: ``lax.scan`` over chunks of ``chunk_size`` steps, associative inside a chunk; each
  chunk is rematerialised in the backward pass, so only the memory at chunk boundaries is kept
  (O(B·(T/L)·|S| + B·L·|S|) instead of O(B·T·|S|)).

``make_cu`` and ``read`` are written once per model and must work for any number of leading axes
(the associative path calls them on [T, B, ...] inputs, the sequential path on [B, ...]).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

SCAN_METHODS = ("associative", "sequential", "chunked")

# CPU: measured (benchmarks/results/memory_speed.md): the per-step loop with the memory-lean custom VJP is
# the fastest path at every size we train with; the log-depth scan only adds work when there is no parallel
# hardware to spread it over.
# GPU and TPU: "sequential" as well, from what compiles and the roofline, not from a device timing (none was
# available; re-run benchmarks/memory_speed.py on one and revisit):
# - compiled memory (benchmarks/results/compile_report.md; TPU v5e, SHM layer fwd+bwd, T = 1024, H = 128):
#   temp 65 MiB (B = 8) / 1.6 GiB (B = 64) for sequential (checkpoints every 8 steps), 335 MiB / 3.4 GiB for
#   chunked, 5.9 GiB / out of HBM (35 GiB) for associative. XLA:GPU plans the same HLO buffers.
# - roofline (benchmarks/results/roofline.md, B = 64): chunked moves the [L, B, H, H] chunk tensors through HBM,
#   ~155 GB, a 46 ms floor on an H100 (32 ms H200; ~190 ms at a v5e's 819 GB/s); sequential moves ~43 GB and is
#   bound by its 3·T dependent loop iterations, ~31 ms at 10 µs each: no slower, at a third of the memory.
# Both compile for TPU v5e and v6e in tests/aot (for GPU only the Triton kernel is compile-checked: XLA:GPU
# needs a device to compile). SHM's fused Pallas kernel (scan_method="fused", pallas_shm.py) keeps M on chip
# (1.4 MiB temp at B = 8 on v5e) and has the lowest roofline floor; it is not a generic method, so models
# choose it themselves.
DEFAULT_METHOD_BY_BACKEND = {"cpu": "sequential", "gpu": "sequential", "tpu": "sequential"}

Pytree = Any
MakeCU = Callable[[Pytree], tuple[jax.Array, jax.Array]]
Read = Callable[[jax.Array, Pytree], jax.Array]


def default_method() -> str:
    """The scan used when none is named, for the backend JAX runs on."""
    return DEFAULT_METHOD_BY_BACKEND.get(jax.default_backend(), "sequential")


def check_method(method: str | None, chunk_size: int = 64, extra_methods: tuple[str, ...] = ()) -> str:
    """Resolve ``None`` to the backend default; one-line ValueError for unknown names or bad chunks.

    extra_methods: names a model adds on top of SCAN_METHODS (SHM's "fused" kernel).
    """
    if method is None:
        method = default_method()
    valid = SCAN_METHODS + tuple(extra_methods)
    if method not in valid:
        raise ValueError(f"scan: unknown scan method {method!r}; valid: {', '.join(valid)}")
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size <= 0:
        raise ValueError(f"scan: chunk_size must be a positive integer, got {chunk_size!r}")
    return method


def _flag_like(flag: jax.Array, x: jax.Array) -> jax.Array:
    """Reshape flag [..., T, B] to broadcast against x [..., T, B, *S]."""
    return flag.reshape(flag.shape + (1,) * (x.ndim - flag.ndim))


def resettable_combine(earlier, later):
    """The resettable monoid operator on (C, U, flag) triples; works elementwise on stacked elements.

    If ``later`` starts an episode keep it as it is, otherwise compose; OR the flags.
    """
    c_a, u_a, f_a = earlier
    c_b, u_b, f_b = later
    keep_b_c = _flag_like(f_b, c_b)
    keep_b_u = _flag_like(f_b, u_b)
    c = jnp.where(keep_b_c, c_b, c_a * c_b)
    u = jnp.where(keep_b_u, u_b, u_a * c_b + u_b)
    return c, u, jnp.logical_or(f_a, f_b)


def _align_c(c: jax.Array, u: jax.Array) -> jax.Array:
    """Give C the leading [T, B] axes of U (trailing axes may stay 1, broadcasting in the product)."""
    c = jnp.asarray(c, u.dtype)
    c = c.reshape((1,) * (u.ndim - c.ndim) + c.shape)
    return jnp.broadcast_to(c, u.shape[:2] + c.shape[2:])


def associative_hadamard(carry: jax.Array, c: jax.Array, u: jax.Array, starts: jax.Array) -> jax.Array:
    """All memories M_1..M_T by a log-depth associative scan.

    carry: [B, *S] (M_0); c: broadcastable to [T, B, *S]; u: [T, B, *S]; starts: bool[T, B].
    Returns M: [T, B, *S]. The incoming carry is prepended as the element (1, M_0, no reset) and
    dropped after the scan.
    """
    c = _align_c(c, u)
    c0 = jnp.ones((1,) + c.shape[1:], c.dtype)
    u0 = carry[None].astype(u.dtype)
    f0 = jnp.zeros((1,) + starts.shape[1:], bool)
    elems = (
        jnp.concatenate([c0, c], axis=0),
        jnp.concatenate([u0, u], axis=0),
        jnp.concatenate([f0, starts.astype(bool)], axis=0),
    )
    _, memories, _ = jax.lax.associative_scan(resettable_combine, elems, axis=0)
    return memories[1:]


def _associative(carry, inputs, starts, make_cu, read):
    c, u = make_cu(inputs)
    memories = associative_hadamard(carry, c, u, starts)
    return memories[-1], read(memories, inputs)


def _unbroadcast(ct: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Sum a cotangent of a broadcast result back to the operand's ``shape``."""
    extra = ct.ndim - len(shape)
    ct = jnp.sum(ct, axis=tuple(range(extra))) if extra else ct
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and ct.shape[i] != 1)
    return jnp.sum(ct, axis=axes, keepdims=True) if axes else ct


def pad_time(x: jax.Array, length: int) -> jax.Array:
    """Zero-pad the leading (time) axis of x to ``length`` steps."""
    return jnp.pad(x, [(0, length - x.shape[0])] + [(0, 0)] * (x.ndim - 1))


def to_chunks(x: jax.Array, chunk: int) -> jax.Array:
    """[T, ...] -> [ceil(T/L), L, ...], zero-padded at the end."""
    num_chunks = -(-x.shape[0] // chunk)
    return pad_time(x, num_chunks * chunk).reshape((num_chunks, chunk) + x.shape[1:])


def from_chunks(x: jax.Array, length: int) -> jax.Array:
    """[N, L, ...] -> [T, ...]: undo ``to_chunks``, dropping the padded steps."""
    return x.reshape((-1,) + x.shape[2:])[:length]


def _sequential(carry, inputs, starts, make_cu, read, chunk_size):
    """Per-step loop with a memory-lean custom gradient.

    The forward pass keeps only the memory at every ``chunk_size``-th step. The backward pass walks the
    chunks in reverse, recomputes the chunk's memories from its boundary, and runs the adjoint
    recurrence  G_t = dL/dM_t = ∂y_t/∂M_t + G_{t+1} ⊙ C_{t+1}  (cut at resets), with
    dC_t = G_t ⊙ M_{t-1}, dU_t = G_t pulled back through ``make_cu``. Peak memory is
    O(B·(T/L)·|S| + B·L·|S|) instead of autodiff's O(B·T·|S|) residuals, and nothing [T, *S]-sized is
    written in either pass.
    """
    inputs_0 = jax.tree.map(lambda x: x[0], inputs)
    # Hoist arrays the callables close over (e.g. FFM's decay, a fixed C) into explicit arguments, so they
    # receive gradients through the custom rule.
    cu_fn, cu_consts = jax.closure_convert(make_cu, inputs_0)
    read_fn, read_consts = jax.closure_convert(read, carry, inputs_0)
    length = starts.shape[0]
    chunk = min(chunk_size, length)
    return _lean_scan(
        cu_fn, read_fn, chunk, length, carry, inputs, starts.astype(bool), tuple(cu_consts), tuple(read_consts)
    )


def _lean_step(cu_fn, cu_consts, memory, inputs_t, start_t, valid_t):
    """One forward step; padded (invalid) steps leave the memory unchanged. Returns (M_t, M_{t-1} after reset)."""
    prev = jnp.where(_flag_like(start_t, memory), jnp.zeros_like(memory), memory)
    c, u = cu_fn(inputs_t, *cu_consts)
    new = prev * c + u
    return jnp.where(_flag_like(valid_t, memory), new, memory), prev


def _chunk_view(chunk, inputs, starts):
    """Chunked inputs and starts, plus valid: bool[N, L, B], False on the padded steps."""
    view = functools.partial(to_chunks, chunk=chunk)
    valid = view(jnp.ones(starts.shape, bool))
    return jax.tree.map(view, inputs), view(starts), valid


def _lean_forward(cu_fn, read_fn, chunk, length, carry, inputs, starts, cu_consts, read_consts):
    inputs_c, starts_c, valid_c = _chunk_view(chunk, inputs, starts)

    def chunk_body(memory, xs):
        def step(memory, xs_t):
            inputs_t, start_t, valid_t = xs_t
            memory, _ = _lean_step(cu_fn, cu_consts, memory, inputs_t, start_t, valid_t)
            return memory, read_fn(memory, inputs_t, *read_consts)

        boundary = memory
        memory, ys = jax.lax.scan(step, memory, xs)
        return memory, (ys, boundary)

    final, (ys, boundaries) = jax.lax.scan(chunk_body, carry, (inputs_c, starts_c, valid_c))
    ys = jax.tree.map(functools.partial(from_chunks, length=length), ys)
    return final, ys, boundaries


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _lean_scan(cu_fn, read_fn, chunk, length, carry, inputs, starts, cu_consts, read_consts):
    final, ys, _ = _lean_forward(cu_fn, read_fn, chunk, length, carry, inputs, starts, cu_consts, read_consts)
    return final, ys


def _lean_scan_fwd(cu_fn, read_fn, chunk, length, carry, inputs, starts, cu_consts, read_consts):
    final, ys, boundaries = _lean_forward(cu_fn, read_fn, chunk, length, carry, inputs, starts, cu_consts, read_consts)
    return (final, ys), (boundaries, inputs, starts, cu_consts, read_consts)


def _lean_scan_bwd(cu_fn, read_fn, chunk, length, residuals, cotangents):
    boundaries, inputs, starts, cu_consts, read_consts = residuals
    d_final, d_ys = cotangents
    inputs_c, starts_c, valid_c = _chunk_view(chunk, inputs, starts)
    d_ys_c, _, _ = _chunk_view(chunk, d_ys, starts)
    zeros_like = functools.partial(jax.tree.map, jnp.zeros_like)

    def chunk_body(acc, xs):
        d_memory, d_cu_consts, d_read_consts = acc
        boundary, inputs_k, starts_k, valid_k, d_ys_k = xs

        def recompute(memory, xs_t):
            inputs_t, start_t, valid_t = xs_t
            memory, prev = _lean_step(cu_fn, cu_consts, memory, inputs_t, start_t, valid_t)
            return memory, prev

        _, prevs = jax.lax.scan(recompute, boundary, (inputs_k, starts_k, valid_k))

        def step(acc_t, xs_t):
            d_memory, d_cu_consts, d_read_consts = acc_t
            inputs_t, start_t, valid_t, d_y, prev = xs_t
            (c, u), cu_vjp = jax.vjp(lambda i, k: cu_fn(i, *k), inputs_t, cu_consts)
            memory = prev * c + u
            _, read_vjp = jax.vjp(lambda m, i, k: read_fn(m, i, *k), memory, inputs_t, read_consts)
            d_mem_read, d_in_read, d_read_k = read_vjp(d_y)
            grad = d_memory + d_mem_read
            d_in_cu, d_cu_k = cu_vjp((_unbroadcast(grad * prev, c.shape), _unbroadcast(grad, u.shape)))
            d_prev = jnp.where(_flag_like(start_t, grad), jnp.zeros_like(grad), grad * c)
            # A padded step is the identity: pass the cotangent through and contribute nothing.
            keep = _flag_like(valid_t, grad)
            d_prev = jnp.where(keep, d_prev, d_memory)
            d_inputs = jax.tree.map(
                lambda a, b: jnp.where(_flag_like(valid_t, a), a + b, jnp.zeros_like(a)), d_in_cu, d_in_read
            )
            d_cu_consts = jax.tree.map(lambda acc, d: acc + jnp.where(jnp.any(valid_t), d, 0), d_cu_consts, d_cu_k)
            d_read_consts = jax.tree.map(
                lambda acc, d: acc + jnp.where(jnp.any(valid_t), d, 0), d_read_consts, d_read_k
            )
            return (d_prev, d_cu_consts, d_read_consts), d_inputs

        acc, d_inputs_k = jax.lax.scan(
            step, (d_memory, d_cu_consts, d_read_consts), (inputs_k, starts_k, valid_k, d_ys_k, prevs), reverse=True
        )
        return acc, d_inputs_k

    init = (d_final, zeros_like(cu_consts), zeros_like(read_consts))
    (d_carry, d_cu_consts, d_read_consts), d_inputs = jax.lax.scan(
        chunk_body, init, (boundaries, inputs_c, starts_c, valid_c, d_ys_c), reverse=True
    )
    d_inputs = jax.tree.map(functools.partial(from_chunks, length=length), d_inputs)
    return d_carry, d_inputs, None, d_cu_consts, d_read_consts


_lean_scan.defvjp(_lean_scan_fwd, _lean_scan_bwd)


def _chunked(carry, inputs, starts, make_cu, read, chunk_size):
    length = starts.shape[0]
    xs = _chunk_view(min(chunk_size, length), inputs, starts.astype(bool))

    @jax.checkpoint  # keep only the memory at chunk boundaries; recompute inside a chunk in the backward
    def body(memory, chunk_xs):
        inputs_c, starts_c, valid_c = chunk_xs
        c, u = make_cu(inputs_c)
        c = _align_c(c, u)
        # Padded steps at the end become identity elements so the final carry is the last real memory.
        c = jnp.where(_flag_like(valid_c, c), c, jnp.ones_like(c))
        u = jnp.where(_flag_like(valid_c, u), u, jnp.zeros_like(u))
        memories = associative_hadamard(memory, c, u, starts_c & valid_c)
        return memories[-1], read(memories, inputs_c)

    final, ys = jax.lax.scan(body, carry, xs)
    ys = jax.tree.map(functools.partial(from_chunks, length=length), ys)
    return final, ys


def hadamard_scan(
    carry: jax.Array,
    inputs: Pytree,
    starts: jax.Array,
    make_cu: MakeCU,
    read: Read,
    *,
    method: str | None = None,
    chunk_size: int = 64,
) -> tuple[jax.Array, jax.Array]:
    """Run M_t = M_{t-1} ⊙ C_t + U_t over a sequence with resets and read every step.

    Args:
      carry: M_0, [B, *S] (real or complex).
      inputs: pytree of per-step arrays with leading axes [T, B].
      starts: bool[T, B]; M is reset to 0 before a step whose flag is set.
      make_cu: inputs_t -> (C_t, U_t), each broadcastable to [..., B, *S].
      read: (M_t, inputs_t) -> y_t, e.g. M_t q_t.
      method: "associative", "sequential", "chunked", or None for the backend default.
      chunk_size: steps per chunk for "chunked" (T need not be a multiple of it).

    Returns:
      (M_T [B, *S], y [T, B, ...]).
    """
    method = check_method(method, chunk_size)
    if method == "associative":
        return _associative(carry, inputs, starts, make_cu, read)
    if method == "sequential":
        return _sequential(carry, inputs, starts, make_cu, read, chunk_size)
    return _chunked(carry, inputs, starts, make_cu, read, chunk_size)
