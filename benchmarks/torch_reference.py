"""The official SHM per-step loop, re-implemented in PyTorch from the equations: the speed baseline.

Structure follows the POPGym agent of the official code (``popgym/baselines/ray_models/ray_shm.py``,
thaihungle/SHM, read at commit 651f9e2):

    x̂ = LayerNorm(x)                                   (learnable scale and bias, eps 1e-5)
    k = relu(W_k x̂) / (1e-5 + Σ relu(W_k x̂)),  q likewise,  v = W_v x̂,  v_c = W_c x̂  (no biases)
    η = sigmoid(w_η · x̂)                              (1-output linear, no bias)
    θ = one_hot(l) @ Θ                                  (Θ: [L, H] Xavier-uniform, l the row index)
    C = 1 + tanh(θ ⊗ v_c)          for the WHOLE sequence at once: [B, T, H, H]
    for t in range(T):  M = M ⊙ C[:, t] + (η v)[:, t] ⊗ k[:, t];  keep M       (Python loop)
    h = stack(M_1..M_T) q + W_s x̂ + b_s;   y = W_o h + b_o

Batch-major [B, T, ...] layout, as in RLlib. No episode resets inside a sequence (RLlib cuts sequences
at episode boundaries and passes the stored state in).

Why the backward pass grows quadratically in T: inside the loop, ``C[:, t]``, ``v[:, t]``, ``k[:, t]``
and ``η[:, t]`` are views into tensors that span the whole sequence. PyTorch's backward of such a
slice (SelectBackward) allocates a zero tensor of the FULL source shape and copies the step's gradient
into one slot; autograd then adds the T full-size gradients together. For C ([B, T, H, H]) that is
O(B·T·H²) work per step and O(B·T²·H²) per backward pass, while the forward pass is O(B·T·H²).

The official row index is ``uniform_(0, 1).long()``, which truncates to 0: every step uses Θ[0].
``official_rows`` reproduces that; the JAX comparison passes the JAX layer's own indices.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

NUM_THETA = 128
_NORM_EPS = 1e-5


def official_rows(batch_size: int, length: int) -> torch.Tensor:
    """The official index expression: uniform floats in [0, 1) cast to integers, i.e. all zeros. long[B, T]."""
    return torch.empty(batch_size, length).uniform_(0, 1).long()


def _sum_normalise(z: torch.Tensor) -> torch.Tensor:
    z = z.relu()
    return z / (_NORM_EPS + z.sum(dim=-1, keepdim=True))


class TorchSHMLoop(nn.Module):
    """SHM with the official per-step Python loop. x: float32[B, T, D] -> (y: float32[B, T, F], M_T: [B, H, H])."""

    def __init__(self, input_size: int, memory_size: int, output_size: int, num_theta: int = NUM_THETA):
        super().__init__()
        d, h = input_size, memory_size
        self.memory_size, self.num_theta = h, num_theta
        self.norm = nn.LayerNorm(d, eps=_NORM_EPS)
        self.key = nn.Linear(d, h, bias=False)
        self.query = nn.Linear(d, h, bias=False)
        self.value = nn.Linear(d, h, bias=False)
        self.calibration_input = nn.Linear(d, h, bias=False)
        self.write_gate = nn.Linear(d, 1, bias=False)
        self.theta_table = nn.Parameter(torch.empty(num_theta, h))
        nn.init.xavier_uniform_(self.theta_table)
        self.shortcut = nn.Linear(d, h)
        self.out = nn.Linear(h, output_size)

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None, memory: torch.Tensor | None = None):
        """x [B, T, D]; rows long[B, T] Θ row per step (None: the official all-zero index); memory [B, H, H]."""
        batch, length, _ = x.shape
        hsz = self.memory_size
        x_hat = self.norm(x)
        k = _sum_normalise(self.key(x_hat))
        q = _sum_normalise(self.query(x_hat))
        v = self.value(x_hat)
        v_c = self.calibration_input(x_hat)
        eta = torch.sigmoid(self.write_gate(x_hat))
        if rows is None:
            rows = official_rows(batch, length)
        one_hot = nn.functional.one_hot(rows.long(), num_classes=self.num_theta).to(x.dtype)
        theta = torch.einsum("lh,btl->bth", self.theta_table, one_hot)
        calib = 1.0 + torch.tanh(torch.einsum("bti,btj->btij", theta, v_c))  # [B, T, H, H], whole sequence
        if memory is None:
            memory = x.new_zeros(batch, hsz, hsz)
        memories = []
        for t in range(length):
            # calib[:, t], v[:, t], k[:, t], eta[:, t]: per-step slices of sequence-long tensors -> the
            # quadratic backward described in the module docstring.
            memory = memory * calib[:, t] + torch.einsum("bi,bj->bij", eta[:, t] * v[:, t], k[:, t])
            memories.append(memory)
        memories = torch.stack(memories, dim=1)  # [B, T, H, H]
        h = torch.einsum("btij,btj->bti", memories, q) + self.shortcut(x_hat)
        return self.out(h), memory


def load_jax_params(module: TorchSHMLoop, params) -> None:
    """Copy the parameters of a JAX ``SHM(shortcut=True, projection_size=F)`` into ``module``.

    The JAX layer fuses the five bias-free projections into one kernel [D, 4H + 1] with column blocks
    v | k | q | v_c | η; torch Linear weights are [out, in], i.e. the transposed blocks.
    """
    p = params["params"] if "params" in params else params
    hsz = module.memory_size
    kernel = np.asarray(p["proj"]["kernel"])
    blocks = {
        "value": kernel[:, :hsz],
        "key": kernel[:, hsz : 2 * hsz],
        "query": kernel[:, 2 * hsz : 3 * hsz],
        "calibration_input": kernel[:, 3 * hsz : 4 * hsz],
        "write_gate": kernel[:, 4 * hsz :],
    }

    def put(tensor: torch.Tensor, array) -> None:
        array = np.asarray(array, np.float32)
        if tuple(tensor.shape) != array.shape:
            raise ValueError(f"load_jax_params: shape {array.shape} does not fit {tuple(tensor.shape)}")
        tensor.copy_(torch.from_numpy(array.copy()))

    with torch.no_grad():
        for name, block in blocks.items():
            put(getattr(module, name).weight, block.T)
        put(module.norm.weight, p["norm"]["scale"])
        put(module.norm.bias, p["norm"]["bias"])
        put(module.theta_table, p["theta"])
        put(module.shortcut.weight, np.asarray(p["shortcut"]["kernel"]).T)
        put(module.shortcut.bias, p["shortcut"]["bias"])
        put(module.out.weight, np.asarray(p["out"]["kernel"]).T)
        put(module.out.bias, p["out"]["bias"])


def compare_with_jax(
    memory_size: int = 8, input_size: int = 6, output_size: int = 5, length: int = 12, batch: int = 3, seed: int = 0
) -> dict:
    """Run the JAX SHM and this loop with identical weights, inputs and Θ rows; return max |difference|.

    Keys: ``output`` (y), ``memory`` (M_T) and ``input_grad`` (d mean(y²) / dx), each a float, and the
    largest |value| of the JAX output, final memory and input gradient (``output_scale``, ``memory_scale``,
    ``input_grad_scale``). The JAX layer
    runs its sequential scan from M_0 = 0 with a start flag only at t = 0 (the reference has no resets).
    """
    import jax
    import jax.numpy as jnp

    from shm_jax.memory.shm import SHM

    core = SHM(memory_size=memory_size, projection_size=output_size, shortcut=True, scan_method="sequential")
    keys = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = jax.random.normal(keys[0], (length, batch, input_size))
    starts = jnp.zeros((length, batch), bool).at[0].set(True)
    rows = core.sample_noise(keys[1], length, batch)  # int32[T, B]
    carry = core.initialize_carry(batch)
    params = core.init(keys[2], carry, x, starts, rows)

    def loss(x_):
        final, y = core.apply(params, carry, x_, starts, rows)
        return jnp.mean(y**2), (final, y)

    (_, (jax_memory, jax_y)), jax_dx = jax.value_and_grad(loss, has_aux=True)(x)

    model = TorchSHMLoop(input_size, memory_size, output_size)
    load_jax_params(model, params)
    x_t = torch.from_numpy(np.asarray(x).transpose(1, 0, 2).copy()).requires_grad_(True)
    rows_t = torch.from_numpy(np.asarray(rows).T.astype(np.int64).copy())
    y_t, memory_t = model(x_t, rows_t)
    (y_t**2).mean().backward()

    def diff(a, b) -> float:
        return float(np.max(np.abs(np.asarray(a) - b.detach().numpy())))

    return {
        "output": diff(np.asarray(jax_y).transpose(1, 0, 2), y_t),
        "memory": diff(jax_memory, memory_t),
        "input_grad": diff(np.asarray(jax_dx).transpose(1, 0, 2), x_t.grad),
        "output_scale": float(np.max(np.abs(np.asarray(jax_y)))),
        "memory_scale": float(np.max(np.abs(np.asarray(jax_memory)))),
        "input_grad_scale": float(np.max(np.abs(np.asarray(jax_dx)))),
        "sizes": {"H": memory_size, "D": input_size, "F": output_size, "T": length, "B": batch},
    }


def _status_bytes(field: str) -> int:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset the process's resident high-water mark (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def time_forward_backward(
    batch: int,
    length: int,
    memory_size: int,
    input_size: int,
    output_size: int,
    repeats: int = 3,
    seed: int = 0,
    threads: int | None = None,
) -> dict:
    """Median wall time of forward + backward (mean squared output) and the peak RSS growth.

    Run it in a fresh process (``python -m benchmarks.torch_reference ...``): the peak RSS growth is the
    resident high-water mark (reset after the inputs were built) minus the resident size at that point.
    threads: torch intra-op threads (None keeps torch's default).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = TorchSHMLoop(input_size, memory_size, output_size)
    x = torch.randn(batch, length, input_size, requires_grad=True)
    rows = torch.randint(0, NUM_THETA, (batch, length))
    exact_peak = _reset_peak_rss()
    baseline = _status_bytes("VmRSS")
    times = []
    for _ in range(repeats):
        model.zero_grad(set_to_none=True)
        x.grad = None
        start = time.perf_counter()
        y, _ = model(x, rows)
        (y**2).mean().backward()
        times.append(time.perf_counter() - start)
    peak = _status_bytes("VmHWM")
    return {
        "time_s_median": statistics.median(times),
        "time_s_min": min(times),
        "time_s_all": times,
        # Without the reset the high-water mark may predate the inputs (torch's import): then only an upper bound.
        "peak_rss_growth_bytes": max(peak - baseline, 0),
        "peak_rss_exact": exact_peak,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str]) -> None:
    """CLI: B T H D F REPEATS THREADS -> one JSON line on stdout (THREADS 0: torch's default)."""
    if len(argv) != 7:
        raise SystemExit("usage: python -m benchmarks.torch_reference B T H D F REPEATS THREADS")
    batch, length, hsz, d, f, repeats, threads = (int(a) for a in argv)
    print(json.dumps(time_forward_backward(batch, length, hsz, d, f, repeats, threads=threads or None)))


if __name__ == "__main__":
    main(sys.argv[1:])
