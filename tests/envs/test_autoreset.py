"""envs.autoreset: under vmap, resets only the environments that finished, with values equal to gymnax's auto-reset
(integers and booleans bitwise, floats to rounding), so every environment's distribution of episodes, the per-env
randomness and exact resume are unchanged; any number of finished envs per step (several rounds), batched params,
outer vmaps, and no reset computed on a step where no episode ends."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import environment

from shm_jax import envs
from shm_jax.envs import wrappers
from shm_jax.envs.autoreset import AutoResetWrapper, resets_per_round
from shm_jax.envs.meta.navigation import held_out_params
from tests.helpers import quick_subset

FAST = {"compiler_options": {"xla_backend_optimization_level": 0}}


def gymnax_step(env):
    """gymnax's own auto-reset step of ``env`` (reset computed on every step, then selected)."""
    return lambda key, state, action, params: environment.Environment.step(env, key, state, action, params)


def rollout(step, reset, space, params, batch, steps, seed=0, params_axis=None):
    """``batch`` envs x ``steps`` steps of ``jax.vmap(step)`` with random actions: every output, stacked [T, B]."""

    def run(key):
        key_reset, key_steps = jax.random.split(key)
        _, state = jax.vmap(reset, in_axes=(0, params_axis))(jax.random.split(key_reset, batch), params)

        def body(state, key):
            key_action, key_env = jax.random.split(key)
            action = jax.vmap(space.sample)(jax.random.split(key_action, batch))
            out = jax.vmap(step, in_axes=(0, 0, 0, params_axis))(
                jax.random.split(key_env, batch), state, action, params
            )
            return out[1], out

        return jax.lax.scan(body, state, jax.random.split(key_steps, steps))

    return jax.device_get(jax.jit(run, **FAST)(jax.random.key(seed)))


def assert_trees_equal(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b) and len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        x, y = np.asarray(x), np.asarray(y)
        if np.issubdtype(x.dtype, np.floating):  # the two programs may round float math differently (fusion, FMA)
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(x, y)


# (id, overrides that make many episodes end, often more than one round's worth in one step)
CASES = [
    ("RepeatPreviousEasy", {}),  # fixed length: every env ends on the same step
    ("StatelessCartPoleEasy", {"max_steps_in_episode": 9}),  # random lengths and a time limit
    ("LabyrinthEscapeEasy", {"max_steps_in_episode": 6}),  # a new maze per reset
    ("LabyrinthExploreMedium", {"max_steps_in_episode": 5}),
    ("BattleshipEasy", {"max_steps_in_episode": 11}),
    ("MinesweeperEasy", {}),
    ("ConcentrationEasy", {"max_steps_in_episode": 7}),
    ("VisualMatch-Short", {}),
    ("KeyToDoor-Short", {}),
    ("PointRobot-50-150", {"episode_len": 8}),
]


@pytest.mark.parametrize(
    "env_id, overrides",
    quick_subset(
        CASES, lambda case: case[0] in ("RepeatPreviousEasy", "LabyrinthEscapeEasy"), ids=[c[0] for c in CASES]
    ),
)
def test_vmapped_step_equals_gymnax_auto_reset(env_id, overrides):
    made, params = envs.make(env_id, prev_action=False, flatten=False, log=False, **overrides)
    assert isinstance(made, AutoResetWrapper)
    raw = made.unwrapped
    fast = AutoResetWrapper(raw, rounds_per_batch=8)  # 37 envs: rounds of 5 resets
    space = raw.action_space(params)
    final_state, outputs = rollout(fast.step, raw.reset, space, params, batch=37, steps=60)
    reference_state, reference = rollout(gymnax_step(raw), raw.reset, space, params, batch=37, steps=60)
    done = reference[3] | reference[4]
    assert done.any(), f"{env_id}: no episode ended, the test checks nothing"
    assert_trees_equal(outputs, reference)
    assert_trees_equal(final_state, reference_state)


@pytest.mark.parametrize("max_rounds", [8, 7], ids=["in rounds", "all at once"])
def test_several_rounds_when_more_envs_finish_than_one_round_resets(max_rounds):
    """All 64 envs end together: 8 rounds of 8 resets, or (more rounds than max_rounds) one reset of every env."""
    env, params = envs.make("RepeatPreviousEasy", prev_action=False, flatten=False, log=False)
    raw = env.unwrapped
    assert resets_per_round(64, 8) == 8
    _, outputs = rollout(
        AutoResetWrapper(raw, rounds_per_batch=8, max_rounds=max_rounds).step,
        raw.reset,
        raw.action_space(params),
        params,
        batch=64,
        steps=60,
    )
    _, reference = rollout(gymnax_step(raw), raw.reset, raw.action_space(params), params, batch=64, steps=60)
    ends_per_step = (reference[3] | reference[4]).sum(axis=1)
    assert ends_per_step.max() == 64  # all 64 end together: 8 rounds
    assert_trees_equal(outputs, reference)


def test_per_env_params_are_used_for_each_reset():
    """Meta-RL evaluation vmaps params too (one held-out task per env): each finished env resets with its own."""
    env, params = envs.make("Wind-50-150", prev_action=False, flatten=False, log=False, episode_len=6)
    raw = env.unwrapped
    tasks = held_out_params(params)
    count = jax.tree.leaves(tasks)[0].shape[0]
    space = raw.action_space(params)
    _, outputs = rollout(
        AutoResetWrapper(raw, rounds_per_batch=4).step, raw.reset, space, tasks, count, 20, params_axis=0
    )
    _, reference = rollout(gymnax_step(raw), raw.reset, space, tasks, count, 20, params_axis=0)
    assert_trees_equal(outputs, reference)


