"""Heads on the recurrent trunk: the actor-critic PPO uses, the Q network PQN uses, and the actor-only and twin-Q
networks.

Each head module is a :class:`~shm_jax.agents.trunk.RecurrentTrunk` with heads on top (``Head.on(trunk,
...)`` builds one from a trunk), so the trunk's layers (feature_map, pre, memory, post, ...) and the head's
layers sit side by side at the top of one parameter tree. Every head is called like the trunk,
``(carry, obs[T, B, ...], starts bool[T, B], noise)``, and returns the new carry first; head outputs are float32
whatever the compute dtype is, so
log-probabilities, losses and optimisers work in float32.

A head is two Linear layers with no activation between them (the official POPGym agent's heads); the Q network's
head puts LayerNorm and ReLU between them (PQN's LayerNorm).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from shm_jax.agents.distributions import ActionSpec
from shm_jax.agents.inits import dense
from shm_jax.agents.trunk import AgentCarry, RecurrentTrunk, trunk_options
from shm_jax.memory.precision import compute_dtype


class _Head(RecurrentTrunk):
    """A trunk with heads: subclasses call ``self.features`` then their heads in a compact ``__call__``."""

    head_hidden_size: int = 64

    @classmethod
    def on(cls, trunk: RecurrentTrunk, **head_options: Any):
        """This head on ``trunk`` (a new module with the trunk's fields and memory core)."""
        return cls(**trunk_options(trunk), **head_options)

    def _head(self, x: jax.Array, outputs: int, name: str) -> jax.Array:
        """Linear(post -> hidden) -> Linear(hidden -> outputs), float32 out."""
        hidden = self.head_hidden_size
        dtype = compute_dtype(type(self).__name__, self.dtype)
        h = dense(hidden, x.shape[-1], "body", self.init_scheme, f"{name}_hidden", dtype)(x)
        return dense(outputs, hidden, "final", self.init_scheme, f"{name}_out", dtype)(h).astype(jnp.float32)

    def _policy(self, x: jax.Array, action_spec: ActionSpec) -> Any:
        """The actor head's distribution parameters: logits, or (mean, log_std) for Box actions."""
        if action_spec is None:
            raise ValueError(f"{type(self).__name__}: action_spec is required")
        actor = self._head(x, action_spec.num_outputs, "actor")
        if action_spec.kind == "box":
            log_std = self.param("log_std", nn.initializers.zeros, (action_spec.num_outputs,))
            return actor, jnp.broadcast_to(log_std, actor.shape)
        return actor


class ActorCritic(_Head):
    """Trunk -> actor head and critic head.

    ``__call__(carry, obs[T, B, ...], starts bool[T, B], noise)`` -> ``(carry, dist, value float32[T, B])`` with
    ``dist`` the actor output for ``action_spec`` (logits float32[T, B, n] or (mean, log_std) float32[T, B, k]).
    """

    action_spec: ActionSpec = None  # required (a dataclass default only because the trunk's fields have them)

    @nn.compact
    def __call__(self, carry: AgentCarry, obs: jax.Array, starts: jax.Array, noise=None):
        carry, x = self.features(carry, obs, starts, noise)
        dist = self._policy(x, self.action_spec)
        value = self._head(x, 1, "critic")[..., 0]
        return carry, dist, value


class Actor(_Head):
    """Trunk -> actor head: ``(carry, dist)`` (an off-policy actor with its own memory)."""

    action_spec: ActionSpec = None  # required (a dataclass default only because the trunk's fields have them)

    @nn.compact
    def __call__(self, carry: AgentCarry, obs: jax.Array, starts: jax.Array, noise=None):
        carry, x = self.features(carry, obs, starts, noise)
        return carry, self._policy(x, self.action_spec)


class TwinQ(_Head):
    """Trunk -> two Q heads over ``num_actions`` discrete actions: ``(carry, (q1, q2))``, each float32[T, B, A].

    For continuous actions (``action_size`` > 0) the action is concatenated to the trunk features and each
    head outputs one value: q float32[T, B].
    """

    num_actions: int = 1
    action_size: int = 0

    @nn.compact
    def __call__(
        self, carry: AgentCarry, obs: jax.Array, starts: jax.Array, noise=None, action: jax.Array | None = None
    ):
        carry, x = self.features(carry, obs, starts, noise)
        if self.action_size:
            x = jnp.concatenate([x, action.astype(x.dtype)], axis=-1)
            return carry, (self._head(x, 1, "q1")[..., 0], self._head(x, 1, "q2")[..., 0])
        return carry, (self._head(x, self.num_actions, "q1"), self._head(x, self.num_actions, "q2"))


class QNetwork(_Head):
    """Trunk -> Linear(post -> hidden) -> LayerNorm -> ReLU -> Linear(hidden -> num_actions): ``(carry, q)`` with
    q float32[T, B, num_actions].

    The LayerNorm is what keeps TD learning without a target network stable (Gallici et al., ICLR 2025).
    """

    num_actions: int = 1

    @nn.compact
    def __call__(self, carry: AgentCarry, obs: jax.Array, starts: jax.Array, noise=None):
        carry, x = self.features(carry, obs, starts, noise)
        hidden = self.head_hidden_size
        dtype = compute_dtype(type(self).__name__, self.dtype)
        h = dense(hidden, x.shape[-1], "body", self.init_scheme, "q_hidden", dtype)(x)
        h = nn.relu(nn.LayerNorm(epsilon=1e-5, dtype=dtype, name="q_norm")(h))
        q = dense(self.num_actions, hidden, "final", self.init_scheme, "q_out", dtype)(h)
        return carry, q.astype(jnp.float32)


def actor_critic(
    memory: nn.Module, action_spec: ActionSpec, *, head_hidden_size: int = 64, **trunk_options: Any
) -> ActorCritic:
    """An ActorCritic on a new ``RecurrentTrunk(memory, **trunk_options)`` (feature_size, pre_size, ...)."""
    return ActorCritic(memory=memory, action_spec=action_spec, head_hidden_size=head_hidden_size, **trunk_options)
