"""The ``pqn`` config section and PQN's typed hyperparameters."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
from flax import struct

from shm_jax.algorithms.base import AlgorithmConfig
from shm_jax.options import ConfigError, boolean, option, positive_int, positive_number, unit_interval


class PQNHyperparameters(struct.PyTreeNode):
    """The traced numbers of a PQN run (float32 scalars; a sweep stacks them along a leading axis).

    Their names are PQN's sweepable options.
    """

    lr: jax.Array
    gamma: jax.Array
    q_lambda: jax.Array
    eps_start: jax.Array
    eps_finish: jax.Array
    eps_decay: jax.Array
    max_grad_norm: jax.Array


@dataclasses.dataclass(frozen=True)
class PQNConfig(AlgorithmConfig):
    """Recurrent PQN (``shm_jax.algorithms.pqn``; Gallici et al., ICLR 2025): Q(lambda) on on-policy rollouts,
    no replay buffer, no target network. Sizes are static, sweepable numbers are traced hyperparameters."""

    name: ClassVar[str] = "pqn"

    num_envs: int = option(16, positive_int)
    """Parallel environments per run."""
    num_steps: int = option(128, positive_int)
    """Rollout length per update (the sequence length the memory trains on)."""
    total_timesteps: int = option(409_600, positive_int)
    """Environment steps per run; updates = total_timesteps // (num_envs * num_steps)."""
    num_minibatches: int = option(4, positive_int)
    """Minibatches per epoch; each holds whole sequences of num_envs / num_minibatches environments."""
    update_epochs: int = option(4, positive_int)
    """Passes over each rollout."""
    lr: float = option(1e-3, positive_number)
    """Adam learning rate (sweepable)."""
    anneal_lr: bool = option(True, boolean)
    """Linearly anneal the learning rate to 0 over the run."""
    adam_eps: float = option(1e-5, positive_number)
    """Adam epsilon."""
    max_grad_norm: float = option(10.0, positive_number)
    """Global gradient-norm clip (sweepable)."""
    gamma: float = option(0.9, unit_interval)
    """Discount (sweepable). 0.9 by default: of the settings tried, the one that ended every seed of RepeatFirstEasy
    above 0.9 at twice the default PPO budget (benchmarks/results/agent/pqn_repeat_first.md)."""
    q_lambda: float = option(0.9, unit_interval)
    """Q(lambda) trace: 0 is one-step TD, 1 the Monte Carlo return to the next episode end or bootstrap (sweepable)."""
    eps_start: float = option(1.0, unit_interval)
    """Exploration epsilon of the first update (sweepable)."""
    eps_finish: float = option(0.01, unit_interval)
    """Epsilon once the decay is over; also the epsilon of the sampled evaluation policy (sweepable)."""
    eps_decay: float = option(0.25, unit_interval)
    """Fraction of the run's updates over which epsilon falls linearly from eps_start to eps_finish (sweepable)."""

    def check_rules(self) -> None:
        if self.num_envs % self.num_minibatches:
            raise ConfigError(
                "num_minibatches",
                f"must divide num_envs={self.num_envs} (minibatches hold whole "
                f"environment sequences), got {self.num_minibatches}",
            )
        if self.total_timesteps < self.num_envs * self.num_steps:
            raise ConfigError(
                "total_timesteps",
                f"must be at least num_envs*num_steps={self.num_envs * self.num_steps}"
                f" (one update), got {self.total_timesteps}",
            )
