"""A short PPO run end to end (``shm_jax.api.train``) on outside suites: POPGym Arcade and Craftax-Classic with SHM,
XLand-MiniGrid with GRU, at tiny sizes. The run must finish with finite
losses; learning is not asked of so few updates."""

from __future__ import annotations

import json
import math

import pytest

from shm_jax import api
from shm_jax.config import with_overrides
from shm_jax.presets import from_preset
from tests.helpers import TINY_AGENT, small_core_kwargs

# One run per suite (CI's time budget): each training program compiles the suite's step and reset (Craftax's: ~30 s
# of compile); the GRU twins of the SHM runs are by-hand checks (docs/environments.md).
CASES = [
    ("arcade:CountRecallEasy", {}, "shm", "popgym_arcade"),
    ("craftax:Craftax-Classic-Symbolic-v1", {"max_timesteps": 12}, "shm", "craftax"),
    ("xminigrid:MiniGrid-MemoryS8", {"max_steps": 12}, "gru", "xminigrid"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("env_id", "overrides", "memory", "module"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_short_ppo_run(tmp_path, env_id, overrides, memory, module):
    pytest.importorskip(module)
    config = with_overrides(
        from_preset("default"),
        env_id=env_id,
        env_overrides=overrides,
        memory=memory,
        memory_kwargs=small_core_kwargs(memory),
        num_envs=2,
        num_steps=8,
        num_minibatches=1,
        update_epochs=1,
        total_timesteps=2 * 2 * 8,
        num_seeds=1,
        updates_per_chunk=2,
        eval_episodes=0,
        out_dir=str(tmp_path),
        **TINY_AGENT,
    )
    run_dir = api.train(config, progress=False)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows, "no metrics written"
    losses = [v for row in rows for k, v in row.items() if "loss" in k and isinstance(v, float)]
    assert losses and all(math.isfinite(v) for v in losses)
