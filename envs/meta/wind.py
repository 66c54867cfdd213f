"""Wind (SHM's ``Wind-v0`` under the VariBAD trial wrapper, k = 1).

Start (0, 0) every trial; hidden goal (0, 1) for every task, radius 0.01; hidden per-task wind
w ~ U(-0.1, 0.1)^2 added every step: pos <- pos + 0.1 * clip(a, -1, 1) + w. Reward 1.0 on every step whose
post-move position is within 0.01 of the goal. 100 steps per trial, no early termination (truncated).
Observation float32[2] = (x, y) (one sub-episode, so no done flag). Action float32[2] in [-1, 1].
The original feeds the previous action to the agent (wind = s' - s - a), so ``needs_prev_action=True``.
11 of the 200 winds (w_y < about -0.09) cannot reach the goal in 100 steps.
Tasks, splits and held-out evaluation: see ``envs.meta.navigation`` (``params.task_id``, ``reset_to_task``).

Registered ids: ``Wind-50-150`` and ``Wind-10-190`` (train/test split sizes).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from shm_jax.envs.meta.navigation import NavigationEnv, NavParams, held_out_params
from shm_jax.envs.meta.tasks import wind_tasks
from shm_jax.envs.registry import register

WIND_GOAL = (0.0, 1.0)


class Wind(NavigationEnv):
    """Wind navigation; constructor: num_train, num_test, episode_len=100, goal_radius=0.01."""

    def __init__(self, num_train: int = 50, num_test: int = 150, episode_len: int = 100, goal_radius: float = 0.01):
        super().__init__(
            num_train, num_test, sub_episodes=1, reward_in_obs=False, episode_len=episode_len, goal_radius=goal_radius
        )

    def _task_source(self):
        return wind_tasks()

    def goal(self, params: NavParams, task_id: jax.Array) -> jax.Array:
        return jnp.asarray(WIND_GOAL, jnp.float32)

    def drift(self, params: NavParams, task_id: jax.Array) -> jax.Array:
        return params.task_table[task_id]

    def start_position(self, key: jax.Array) -> jax.Array:
        return jnp.zeros((2,), jnp.float32)

    @property
    def name(self) -> str:
        return f"Wind-{self.num_train}-{self.num_test}"


for _train, _test in ((50, 150), (10, 190)):
    register(
        f"Wind-{_train}-{_test}",
        Wind,
        aliases=(f"wind_{_train}_{_test}",),
        needs_prev_action=True,
        family="meta",
        num_train=_train,
        num_test=_test,
        eval_tasks=held_out_params,
    )
