"""The Arcade CNN's gradient inside a ``lax.scan``, with XLA's convolution against the matmul form the agent uses.

    python -m benchmarks.conv_in_scan            # 128 frames of 128x128x3, as one PPO minibatch of the arcade preset
    python -m benchmarks.conv_in_scan --quick    # 8 frames: a smoke run

PPO and PQN run their epochs and minibatches in ``lax.scan``; there XLA's CPU convolution computed the kernel
gradient about 20-50x slower than outside a scan (forward and input gradient were unaffected), which made a pixel
agent's update minutes long. ``shm_jax.agents.trunk.MatmulConv`` is ``nn.Conv``'s function and parameters as one
matmul over strided views. Per variant: the jitted gradient of sum(CNN(x)) with respect to the parameters, alone and
inside a 2-step ``lax.scan`` (time per gradient), and the forward pass; one warm-up call, median of ``--repeats``.
Writes ``<out>/conv_in_scan_<device>[_quick].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp

from benchmarks.common import RESULTS_DIR, close_record, measured_on, record_header, timed_calls, write_record
from shm_jax.agents import trunk


def _xla_conv(features, kernel, stride, dtype=None, name=None):
    return nn.Conv(features, (kernel, kernel), strides=stride, padding="VALID", dtype=dtype, name=name)


class _XlaArcadeCNN(trunk.ArcadeCNN):
    """ArcadeCNN with XLA's convolution (``nn.Conv``), the layout before MatmulConv."""

    @nn.compact
    def __call__(self, x):
        layers = ((64, 5, 2, (2, 2)), (128, 3, 2, (2, 2)), (256, 3, 2, (3, 1)), (512, 1, 1, None))
        for i, (features, kernel, stride, pool) in enumerate(layers):
            x = nn.leaky_relu(_xla_conv(features, kernel, stride, name=f"conv{i}")(x), negative_slope=0.01)
            if pool is not None:
                x = nn.max_pool(x, (pool[0], pool[0]), strides=(pool[1], pool[1]), padding="VALID")
        return x.reshape(x.shape[0], -1)


def measure(module: nn.Module, frames: int, repeats: int) -> dict:
    x = jax.random.uniform(jax.random.key(0), (frames, 128, 128, 3))
    params = module.init(jax.random.key(1), x[:1])
    grad = jax.grad(lambda p, x: jnp.sum(module.apply(p, x)))

    def in_scan(p, x):
        step = lambda acc, _: (jax.tree.map(jnp.add, acc, grad(p, x)), None)  # noqa: E731
        return jax.lax.scan(step, jax.tree.map(jnp.zeros_like, p), None, length=2)[0]

    result = {}
    for name, fn, per_call in (
        ("grad_s", jax.jit(grad), 1),
        ("grad_in_scan_s", jax.jit(in_scan), 2),
        ("forward_s", jax.jit(module.apply), 1),
    ):
        jax.block_until_ready(fn(params, x))  # compile + warm-up
        result[name] = statistics.median(timed_calls(lambda: fn(params, x), repeats)) / per_call
    return result


def markdown(record: dict) -> str:
    s = record["settings"]
    lines = [
        "# Arcade CNN gradient inside lax.scan: XLA convolution vs MatmulConv",
        "",
        f"{measured_on(record, 'benchmarks.conv_in_scan')} {s['frames']} frames of 128x128x3, median of "
        f"{s['repeats']} calls.",
        "",
        "| convolution | gradient | gradient inside lax.scan | forward |",
        "|---|---:|---:|---:|",
    ]
    for name, r in record["results"].items():
        lines.append(f"| {name} | {r['grad_s']:.3f} s | {r['grad_in_scan_s']:.3f} s | {r['forward_s']:.3f} s |")
    xla, ours = record["results"]["nn.Conv (XLA)"], record["results"]["MatmulConv"]
    lines += [
        "",
        f"Inside the scan, MatmulConv's gradient is {xla['grad_in_scan_s'] / ours['grad_in_scan_s']:.1f}x "
        "faster than XLA's convolution's.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    frames = 8 if args.quick else 128
    began = time.perf_counter()
    record = record_header("conv_in_scan")
    record["settings"] = {"frames": frames, "repeats": args.repeats}
    record["results"] = {
        "MatmulConv": measure(trunk.ArcadeCNN(), frames, args.repeats),
        "nn.Conv (XLA)": measure(_XlaArcadeCNN(), frames, args.repeats),
    }
    close_record(record, began)
    return write_record(record, args.out, "conv_in_scan", args.quick, markdown)


if __name__ == "__main__":
    main()
