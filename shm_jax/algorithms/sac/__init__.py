"""Recurrent SAC-Discrete (``sacd``) and SAC (``sac``) as pomdp-baselines runs them, the SHM paper's credit-
assignment and meta-RL learner: config sections, object, losses and memory estimate."""

from shm_jax.algorithms.base import AlgorithmSpec
from shm_jax.algorithms.sac.algorithm import SAC, Learner, SACState, episode_length
from shm_jax.algorithms.sac.config import SACConfig, SACDConfig, SACHyperparameters

SACD_SPEC = AlgorithmSpec(
    name=SACDConfig.name, config_type=SACDConfig, hyperparameters_type=SACHyperparameters, make=SAC.from_config
)
SAC_SPEC = AlgorithmSpec(
    name=SACConfig.name, config_type=SACConfig, hyperparameters_type=SACHyperparameters, make=SAC.from_config
)

__all__ = [
    "Learner",
    "SAC",
    "SACConfig",
    "SACDConfig",
    "SACHyperparameters",
    "SACState",
    "SACD_SPEC",
    "SAC_SPEC",
    "episode_length",
]
