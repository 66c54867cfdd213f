"""The straightforward way to write SHM: a linen cell stepped by ``nn.scan``, plain autodiff through it.

This is the baseline the memory target is measured against ("a straightforward linen SHM cell in nn.scan";
benchmarks/memory_speed.py labels it ``shm/sequential-autodiff``). Every step does what an RNN cell does --
LayerNorm, the fused bias-free projection, C_t, U_t, the memory update, the read, the shortcut and the output
projection -- so reverse-mode autodiff keeps every step's residuals, [T, B, H, H]-sized several times over.

Same math and same parameter names as ``shm_jax.memory.shm.SHM`` (random-θ calibration, shortcut on), so
``{"params": {"cell": shm_params["params"]}}`` makes it compute exactly the library layer's function:

    x̂ = LayerNorm(x_t);  [v, k, q, v_c, η] = W x̂   (bias-free)
    k, q = relu(·) / (1e-5 + Σ relu(·));  η = sigmoid(η)
    C_t = 1 + tanh(Θ[l_t] ⊗ v_c);  U_t = η v ⊗ k;  M_t = M_{t-1} ⊙ C_t + U_t  (M reset to 0 at a start)
    y_t = W_o (M_t q + W_s x̂ + b_s) + b_o
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from shm_jax.memory.shm import torch_bias_init, torch_kernel_init

_NORM_EPS = 1e-5


def _sum_normalise(x: jax.Array) -> jax.Array:
    x = jax.nn.relu(x)
    return x / (_NORM_EPS + jnp.sum(x, axis=-1, keepdims=True))


class SHMCell(nn.Module):
    """One SHM step. carry: float32[B, H, H]; inputs: (x_t float32[B, D], start_t bool[B], row_t int32[B])."""

    memory_size: int
    projection_size: int
    num_theta: int = 128

    @nn.compact
    def __call__(self, memory, inputs):
        x_t, start_t, row_t = inputs
        hsz = self.memory_size
        x_hat = nn.LayerNorm(epsilon=1e-5, name="norm")(x_t)
        proj = nn.Dense(4 * hsz + 1, use_bias=False, kernel_init=torch_kernel_init(), name="proj")(x_hat)
        v, k, q, v_c, eta = jnp.split(proj, [hsz, 2 * hsz, 3 * hsz, 4 * hsz], axis=-1)
        theta = self.param("theta", nn.initializers.xavier_uniform(), (self.num_theta, hsz))
        c = 1.0 + jnp.tanh(theta[row_t][:, :, None] * v_c[:, None, :])
        u = jax.nn.sigmoid(eta)[:, :, None] * v[:, :, None] * _sum_normalise(k)[:, None, :]
        memory = jnp.where(start_t[:, None, None], 0.0, memory)
        memory = memory * c + u
        h = jnp.einsum("bij,bj->bi", memory, _sum_normalise(q))
        h = h + nn.Dense(
            hsz, kernel_init=torch_kernel_init(), bias_init=torch_bias_init(x_t.shape[-1]), name="shortcut"
        )(x_hat)
        y = nn.Dense(self.projection_size, kernel_init=torch_kernel_init(), bias_init=torch_bias_init(hsz), name="out")(
            h
        )
        return memory, y


class LinenScanSHM(nn.Module):
    """SHMCell under ``nn.scan`` with the memory-core interface of shm_jax.memory.base.

    ``__call__(carry float32[B, H, H], x float32[T, B, D], starts bool[T, B], noise int32[T, B])``
    -> (carry, y float32[T, B, projection_size]).
    """

    memory_size: int = 128
    projection_size: int = 128
    num_theta: int = 128

    @property
    def output_size(self) -> int:
        return self.projection_size

    def initialize_carry(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.memory_size, self.memory_size), jnp.float32)

    def sample_noise(self, rng: jax.Array, length: int, batch_size: int) -> jax.Array:
        """The Θ row index of every (step, sequence): int32[T, B]."""
        return jax.random.randint(rng, (length, batch_size), 0, self.num_theta, jnp.int32)

    @nn.compact
    def __call__(self, carry, x, starts, noise):
        scan = nn.scan(SHMCell, variable_broadcast="params", split_rngs={"params": False}, in_axes=0, out_axes=0)
        cell = scan(self.memory_size, self.projection_size, self.num_theta, name="cell")
        return cell(carry, (x, starts, noise))


def compare_with_shm(
    memory_size: int = 8, input_size: int = 5, output_size: int = 7, length: int = 12, batch: int = 3, seed: int = 0
) -> dict:
    """Max differences between this baseline and the library SHM with the same weights, Θ rows and resets.

    Compares y, the final memory and dL/dx for L = sum(y²), with a random incoming carry and random starts.
    """
    from shm_jax.memory import make_memory

    shm = make_memory("shm", memory_size=memory_size, shortcut=True, projection_size=output_size)
    baseline = LinenScanSHM(memory_size=memory_size, projection_size=output_size)
    keys = jax.random.split(jax.random.PRNGKey(seed), 5)
    x = jax.random.normal(keys[0], (length, batch, input_size))
    starts = jax.random.bernoulli(keys[1], 0.2, (length, batch)).at[0].set(True)
    noise = shm.sample_noise(keys[2], length, batch)
    carry = jax.random.normal(keys[3], (batch, memory_size, memory_size))
    params = shm.init(keys[4], carry, x, starts, noise)
    baseline_params = {"params": {"cell": params["params"]}}

    def run(module, p, x_):
        return module.apply(p, carry, x_, starts, noise)

    (m_shm, y_shm), (m_base, y_base) = run(shm, params, x), run(baseline, baseline_params, x)
    grad = lambda module, p: jax.grad(lambda x_: jnp.sum(jnp.square(run(module, p, x_)[1])))(x)  # noqa: E731
    g_shm, g_base = grad(shm, params), grad(baseline, baseline_params)
    return {
        "output": float(jnp.max(jnp.abs(y_shm - y_base))),
        "output_scale": float(jnp.max(jnp.abs(y_shm))),
        "memory": float(jnp.max(jnp.abs(m_shm - m_base))),
        "input_grad": float(jnp.max(jnp.abs(g_shm - g_base))),
        "input_grad_scale": float(jnp.max(jnp.abs(g_shm))),
    }
