"""The ``ppo`` config section and PPO's typed hyperparameters."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
from flax import struct

from shm_jax.algorithms.base import AlgorithmConfig
from shm_jax.options import (
    ConfigError,
    boolean,
    non_negative_number,
    option,
    positive_int,
    positive_number,
    unit_interval,
)


class PPOHyperparameters(struct.PyTreeNode):
    """The traced numbers of a PPO run (float32 scalars; a sweep stacks them along a leading axis).

    Their names are PPO's sweepable options.
    """

    lr: jax.Array
    gamma: jax.Array
    gae_lambda: jax.Array
    clip_eps: jax.Array
    ent_coef: jax.Array
    vf_coef: jax.Array
    max_grad_norm: jax.Array


@dataclasses.dataclass(frozen=True)
class PPOConfig(AlgorithmConfig):
    """Recurrent PPO (``shm_jax.algorithms.ppo``): sizes are static, sweepable numbers are traced hyperparameters."""

    name: ClassVar[str] = "ppo"

    num_envs: int = option(16, positive_int)
    """Parallel environments per run."""
    num_steps: int = option(128, positive_int)
    """Rollout length per update (the sequence length the memory trains on)."""
    total_timesteps: int = option(204_800, positive_int)
    """Environment steps per run; updates = total_timesteps // (num_envs * num_steps)."""
    num_minibatches: int = option(4, positive_int)
    """Minibatches per epoch; each holds whole sequences of num_envs / num_minibatches environments."""
    update_epochs: int = option(4, positive_int)
    """Passes over each rollout."""
    lr: float = option(1e-3, positive_number)
    """Adam learning rate (sweepable)."""
    anneal_lr: bool = option(True, boolean)
    """Linearly anneal the learning rate to 0 over the run (on by default: at a constant lr 1e-3 the default run
    overshot late and ended below 0.95 on some seeds)."""
    adam_eps: float = option(1e-5, positive_number)
    """Adam epsilon."""
    gamma: float = option(0.99, unit_interval)
    """Discount (sweepable)."""
    gae_lambda: float = option(0.95, unit_interval)
    """GAE lambda (sweepable)."""
    clip_eps: float = option(0.2, positive_number)
    """PPO ratio clip (sweepable); also clips the value change when clip_value_loss is on."""
    clip_value_loss: bool = option(True, boolean)
    """PPO2-style clipped value loss."""
    ent_coef: float = option(0.01, non_negative_number)
    """Entropy bonus coefficient (sweepable)."""
    vf_coef: float = option(0.5, non_negative_number)
    """Value loss coefficient (sweepable)."""
    max_grad_norm: float = option(0.5, positive_number)
    """Global gradient-norm clip (sweepable)."""
    normalize_advantages: bool = option(True, boolean)
    """Standardise advantages per minibatch."""

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
