"""Recurrent PPO as one object: static structure, traced hyperparameters (PureJaxRL layout).

``PPO`` holds what shapes the program (environment, network, sizes, switches); the numbers a sweep
varies are a separate pytree, ``hp`` (:class:`PPOHyperparameters`, float32 scalars), passed to every
method that needs them. Seeds and sweeps are then plain vmaps:
``jax.vmap(jax.vmap(ppo.train, (0, None)), (None, 0))(rngs, hp_grid)``; the host loop uses
``shm_jax.training.batched.BatchedProgram``.

One update = ``rollout`` (``lax.scan`` over ``num_steps`` vmapped env steps, memory carry threaded,
core noise sampled per step and stored) -> GAE -> epochs of minibatches, each holding whole sequences
of a subset of environments re-run from the carry stored at the start of the rollout (``loss``).

Alignment: the transition stored at step t holds the start flag s_t of its own observation o_t; the
carry is reset before o_t when s_t = 1; s_{t+1} = terminated_t OR truncated_t. GAE:
delta_t = r_t + gamma (1 - terminated_t) V'_{t+1} - V_t with V'_{t+1} = V(final_observation_t)
(computed in the rollout with the carry that processed the ending episode) where truncated_t, else
V(o_{t+1}); the trace is cut at every boundary.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from shm_jax.agents import distributions
from shm_jax.agents.distributions import ActionSpec
from shm_jax.agents.heads import ActorCritic
from shm_jax.agents.parts import AgentParts
from shm_jax.agents.trunk import AgentCarry
from shm_jax.algorithms import rollout as rollout_lib
from shm_jax.algorithms.base import (
    MemoryEstimate,
    Policy,
    ScanTraining,
    all_finite,
    gradient_step,
    observation_storage_dtype,
)
from shm_jax.algorithms.ppo import memory_estimate
from shm_jax.algorithms.ppo.config import PPOConfig, PPOHyperparameters
from shm_jax.algorithms.ppo.losses import compute_gae, ppo_loss
from shm_jax.algorithms.rollout import RunnerState


class Transition(struct.PyTreeNode):
    """One rollout step per environment; stacked by the rollout scan to [T, N, ...].

    obs: o_t; start: s_t (o_t begins an episode); noise: the core noise used at t (or None);
    action: raw action (unclipped for Box); log_prob, value: at acting time; reward: r_t;
    terminated, truncated: how the step ended; bootstrap_value: V(final_observation_t) with the
    carry that processed o_0..o_t (meaningful where truncated, 0 elsewhere).
    """

    obs: jax.Array
    start: jax.Array
    noise: Any
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    bootstrap_value: jax.Array


class Rollout(struct.PyTreeNode):
    """What one rollout gives the update: trajectory Transition[T, N], the carry before it, V(o_T) float32[N],
    and episode statistics summed over the rollout (scalars)."""

    trajectory: Transition
    start_carry: AgentCarry
    last_value: jax.Array
    stats: dict


@dataclasses.dataclass(frozen=True)
class PPO(ScanTraining):
    """Recurrent PPO for one run (no vmap inside); every method is pure and jittable.

    env, env_params: a gymnax-style environment (auto-reset ``step``) and its params; network: the
    ActorCritic; num_envs, num_steps: rollout shape; num_updates: updates of a whole run;
    num_minibatches, update_epochs: how each rollout is learned from; adam_eps, anneal_lr,
    clip_value_loss, normalize_advantages: static switches of the update.
    """

    env: Any
    env_params: Any
    network: ActorCritic
    num_envs: int
    num_steps: int
    num_updates: int
    num_minibatches: int
    update_epochs: int
    adam_eps: float
    anneal_lr: bool
    clip_value_loss: bool
    normalize_advantages: bool
    obs_dtype: Any = jnp.float32  # how the rollout stores observations (uint8 for pixel-only ones)

    @classmethod
    def from_config(cls, config: PPOConfig, *, env: Any, env_params: Any, agent: AgentParts) -> PPO:
        """PPO for ``config`` on ``env`` with an actor-critic on the agent section's trunk."""
        network = ActorCritic.on(
            agent.make_trunk(), action_spec=agent.action_spec, head_hidden_size=agent.head_hidden_size
        )
        return cls(
            env=env,
            obs_dtype=observation_storage_dtype(network.pixel_features, env, env_params),
            env_params=env_params,
            network=network,
            num_envs=config.num_envs,
            num_steps=config.num_steps,
            num_updates=config.total_timesteps // (config.num_envs * config.num_steps),
            num_minibatches=config.num_minibatches,
            update_epochs=config.update_epochs,
            adam_eps=config.adam_eps,
            anneal_lr=config.anneal_lr,
            clip_value_loss=config.clip_value_loss,
            normalize_advantages=config.normalize_advantages,
        )

    @property
    def action_spec(self) -> ActionSpec:
        return self.network.action_spec

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def optimizer(self) -> optax.GradientTransformation:
        """Adam's direction; the (possibly annealed) learning rate is applied in ``_minibatch_step``."""
        return optax.scale_by_adam(eps=self.adam_eps)

    def _apply(self, params, carry, obs, starts, noise):
        return self.network.apply(params, carry, obs, starts, noise)

    # --- init -----------------------------------------------------------------------------------

    def init(self, rng: jax.Array) -> RunnerState:
        """Fresh params, optimiser, envs and carry."""
        return rollout_lib.fresh_state(self.network, self.optimizer, self.env, self.env_params, self.num_envs, rng)

    # --- rollout --------------------------------------------------------------------------------

    def _env_step(self, state: RunnerState, _) -> tuple[RunnerState, tuple[Transition, dict]]:
        n, spec = self.num_envs, self.action_spec
        rng, k_noise, k_act, k_env, k_boot = jax.random.split(state.rng, 5)
        noise = self.network.sample_noise(k_noise, 1, n)
        carry, dist, value = self._apply(state.params, state.carry, state.last_obs[None], state.last_start[None], noise)
        dist = jax.tree.map(lambda x: x[0], dist)
        action = distributions.sample_action(spec, dist, k_act)
        logp = distributions.log_prob(spec, dist, action)
        step = rollout_lib.step_envs(self.env, self.env_params, k_env, state, distributions.env_action(spec, action))

        # V(final observation) with the carry that processed the ending episode; only where truncated.
        def final_value():
            boot_noise = self.network.sample_noise(k_boot, 1, n)
            _, _, v = self._apply(state.params, carry, step.final_obs[None], jnp.zeros((1, n), bool), boot_noise)
            return v[0]

        transition = Transition(
            obs=state.last_obs.astype(self.obs_dtype),
            start=state.last_start,
            noise=jax.tree.map(lambda x: x[0], noise),
            action=action,
            log_prob=logp,
            value=value[0],
            reward=step.reward,
            terminated=step.terminated,
            truncated=step.truncated,
            bootstrap_value=rollout_lib.truncation_bootstrap(step.truncated, final_value),
        )
        state, stats = rollout_lib.advance(state, step, carry, rng)
        return state, (transition, stats)

    def rollout(self, state: RunnerState) -> tuple[RunnerState, Rollout]:
        """Collect num_steps steps of every environment with the current params."""
        start_carry = state.carry
        state, (trajectory, stats) = jax.lax.scan(self._env_step, state, None, length=self.num_steps)
        rng, k_noise = jax.random.split(state.rng)
        noise = self.network.sample_noise(k_noise, 1, self.num_envs)
        _, _, last_value = self._apply(state.params, state.carry, state.last_obs[None], state.last_start[None], noise)
        rollout = Rollout(
            trajectory=trajectory, start_carry=start_carry, last_value=last_value[0], stats=jax.tree.map(jnp.sum, stats)
        )
        return state.replace(rng=rng), rollout

    # --- loss and update ------------------------------------------------------------------------

    def replay(self, params, start_carry: AgentCarry, trajectory: Transition):
        """Re-run whole sequences from start_carry with the stored noise: (log_prob, value, entropy) float32[T, n]."""
        _, dist, value = self._apply(params, start_carry, trajectory.obs, trajectory.start, trajectory.noise)
        spec = self.action_spec
        return distributions.log_prob(spec, dist, trajectory.action), value, distributions.entropy(spec, dist)

    def loss(
        self,
        params,
        hp: PPOHyperparameters,
        start_carry: AgentCarry,
        trajectory: Transition,
        advantages: jax.Array,
        targets: jax.Array,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The PPO loss of whole sequences (see :func:`ppo_loss`): (total, diagnostics)."""
        log_prob, value, entropy = self.replay(params, start_carry, trajectory)
        return ppo_loss(
            log_prob,
            value,
            entropy,
            trajectory,
            advantages,
            targets,
            hp,
            normalize_advantages=self.normalize_advantages,
            clip_value_loss=self.clip_value_loss,
        )

    def _minibatch_step(self, carry, env_idx, hp, lr, rollout: Rollout, advantages, targets):
        params, opt_state = carry
        pick_t = lambda x: x[:, env_idx]  # noqa: E731  [T, N, ...] -> [T, n, ...]
        (_, aux), grads = jax.value_and_grad(self.loss, has_aux=True)(
            params,
            hp,
            jax.tree.map(lambda x: x[env_idx], rollout.start_carry),
            jax.tree.map(pick_t, rollout.trajectory),
            pick_t(advantages),
            pick_t(targets),
        )
        params, opt_state, grad_norm = gradient_step(
            self.optimizer, params, opt_state, grads, lr, hp.max_grad_norm, self.network.project_params
        )
        return (params, opt_state), {**aux, "grad_norm": grad_norm}

    def learning_rate(self, hp: PPOHyperparameters, update: jax.Array) -> jax.Array:
        """hp.lr, linearly annealed to 0 over num_updates when anneal_lr is on."""
        if self.anneal_lr:
            return hp.lr * (1.0 - update.astype(jnp.float32) / self.num_updates)
        return hp.lr

    def update(self, state: RunnerState, hp: PPOHyperparameters) -> tuple[RunnerState, dict[str, jax.Array]]:
        """One PPO update (rollout, GAE, epochs of minibatches): (state, metrics of float32/int32 scalars)."""
        state, rollout = self.rollout(state)
        traj = rollout.trajectory
        advantages, targets = compute_gae(
            traj.value,
            traj.reward,
            traj.terminated,
            traj.truncated,
            traj.bootstrap_value,
            rollout.last_value,
            hp.gamma,
            hp.gae_lambda,
        )
        lr = self.learning_rate(hp, state.update)
        rng, k_epochs = jax.random.split(state.rng)
        step = lambda c, idx: self._minibatch_step(c, idx, hp, lr, rollout, advantages, targets)  # noqa: E731
        (params, opt_state), losses = rollout_lib.epochs_of_minibatches(
            step, (state.params, state.opt_state), k_epochs, self.num_envs, self.num_minibatches, self.update_epochs
        )
        finite = (
            jnp.all(jnp.isfinite(losses["total_loss"]))
            & jnp.all(jnp.isfinite(losses["grad_norm"]))
            & all_finite(params)
        )
        metrics = {
            **rollout.stats,
            **jax.tree.map(jnp.mean, losses),
            "first_minibatch_approx_kl": losses["approx_kl"][0, 0],
            "value_mean": jnp.mean(traj.value),
            "advantage_mean": jnp.mean(advantages),
            "target_mean": jnp.mean(targets),
            "lr": lr,
            "finite": finite,
        }
        state = state.replace(params=params, opt_state=opt_state, rng=rng, update=state.update + 1)
        return state, metrics

    # --- what the batched program and the host loop ask -------------------------------------------

    def per_env_leaves(self, state: RunnerState) -> RunnerState:
        return rollout_lib.per_env_leaves(state)

    def agent_params(self, state: RunnerState) -> Any:
        return state.params

    def policy(self, greedy: bool) -> Policy:
        """The actor for evaluation: mode actions when ``greedy``, else sampled ones."""
        return Policy(initialize_carry=self.network.initialize_carry, act=functools.partial(self.act, greedy=greedy))

    def memory_estimate(self, hp: PPOHyperparameters, num_runs: int) -> MemoryEstimate:
        """See ``shm_jax.algorithms.ppo.memory_estimate`` (shapes only; nothing compiles)."""
        return memory_estimate.estimate(self, hp, num_runs)

    # --- acting -----------------------------------------------------------------------------------

    def act(
        self,
        params,
        obs: jax.Array,
        carry: AgentCarry,
        start: jax.Array,
        rng: jax.Array,
        greedy: bool = False,
        noise: Any = None,
    ) -> tuple[jax.Array, AgentCarry]:
        """One step for B envs: obs [B, ...], start bool[B] -> (env action [B, ...], new carry).

        ``rng`` draws the core's noise (unless ``noise`` from ``network.sample_noise(_, 1, B)`` is given, e.g. a
        rollout's stored noise) and the action; ``greedy`` (static) takes the mode instead of sampling.
        """
        k_noise, k_act = jax.random.split(rng)
        if noise is None:
            noise = self.network.sample_noise(k_noise, 1, start.shape[0])
        carry, dist, _ = self._apply(params, carry, obs[None], start[None], noise)
        dist = jax.tree.map(lambda x: x[0], dist)
        spec = self.action_spec
        raw = distributions.mode_action(spec, dist) if greedy else distributions.sample_action(spec, dist, k_act)
        return distributions.env_action(spec, raw), carry
