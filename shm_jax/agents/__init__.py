"""Agents: action distributions, the recurrent trunk every network shares, and the heads on it."""

from shm_jax.agents.distributions import ActionSpec, action_spec_from_space
from shm_jax.agents.heads import Actor, ActorCritic, QNetwork, TwinQ, actor_critic
from shm_jax.agents.parts import AgentParts
from shm_jax.agents.trunk import AgentCarry, RecurrentTrunk

__all__ = [
    "ActionSpec",
    "Actor",
    "ActorCritic",
    "AgentCarry",
    "AgentParts",
    "QNetwork",
    "RecurrentTrunk",
    "TwinQ",
    "actor_critic",
    "action_spec_from_space",
]
