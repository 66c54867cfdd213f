"""experiments.memory_probe: its targets are what the docstring says, and a memory learns the sliding-window probe
that a memoryless agent cannot (the negative control)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from experiments import memory_probe
from experiments.definitions import GRU

T, B = 12, 5


def test_the_targets_are_the_previous_input_the_velocity_the_first_input_and_the_running_mean():
    key = jax.random.key(3)
    x, y = map(np.asarray, memory_probe.previous(key, T, B))
    np.testing.assert_array_equal(y[1:], x[:-1])
    x, y = map(np.asarray, memory_probe.first(key, T, B))
    np.testing.assert_array_equal(y, np.broadcast_to(x[:1], x.shape))
    x, y = map(np.asarray, memory_probe.mean(key, T, B))
    np.testing.assert_allclose(y[4], x[:5].mean(0), rtol=1e-5, atol=1e-6)
    x, y = map(np.asarray, memory_probe.velocity(key, T, B))
    angle = np.arctan2(x[..., 1], x[..., 0])
    turned = (np.diff(angle, axis=0) + np.pi) % (2 * np.pi) - np.pi  # wrapped to [-pi, pi)
    np.testing.assert_allclose(turned, y[1:, :, 0], atol=1e-4)
    assert np.abs(y).max() <= memory_probe.MAX_SPEED and y.std() > 0.05  # it moves, within the stated bound


def test_an_unknown_probe_is_a_one_line_error():
    with pytest.raises(ValueError, match="probe: unknown 'nope'"):
        memory_probe.run_probe(GRU, "nope", steps=10)


@pytest.mark.slow  # two small training runs
def test_a_gru_learns_the_previous_input_and_a_memoryless_agent_cannot():
    small = dict(steps=200, length=16, batch=16)  # shorter sequences than the study's: the GRU still clears 0.9 easily
    gru = memory_probe.run_probe(GRU, "previous", **small)
    floor = memory_probe.run_probe(memory_probe.MEMORYLESS, "previous", **small)
    assert gru["r2"] > 0.9, gru
    assert floor["r2"] < 0.1, floor
    assert len(gru["r2_curve"]) == 10 and gru["steps"] == 200


def test_a_new_run_of_a_pair_replaces_it_and_the_table_keeps_the_others(tmp_path):
    def result(agent, probe, r2):
        return {"agent": agent, "probe": probe, "r2": r2, "steps": 100, "length": 32}

    memory_probe.write_results(tmp_path, [result("GRU", "previous", 0.5), result("SHM", "previous", 0.25)])
    path = memory_probe.write_results(tmp_path, [result("GRU", "previous", 0.75), result("GRU", "first", 0.125)])
    stored = {(r["agent"], r["probe"]): r["r2"] for r in json.loads(path.read_text())["results"]}
    assert "previous T=32" in (tmp_path / "README.md").read_text()
    assert stored == {("GRU", "previous"): 0.75, ("SHM", "previous"): 0.25, ("GRU", "first"): 0.125}
    table = (tmp_path / "README.md").read_text()
    assert "| GRU | 0.750 | 0.125 |" in table and "| SHM | 0.250 |  |" in table
