"""Heads on the recurrent trunk: the actor-critic PPO uses, the Q network PQN uses, and the off-policy actor and
twin-Q critic SAC uses (each with its own trunk and memory).

Each head module is a :class:`~shm_jax.agents.trunk.RecurrentTrunk` with heads on top (``Head.on(trunk,
...)`` builds one from a trunk), so the trunk's layers (feature_map, pre, memory, post, ...) and the head's
layers sit side by side at the top of one parameter tree. Every head is called like the trunk,
``(carry, obs[T, B, ...], starts bool[T, B], noise)``, and returns the new carry first; head outputs are float32
whatever the compute dtype is, so
log-probabilities, losses and optimisers work in float32.

A head is two Linear layers with no activation between them (the official POPGym agent's heads); the Q network's
head puts LayerNorm and ReLU between them (PQN's LayerNorm); the off-policy heads are ReLU MLPs (pomdp-baselines').
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from shm_jax.agents.distributions import ActionSpec
from shm_jax.agents.inits import dense
from shm_jax.agents.norm import LayerNorm
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


class _SoftHead(_Head):
    """Off-policy heads as pomdp-baselines' recurrent SAC: an MLP of ``head_layers`` ReLU layers of
    ``head_hidden_size`` over [trunk features || shortcut], the shortcut being the current step's observation
    (pomdp-baselines' "shortcut"; off with ``shortcut=False``): ReLU(Linear(observation [|| action] -> feature_size)),
    or, with a conv encoder, the trunk's own image encoding (pomdp-baselines shares its image encoder so) [|| action
    through a ReLU Linear]."""

    head_layers: int = 2
    shortcut: bool = True

    def _inputs(self, x: jax.Array, obs: jax.Array, encoding: jax.Array, action: jax.Array | None = None) -> jax.Array:
        if not self.shortcut:
            return x
        dtype = compute_dtype(type(self).__name__, self.dtype)
        if self.image_shape and action is None:
            return jnp.concatenate([x, encoding.astype(x.dtype)], axis=-1)
        direct = encoding.astype(jnp.float32) if self.image_shape else self.flat_observation(obs)
        if action is not None:
            direct = jnp.concatenate([direct, action.astype(jnp.float32)], axis=-1)
        embed = dense(self.feature_size, direct.shape[-1], "relu", self.init_scheme, "shortcut", dtype)(direct)
        return jnp.concatenate([x, nn.relu(embed).astype(x.dtype)], axis=-1)

    def _mlp(self, x: jax.Array, outputs: int, name: str) -> jax.Array:
        """head_layers x (Linear + ReLU) -> Linear(-> outputs), float32 out."""
        dtype = compute_dtype(type(self).__name__, self.dtype)
        for i in range(self.head_layers):
            x = nn.relu(dense(self.head_hidden_size, x.shape[-1], "relu", self.init_scheme, f"{name}_{i}", dtype)(x))
        return dense(outputs, x.shape[-1], "final", self.init_scheme, f"{name}_out", dtype)(x).astype(jnp.float32)


class Actor(_SoftHead):
    """An off-policy actor with its own memory: ``(carry, dist)``.

    dist: logits float32[T, B, n] (Discrete), or (mean, log_std) float32[T, B, k] of a tanh-Gaussian (Box) with
    log_std clipped to [-20, 2] (pomdp-baselines' TanhGaussianPolicy).
    """

    action_spec: ActionSpec = None  # required (a dataclass default only because the trunk's fields have them)

    @nn.compact
    def __call__(self, carry: AgentCarry, obs: jax.Array, starts: jax.Array, noise=None):
        if self.action_spec is None or self.action_spec.kind == "multidiscrete":
            raise ValueError(f"Actor: action_spec must be Discrete or Box, got {self.action_spec!r}")
        carry, x, encoding = self.features(carry, obs, starts, noise, with_encoding=True)
        x = self._inputs(x, obs, encoding)
        k = self.action_spec.num_outputs
        if self.action_spec.kind == "discrete":
            return carry, self._mlp(x, k, "policy")
        out = self._mlp(x, 2 * k, "policy")
        return carry, (out[..., :k], jnp.clip(out[..., k:], -20.0, 2.0))


class TwinQ(_SoftHead):
    """An off-policy critic: one trunk (one memory), two Q heads.

    Discrete (``num_actions`` > 0): ``(carry, (q1, q2))``, each float32[T, B, num_actions]. Continuous
    (``action_size`` > 0): ``action`` float32[T, B, action_size] joins the shortcut (the memory reads the
    observations only) and each head outputs float32[T, B].
    """

    num_actions: int = 0
    action_size: int = 0

    @nn.compact
    def __call__(
        self, carry: AgentCarry, obs: jax.Array, starts: jax.Array, noise=None, action: jax.Array | None = None
    ):
        if (self.num_actions > 0) == (self.action_size > 0):
            raise ValueError("TwinQ: set exactly one of num_actions (discrete) and action_size (continuous)")
        carry, x, encoding = self.features(carry, obs, starts, noise, with_encoding=True)
        if self.action_size:
            if not self.shortcut:
                raise ValueError("TwinQ: a continuous critic reads the action through its shortcut (shortcut=True)")
            x = self._inputs(x, obs, encoding, action)
            return carry, (self._mlp(x, 1, "q1")[..., 0], self._mlp(x, 1, "q2")[..., 0])
        x = self._inputs(x, obs, encoding)
        return carry, (self._mlp(x, self.num_actions, "q1"), self._mlp(x, self.num_actions, "q2"))


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
        h = nn.relu(LayerNorm(epsilon=1e-5, dtype=dtype, name="q_norm")(h))
        q = dense(self.num_actions, hidden, "final", self.init_scheme, "q_out", dtype)(h)
        return carry, q.astype(jnp.float32)


def actor_critic(
    memory: nn.Module, action_spec: ActionSpec, *, head_hidden_size: int = 64, **trunk_options: Any
) -> ActorCritic:
    """An ActorCritic on a new ``RecurrentTrunk(memory, **trunk_options)`` (feature_size, pre_size, ...)."""
    return ActorCritic(memory=memory, action_spec=action_spec, head_hidden_size=head_hidden_size, **trunk_options)
