"""Multi-device runs (4 fake CPU devices, in a subprocess) match the single-device run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent

SCRIPT = """
import os
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
import jax, numpy as np
from jax.sharding import PartitionSpec as P
from fake_trainer import fake_config, fake_program
from shm_jax.training import sharding
assert len(jax.devices()) == 4, jax.devices()

def train(config, mesh):
    program = fake_program(config, mesh=mesh)
    state = program.init()
    history = []
    for _ in range(2):
        state, metrics = program.run_chunk(state, 3)
        history.append(metrics)
    return program, state, history

single = sharding.make_mesh(jax.devices()[:1])
full = sharding.make_mesh()
cases = {
    "seeds": fake_config(num_seeds=4, num_envs=2, sweep=(("lr", (0.01, 0.05)),)),
    "settings": fake_config(num_seeds=1, num_envs=2, sweep=(("lr", (0.01, 0.02, 0.03, 0.05)),)),
    "envs": fake_config(num_seeds=1, num_envs=8),
}
for expected_axis, config in cases.items():
    program_1, state_1, hist_1 = train(config, single)
    program_4, state_4, hist_4 = train(config, full)
    assert program_1.sharded_axis == "none" and program_4.sharded_axis == expected_axis, program_4.sharded_axis
    # the state really is spread over the 4 devices along the chosen axis
    axis = {"settings": 0, "seeds": 1, "envs": 2}[expected_axis]
    spec = state_4.env_state.sharding.spec
    assert spec[axis] == "data", (expected_axis, spec)
    assert len(state_4.env_state.addressable_shards) == 4
    if expected_axis == "envs":
        assert state_4.params["w"].sharding.is_fully_replicated  # parameters replicated
    for a, b in zip(jax.tree.leaves(state_1), jax.tree.leaves(state_4)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    for m1, m4 in zip(hist_1, hist_4):
        for key in m1:
            np.testing.assert_allclose(m1[key], m4[key], rtol=1e-5, atol=1e-6)
    print("ok", expected_axis)
"""


@pytest.mark.slow
def test_four_device_runs_match_single_device():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parents[1])]), "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["ok", "seeds", "ok", "settings", "ok", "envs"]
