"""The ``sacd`` and ``sac`` config sections and their typed hyperparameters.

Both are pomdp-baselines' recurrent SAC (Ni et al. 2022), the SHM paper's credit-assignment (SAC-Discrete) and
meta-RL (SAC) learner: whole episodes replayed from a zero memory state, separate actor and critic memories,
a Polyak target of the whole critic. The two sections differ only in their defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import jax
from flax import struct

from shm_jax.algorithms.base import AlgorithmConfig
from shm_jax.options import (
    ConfigError,
    boolean,
    keyword_mapping,
    non_negative_int,
    non_negative_number,
    one_of,
    option,
    positive_int,
    positive_number,
    unit_interval,
)

TERMINALS = ("auto", "terminated", "in_goal")


class SACHyperparameters(struct.PyTreeNode):
    """The traced numbers of a SAC run (float32 scalars; a sweep stacks them along a leading axis).

    Their names are SAC's sweepable options.
    """

    lr: jax.Array
    alpha: jax.Array
    target_entropy_scale: jax.Array
    tau: jax.Array
    gamma: jax.Array


def optional_memory(field: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(field, f"must be None (the agent's --memory) or a memory name, got {value!r}")


@dataclasses.dataclass(frozen=True)
class SACDConfig(AlgorithmConfig):
    """Recurrent SAC-Discrete (``shm_jax.algorithms.sac``; pomdp-baselines' ``sacd``, the SHM paper's credit-
    assignment learner): Discrete actions, fixed entropy temperature by default. Sizes are static, sweepable
    numbers are traced hyperparameters."""

    name: ClassVar[str] = "sacd"

    num_envs: int = option(8, positive_int)
    """Whole episodes collected per iteration, one per parallel environment (pomdp-baselines:
    num_rollouts_per_iter)."""
    episode_length: int = option(0, non_negative_int)
    """Steps T stored per episode (0: automatic, the task's longest episode: its declared limit, else the longest
    of 64 random episodes of up to 10,000 steps). A longer episode is cut at T and bootstrapped from o_T."""
    total_timesteps: int = option(100_000, positive_int)
    """Environment steps per run, warm-up included; iterations = (total - warmup) // (num_envs * T)."""
    warmup_episodes: int = option(5, non_negative_int)
    """Episodes of uniformly random actions in the buffer before learning (pomdp-baselines: num_init_rollouts_pool)."""
    replay_ratio: float = option(0.25, positive_number)
    """Gradient updates per environment step: ceil(replay_ratio * num_envs * T) per iteration, unless
    updates_per_iter is set (pomdp-baselines: num_updates_per_iter as a float)."""
    updates_per_iter: int = option(0, non_negative_int)
    """Gradient updates per iteration (0: from replay_ratio; pomdp-baselines' meta configs: 500 per 10 trials)."""
    batch_size: int = option(32, positive_int)
    """Whole episodes per gradient update."""
    buffer_size: int = option(1_000_000, positive_int)
    """Replay capacity in transitions; (T + 1) rows per episode as pomdp-baselines counts them."""
    lr: float = option(3e-4, positive_number)
    """Adam learning rate of the actor, the critic and the temperature (sweepable)."""
    alpha: float = option(0.1, positive_number)
    """Entropy temperature: fixed, or the starting value when autotune_alpha (sweepable)."""
    autotune_alpha: bool = option(False, boolean)
    """Learn log(alpha) towards the target entropy (pomdp-baselines found a fixed alpha far better on delayed
    credit tasks, so SAC-Discrete keeps it fixed by default)."""
    target_entropy_scale: float = option(0.98, positive_number)
    """Target entropy when autotuning: scale * log(num_actions) (Discrete) or -scale * action_dim (Box); sweepable."""
    tau: float = option(0.005, unit_interval)
    """Polyak rate of the target critic, applied after every gradient update (sweepable)."""
    gamma: float = option(0.99, unit_interval)
    """Discount (sweepable)."""
    terminal: Literal["auto", "terminated", "in_goal"] = option("auto", one_of(*TERMINALS))
    """What cuts the bootstrap: "terminated" (the task's termination; a time-limit end bootstraps), "in_goal" (the
    post-step goal flag of the meta tasks, as pomdp-baselines' meta runs), "auto" (in_goal where the task reports
    it, else terminated)."""
    actor_memory: str | None = option(None, optional_memory)
    """Memory core of the actor (None: --memory). The SHM authors' released code always ran a GRU actor."""
    critic_memory: str | None = option(None, optional_memory)
    """Memory core of the critic and its target (None: --memory)."""
    actor_memory_kwargs: dict[str, int | float | bool | str] = option({}, keyword_mapping)
    """Constructor arguments of the actor's core ({}: --memory-kwargs when it is --memory, else the core's defaults)."""
    critic_memory_kwargs: dict[str, int | float | bool | str] = option({}, keyword_mapping)
    """Constructor arguments of the critic's core ({}: as actor_memory_kwargs)."""
    head_layers: int = option(2, positive_int)
    """ReLU layers of head_hidden_size in each actor and Q head (pomdp-baselines: [128, 128])."""
    obs_shortcut: bool = option(True, boolean)
    """Heads also read ReLU(Linear(current observation [, action])) next to the memory (pomdp-baselines)."""
    max_grad_norm: float = option(0.0, non_negative_number)
    """Global gradient-norm clip of each network (0: none, as pomdp-baselines)."""

    def check_rules(self) -> None:
        if self.tau <= 0:
            raise ConfigError("tau", f"must be in (0, 1], got {self.tau!r}")


@dataclasses.dataclass(frozen=True)
class SACConfig(SACDConfig):
    """Recurrent SAC (pomdp-baselines' ``sac``, the SHM paper's meta-RL learner): Box actions through a tanh-Gaussian
    actor, temperature learned from alpha = 1 towards -action_dim. Options as ``sacd``."""

    name: ClassVar[str] = "sac"

    alpha: float = option(1.0, positive_number)
    """Entropy temperature: fixed, or the starting value when autotune_alpha (sweepable)."""
    autotune_alpha: bool = option(True, boolean)
    """Learn log(alpha) towards the target entropy (pomdp-baselines' meta runs do, from alpha = 1)."""
    target_entropy_scale: float = option(1.0, positive_number)
    """Target entropy when autotuning: -scale * action_dim (sweepable)."""
