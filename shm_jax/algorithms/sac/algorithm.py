"""Recurrent SAC-Discrete and SAC (pomdp-baselines' ``sacd`` / ``sac``) as one object, jitted end to end.

``SAC`` holds what shapes the program (environment, actor and critic networks, sizes, switches); the numbers
a sweep varies are a separate pytree, ``hp`` (:class:`SACHyperparameters`, float32 scalars).

``init`` draws the parameters and fills the replay buffer with ``warmup_episodes`` episodes of uniformly
random actions. One ``update`` is one iteration of pomdp-baselines' loop: collect ``num_envs`` whole episodes
(T steps each, from fresh resets, the actor sampling its stochastic policy; steps after an episode's end are
masked), add them to the buffer (``shm_jax.algorithms.replay``), then ``updates_per_iter`` gradient updates,
each on ``batch_size`` whole episodes sampled uniformly with replacement:

1. every network runs once over the T + 1 observations o_0..o_T from a zero memory state (no stored carries,
   no burn-in, full-episode backprop); outputs [:-1] are the values at h_t, outputs [1:] the bootstrap values;
2. the critic steps on the twin masked MSE to y_t (:mod:`losses`: the target critic and the current actor at
   t + 1); 3. the actor steps on its loss under the UPDATED critic (held fixed); 4. log(alpha) steps if
   autotuned; 5. the target critic moves by Polyak averaging (tau). Adam, no gradient clipping by default.

Observations are the task's own (``envs.make``): the previous action and start flag come from
``--prev-action``, the previous reward from the meta tasks' observation, as pomdp-baselines' inputs.

SHM's random theta: every network pass draws fresh per-step noise (the SHM authors' code redraws theta per
(episode, step) in every forward pass); the actor's noise during collection is not stored, because no pass
re-runs a collected episode with carries.

Deviations from pomdp-baselines, all by choice: episodes are collected num_envs at a time (same updates per
env step); the warm-up burst of int(warm-up steps x ratio) updates is not run (about 100 updates before
thousands); the actor's forward pass of an update serves both the target's pi(h_{t+1}) and the actor loss
(pomdp-baselines runs it twice, with the same parameters); layers start from the agent's init scheme.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from shm_jax.agents.distributions import ActionSpec
from shm_jax.agents.heads import Actor, TwinQ
from shm_jax.agents.parts import AgentParts
from shm_jax.agents.trunk import AgentCarry
from shm_jax.algorithms import replay
from shm_jax.algorithms.base import (
    MemoryEstimate,
    Policy,
    ScanTraining,
    all_finite,
    gradient_step,
    observation_storage_dtype,
)
from shm_jax.algorithms.sac import losses, memory_estimate
from shm_jax.algorithms.sac.config import SACDConfig, SACHyperparameters
from shm_jax.options import ConfigError

PROBE_EPISODES = 64
PROBE_MAX_STEPS = 10_000


class Learner(struct.PyTreeNode):
    """What one gradient update reads and writes: the actor, critic and target-critic parameters, their Adam states
    (actor_opt, critic_opt; alpha_opt for log(alpha)) and log_alpha_offset: float32, log(alpha) - log(hp.alpha)
    (0 unless autotuned)."""

    actor_params: Any
    critic_params: Any
    target_params: Any
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    log_alpha_offset: jax.Array


class SACState(struct.PyTreeNode):
    """Everything a run needs to continue bit-exactly: the learner, the episode replay buffer, the PRNG key and the
    number of iterations done (int32)."""

    learner: Learner
    buffer: replay.EpisodeBuffer
    rng: jax.Array
    update: jax.Array


def episode_length(env: Any, env_params: Any) -> int:
    """The task's longest episode: its declared ``max_steps_in_episode``, else the longest of PROBE_EPISODES
    episodes of uniformly random actions (exact for the fixed-length credit and meta tasks), at most
    PROBE_MAX_STEPS. Host side; runs one small jitted loop."""
    declared = getattr(env_params, "max_steps_in_episode", None)
    if isinstance(declared, (int, np.integer)):
        return int(declared)
    space = env.action_space(env_params)
    n = PROBE_EPISODES

    def body(c):
        rng, state, alive, length, t = c
        rng, k_act, k_step = jax.random.split(rng, 3)
        action = jax.vmap(space.sample)(jax.random.split(k_act, n))
        _, state, _, terminated, truncated, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_step, n), state, action, env_params
        )
        length = length + alive
        return rng, state, alive & ~(terminated | truncated), length, t + 1

    @jax.jit
    def probe(rng):
        rng, k_reset = jax.random.split(rng)
        _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, n), env_params)
        init = (rng, state, jnp.ones(n, bool), jnp.zeros(n, jnp.int32), jnp.int32(0))
        _, _, _, length, _ = jax.lax.while_loop(lambda c: jnp.any(c[2]) & (c[4] < PROBE_MAX_STEPS), body, init)
        return jnp.max(length)

    return int(probe(jax.random.PRNGKey(0)))


def _adam(eps: float = 1e-8) -> optax.GradientTransformation:
    return optax.scale_by_adam(eps=eps)


@dataclasses.dataclass(frozen=True)
class SAC(ScanTraining):
    """Recurrent SAC(-Discrete) for one run (no vmap inside); every method is pure and jittable.

    env, env_params: a gymnax-style environment (auto-reset ``step`` with ``final_observation`` in info); actor,
    critic: the networks (separate trunks and memories; the target critic shares the critic's module);
    action_spec: Discrete (sacd) or Box (sac); episode_length: T; num_envs: episodes per iteration; num_updates:
    iterations of a whole run; updates_per_iter, batch_size: gradient updates per iteration and episodes per update;
    capacity: buffer slots (episodes); warmup_episodes: random episodes in init; autotune_alpha, terminal,
    max_grad_norm: static switches; obs_dtype: how observations are stored (uint8 for pixel-only observations).
    """

    env: Any
    env_params: Any
    actor: Actor
    critic: TwinQ
    action_spec: ActionSpec
    episode_length: int
    num_envs: int
    num_updates: int
    updates_per_iter: int
    batch_size: int
    capacity: int
    warmup_episodes: int
    autotune_alpha: bool
    terminal: str
    max_grad_norm: float
    obs_dtype: Any

    @classmethod
    def from_config(cls, config: SACDConfig, *, env: Any, env_params: Any, agent: AgentParts) -> SAC:
        """SAC for ``config`` on ``env``; a one-line ConfigError for an action space the section does not take,
        a bad memory choice or a budget below one iteration."""
        spec = agent.action_spec
        wanted = "discrete" if config.name == "sacd" else "box"
        if spec.kind != wanted:
            other = "sac" if wanted == "discrete" else "sacd"
            raise ConfigError(
                "algo",
                f"{config.name} needs a {wanted.replace('box', 'Box').replace('discrete', 'Discrete')} action "
                f"space, this environment's is {spec.kind} (use --algo {other} or ppo)",
            )
        actor_trunk = agent.make_trunk(config.actor_memory, config.actor_memory_kwargs or None, "actor_memory")
        critic_trunk = agent.make_trunk(config.critic_memory, config.critic_memory_kwargs or None, "critic_memory")
        heads = dict(
            head_hidden_size=agent.head_hidden_size, head_layers=config.head_layers, shortcut=config.obs_shortcut
        )
        actor = Actor.on(actor_trunk, action_spec=spec, **heads)
        if spec.kind == "discrete":
            critic = TwinQ.on(critic_trunk, num_actions=spec.sizes[0], **heads)
        else:
            if not config.obs_shortcut:
                raise ConfigError("obs_shortcut", "sac's critic reads the action through the shortcut; keep it on")
            critic = TwinQ.on(critic_trunk, action_size=spec.sizes[0], **heads)

        T = config.episode_length or episode_length(env, env_params)
        steps_per_iter = config.num_envs * T
        warmup_steps = config.warmup_episodes * T
        iterations = (config.total_timesteps - warmup_steps) // steps_per_iter
        if iterations < 1:
            raise ConfigError(
                "total_timesteps",
                f"must cover warm-up ({config.warmup_episodes} x {T} steps) and one iteration (num_envs x T = "
                f"{steps_per_iter}), at least {warmup_steps + steps_per_iter}, got {config.total_timesteps}",
            )
        capacity = replay.episode_capacity(config.buffer_size, T, config.warmup_episodes + iterations * config.num_envs)
        if capacity < max(config.num_envs, config.warmup_episodes):
            raise ConfigError(
                "buffer_size",
                f"holds {capacity} episodes of {T + 1} rows; it must hold num_envs and warmup_episodes "
                f"(at least {max(config.num_envs, config.warmup_episodes) * (T + 1)} rows), got {config.buffer_size}",
            )
        return cls(
            env=env,
            env_params=env_params,
            actor=actor,
            critic=critic,
            action_spec=spec,
            episode_length=T,
            num_envs=config.num_envs,
            num_updates=iterations,
            updates_per_iter=config.updates_per_iter or math.ceil(config.replay_ratio * steps_per_iter),
            batch_size=config.batch_size,
            capacity=capacity,
            warmup_episodes=config.warmup_episodes,
            autotune_alpha=config.autotune_alpha,
            terminal=config.terminal,
            max_grad_norm=config.max_grad_norm,
            obs_dtype=observation_storage_dtype(actor_trunk.pixel_features, env, env_params),
        )

    @property
    def discrete(self) -> bool:
        return self.action_spec.kind == "discrete"

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.episode_length

    # --- init -----------------------------------------------------------------------------------

    def _obs_struct(self) -> jax.ShapeDtypeStruct:
        obs, _ = jax.eval_shape(self.env.reset, jax.random.PRNGKey(0), self.env_params)
        return jax.ShapeDtypeStruct(obs.shape, self.obs_dtype)

    def _action_struct(self) -> jax.ShapeDtypeStruct:
        if self.discrete:
            return jax.ShapeDtypeStruct((), jnp.int32)
        return jax.ShapeDtypeStruct((self.action_spec.sizes[0],), jnp.float32)

    def init(self, rng: jax.Array) -> SACState:
        """Fresh networks, optimisers and a buffer holding warmup_episodes random episodes."""
        rng, k_actor, k_critic, k_warm = jax.random.split(rng, 4)
        obs = jnp.zeros((1, 1, *self._obs_struct().shape), jnp.float32)
        starts = jnp.ones((1, 1), bool)
        actor_params = self.actor.init(
            k_actor, self.actor.initialize_carry(1), obs, starts, self.actor.sample_noise(k_actor, 1, 1)
        )
        action = None if self.discrete else jnp.zeros((1, 1, self.action_spec.sizes[0]), jnp.float32)
        critic_params = self.critic.init(
            k_critic, self.critic.initialize_carry(1), obs, starts, self.critic.sample_noise(k_critic, 1, 1), action
        )
        log_alpha_offset = jnp.float32(0.0)
        buffer = replay.empty(self.capacity, self.episode_length, self._obs_struct(), self._action_struct())
        if self.warmup_episodes:
            episodes, _ = self.collect(actor_params, k_warm, self.warmup_episodes, random=True)
            buffer = replay.add(buffer, episodes)
        learner = Learner(
            actor_params=actor_params,
            critic_params=critic_params,
            target_params=critic_params,
            actor_opt=_adam().init(actor_params),
            critic_opt=_adam().init(critic_params),
            alpha_opt=_adam().init(log_alpha_offset),
            log_alpha_offset=log_alpha_offset,
        )
        return SACState(learner=learner, buffer=buffer, rng=rng, update=jnp.int32(0))

    # --- acting and collection ------------------------------------------------------------------

    def env_action(self, action: jax.Array) -> jax.Array:
        """What the environment gets: the index (Discrete), or the tanh action in [-1, 1] mapped onto the Box bounds."""
        if self.discrete:
            return action
        low, high = jnp.asarray(self.action_spec.low), jnp.asarray(self.action_spec.high)
        return low + 0.5 * (action + 1.0) * (high - low)

    def sample_action(self, dist: Any, rng: jax.Array, greedy: bool = False) -> jax.Array:
        """An action from the actor's output for one step: int32[B] (argmax / categorical) or float32[B, k] in
        [-1, 1] (tanh(mean) / a tanh-Gaussian sample)."""
        if self.discrete:
            if greedy:
                return jnp.argmax(dist, axis=-1).astype(jnp.int32)
            return jax.random.categorical(rng, dist, axis=-1).astype(jnp.int32)
        mean, log_std = dist
        return jnp.tanh(mean) if greedy else losses.tanh_gaussian(mean, log_std, rng)[0]

    def _random_action(self, rng: jax.Array, n: int) -> jax.Array:
        if self.discrete:
            return jax.random.randint(rng, (n,), 0, self.action_spec.sizes[0], jnp.int32)
        return jax.random.uniform(rng, (n, self.action_spec.sizes[0]), jnp.float32, -1.0, 1.0)

    def collect(
        self, actor_params: Any, rng: jax.Array, num_episodes: int, random: bool = False
    ) -> tuple[replay.Episodes, dict[str, jax.Array]]:
        """``num_episodes`` episodes of T steps from fresh resets, acting with the stochastic actor (uniformly random
        actions when ``random``): (Episodes batch-major [E, ...], episode statistics summed)."""
        n, T = num_episodes, self.episode_length
        k_reset, k_steps = jax.random.split(rng)
        obs, env_state = jax.vmap(self.env.reset, in_axes=(0, None))(jax.random.split(k_reset, n), self.env_params)
        zeros = jnp.zeros((n,), jnp.float32)
        init = (obs, env_state, self.actor.initialize_carry(n), jnp.ones((n,), bool), zeros, jnp.zeros((n,), bool))

        def step(c, key):
            obs, env_state, carry, alive, ret, success = c
            k_noise, k_act, k_env = jax.random.split(key, 3)
            if random:
                action = self._random_action(k_act, n)
            else:
                noise = self.actor.sample_noise(k_noise, 1, n)
                start = (carry.step < 0)[None]  # only the first step starts an episode
                carry, dist = self.actor.apply(actor_params, carry, obs[None], start, noise)
                action = self.sample_action(jax.tree.map(lambda x: x[0], dist), k_act)
            next_obs, env_state, reward, terminated, truncated, info = jax.vmap(self.env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_env, n), env_state, self.env_action(action), self.env_params
            )
            ended = terminated.astype(bool) | truncated.astype(bool)
            final = info["final_observation"].reshape(obs.shape).astype(obs.dtype)
            terminal = terminated.astype(bool)
            if self.terminal == "in_goal" or (self.terminal == "auto" and "in_goal" in info):
                terminal = terminal | info["in_goal"].astype(bool)
            reward = reward.astype(jnp.float32)
            record = dict(
                next_obs=jnp.where(ended.reshape(n, *([1] * (obs.ndim - 1))), final, next_obs.reshape(obs.shape)),
                action=action,
                reward=jnp.where(alive, reward, 0.0),
                done=terminal & alive,
                mask=alive,
                ended=ended & alive,
            )
            if "success" in info:
                success = jnp.where(ended & alive, info["success"].astype(bool), success)
            ret = ret + jnp.where(alive, reward, 0.0)
            return (next_obs.reshape(obs.shape), env_state, carry, alive & ~ended, ret, success), record

        (_, _, _, alive, ret, success), rec = jax.lax.scan(step, init, jax.random.split(k_steps, T))
        finished = ~alive
        batch_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731  [T, E, ...] -> [E, T, ...]
        all_obs = jnp.concatenate([obs[None], rec["next_obs"]], axis=0)
        episodes = replay.Episodes(
            obs=batch_major(all_obs).astype(self.obs_dtype),
            action=batch_major(rec["action"]),
            reward=batch_major(rec["reward"]),
            done=batch_major(rec["done"]),
            mask=batch_major(rec["mask"]),
        )
        stats = {
            "episode_return_sum": jnp.sum(jnp.where(finished, ret, 0.0)),
            "episode_length_sum": jnp.sum(jnp.where(finished, jnp.sum(rec["mask"], axis=0), 0)),
            "episode_count": jnp.sum(finished),
            "success_sum": jnp.sum(finished & success),
            "reward_sum": jnp.sum(rec["reward"]),
        }
        return episodes, stats

    # --- one gradient update --------------------------------------------------------------------

    def alpha(self, hp: SACHyperparameters, log_alpha_offset: jax.Array) -> jax.Array:
        return hp.alpha * jnp.exp(log_alpha_offset) if self.autotune_alpha else hp.alpha

    def target_entropy(self, hp: SACHyperparameters) -> jax.Array:
        if self.discrete:
            return hp.target_entropy_scale * math.log(self.action_spec.sizes[0])
        return -hp.target_entropy_scale * self.action_spec.sizes[0]

    def _step(self, params, opt_state, grads, lr, project):
        max_norm = self.max_grad_norm or None  # 0: no clipping (pomdp-baselines)
        return gradient_step(_adam(), params, opt_state, grads, lr, max_norm, project)

    def _pass(self, network, params, batch: replay.Episodes, noise, action=None):
        """One network over the T + 1 observations of ``batch`` from a zero state: its outputs [T + 1, B, ...]."""
        starts = jnp.zeros(batch.obs.shape[:2], bool).at[0].set(True)
        carry = network.initialize_carry(batch.obs.shape[1])
        args = (carry, batch.obs, starts, noise) + ((action,) if action is not None else ())
        return network.apply(params, *args)[1]

    def gradient_step(
        self, learner: Learner, batch: replay.Episodes, hp: SACHyperparameters, rng: jax.Array
    ) -> tuple[Learner, dict[str, jax.Array]]:
        """One update on a time-major batch (obs [T + 1, B, ...], the rest [T, B, ...]): critic, actor, alpha,
        then the target. Returns (learner, scalar metrics)."""
        actor_params, critic_params, target_params = learner.actor_params, learner.critic_params, learner.target_params
        actor_opt, critic_opt, alpha_opt = learner.actor_opt, learner.critic_opt, learner.alpha_opt
        log_alpha_offset = learner.log_alpha_offset
        T1, B = batch.obs.shape[:2]
        k_a, k_t, k_c, k_c2, k_next, k_now = jax.random.split(rng, 6)
        alpha = self.alpha(hp, log_alpha_offset)
        mask = batch.mask
        dist, actor_vjp = jax.vjp(
            lambda p: self._pass(self.actor, p, batch, self.actor.sample_noise(k_a, T1, B)), actor_params
        )
        dist_fixed = jax.lax.stop_gradient(dist)
        pad = lambda a: jnp.concatenate([a, jnp.zeros_like(a[:1])], axis=0)  # noqa: E731  [T] -> [T + 1] rows

        if self.discrete:
            probs, log_probs = losses.categorical(dist_fixed)
            tq1, tq2 = self._pass(self.critic, target_params, batch, self.critic.sample_noise(k_t, T1, B))
            target = losses.sacd_target(
                batch.reward, batch.done, probs[1:], log_probs[1:], tq1[1:], tq2[1:], alpha, hp.gamma
            )

            def critic_objective(p):
                q1, q2 = self._pass(self.critic, p, batch, self.critic.sample_noise(k_c, T1, B))
                taken = lambda q: jnp.take_along_axis(q[:-1], batch.action[..., None], axis=-1)[..., 0]  # noqa: E731
                return losses.critic_loss(taken(q1), taken(q2), target, mask), losses.masked_mean(taken(q1), mask)
        else:
            next_action, next_log_prob = losses.tanh_gaussian(dist_fixed[0][1:], dist_fixed[1][1:], k_next)
            tq1, tq2 = self._pass(
                self.critic, target_params, batch, self.critic.sample_noise(k_t, T1, B), pad_front(next_action)
            )
            target = losses.sac_target(batch.reward, batch.done, next_log_prob, tq1[1:], tq2[1:], alpha, hp.gamma)

            def critic_objective(p):
                q1, q2 = self._pass(self.critic, p, batch, self.critic.sample_noise(k_c, T1, B), pad(batch.action))
                return losses.critic_loss(q1[:-1], q2[:-1], target, mask), losses.masked_mean(q1[:-1], mask)

        (critic_loss, q_mean), critic_grads = jax.value_and_grad(critic_objective, has_aux=True)(critic_params)
        critic_params, critic_opt, critic_grad_norm = self._step(
            critic_params, critic_opt, critic_grads, hp.lr, self.critic.project_params
        )

        critic_noise = self.critic.sample_noise(k_c2, T1, B)
        if self.discrete:
            q1, q2 = self._pass(self.critic, critic_params, batch, critic_noise)

            def actor_objective(logits):
                probs, log_probs = losses.categorical(logits[:-1])
                return losses.sacd_actor_loss(probs, log_probs, q1[:-1], q2[:-1], alpha, mask)
        else:

            def actor_objective(d):
                action, log_prob = losses.tanh_gaussian(d[0][:-1], d[1][:-1], k_now)
                q1, q2 = self._pass(self.critic, critic_params, batch, critic_noise, pad(action))
                return losses.sac_actor_loss(log_prob, q1[:-1], q2[:-1], alpha, mask)

        (actor_loss, mean_log_prob), dist_grads = jax.value_and_grad(actor_objective, has_aux=True)(dist)
        (actor_grads,) = actor_vjp(dist_grads)
        actor_params, actor_opt, actor_grad_norm = self._step(
            actor_params, actor_opt, actor_grads, hp.lr, self.actor.project_params
        )

        if self.autotune_alpha:
            base = jnp.log(hp.alpha)
            alpha_grad = jax.grad(lambda off: losses.alpha_loss(base + off, mean_log_prob, self.target_entropy(hp)))(
                log_alpha_offset
            )
            direction, alpha_opt = _adam().update(alpha_grad, alpha_opt, log_alpha_offset)
            log_alpha_offset = log_alpha_offset - hp.lr * direction

        target_params = losses.polyak(target_params, critic_params, hp.tau)
        metrics = {
            "critic_loss": critic_loss,
            "actor_loss": actor_loss,
            "q_mean": q_mean,
            "target_mean": losses.masked_mean(target, mask),
            "entropy": -mean_log_prob,
            "alpha": alpha,
            "critic_grad_norm": critic_grad_norm,
            "actor_grad_norm": actor_grad_norm,
        }
        learner = Learner(
            actor_params=actor_params,
            critic_params=critic_params,
            target_params=target_params,
            actor_opt=actor_opt,
            critic_opt=critic_opt,
            alpha_opt=alpha_opt,
            log_alpha_offset=log_alpha_offset,
        )
        return learner, metrics

    # --- one iteration --------------------------------------------------------------------------

    def update(self, state: SACState, hp: SACHyperparameters) -> tuple[SACState, dict[str, jax.Array]]:
        """One iteration: collect num_envs episodes, add them, then updates_per_iter gradient updates."""
        rng, k_collect, k_updates = jax.random.split(state.rng, 3)
        episodes, stats = self.collect(state.learner.actor_params, k_collect, self.num_envs)
        buffer = replay.add(state.buffer, episodes)

        def one(learner, key):
            k_sample, k_step = jax.random.split(key)
            return self.gradient_step(learner, replay.sample(buffer, k_sample, self.batch_size), hp, k_step)

        keys = jax.random.split(k_updates, self.updates_per_iter)
        learner, history = jax.lax.scan(one, state.learner, keys)
        finite = (
            jnp.all(jnp.isfinite(history["critic_loss"]))
            & jnp.all(jnp.isfinite(history["actor_loss"]))
            & all_finite((learner.actor_params, learner.critic_params, learner.log_alpha_offset))
        )
        metrics = {**stats, **jax.tree.map(jnp.mean, history), "finite": finite}
        return SACState(learner=learner, buffer=buffer, rng=rng, update=state.update + 1), metrics

    # --- what the batched program and the host loop ask -------------------------------------------

    def per_env_leaves(self, state: SACState) -> SACState:
        """Nothing: environments start afresh every iteration, so no state leaf has an environment axis."""
        return jax.tree.map(lambda _: False, state)

    def agent_params(self, state: SACState) -> Any:
        return state.learner.actor_params

    def policy(self, greedy: bool) -> Policy:
        """The actor for evaluation: argmax / tanh(mean) when ``greedy``, else sampled."""
        return Policy(initialize_carry=self.actor.initialize_carry, act=functools.partial(self.act, greedy=greedy))

    def act(
        self, params, obs: jax.Array, carry: AgentCarry, start: jax.Array, rng: jax.Array, greedy: bool = False
    ) -> tuple[jax.Array, AgentCarry]:
        """One step for B envs: obs [B, ...], start bool[B] -> (environment action [B, ...], new carry)."""
        k_noise, k_act = jax.random.split(rng)
        noise = self.actor.sample_noise(k_noise, 1, start.shape[0])
        carry, dist = self.actor.apply(params, carry, obs[None], start[None], noise)
        action = self.sample_action(jax.tree.map(lambda x: x[0], dist), k_act, greedy)
        return self.env_action(action), carry

    def memory_estimate(self, hp: SACHyperparameters, num_runs: int) -> MemoryEstimate:
        """See ``shm_jax.algorithms.sac.memory_estimate`` (shapes only; nothing compiles)."""
        return memory_estimate.estimate(self, hp, num_runs)


def pad_front(x: jax.Array) -> jax.Array:
    """[T, ...] -> [T + 1, ...] with a zero row first (values at t + 1 sit at index t + 1)."""
    return jnp.concatenate([jnp.zeros_like(x[:1]), x], axis=0)
