"""Recurrent PPO (PureJaxRL layout): config section, object, losses and memory estimate."""

from shm_jax.algorithms.base import AlgorithmSpec
from shm_jax.algorithms.ppo.algorithm import PPO, Rollout, RunnerState, Transition
from shm_jax.algorithms.ppo.config import PPOConfig, PPOHyperparameters
from shm_jax.algorithms.ppo.losses import compute_gae, ppo_loss

SPEC = AlgorithmSpec(
    name=PPOConfig.name, config_type=PPOConfig, hyperparameters_type=PPOHyperparameters, make=PPO.from_config
)

__all__ = [
    "PPO",
    "PPOConfig",
    "PPOHyperparameters",
    "Rollout",
    "RunnerState",
    "SPEC",
    "Transition",
    "compute_gae",
    "ppo_loss",
]
