"""Recurrent PQN (Gallici et al., ICLR 2025; purejaxql's PQN-RNN): config section, object, losses and memory
estimate. Discrete action spaces only."""

from shm_jax.algorithms.base import AlgorithmSpec
from shm_jax.algorithms.pqn.algorithm import PQN, Rollout, RunnerState, Transition
from shm_jax.algorithms.pqn.config import PQNConfig, PQNHyperparameters
from shm_jax.algorithms.pqn.exploration import epsilon_greedy, linear_epsilon
from shm_jax.algorithms.pqn.losses import q_lambda_targets, q_loss

SPEC = AlgorithmSpec(
    name=PQNConfig.name, config_type=PQNConfig, hyperparameters_type=PQNHyperparameters, make=PQN.from_config
)

__all__ = [
    "PQN",
    "PQNConfig",
    "PQNHyperparameters",
    "Rollout",
    "RunnerState",
    "SPEC",
    "Transition",
    "epsilon_greedy",
    "linear_epsilon",
    "q_lambda_targets",
    "q_loss",
]
