"""Run directories written before the layout change (config.json with a ``ppo`` section, no ``algo`` key)
still load, resume and evaluate. The fixture was written by the pre-change code: 2 seeds, interrupted at
update 2 of 4; ``ppo_run_v1_resumed_metrics.jsonl`` is what that code wrote when it resumed the run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from shm_jax import api
from shm_jax.training import rundir

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture()
def old_run(tmp_path):
    run_dir = tmp_path / "ppo_run_v1"
    shutil.copytree(FIXTURES / "ppo_run_v1", run_dir)
    return run_dir


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_old_run_loads_with_its_algorithm_and_options(old_run):
    saved = json.loads((old_run / "config.json").read_text())
    assert "algo" not in saved and set(saved) == {"env", "agent", "ppo", "run"}
    config = rundir.load_config(old_run)
    assert config.algo == "ppo" and config.ppo.num_envs == 4 and config.agent.memory_kwargs == {"memory_size": 8}
    # written before memory_norm became automatic (on for SHM): the run keeps the network it trained
    assert "memory_norm" not in saved["agent"] and config.agent.memory_norm is False
    loaded = api.load_run(old_run)
    assert np.asarray(loaded.state.update).tolist() == [[2, 2]]


@pytest.mark.slow
def test_an_old_run_resumes_as_the_old_code_did_and_evaluates(old_run):
    config = rundir.load_config(old_run)
    api.train(config, resume_dir=old_run, progress=False)
    summary = json.loads((old_run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["updates"] == 4
    rows, expected = _rows(old_run / "metrics.jsonl"), _rows(FIXTURES / "ppo_run_v1_resumed_metrics.jsonl")
    assert [(r["update"], r["seed"]) for r in rows] == [(r["update"], r["seed"]) for r in expected]
    for got, want in zip(rows, expected):
        for key, value in want.items():  # with the memory norm on, the resumed losses would differ here
            if isinstance(value, float):
                np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-6, err_msg=f"{key} {got['update']}")
            else:
                assert got[key] == value, key
    evaluation = json.loads((old_run / "eval.json").read_text())
    assert [e["policy"] for e in evaluation] == ["greedy", "sampled"] and len(evaluation[0]["per_run"]) == 2
    # the new evaluation entry point reads the same directory
    again = api.evaluate(old_run, episodes=4)
    assert again["episodes"] == 4 and len(again["per_run"]) == 2


def test_a_former_default_fills_only_what_a_config_lacks():
    assert rundir.with_former_defaults({"agent": {"memory": "shm"}})["agent"]["memory_norm"] is False
    assert rundir.with_former_defaults({"memory": "shm"})["memory_norm"] is False  # the flat configs of older runs
    assert rundir.with_former_defaults({"agent": {"memory_norm": True}})["agent"]["memory_norm"] is True
    assert rundir.with_former_defaults({"agent": {"memory_norm": None}})["agent"]["memory_norm"] is None
