"""Recurrent PQN (Gallici et al., ICLR 2025; purejaxql's PQN-RNN) as one object, laid out as the PPO.

``PQN`` holds what shapes the program (environment, Q network, sizes, switches); the numbers a sweep varies
are a separate pytree, ``hp`` (:class:`PQNHyperparameters`, float32 scalars). No replay buffer and no
target network: the Q network's LayerNorm head (``shm_jax.agents.QNetwork``) keeps TD learning stable.

One update = ``rollout`` (``lax.scan`` over ``num_steps`` vmapped env steps, epsilon-greedy on Q with epsilon
from a linear schedule over updates, memory carry threaded, core noise sampled per step and stored) ->
Q(lambda) targets computed once, backwards over the rollout, from the acting-time Q values -> epochs of
minibatches, each holding whole sequences of a subset of environments re-run from the carry stored at the
start of the rollout with the stored noise (so the first re-run reproduces the collected Q exactly), loss
0.5 * mean (Q(h_t, a_t) - G_t)^2. (purejaxql's recurrent variant recomputes the targets inside every
minibatch from that pass's Q; here they are fixed per rollout as its feed-forward PQN and PPO's GAE are.)

Alignment as the PPO: the transition stored at step t holds the start flag s_t of its own observation o_t;
s_{t+1} = terminated_t OR truncated_t. Truncation bootstraps from max_a Q(final_observation_t), computed in
the rollout with the carry that processed the ending episode; termination does not bootstrap; the lambda
trace is cut at every episode end.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from shm_jax.agents.heads import QNetwork
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
from shm_jax.algorithms.pqn import memory_estimate
from shm_jax.algorithms.pqn.config import PQNConfig, PQNHyperparameters
from shm_jax.algorithms.pqn.exploration import epsilon_greedy, linear_epsilon
from shm_jax.algorithms.pqn.losses import q_lambda_targets, q_loss
from shm_jax.algorithms.rollout import RunnerState
from shm_jax.options import ConfigError


class Transition(struct.PyTreeNode):
    """One rollout step per environment; stacked by the rollout scan to [T, N, ...].

    obs: o_t; start: s_t (o_t begins an episode); noise: the core noise used at t (or None);
    action: int32 a_t (epsilon-greedy); q_taken: Q(h_t, a_t) and q_max: max_a Q(h_t, a), float32, at acting
    time; reward: r_t; terminated, truncated: how the step ended; bootstrap_value: max_a Q(final_observation_t)
    with the carry that processed o_0..o_t (meaningful where truncated, 0 elsewhere).
    """

    obs: jax.Array
    start: jax.Array
    noise: Any
    action: jax.Array
    q_taken: jax.Array
    q_max: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    bootstrap_value: jax.Array


class Rollout(struct.PyTreeNode):
    """What one rollout gives the update: trajectory Transition[T, N], the carry before it,
    max_a Q(h_T, a) float32[N], and episode statistics summed over the rollout (scalars)."""

    trajectory: Transition
    start_carry: AgentCarry
    last_q_max: jax.Array
    stats: dict


@dataclasses.dataclass(frozen=True)
class PQN(ScanTraining):
    """Recurrent PQN for one run (no vmap inside); every method is pure and jittable.

    env, env_params: a gymnax-style environment (auto-reset ``step``) with a Discrete action space, and its
    params; network: the QNetwork; num_envs, num_steps: rollout shape; num_updates: updates of a whole run;
    num_minibatches, update_epochs: how each rollout is learned from; adam_eps, anneal_lr: static switches;
    eval_epsilon: the sampled evaluation policy's epsilon (the config's eps_finish; a sweep of eps_finish
    changes training only).
    """

    env: Any
    env_params: Any
    network: QNetwork
    num_envs: int
    num_steps: int
    num_updates: int
    num_minibatches: int
    update_epochs: int
    adam_eps: float
    anneal_lr: bool
    eval_epsilon: float
    obs_dtype: Any = jnp.float32  # how the rollout stores observations (uint8 for pixel-only ones)

    @classmethod
    def from_config(cls, config: PQNConfig, *, env: Any, env_params: Any, agent: AgentParts) -> PQN:
        """PQN for ``config`` on ``env`` with a Q network on the agent section's trunk; a one-line ConfigError
        (field ``algo``) for an action space that is not Discrete."""
        spec = agent.action_spec
        if spec.kind != "discrete":
            raise ConfigError(
                "algo", f"pqn needs a Discrete action space, this environment's is {spec.kind} (use --algo ppo)"
            )
        network = QNetwork.on(agent.make_trunk(), num_actions=spec.sizes[0], head_hidden_size=agent.head_hidden_size)
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
            eval_epsilon=config.eps_finish,
        )

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def optimizer(self) -> optax.GradientTransformation:
        """Adam's direction; the (possibly annealed) learning rate is applied in ``_minibatch_step``."""
        return optax.scale_by_adam(eps=self.adam_eps)

    def _q_step(self, params, carry: AgentCarry, obs: jax.Array, start: jax.Array, noise):
        """One step of B envs: obs [B, ...], start bool[B] -> (carry, Q float32[B, A])."""
        carry, q = self.network.apply(params, carry, obs[None], start[None], noise)
        return carry, q[0]

    # --- init -----------------------------------------------------------------------------------

    def init(self, rng: jax.Array) -> RunnerState:
        """Fresh params, optimiser, envs and carry."""
        return rollout_lib.fresh_state(self.network, self.optimizer, self.env, self.env_params, self.num_envs, rng)

    # --- rollout --------------------------------------------------------------------------------

    def _env_step(self, state: RunnerState, epsilon: jax.Array) -> tuple[RunnerState, tuple[Transition, dict]]:
        n = self.num_envs
        rng, k_noise, k_act, k_env, k_boot = jax.random.split(state.rng, 5)
        noise = self.network.sample_noise(k_noise, 1, n)
        carry, q = self._q_step(state.params, state.carry, state.last_obs, state.last_start, noise)
        action = epsilon_greedy(k_act, q, epsilon)
        step = rollout_lib.step_envs(self.env, self.env_params, k_env, state, action)

        # max_a Q(final observation) with the carry that processed the ending episode; only where truncated.
        def final_value():
            boot_noise = self.network.sample_noise(k_boot, 1, n)
            _, q_final = self._q_step(state.params, carry, step.final_obs, jnp.zeros((n,), bool), boot_noise)
            return jnp.max(q_final, axis=-1)

        transition = Transition(
            obs=state.last_obs.astype(self.obs_dtype),
            start=state.last_start,
            noise=jax.tree.map(lambda x: x[0], noise),
            action=action,
            q_taken=jnp.take_along_axis(q, action[:, None], axis=-1)[:, 0],
            q_max=jnp.max(q, axis=-1),
            reward=step.reward,
            terminated=step.terminated,
            truncated=step.truncated,
            bootstrap_value=rollout_lib.truncation_bootstrap(step.truncated, final_value),
        )
        state, stats = rollout_lib.advance(state, step, carry, rng)
        return state, (transition, stats)

    def rollout(self, state: RunnerState, epsilon: jax.Array) -> tuple[RunnerState, Rollout]:
        """Collect num_steps steps of every environment, epsilon-greedy on the current Q."""
        start_carry = state.carry
        step = lambda s, _: self._env_step(s, epsilon)  # noqa: E731
        state, (trajectory, stats) = jax.lax.scan(step, state, None, length=self.num_steps)
        rng, k_noise = jax.random.split(state.rng)
        noise = self.network.sample_noise(k_noise, 1, self.num_envs)
        _, last_q = self._q_step(state.params, state.carry, state.last_obs, state.last_start, noise)
        rollout = Rollout(
            trajectory=trajectory,
            start_carry=start_carry,
            last_q_max=jnp.max(last_q, axis=-1),
            stats=jax.tree.map(jnp.sum, stats),
        )
        return state.replace(rng=rng), rollout

    # --- loss and update ------------------------------------------------------------------------

    def replay(self, params, start_carry: AgentCarry, trajectory: Transition) -> jax.Array:
        """Re-run whole sequences from start_carry with the stored noise: Q(h_t, a_t) float32[T, n]."""
        _, q = self.network.apply(params, start_carry, trajectory.obs, trajectory.start, trajectory.noise)
        return jnp.take_along_axis(q, trajectory.action[..., None], axis=-1)[..., 0]

    def loss(
        self, params, start_carry: AgentCarry, trajectory: Transition, targets: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The Q(lambda) regression loss of whole sequences (see :func:`q_loss`): (loss, diagnostics)."""
        return q_loss(self.replay(params, start_carry, trajectory), targets)

    def _minibatch_step(self, carry, env_idx, hp, lr, rollout: Rollout, targets):
        params, opt_state = carry
        pick_t = lambda x: x[:, env_idx]  # noqa: E731  [T, N, ...] -> [T, n, ...]
        (_, aux), grads = jax.value_and_grad(self.loss, has_aux=True)(
            params,
            jax.tree.map(lambda x: x[env_idx], rollout.start_carry),
            jax.tree.map(pick_t, rollout.trajectory),
            pick_t(targets),
        )
        params, opt_state, grad_norm = gradient_step(
            self.optimizer, params, opt_state, grads, lr, hp.max_grad_norm, self.network.project_params
        )
        return (params, opt_state), {**aux, "grad_norm": grad_norm}

    def learning_rate(self, hp: PQNHyperparameters, update: jax.Array) -> jax.Array:
        """hp.lr, linearly annealed to 0 over num_updates when anneal_lr is on."""
        if self.anneal_lr:
            return hp.lr * (1.0 - update.astype(jnp.float32) / self.num_updates)
        return hp.lr

    def epsilon(self, hp: PQNHyperparameters, update: jax.Array) -> jax.Array:
        """The exploration epsilon of update ``update`` (see :func:`linear_epsilon`)."""
        return linear_epsilon(update, self.num_updates, hp.eps_start, hp.eps_finish, hp.eps_decay)

    def update(self, state: RunnerState, hp: PQNHyperparameters) -> tuple[RunnerState, dict[str, jax.Array]]:
        """One PQN update (rollout, Q(lambda) targets, epochs of minibatches): (state, scalar metrics)."""
        epsilon = self.epsilon(hp, state.update)
        state, rollout = self.rollout(state, epsilon)
        traj = rollout.trajectory
        targets = q_lambda_targets(
            traj.q_max,
            traj.reward,
            traj.terminated,
            traj.truncated,
            traj.bootstrap_value,
            rollout.last_q_max,
            hp.gamma,
            hp.q_lambda,
        )
        lr = self.learning_rate(hp, state.update)
        rng, k_epochs = jax.random.split(state.rng)
        step = lambda c, idx: self._minibatch_step(c, idx, hp, lr, rollout, targets)  # noqa: E731
        (params, opt_state), losses = rollout_lib.epochs_of_minibatches(
            step, (state.params, state.opt_state), k_epochs, self.num_envs, self.num_minibatches, self.update_epochs
        )
        finite = jnp.all(jnp.isfinite(losses["loss"])) & jnp.all(jnp.isfinite(losses["grad_norm"])) & all_finite(params)
        metrics = {
            **rollout.stats,
            **jax.tree.map(jnp.mean, losses),
            "target_mean": jnp.mean(targets),
            "epsilon": epsilon,
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
        """The agent for evaluation: argmax Q when ``greedy``, else epsilon-greedy with eval_epsilon."""
        epsilon = 0.0 if greedy else self.eval_epsilon
        return Policy(initialize_carry=self.network.initialize_carry, act=functools.partial(self.act, epsilon=epsilon))

    def memory_estimate(self, hp: PQNHyperparameters, num_runs: int) -> MemoryEstimate:
        """See ``shm_jax.algorithms.pqn.memory_estimate`` (shapes only; nothing compiles)."""
        return memory_estimate.estimate(self, hp, num_runs)

    # --- acting -----------------------------------------------------------------------------------

    def act(
        self,
        params,
        obs: jax.Array,
        carry: AgentCarry,
        start: jax.Array,
        rng: jax.Array,
        epsilon: float = 0.0,
        noise: Any = None,
    ) -> tuple[jax.Array, AgentCarry]:
        """One step for B envs: obs [B, ...], start bool[B] -> (action int32[B], new carry).

        ``rng`` draws the core's noise (unless ``noise`` from ``network.sample_noise(_, 1, B)`` is given) and the
        epsilon-greedy choice; ``epsilon`` 0 acts greedily.
        """
        k_noise, k_act = jax.random.split(rng)
        if noise is None:
            noise = self.network.sample_noise(k_noise, 1, start.shape[0])
        carry, q = self._q_step(params, carry, obs, start, noise)
        return epsilon_greedy(k_act, q, epsilon), carry
