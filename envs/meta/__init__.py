"""Meta-RL tasks of the SHM paper: Wind and Point Robot (trials over fixed task sets with train/test splits).

Importing this package registers ``Wind-50-150``, ``Wind-10-190``, ``PointRobot-50-150``, ``PointRobot-10-190``.
Held-out evaluation: see ``envs.meta.navigation``.
"""

from shm_jax.envs.meta import point_robot, wind  # noqa: F401  (registers the ids)
from shm_jax.envs.meta.navigation import NavigationEnv, NavParams, NavState, held_out_params, task_params  # noqa: F401
from shm_jax.envs.meta.point_robot import PointRobot  # noqa: F401
from shm_jax.envs.meta.wind import Wind  # noqa: F401
