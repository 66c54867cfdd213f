"""Point Robot (SHM's ``PointRobotSparse-v0`` under the VariBAD trial wrapper, k = 2).

Hidden goal on the upper unit semicircle (one of 200 fixed goals), radius 0.05; no wind. Every sub-episode
starts at x ~ U(-1.5, 1.5), y ~ U(-0.5, 1.5). pos <- pos + 0.1 * clip(a, -1, 1); reward exactly 1.0 when the
post-move position is within 0.05 of the goal. A trial = 2 sub-episodes of 100 steps on the same task
(200 steps; memory is meant to persist across them), then truncated.

Observation float32[4] = (x, y, sub_episode_end, previous_reward):
- ``sub_episode_end`` is the original wrapper's done flag: 1.0 on the observation returned by the last step
  of each sub-episode, else 0.0 (also 0.0 at reset).
- ``previous_reward`` (0.0 at reset) is OUR addition: the original agent gets the previous reward as a
  separate input (reward embedding 8, no action input) and the goal is only revealed by rewards, so without it
  the policy could not infer the task; our wrappers only add previous actions. ``reward_in_obs=False`` gives
  the original float32[3] observation.
Sub-episode boundary: by default the observation returned at the boundary is the NEW start position (flag 1);
``params.replace(stale_boundary_obs=True)`` reproduces the original's stale terminal position. See
``envs.meta.navigation`` for this choice and for held-out evaluation (``params.task_id``, ``reset_to_task``).

Registered ids: ``PointRobot-50-150`` and ``PointRobot-10-190`` (train/test split sizes).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from shm_jax.envs.meta.navigation import NavigationEnv, NavParams, held_out_params
from shm_jax.envs.meta.tasks import point_robot_tasks
from shm_jax.envs.registry import register

START_LOW = (-1.5, -0.5)
START_HIGH = (1.5, 1.5)


class PointRobot(NavigationEnv):
    """Sparse Point Robot; constructor: num_train, num_test, sub_episodes=2, episode_len=100,
    goal_radius=0.05, reward_in_obs=True."""

    def __init__(
        self,
        num_train: int = 50,
        num_test: int = 150,
        sub_episodes: int = 2,
        episode_len: int = 100,
        goal_radius: float = 0.05,
        reward_in_obs: bool = True,
    ):
        super().__init__(
            num_train,
            num_test,
            sub_episodes=sub_episodes,
            reward_in_obs=reward_in_obs,
            episode_len=episode_len,
            goal_radius=goal_radius,
        )

    def _task_source(self):
        return point_robot_tasks()

    def goal(self, params: NavParams, task_id: jax.Array) -> jax.Array:
        return params.task_table[task_id]

    def drift(self, params: NavParams, task_id: jax.Array) -> jax.Array:
        return jnp.zeros((2,), jnp.float32)

    def start_position(self, key: jax.Array) -> jax.Array:
        return jax.random.uniform(key, (2,), jnp.float32, jnp.asarray(START_LOW), jnp.asarray(START_HIGH))

    @property
    def name(self) -> str:
        return f"PointRobot-{self.num_train}-{self.num_test}"


for _train, _test in ((50, 150), (10, 190)):
    register(
        f"PointRobot-{_train}-{_test}",
        PointRobot,
        aliases=(f"point_robot_{_train}_{_test}",),
        needs_prev_action=False,
        family="meta",
        num_train=_train,
        num_test=_test,
        eval_tasks=held_out_params,
    )
