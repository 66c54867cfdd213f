"""SAC through the seam: episode collection (masks, final observations, terminal flags), the update's pieces
(target critic, only-actor actor step, alpha), vmapped seeds and sweeps equal separate runs, exact resume through
``shm_jax.train`` with greedy and sampled evaluation, per-network memories, the memory estimate and one-line errors."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax import api
from shm_jax.algorithms import replay
from shm_jax.build import build
from shm_jax.config import with_overrides
from shm_jax.options import ConfigError
from shm_jax.presets import from_preset
from tests.helpers import TINY_AGENT, assert_trees_close

SMALL = dict(
    **TINY_AGENT,
    memory="gru",
    memory_kwargs={"hidden_size": 8},
    num_envs=2,
    warmup_episodes=2,
    batch_size=3,
    updates_per_iter=2,
)

CONFIG = from_preset(
    "default",
    algo="sacd",
    env_id="probe:Recall",
    env_overrides={"delay": 2},
    **SMALL,
    total_timesteps=2 * 3 + 3 * 2 * 3,  # warm-up + 3 iterations of 2 episodes of 3 steps
    lr=1e-2,
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


def test_sizes_follow_the_task_and_the_budget(single):
    algorithm = single[0].algorithm
    assert algorithm.episode_length == 3  # Recall(delay 2): delay + 1 steps, from the random-episode probe
    assert algorithm.num_updates == 3 and algorithm.steps_per_update == 6
    assert algorithm.capacity == 2 + 3 * 2  # every episode a run collects fits, no more
    ratio = build(with_overrides(CONFIG, updates_per_iter=0, replay_ratio=0.25)).algorithm
    assert ratio.updates_per_iter == 2  # ceil(0.25 * 2 episodes * 3 steps)


def _collect(env_id, overrides, algo="sacd", **options):
    config = from_preset("default", algo=algo, env_id=env_id, env_overrides=overrides, **{**SMALL, **options})
    algorithm = build(config).algorithm
    state = jax.jit(algorithm.init)(jax.random.PRNGKey(0))
    episodes, stats = jax.jit(lambda p, k: algorithm.collect(p, k, 2))(
        state.learner.actor_params, jax.random.PRNGKey(1)
    )
    return algorithm, state, episodes, stats


def test_a_short_episode_is_masked_after_its_end_and_keeps_its_final_observation():
    """ConstantReward(3 steps, truncated) stored in 5-step slots: steps 3, 4 masked with no reward or terminal flag;
    o_3 is the time-limit's final observation [1, 3] (not the auto-reset's [1, 0]); a truncation is not terminal."""
    overrides = {"episode_length": 3, "truncate": True, "observe_time": True}
    _, _, episodes, stats = _collect("probe:ConstantReward", overrides, episode_length=5, total_timesteps=100)
    np.testing.assert_array_equal(np.asarray(episodes.mask), [[1, 1, 1, 0, 0]] * 2)
    np.testing.assert_array_equal(np.asarray(episodes.reward), [[1, 1, 1, 0, 0]] * 2)
    assert not np.asarray(episodes.done).any()
    np.testing.assert_array_equal(np.asarray(episodes.obs)[:, :4], [[[1, 0], [1, 1], [1, 2], [1, 3]]] * 2)
    assert float(stats["episode_count"]) == 2 and float(stats["episode_return_sum"]) == 6.0


def test_termination_is_terminal_and_an_unfinished_episode_is_not_counted():
    _, _, episodes, stats = _collect(
        "probe:ConstantReward", {"episode_length": 3, "truncate": False}, episode_length=3, total_timesteps=100
    )
    np.testing.assert_array_equal(np.asarray(episodes.done), [[0, 0, 1]] * 2)
    _, _, cut, cut_stats = _collect(
        "probe:ConstantReward", {"episode_length": 6, "truncate": False}, episode_length=3, total_timesteps=100
    )
    assert not np.asarray(cut.done).any() and np.asarray(cut.mask).all()  # cut at T: bootstrapped from o_T
    assert float(cut_stats["episode_count"]) == 0


@pytest.mark.slow  # two continuous-control programs
def test_meta_tasks_cut_the_bootstrap_in_the_goal_and_actions_reach_the_box_bounds():
    algorithm, _, episodes, _ = _collect("Wind-10-190", {}, algo="sac", total_timesteps=10_000)
    assert algorithm.terminal == "auto" and algorithm.episode_length > 0
    in_goal = np.asarray(episodes.reward) > 0  # navigation reward is 1 exactly when the post-move state is in the goal
    np.testing.assert_array_equal(np.asarray(episodes.done), in_goal)
    actions = np.asarray(episodes.action)
    assert actions.shape[-1] == 2 and np.abs(actions).max() <= 1.0 and np.abs(actions).max() > 0.5
    terminated = build(
        from_preset("default", algo="sac", env_id="Wind-10-190", terminal="terminated", **SMALL, total_timesteps=10_000)
    ).algorithm
    assert terminated.terminal == "terminated"


def test_pixel_observations_are_stored_as_uint8():
    config = from_preset("default", algo="sacd", env_id="VisualMatch-Short", **SMALL, total_timesteps=100_000)
    algorithm = build(config).algorithm
    state = jax.eval_shape(algorithm.init, jax.random.PRNGKey(0))
    assert state.buffer.storage.obs.dtype == jnp.uint8


def test_warm_up_fills_the_buffer_with_random_episodes(single):
    built, _, _ = single
    state = jax.jit(built.algorithm.init)(jax.random.PRNGKey(0))
    assert int(state.buffer.size) == 2 and int(state.buffer.position) == 2
    assert np.asarray(state.buffer.storage.mask)[:2].all() and not np.asarray(state.buffer.storage.mask)[2:].any()


def test_one_gradient_step_moves_target_by_tau_after_the_critic_and_actor_steps(single):
    built, _, _ = single
    algorithm, hp = built.algorithm, built.hyperparameters.replace(tau=jnp.float32(0.25))
    state = jax.jit(algorithm.init)(jax.random.PRNGKey(0))
    batch = replay.sample(state.buffer, jax.random.PRNGKey(2), 3)
    before = state.learner
    after, metrics = jax.jit(algorithm.gradient_step)(before, batch, hp, jax.random.PRNGKey(4))
    expected_target = jax.tree.map(lambda t, c: 0.75 * t + 0.25 * c, before.target_params, after.critic_params)
    assert_trees_close(after.target_params, expected_target, rtol=1e-6, atol=1e-7)
    assert float(after.log_alpha_offset) == 0.0 and float(metrics["alpha"]) == pytest.approx(0.1)  # fixed for sacd
    actor_moved = jax.tree.leaves(after.actor_params)[0] - jax.tree.leaves(before.actor_params)[0]
    assert np.abs(actor_moved).max() > 0  # the actor stepped
    # Adam's first step moves every parameter with a gradient by lr (hp.lr = 1e-2 here), no more.
    moved = np.concatenate(
        [
            np.abs(np.ravel(a - b))
            for a, b in zip(jax.tree.leaves(after.critic_params), jax.tree.leaves(before.critic_params))
        ]
    )
    assert moved.max() == pytest.approx(1e-2, rel=1e-3)


@pytest.mark.slow  # a whole run
def test_autotuned_alpha_moves_and_sac_steps_on_a_box_task():
    config = from_preset("default", algo="sac", env_id="probe:ContinuousTarget", **SMALL, total_timesteps=2 + 2 * 3)
    built = build(config)
    state, metrics = jax.jit(built.algorithm.train)(jax.random.PRNGKey(0), built.hyperparameters)
    assert np.asarray(metrics["finite"]).all()
    assert float(state.learner.log_alpha_offset) != 0.0
    assert np.asarray(metrics["alpha"])[0] == pytest.approx(1.0, rel=0.01)  # starts from alpha = 1


@pytest.mark.slow  # whole runs through the host loop
def test_vmapped_seeds_and_lr_sweep_equal_separate_runs(single):
    """The program the host loop runs (BatchedProgram: init, then compiled chunks) == separate train() calls."""
    built, program, train = single
    states, chunks = program.init(), []
    for _ in range(program.num_updates):
        states, chunk = program.run_chunk(states, 1)
        chunks.append(chunk)
    metrics = jax.tree.map(lambda *xs: np.concatenate(xs, axis=-1), *chunks)
    assert metrics["critic_loss"].shape == (2, 2, 3) and np.all(metrics.pop("active"))  # [grid, seeds, updates]
    for g, label in enumerate(program.settings):
        hp = built.hyperparameters.replace(lr=jnp.float32(label["lr"]))
        for s in range(CONFIG.run.num_seeds):
            state, run_metrics = train(program.keys[s], hp)
            assert_trees_close(jax.tree.map(lambda x: x[g, s], states), state, rtol=1e-5, atol=1e-6)
            assert_trees_close({k: v[g, s] for k, v in metrics.items()}, run_metrics, rtol=1e-5, atol=1e-6)
    kernels = jax.tree.leaves(states.learner.critic_params)[0]
    assert not np.allclose(kernels[0, 0], kernels[1, 0])  # the two learning rates trained differently


@pytest.mark.slow  # whole runs through the host loop
def test_resume_is_exact_and_evaluation_runs_greedy_and_sampled(single, tmp_path):
    built, program, _ = single
    straight_config = with_overrides(CONFIG, out_dir=str(tmp_path / "straight"), run_name="sacd")
    straight = api.train(straight_config, built=built, program=program, progress=False)
    halves_config = with_overrides(CONFIG, out_dir=str(tmp_path / "halves"), run_name="sacd")
    halves = api.train(halves_config, built=built, program=program, progress=False, stop_after_updates=2)
    assert json.loads((halves / "summary.json").read_text())["status"] == "interrupted"
    api.train(halves_config, built=built, program=program, progress=False, resume_dir=halves)
    assert _jsonl(straight) == _jsonl(halves) and len(_jsonl(straight)) == 4 * 3
    evaluation = json.loads((straight / "eval.json").read_text())
    assert [e["policy"] for e in evaluation] == ["greedy", "sampled"]
    assert all(len(e["per_run"]) == 4 for e in evaluation)  # 2 settings x 2 seeds


def test_actor_and_critic_memories_are_chosen_separately():
    config = from_preset(
        "default",
        algo="sacd",
        env_id="probe:Recall",
        **{**SMALL, "memory": "shm", "memory_kwargs": {"memory_size": 4}},
        actor_memory="gru",
        actor_memory_kwargs={"hidden_size": 5},
        total_timesteps=100,
    )
    algorithm = build(config).algorithm
    assert type(algorithm.actor.memory).__name__ != type(algorithm.critic.memory).__name__
    assert algorithm.actor.memory.hidden_size == 5 and algorithm.critic.memory.memory_size == 4


def test_memory_estimate_counts_the_buffer(single):
    built, _, _ = single
    algorithm = built.algorithm
    estimate = algorithm.memory_estimate(built.hyperparameters, num_runs=4)
    assert min(estimate.state, estimate.rollout, estimate.gradients, estimate.backward_residuals) > 0
    buffer = replay.num_bytes(
        algorithm.capacity, algorithm.episode_length, algorithm._obs_struct(), algorithm._action_struct()
    )
    assert estimate.state > buffer + 3 * estimate.gradients // 2  # buffer, three parameter sets, Adam moments
    assert estimate.total == 4 * estimate.per_run


@pytest.mark.parametrize(
    "options, field",
    [
        (dict(algo="sacd", env_id="probe:ContinuousTarget"), "algo"),
        (dict(algo="sac", env_id="probe:Recall"), "algo"),
        (dict(algo="sacd", env_id="probe:Recall", critic_memory="nope"), "critic_memory"),
        (
            dict(algo="sacd", env_id="probe:Recall", actor_memory="gru", actor_memory_kwargs={"size": 3}),
            "actor_memory_kwargs",
        ),
        (dict(algo="sacd", env_id="probe:Recall", total_timesteps=8), "total_timesteps"),
        (dict(algo="sacd", env_id="probe:Recall", buffer_size=5), "buffer_size"),
        (dict(algo="sacd", env_id="probe:Recall", tau=0.0), "tau"),
        (dict(algo="sac", env_id="probe:ContinuousTarget", obs_shortcut=False), "obs_shortcut"),
    ],
)
def test_bad_options_are_one_line_errors_naming_the_field(options, field):
    with pytest.raises(ConfigError) as err:
        build(from_preset("default", **{**SMALL, "total_timesteps": 1000, **options}))
    assert err.value.field == field and "\n" not in str(err.value)


def test_a_buffer_that_does_not_fit_is_refused_before_compiling(monkeypatch, tmp_path):
    """A full-size Visual Match buffer (3,623 episodes of 276 uint8 frames, ~75 MiB a run), 64 MiB free."""
    from shm_jax.training import resources

    monkeypatch.setattr(resources, "_host_available", lambda: 64 * 2**20)
    config = from_preset(
        "default", algo="sacd", env_id="VisualMatch250", **SMALL, total_timesteps=10_000_000, out_dir=str(tmp_path)
    )
    built = build(config)
    assert built.algorithm.capacity == 1_000_000 // 276
    with pytest.raises(ConfigError, match="needs at least"):
        api.train(config, built=built, progress=False)
    assert not any(tmp_path.iterdir())  # refused before a run directory or a compile
