"""Shared engine of the 2-D meta-RL navigation tasks (Wind, Point Robot): trials of k sub-episodes.

One trial (the gymnax episode) = ``sub_episodes`` sub-episodes of ``episode_len`` steps on ONE task; the
agent's memory is meant to persist across them (the trainer resets memory only at trial starts). A step:
``a = clip(action, -1, 1) * action_scale``, ``pos <- pos + a + drift(task)``, reward 1.0 when the post-move
position is within ``goal_radius`` of the task's goal (inclusive), else 0.0. No early termination: the trial
ends after ``sub_episodes * episode_len`` steps and is reported as TRUNCATED (a time limit; the original
learner bootstraps there and only marks in-goal states terminal in its replay, a learner-side choice we do
not reproduce in the environment). ``terminated`` is always False.

Sub-episode boundary (k > 1) -- our choice vs the original: the original's step that ends sub-episode i
returns the terminal position (with the done flag 1) and hides the new start state in ``info``, so the
first action of the next sub-episode is chosen from a stale observation. By default
(``stale_boundary_obs=False``) we return the NEW start position with the flag 1.0, so the agent sees where
it actually is. ``params.replace(stale_boundary_obs=True)`` reproduces the original exactly (terminal
position + flag; the next observation is new_start + action). The reward of the boundary step is always that
of the terminal (post-move) position.

Tasks and evaluation on held-out tasks:
- ``params.task_table``: float32[200, 2] (winds or goals); ``params.train_task_ids``: int32[num_train];
  ``params.test_task_ids``: int32[num_test] (fixed, run-seed independent; see ``envs.meta.tasks``).
- ``params.task_id = -1`` (default): every reset draws a task uniformly from ``train_task_ids``.
- ``params.task_id = t >= 0``: every reset (including gymnax's auto-reset) uses task t (clipped to 0..199).
  Evaluate all test tasks at once by vmapping over params:
  ``ps = held_out_params(params)`` (= ``task_params(params, params.test_task_ids)``, every leaf gets a leading
  task axis) then ``jax.vmap(env.reset)(keys, ps)`` and ``jax.vmap(env.step)(keys, states, actions, ps)``, one
  trial (``sub_episodes * episode_len`` steps) per task. This works through the ``envs.make`` wrappers too
  (they pass the inner params through).
- ``env.reset_to_task(key, task_id, params)`` is the same for one task without touching params.

State exposes ``task_id`` (int32). ``info`` on every step: ``success`` (bool: the goal radius was reached at
least once so far in the trial; meaningful on the trial's last step), ``sub_episode_end`` (bool) and ``in_goal`` (bool:
the post-move position is inside the goal radius; off-policy learners' terminal flag, as pomdp-baselines' meta runs).
Out-of-range actions are clipped to [-1, 1] per component before scaling.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from shm_jax.envs.meta.tasks import NUM_TASKS, split


@struct.dataclass
class NavState:
    """pos: float32[2]; task_id, step_in_episode (steps taken in this sub-episode), sub_episode (0..k-1),
    time (steps taken in the trial): int32; reached_goal: bool; last_reward: float32."""

    pos: jax.Array
    task_id: jax.Array
    step_in_episode: jax.Array
    sub_episode: jax.Array
    reached_goal: jax.Array
    last_reward: jax.Array
    time: jax.Array


@struct.dataclass
class NavParams:
    """task_table: float32[200, 2]; train_task_ids: int32[num_train]; test_task_ids: int32[num_test];
    task_id: -1 = draw from the train split at reset, t >= 0 = always task t (evaluation)."""

    task_table: jax.Array
    train_task_ids: jax.Array
    test_task_ids: jax.Array
    task_id: Any = -1
    episode_len: Any = 100
    goal_radius: Any = 0.05
    action_scale: Any = 0.1
    stale_boundary_obs: Any = False


class NavigationEnv(environment.Environment):
    """Base class; subclasses define the task's goal, drift and start state.

    Constructor (static, shapes): num_train, num_test (split sizes), sub_episodes (k; k > 1 appends the
    sub-episode-end flag to the observation), reward_in_obs (append the previous reward).
    Observation float32[2 + (k > 1) + reward_in_obs]: (x, y[, sub_episode_end_flag][, previous_reward]).
    Action float32[2] in [-1, 1] (clipped), scaled by ``action_scale`` (0.1).
    """

    def __init__(
        self,
        num_train: int,
        num_test: int,
        sub_episodes: int,
        reward_in_obs: bool,
        episode_len: int,
        goal_radius: float,
    ):
        if not (isinstance(sub_episodes, int) and sub_episodes >= 1):
            raise ValueError(f"sub_episodes must be an integer >= 1, got {sub_episodes!r}")
        if not (isinstance(episode_len, int) and episode_len >= 1):
            raise ValueError(f"episode_len must be an integer >= 1, got {episode_len!r}")
        if not goal_radius > 0:
            raise ValueError(f"goal_radius must be > 0, got {goal_radius!r}")
        table, permutation = self._task_source()
        train, test = split(permutation, num_train, num_test)
        self.num_train, self.num_test = num_train, num_test
        self.sub_episodes = sub_episodes
        self.reward_in_obs = bool(reward_in_obs)
        self._defaults = dict(
            task_table=jnp.asarray(table, jnp.float32),
            train_task_ids=jnp.asarray(train),
            test_task_ids=jnp.asarray(test),
            episode_len=episode_len,
            goal_radius=goal_radius,
        )

    # --- task definition (subclasses) ---------------------------------------------------------------
    def _task_source(self):
        """(table float[200, 2], permutation int[200])."""
        raise NotImplementedError

    def goal(self, params: NavParams, task_id: jax.Array) -> jax.Array:
        """float32[2]: the hidden goal of ``task_id``."""
        raise NotImplementedError

    def drift(self, params: NavParams, task_id: jax.Array) -> jax.Array:
        """float32[2]: displacement added every step regardless of the action (Wind's wind)."""
        raise NotImplementedError

    def start_position(self, key: jax.Array) -> jax.Array:
        """float32[2]: the start of every sub-episode."""
        raise NotImplementedError

    # --- gymnax API ----------------------------------------------------------------------------------
    @property
    def default_params(self) -> NavParams:
        return NavParams(**self._defaults)

    def reset_env(self, key: jax.Array, params: NavParams) -> tuple[jax.Array, NavState]:
        key_task, key_start = jax.random.split(key)
        drawn = params.train_task_ids[jax.random.randint(key_task, (), 0, params.train_task_ids.shape[0])]
        forced = jnp.clip(jnp.asarray(params.task_id, jnp.int32), 0, NUM_TASKS - 1)
        task_id = jnp.where(jnp.asarray(params.task_id) >= 0, forced, drawn).astype(jnp.int32)
        pos = self.start_position(key_start)
        zero = jnp.int32(0)
        state = NavState(
            pos=pos,
            task_id=task_id,
            step_in_episode=zero,
            sub_episode=zero,
            reached_goal=jnp.bool_(False),
            last_reward=jnp.float32(0.0),
            time=zero,
        )
        return self._obs(pos, jnp.bool_(False), state.last_reward), state

    def reset_to_task(self, key: jax.Array, task_id, params: NavParams | None = None):
        """Reset on task ``task_id`` (0..199), e.g. a held-out test task. Returns (obs, state)."""
        params = self.default_params if params is None else params
        return self.reset_env(key, params.replace(task_id=jnp.asarray(task_id, jnp.int32)))

    def step_env(self, key, state: NavState, action, params: NavParams):
        move = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0) * params.action_scale
        pos = state.pos + move + self.drift(params, state.task_id)
        inside = jnp.linalg.norm(pos - self.goal(params, state.task_id)) <= params.goal_radius
        reward = inside.astype(jnp.float32)
        step_in_episode = state.step_in_episode + 1
        time = state.time + 1
        sub_episode_end = step_in_episode >= params.episode_len
        boundary = sub_episode_end & (time < self.sub_episodes * params.episode_len)
        new_start = self.start_position(key)
        next_pos = jnp.where(boundary, new_start, pos)
        shown_pos = jnp.where(boundary & ~jnp.asarray(params.stale_boundary_obs, bool), new_start, pos)
        reached = state.reached_goal | inside
        next_state = NavState(
            pos=next_pos,
            task_id=state.task_id,
            step_in_episode=jnp.where(boundary, 0, step_in_episode).astype(jnp.int32),
            sub_episode=(state.sub_episode + boundary).astype(jnp.int32),
            reached_goal=reached,
            last_reward=reward,
            time=time.astype(jnp.int32),
        )
        obs = self._obs(shown_pos, sub_episode_end, reward)
        info = {"success": reached, "sub_episode_end": sub_episode_end, "in_goal": inside}
        return obs, next_state, reward, jnp.bool_(False), info

    def is_truncated(self, state: NavState, params: NavParams) -> jax.Array:
        return state.time >= self.sub_episodes * params.episode_len

    def _obs(self, pos, sub_episode_end, last_reward) -> jax.Array:
        parts = [pos.astype(jnp.float32)]
        if self.sub_episodes > 1:
            parts.append(jnp.asarray(sub_episode_end, jnp.float32)[None])
        if self.reward_in_obs:
            parts.append(jnp.asarray(last_reward, jnp.float32)[None])
        return jnp.concatenate(parts)

    @property
    def obs_dim(self) -> int:
        return 2 + (self.sub_episodes > 1) + self.reward_in_obs

    def observation_space(self, params: NavParams) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.obs_dim,), jnp.float32)

    def action_space(self, params: NavParams | None = None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (2,), jnp.float32)

    @property
    def num_actions(self) -> int:
        return 2


def task_params(params: NavParams, task_ids) -> NavParams:
    """params batched over tasks: leaf shapes gain a leading axis len(task_ids); ``task_id`` = task_ids[i]."""
    return jax.vmap(lambda t: params.replace(task_id=t))(jnp.asarray(task_ids, jnp.int32))


def held_out_params(params: NavParams) -> NavParams:
    """``task_params`` over all test (held-out) tasks of the split, in split order."""
    return task_params(params, params.test_task_ids)
