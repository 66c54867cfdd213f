"""PQN through the seam: rollout alignment and exact replay, vmapped seeds and sweeps equal separate runs, exact
resume through ``shm_jax.train`` with greedy and sampled evaluation, and the memory estimate."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax import api
from shm_jax.build import build
from shm_jax.config import with_overrides
from shm_jax.presets import from_preset
from tests.helpers import TINY_AGENT, assert_trees_close

CONFIG = from_preset(
    "default",
    algo="pqn",
    env_id="probe:Recall",
    env_overrides={"delay": 2},
    memory="gru",
    memory_kwargs={"hidden_size": 8},
    **TINY_AGENT,
    num_envs=4,
    num_steps=8,
    total_timesteps=4 * 8 * 4,
    num_minibatches=2,
    update_epochs=2,
    lr=1e-2,
    eps_finish=0.05,
    eps_decay=0.5,
    seed=3,
    num_seeds=2,
    sweep=(("lr", (1e-2, 3e-3)),),
    updates_per_chunk=1,
    checkpoint_every=1,
    eval_episodes=4,
)


@pytest.fixture(scope="module")
def single():
    built = build(CONFIG)
    return built, built.program(), jax.jit(built.algorithm.train)


def _jsonl(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _truncating_rollout(memory, memory_kwargs):
    """One rollout (epsilon 0.5) of 2 envs x 8 steps on ConstantReward(3 steps, truncated, obs = [1, t])."""
    config = from_preset(
        "default",
        algo="pqn",
        env_id="probe:ConstantReward",
        env_overrides={"episode_length": 3, "truncate": True, "observe_time": True},
        memory=memory,
        memory_kwargs=memory_kwargs,
        **{**TINY_AGENT, "time_encoding": True, "post_size": 16, "head_hidden_size": 16},
        num_envs=2,
        num_steps=8,
        total_timesteps=16,
        num_minibatches=2,
        update_epochs=1,
    )
    algorithm = build(config).algorithm
    state = jax.jit(algorithm.init)(jax.random.PRNGKey(0))
    new_state, rollout = jax.jit(algorithm.rollout)(state, jnp.float32(0.5))
    return algorithm, state, new_state, rollout


def test_rollout_start_flags_and_exact_replay_with_stored_noise():
    """SHM with random theta: the update's re-run from the stored start carry and noise gives the acting-time Q."""
    algorithm, state, new_state, rollout = _truncating_rollout("shm", {"memory_size": 4})
    traj = rollout.trajectory
    assert traj.noise.shape == (8, 2)  # theta rows, stored per step
    done = np.asarray(traj.terminated | traj.truncated)
    np.testing.assert_array_equal(np.asarray(traj.truncated)[:, 0], [0, 0, 1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(np.asarray(traj.start)[1:], done[:-1])  # s_{t+1} = done_t
    assert bool(traj.start[0].all()) and np.array_equal(np.asarray(new_state.last_start), done[-1])
    assert np.all(np.asarray(traj.bootstrap_value)[~done] == 0.0)
    replayed = jax.jit(algorithm.replay)(state.params, rollout.start_carry, traj)
    np.testing.assert_allclose(replayed, traj.q_taken, rtol=1e-6, atol=1e-6)
    assert float(rollout.stats["episode_count"]) == done.sum() and float(rollout.stats["episode_return_sum"]) == 12.0


def test_truncation_bootstraps_from_the_final_observation_with_the_ending_episodes_carry():
    """bootstrap_value at a time limit = max_a Q(final obs [1, 3]) after o_0..o_t, not from a reset carry."""
    algorithm, state, _, rollout = _truncating_rollout("gru", {"hidden_size": 8})
    traj = rollout.trajectory
    final_obs = jnp.array([[1.0, 3.0]])
    for t in (2, 5):
        obs = jnp.concatenate([traj.obs[: t + 1, :1], final_obs[None]])
        starts = jnp.concatenate([traj.start[: t + 1, :1], jnp.zeros((1, 1), bool)])
        carry = jax.tree.map(lambda x: x[:1], rollout.start_carry)
        _, q = algorithm.network.apply(state.params, carry, obs, starts)
        np.testing.assert_allclose(traj.bootstrap_value[t, 0], q[-1, 0].max(), rtol=1e-5, atol=1e-7)
        _, q_reset = algorithm.network.apply(state.params, carry, final_obs[None], jnp.ones((1, 1), bool))
        assert not np.isclose(traj.bootstrap_value[t, 0], q_reset[0, 0].max(), rtol=1e-4, atol=0.0)


@pytest.mark.slow  # whole runs through the host loop
def test_vmapped_seeds_and_lr_sweep_equal_separate_runs(single):
    """The program the host loop runs (BatchedProgram: init, then compiled chunks) == separate train() calls."""
    built, program, train = single
    states, chunks = program.init(), []
    for _ in range(program.num_updates):
        states, chunk = program.run_chunk(states, 1)
        chunks.append(chunk)
    metrics = jax.tree.map(lambda *xs: np.concatenate(xs, axis=-1), *chunks)
    assert metrics["loss"].shape == (2, 2, 4) and np.all(metrics.pop("active"))  # [grid, seeds, updates]
    for g, label in enumerate(program.settings):
        hp = built.hyperparameters.replace(lr=jnp.float32(label["lr"]))
        for s in range(CONFIG.run.num_seeds):
            state, run_metrics = train(program.keys[s], hp)
            assert_trees_close(jax.tree.map(lambda x: x[g, s], states), state, rtol=1e-5, atol=1e-6)
            assert_trees_close({k: v[g, s] for k, v in metrics.items()}, run_metrics, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["epsilon"][0, 0], [1.0, 0.525, 0.05, 0.05], rtol=1e-5)
    kernels = states.params["params"]["q_out"]["kernel"]
    assert not np.allclose(kernels[0, 0], kernels[1, 0])  # the two learning rates trained differently


@pytest.mark.slow  # whole runs through the host loop
def test_resume_is_exact_and_evaluation_runs_greedy_and_sampled(single, tmp_path):
    built, program, _ = single
    straight_config = with_overrides(CONFIG, out_dir=str(tmp_path / "straight"), run_name="pqn")
    straight = api.train(straight_config, built=built, program=program, progress=False)
    halves_config = with_overrides(CONFIG, out_dir=str(tmp_path / "halves"), run_name="pqn")
    halves = api.train(halves_config, built=built, program=program, progress=False, stop_after_updates=2)
    assert json.loads((halves / "summary.json").read_text())["status"] == "interrupted"
    api.train(halves_config, built=built, program=program, progress=False, resume_dir=halves)
    assert _jsonl(straight) == _jsonl(halves) and len(_jsonl(straight)) == 4 * 4
    summary = json.loads((halves / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["updates"] == 4
    evaluation = json.loads((straight / "eval.json").read_text())
    assert [e["policy"] for e in evaluation] == ["greedy", "sampled"]
    assert all(len(e["per_run"]) == 4 for e in evaluation)  # 2 settings x 2 seeds


def test_memory_estimate_counts_state_rollout_and_backward_pass(single):
    built, _, _ = single
    estimate = built.algorithm.memory_estimate(built.hyperparameters, num_runs=4)
    assert min(estimate.state, estimate.rollout, estimate.gradients, estimate.backward_residuals) > 0
    assert estimate.gradients < estimate.state  # parameters, then Adam's two moments and the envs
    assert estimate.total == 4 * estimate.per_run