@pytest.mark.slow
def test_make_with_every_wrapper_equals_the_gymnax_auto_reset_under_seed_vmap():
    """envs.make's full stack (prev action, flatten, episode stats) vmapped over seeds x envs, like the trainer."""
    made, params = envs.make("BattleshipEasy")
    inner = made._env  # AutoResetWrapper(Flatten(PrevAction(raw)))
    reference_env = wrappers.EpisodeStatsWrapper(inner._env)  # the same stack with gymnax's own auto-reset
    space = made.action_space(params)

    def seeds(env):
        def one(seed):
            return rollout(env.step, env.reset, space, params, batch=9, steps=30, seed=seed)

        return [one(s) for s in (0, 1)]

    ours, reference = seeds(made), seeds(reference_env)
    assert_trees_equal(ours, reference)

    # The same, vmapped over seeds inside one program (the rule's round loop under an outer vmap).
    def program(env):
        def run(key):
            _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, 9), params)

            def body(state, key):
                ka, ke = jax.random.split(key)
                action = jax.vmap(space.sample)(jax.random.split(ka, 9))
                out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(ke, 9), state, action, params)
                return out[1], out[:5]

            return jax.lax.scan(body, state, jax.random.split(key, 30))[1]

        return jax.device_get(jax.jit(jax.vmap(run), **FAST)(jax.random.split(jax.random.key(3), 3)))

    assert_trees_equal(program(made), program(reference_env))


@pytest.mark.slow
def test_no_two_envs_share_an_episode_and_resume_is_exact():
    """Every maze dealt by the auto-resets of 64 envs over 48 steps (~500 resets) is distinct, and stopping
    after 24 steps then continuing from the returned state gives the same steps as one 48-step run (two halves of
    one length: one program compiled for both)."""
    env, params = envs.make("LabyrinthEscapeEasy", prev_action=False, flatten=False, log=False, max_steps_in_episode=6)
    raw, space = env.unwrapped, env.action_space(params)
    batch, steps = 64, 48
    keys = jax.random.split(jax.random.key(7), steps)

    def run(state, keys):
        def body(state, key):
            ka, ke = jax.random.split(key)
            action = jax.vmap(space.sample)(jax.random.split(ka, batch))
            out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(ke, batch), state, action, params)
            return out[1], (out[1].grid, out[3] | out[4])

        return jax.lax.scan(body, state, keys)

    run = jax.jit(run, **FAST)
    _, state0 = jax.vmap(raw.reset, in_axes=(0, None))(jax.random.split(jax.random.key(8), batch), params)
    final, (grids, done) = jax.device_get(run(state0, keys))
    # The maze an env holds after a step that ended its episode is its new episode's maze.
    dealt = np.concatenate([state0.grid.reshape(batch, -1), grids[done].reshape(int(done.sum()), -1)])
    assert len(dealt) > 400
    assert len(np.unique(dealt, axis=0)) == len(dealt)

    middle, (grids_a, _) = run(state0, keys[:24])
    resumed, (grids_b, _) = jax.device_get(run(middle, keys[24:]))
    np.testing.assert_array_equal(np.concatenate([np.asarray(grids_a), grids_b]), grids)
    assert_trees_equal(resumed, final)


def test_a_step_without_episode_ends_computes_no_reset():
    """Counts the environments reset_env runs on (a host callback inside reset_env), step by step."""
    raw = envs.make("RepeatFirstEasy", prev_action=False, flatten=False, log=False)[0].unwrapped
    params = raw.default_params
    seen = []

    class Counted(wrappers._InnerWrapper):
        def reset_env(self, key, params):
            jax.debug.callback(lambda k: seen.append(np.asarray(k).shape), jax.random.key_data(key))
            return self._env.reset_env(key, params)

    env = AutoResetWrapper(Counted(raw), rounds_per_batch=16)  # 32 envs: rounds of 2
    batch = 32
    _, state = jax.vmap(raw.reset, in_axes=(0, None))(jax.random.split(jax.random.key(0), batch), params)
    # End exactly 3 episodes on the next step: put their time one step before the episode's end.
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    action = jnp.zeros(batch, jnp.int32)
    keys = jax.random.split(jax.random.key(1), batch)

    out = step(keys, state, action, params)
    jax.block_until_ready(out)
    jax.effects_barrier()
    assert not (out[3] | out[4]).any() and seen == []  # nobody finished: reset_env never ran

    ends = jnp.zeros(batch, bool).at[jnp.array([3, 17, 30])].set(True)
    near_end = state.replace(time=jnp.where(ends, raw.episode_length - 1, 0).astype(state.time.dtype))
    out = step(keys, near_end, action, params)
    jax.block_until_ready(out)
    jax.effects_barrier()
    np.testing.assert_array_equal(np.asarray(out[3] | out[4]), np.asarray(ends))
    reset_rows = sum(int(np.prod(shape[:-1])) if len(shape) > 1 else 1 for shape in seen)
    assert reset_rows == 4  # 3 finished envs: two rounds of 2 resets (one padding row), not 32

    # More rounds than max_rounds: one reset of all 32 envs, the same values.
    seen.clear()
    at_once = jax.jit(
        jax.vmap(AutoResetWrapper(Counted(raw), rounds_per_batch=16, max_rounds=1).step, in_axes=(0, 0, 0, None))
    )(keys, near_end, action, params)
    jax.block_until_ready(at_once)
    jax.effects_barrier()
    assert sum(int(np.prod(shape[:-1])) if len(shape) > 1 else 1 for shape in seen) == batch
    assert_trees_equal(at_once, out)
