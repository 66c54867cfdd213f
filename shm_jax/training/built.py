"""What the build step hands the host loop: one config's environment, algorithm and hyperparameters."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from shm_jax.algorithms.base import Algorithm, Policy
from shm_jax.config import TrainConfig
from shm_jax.training.batched import BatchedProgram


@dataclasses.dataclass(frozen=True)
class Built:
    """What one config builds (every piece once; ``shm_jax.build.build`` makes it).

    action_spec: the environment's action space (``shm_jax.agents.ActionSpec``); algorithm: the single-run
    learner; hyperparameters: its typed hyperparameter pytree; eval_tasks: env params with a leading task
    axis when the task is evaluated away from its training distribution (meta-RL held-out tasks; ``envs``
    registry ``eval_tasks``), else None.
    """

    config: TrainConfig
    env: Any
    env_params: Any
    action_spec: Any
    algorithm: Algorithm
    hyperparameters: Any
    eval_tasks: Any = None

    def policy(self, greedy: bool) -> Policy:
        """The agent for ``shm_jax.training.evaluation``: mode actions when ``greedy``, else sampled ones."""
        return self.algorithm.policy(greedy)

    def program(self, mesh: jax.sharding.Mesh | None = None) -> BatchedProgram:
        """Every (sweep setting, seed) run of the config in one batched program on ``mesh`` (default: all devices)."""
        run = self.config.run
        return BatchedProgram(
            self.algorithm, self.hyperparameters, sweep=run.sweep, seed=run.seed, num_seeds=run.num_seeds, mesh=mesh
        )
