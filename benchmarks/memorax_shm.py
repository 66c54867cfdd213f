"""memorax's SHM (``memorax.networks.SHMCell`` in flax ``nn.RNN``) behind this package's core interface.

The outside implementation the SHM timings are compared with (``benchmarks/memory_speed.py``, rows
``memorax/shm`` and ``memorax/shm-fixed-theta``). memorax is in the ``bench`` extra (``pip install -e ".[bench]"``);
it is imported only when a row is built. Its cell is the paper's layer without the shortcut: LayerNorm, bias-free
v, k, q, v_c, η projections, C_t = 1 + tanh(θ_t ⊗ v_c,t), M_t = M_{t-1} ⊙ C_t + (η v) ⊗ k, y = Dense(M_t q). The
same function here is ``make_memory("shm", shortcut=False, projection_size=F)``; :func:`compare_with_shm` checks
that with copied weights (fixed θ, where both draw no noise) before anything is timed.

memorax's nn.RNN takes no episode starts: its rows start from the given carry and never reset, which is what a
timing row needs (one start at t = 0 from a zero carry).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class MemoraxSHM:
    """memorax 1.0.1's SHMCell scanned over time, with ``init`` / ``apply`` / ``sample_noise`` like a core.

    sample_theta: True draws a θ row per step and sequence (memorax's default, the paper's random θ); False
        uses row 0 at every step (the official POPGym code's behaviour, ``shm-fixed-theta`` here).
    """

    def __init__(self, memory_size: int, output_size: int, sample_theta: bool = True, num_theta: int = 128):
        from memorax.networks.sequence_models.shm import SHMCell

        self.memory_size, self.output_size, self.sample_theta = memory_size, output_size, sample_theta
        self.scan_method = "memorax nn.RNN"
        self.chunk_size = None
        cell = SHMCell(
            features=memory_size, output_features=output_size, num_thetas=num_theta, sample_theta=sample_theta
        )
        # split_rngs: a new θ draw at every step (nn.RNN would otherwise share one key over time).
        self.rnn = nn.RNN(cell, time_major=True, return_carry=True, split_rngs={"params": False, "memory": True})

    def initialize_carry(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.memory_size, self.memory_size), jnp.float32)

    def sample_noise(self, rng: jax.Array, length: int, batch_size: int) -> jax.Array:
        """The key of memorax's ``"memory"`` rng stream (it draws θ rows itself)."""
        return rng

    def init(self, key: jax.Array, carry: jax.Array, x: jax.Array, starts: jax.Array, noise: jax.Array):
        return self.rnn.init({"params": key, "memory": noise}, x, initial_carry=carry)

    def apply(self, params, carry: jax.Array, x: jax.Array, starts: jax.Array, noise: jax.Array):
        """carry float32[B, H, H], x [T, B, D] -> (carry, y [T, B, F]); ``starts`` unused (no resets)."""
        return self.rnn.apply(params, x, initial_carry=carry, rngs={"memory": noise})


def shm_params_from_memorax(memorax_params) -> dict:
    """The same weights in the layout of ``make_memory("shm-fixed-theta", shortcut=False, projection_size=F)``."""
    cell = memorax_params["params"]["cell"]
    kernel = jnp.concatenate([cell[name]["kernel"] for name in ("value", "key", "query", "vc", "eta")], axis=1)
    return {
        "params": {
            "norm": dict(cell["ln"]),
            "proj": {"kernel": kernel},
            "theta": cell["theta_table"],
            "out": dict(cell["output"]),
        }
    }


def compare_with_shm(
    memory_size: int = 8, input_size: int = 5, output_size: int = 7, length: int = 12, batch: int = 3, seed: int = 0
) -> dict:
    """Max differences of y, the final memory and dL/dx (L = sum(y²)) between memorax's cell and the library's
    fixed-θ SHM with the same weights, from a random carry, no resets."""
    from shm_jax.memory import make_memory

    theirs = MemoraxSHM(memory_size, output_size, sample_theta=False)
    ours = make_memory("shm-fixed-theta", memory_size=memory_size, shortcut=False, projection_size=output_size)
    keys = jax.random.split(jax.random.PRNGKey(seed), 4)
    x = jax.random.normal(keys[0], (length, batch, input_size))
    carry = jax.random.normal(keys[1], (batch, memory_size, memory_size))
    starts = jnp.zeros((length, batch), bool)
    their_params = theirs.init(keys[2], carry, x, starts, keys[3])
    our_params = shm_params_from_memorax(their_params)

    def run_theirs(x_):
        return theirs.apply(their_params, carry, x_, starts, keys[3])

    def run_ours(x_):
        return ours.apply(our_params, carry, x_, starts, None)

    (m_theirs, y_theirs), (m_ours, y_ours) = run_theirs(x), run_ours(x)
    grad = lambda run: jax.grad(lambda x_: jnp.sum(jnp.square(run(x_)[1])))(x)  # noqa: E731
    g_theirs, g_ours = grad(run_theirs), grad(run_ours)
    return {
        "output": float(jnp.max(jnp.abs(y_ours - y_theirs))),
        "output_scale": float(jnp.max(jnp.abs(y_ours))),
        "memory": float(jnp.max(jnp.abs(m_ours - m_theirs))),
        "input_grad": float(jnp.max(jnp.abs(g_ours - g_theirs))),
        "input_grad_scale": float(jnp.max(jnp.abs(g_ours))),
    }
