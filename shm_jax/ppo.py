"""Recurrent PPO as pure, jittable functions (PureJaxRL layout, specs/recurrent_ppo.md §4-§7).

``make_train(config) -> Trainer``. One update = rollout (``lax.scan`` over ``num_steps`` of vmapped
env steps, memory carry threaded, core noise sampled per step and stored) -> GAE -> epochs of
minibatches, each minibatch holding whole sequences of a subset of environments re-run from the
carry stored at the start of the rollout.

Alignment (the classic bug, recurrent_ppo.md §5/§7): the transition stored at step t holds the start
flag s_t of its own observation o_t; the carry is reset before o_t when s_t = 1; s_{t+1} = terminated_t
OR truncated_t. GAE: delta_t = r_t + gamma (1 - terminated_t) V'_{t+1} - V_t with V'_{t+1} =
V(final_observation_t) (computed in the rollout with the carry that processed the ending episode)
where truncated_t, else V(o_{t+1}); the trace is cut at every boundary.

Numeric hyperparameters (``HParams``) are traced leaves, so seeds and sweeps are plain vmaps:
``jax.vmap(jax.vmap(trainer.train, (0, None)), (None, 0))(rngs, hparams_grid)`` — or use
``make_batched_train(config)``.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from shm_jax import networks
from shm_jax.config import GYMNAX_PREFIX, PROBE_PREFIX, SWEEPABLE, TrainConfig, validate
from shm_jax.networks import ActionSpec, ActorCritic, AgentCarry


# ----------------------------------------------------------------------------------------------
# Hyperparameters and state


class HParams(struct.PyTreeNode):
    """The sweepable hyperparameters, float32 scalar leaves (add a leading axis to vmap)."""

    lr: jax.Array
    ent_coef: jax.Array
    clip_eps: jax.Array
    gamma: jax.Array
    gae_lambda: jax.Array
    vf_coef: jax.Array
    max_grad_norm: jax.Array


def hparams_from_config(config: TrainConfig) -> HParams:
    """HParams with the config's values (float32 scalars)."""
    return HParams(**{name: jnp.float32(getattr(config, name)) for name in SWEEPABLE})


class RunnerState(struct.PyTreeNode):
    """Everything a run needs to continue bit-exactly (leading axis N = num_envs where per-env).

    params, opt_state: network parameters and Adam state; env_state: vmapped env state;
    last_obs: float32[N, ...] the next observation to act on; last_start: bool[N] its start flag;
    carry: AgentCarry (memory carry [N, ...], step int32[N]) before last_obs;
    episode_return: float32[N], episode_length: int32[N] running totals of the current episodes;
    rng: PRNG key; update: int32 number of updates done.
    """

    params: Any
    opt_state: Any
    env_state: Any
    last_obs: jax.Array
    last_start: jax.Array
    carry: AgentCarry
    episode_return: jax.Array
    episode_length: jax.Array
    rng: jax.Array
    update: jax.Array


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


# ----------------------------------------------------------------------------------------------
# Environments


def make_env(config: TrainConfig):
    """(env, env_params) for ``config.env_id``: ``probe:<Name>``, ``gymnax:<id>`` or an ``envs`` id."""
    env_id, overrides = config.env_id, dict(config.env_overrides)
    if env_id.startswith(PROBE_PREFIX):
        from shm_jax.probes import make_probe

        return make_probe(env_id[len(PROBE_PREFIX):], **overrides)
    if env_id.startswith(GYMNAX_PREFIX):
        import gymnax

        name = env_id[len(GYMNAX_PREFIX):]
        if name not in gymnax.registered_envs:
            raise ValueError(f"env_id: unknown gymnax environment {name!r}; valid: {', '.join(gymnax.registered_envs)}")
        env, params = gymnax.make(name)
        if overrides:
            fields = set(params.__dataclass_fields__)
            bad = sorted(set(overrides) - fields)
            if bad:
                raise ValueError(f"env_overrides: unknown override {bad[0]!r} for {name}; EnvParams fields: "
                                 f"{', '.join(sorted(fields))}")
            params = params.replace(**overrides)
        return env, params
    import envs

    envs.resolve(env_id)  # one-line ValueError naming the closest ids
    if not hasattr(envs, "make"):
        raise ValueError(f"env_id: envs.make is not available yet; use a probe: or gymnax: id")
    return envs.make(env_id, prev_action=config.prev_action, **overrides)


def pixel_feature_count(config: TrainConfig) -> int:
    """How many leading features of the flat observation are uint8 pixels the network divides by 255.

    ``config.pixel_scale``: False -> 0; None (auto) -> the raw observation's size when it is one uint8
    array, else 0; True -> the raw observation's size whatever its dtype. ``envs``' flatten keeps the raw
    observation first, before an appended previous action and start flag.
    """
    if config.pixel_scale is False:
        return 0
    if config.env_id.startswith((PROBE_PREFIX, GYMNAX_PREFIX)):
        env, params = make_env(config)
    else:
        import envs

        env, params = envs.make(config.env_id, prev_action=False, flatten=False, log=False,
                                **dict(config.env_overrides))
    obs, _ = jax.eval_shape(env.reset, jax.random.PRNGKey(0), params)
    leaves = jax.tree.leaves(obs)
    if len(leaves) != 1 or (config.pixel_scale is None and leaves[0].dtype != jnp.uint8):
        return 0
    return int(np.prod(leaves[0].shape, dtype=np.int64))


def make_network(config: TrainConfig, action_spec: ActionSpec, pixel_features: int = 0) -> ActorCritic:
    """The ActorCritic for ``config`` (memory core built with ``make_memory``)."""
    from shm_jax.memory import make_memory

    return ActorCritic(
        memory=make_memory(config.memory, dtype=config.precision, **dict(config.memory_kwargs)),
        action_spec=action_spec,
        feature_size=config.feature_size,
        feature_norm=config.feature_norm,
        time_encoding=config.time_encoding,
        time_encoding_max_len=config.time_encoding_max_len,
        pre_size=config.pre_size,
        post_size=config.post_size,
        head_hidden_size=config.head_hidden_size,
        pixel_features=pixel_features,
        dtype=config.precision,
    )


# ----------------------------------------------------------------------------------------------
# GAE


def compute_gae(
    values: jax.Array,
    rewards: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    bootstrap_values: jax.Array,
    last_value: jax.Array,
    gamma: jax.Array,
    gae_lambda: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Advantages and value targets, float32[T, N] each.

    values, rewards, bootstrap_values: float32[T, N]; terminated, truncated: bool[T, N];
    last_value: float32[N] = V(o_T). Row t uses V(o_{t+1}) = values[t + 1] (last_value at the end),
    replaced by bootstrap_values[t] where truncated[t]; no bootstrap where terminated[t];
    the lambda trace is cut where terminated[t] or truncated[t].
    """
    next_values = jnp.concatenate([values[1:], last_value[None]], axis=0)
    next_values = jnp.where(truncated, bootstrap_values, next_values)
    not_terminated = 1.0 - terminated.astype(jnp.float32)
    continues = 1.0 - jnp.logical_or(terminated, truncated).astype(jnp.float32)
    deltas = rewards + gamma * not_terminated * next_values - values

    def backward(gae, inputs):
        delta, cont = inputs
        gae = delta + gamma * gae_lambda * cont * gae
        return gae, gae

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(last_value), (deltas, continues), reverse=True)
    return advantages, advantages + values


# ----------------------------------------------------------------------------------------------
# The trainer


@dataclasses.dataclass(frozen=True)
class Trainer:
    """Pure functions of one run (no vmap inside). See the module docstring."""

    config: TrainConfig
    env: Any
    env_params: Any
    network: ActorCritic
    action_spec: ActionSpec
    num_updates: int
    steps_per_update: int
    init: Callable
    rollout: Callable
    update: Callable
    train_chunk: Callable
    train: Callable
    act: Callable
    evaluate_sequence: Callable
    initialize_carry: Callable
    sample_noise: Callable


def make_train(config: TrainConfig) -> Trainer:
    """Build the pure training functions for ``config`` (validated first)."""
    validate(config)
    env, env_params = make_env(config)
    spec = networks.action_spec_from_space(env.action_space(env_params))
    network = make_network(config, spec, pixel_feature_count(config))
    num_envs, num_steps = config.num_envs, config.num_steps
    steps_per_update = num_envs * num_steps
    num_updates = config.total_timesteps // steps_per_update
    envs_per_minibatch = num_envs // config.num_minibatches
    optimizer = optax.scale_by_adam(eps=config.adam_eps)

    def apply(params, carry, obs, starts, noise):
        return network.apply(params, carry, obs, starts, noise)

    vmapped_reset = jax.vmap(env.reset, in_axes=(0, None))
    vmapped_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    # --- init ---------------------------------------------------------------------------------
    def init(rng: jax.Array, hparams: HParams) -> RunnerState:
        """Fresh params, optimiser, envs and carry. hparams is unused (kept for a uniform signature)."""
        del hparams
        rng, k_params, k_reset, k_noise = jax.random.split(rng, 4)
        obs, env_state = vmapped_reset(jax.random.split(k_reset, num_envs), env_params)
        starts = jnp.ones((num_envs,), bool)
        carry = network.initialize_carry(num_envs)
        noise = network.sample_noise(k_noise, 1, num_envs)
        params = network.init(k_params, carry, obs[None], starts[None], noise)
        return RunnerState(
            params=params,
            opt_state=optimizer.init(params),
            env_state=env_state,
            last_obs=obs,
            last_start=starts,
            carry=carry,
            episode_return=jnp.zeros((num_envs,), jnp.float32),
            episode_length=jnp.zeros((num_envs,), jnp.int32),
            rng=rng,
            update=jnp.int32(0),
        )

    # --- rollout ------------------------------------------------------------------------------
    def env_step(state: RunnerState, _):
        rng, k_noise, k_act, k_env, k_boot = jax.random.split(state.rng, 5)
        noise = network.sample_noise(k_noise, 1, num_envs)
        carry, dist, value = apply(state.params, state.carry, state.last_obs[None], state.last_start[None], noise)
        dist = jax.tree.map(lambda x: x[0], dist)
        action = networks.sample_action(spec, dist, k_act)
        logp = networks.log_prob(spec, dist, action)
        obs, env_state, reward, terminated, truncated, info = vmapped_step(
            jax.random.split(k_env, num_envs), state.env_state, networks.env_action(spec, action), env_params)
        reward = reward.astype(jnp.float32)
        terminated, truncated = terminated.astype(bool), truncated.astype(bool)
        done = jnp.logical_or(terminated, truncated)

        # V(final observation) with the carry that processed the ending episode; only where truncated.
        def truncation_value():
            boot_noise = network.sample_noise(k_boot, 1, num_envs)
            final_obs = info["final_observation"].reshape(state.last_obs.shape).astype(state.last_obs.dtype)
            _, _, v = apply(state.params, carry, final_obs[None], jnp.zeros((1, num_envs), bool), boot_noise)
            return jnp.where(truncated, v[0], 0.0)

        bootstrap_value = jax.lax.cond(jnp.any(truncated), truncation_value, lambda: jnp.zeros((num_envs,)))

        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1
        success = info.get("success")
        stats = {
            "episode_return_sum": jnp.sum(jnp.where(done, episode_return, 0.0)),
            "episode_length_sum": jnp.sum(jnp.where(done, episode_length, 0)),
            "episode_count": jnp.sum(done),
            "success_sum": jnp.sum(jnp.logical_and(done, success)) if success is not None else jnp.int32(0),
            "reward_sum": jnp.sum(reward),
        }
        transition = Transition(
            obs=state.last_obs, start=state.last_start, noise=jax.tree.map(lambda x: x[0], noise),
            action=action, log_prob=logp, value=value[0], reward=reward, terminated=terminated,
            truncated=truncated, bootstrap_value=bootstrap_value)
        state = state.replace(
            env_state=env_state, last_obs=obs.reshape(state.last_obs.shape).astype(state.last_obs.dtype),
            last_start=done, carry=carry, episode_return=jnp.where(done, 0.0, episode_return),
            episode_length=jnp.where(done, 0, episode_length), rng=rng)
        return state, (transition, stats)

    def rollout(state: RunnerState):
        """Collect num_steps steps. Returns (state, trajectory Transition[T, N], start carry, last_value[N], stats)."""
        start_carry = state.carry
        state, (traj, stats) = jax.lax.scan(env_step, state, None, length=num_steps)
        rng, k_noise = jax.random.split(state.rng)
        noise = network.sample_noise(k_noise, 1, num_envs)
        _, _, last_value = apply(state.params, state.carry, state.last_obs[None], state.last_start[None], noise)
        stats = jax.tree.map(jnp.sum, stats)
        return state.replace(rng=rng), traj, start_carry, last_value[0], stats

    def evaluate_sequence(params, start_carry: AgentCarry, traj: Transition):
        """Re-run whole sequences from start_carry: (log_prob float32[T, n], value float32[T, n], entropy)."""
        _, dist, value = apply(params, start_carry, traj.obs, traj.start, traj.noise)
        return networks.log_prob(spec, dist, traj.action), value, networks.entropy(spec, dist)

    # --- loss and update ----------------------------------------------------------------------
    def loss_fn(params, hp: HParams, start_carry, traj: Transition, advantages, targets):
        logp, value, ent = evaluate_sequence(params, start_carry, traj)
        log_ratio = logp - traj.log_prob
        ratio = jnp.exp(log_ratio)
        adv = advantages
        if config.normalize_advantages:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        policy_loss = -jnp.mean(jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - hp.clip_eps, 1 + hp.clip_eps) * adv))
        value_error = jnp.square(value - targets)
        if config.clip_value_loss:
            clipped = traj.value + jnp.clip(value - traj.value, -hp.clip_eps, hp.clip_eps)
            value_error = jnp.maximum(value_error, jnp.square(clipped - targets))
        value_loss = 0.5 * jnp.mean(value_error)
        entropy = jnp.mean(ent)
        total = policy_loss + hp.vf_coef * value_loss - hp.ent_coef * entropy
        aux = {
            "total_loss": total,
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
            "clip_frac": jnp.mean((jnp.abs(ratio - 1.0) > hp.clip_eps).astype(jnp.float32)),
        }
        return total, aux

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def minibatch_step(carry, env_idx, hp, lr, start_carry, traj, advantages, targets):
        params, opt_state = carry
        pick_t = lambda x: x[:, env_idx]  # noqa: E731  [T, N, ...] -> [T, n, ...]
        (_, aux), grads = grad_fn(
            params, hp, jax.tree.map(lambda x: x[env_idx], start_carry), jax.tree.map(pick_t, traj),
            pick_t(advantages), pick_t(targets))
        grad_norm = optax.tree.norm(grads)
        scale = jnp.where(grad_norm > hp.max_grad_norm, hp.max_grad_norm / grad_norm, 1.0)
        grads = jax.tree.map(lambda g: g * scale, grads)
        direction, opt_state = optimizer.update(grads, opt_state, params)
        params = jax.tree.map(lambda p, d: p - lr * d, params, direction)
        return (params, opt_state), {**aux, "grad_norm": grad_norm}

    def update(state: RunnerState, hp: HParams):
        """One PPO update. Returns (state, metrics: dict of float32/int32 scalars)."""
        state, traj, start_carry, last_value, stats = rollout(state)
        advantages, targets = compute_gae(traj.value, traj.reward, traj.terminated, traj.truncated,
                                          traj.bootstrap_value, last_value, hp.gamma, hp.gae_lambda)
        if config.anneal_lr:
            lr = hp.lr * (1.0 - state.update.astype(jnp.float32) / num_updates)
        else:
            lr = hp.lr

        def epoch(carry, key):
            order = jax.random.permutation(key, num_envs).reshape(config.num_minibatches, envs_per_minibatch)
            step = lambda c, idx: minibatch_step(c, idx, hp, lr, start_carry, traj, advantages, targets)  # noqa: E731
            return jax.lax.scan(step, carry, order)

        rng, k_epochs = jax.random.split(state.rng)
        (params, opt_state), losses = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(k_epochs, config.update_epochs))
        finite = jnp.all(jnp.isfinite(losses["total_loss"])) & jnp.all(jnp.isfinite(losses["grad_norm"]))
        metrics = {
            **stats,
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

    def train_chunk(state: RunnerState, hp: HParams, num_updates_in_chunk: int):
        """lax.scan of ``num_updates_in_chunk`` (static) updates: (state, metrics with leading axis K)."""
        return jax.lax.scan(lambda s, _: update(s, hp), state, None, length=num_updates_in_chunk)

    def train(rng: jax.Array, hp: HParams):
        """The whole run: init + num_updates updates. (state, metrics[num_updates])."""
        return train_chunk(init(rng, hp), hp, num_updates)

    def act(params, obs, carry: AgentCarry, start, noise, rng, greedy: bool = False):
        """One step for B envs: obs [B, ...], start bool[B], noise from sample_noise(rng, 1, B).

        Returns (env action, new carry). ``greedy`` (static) takes the mode instead of sampling.
        """
        carry, dist, _ = apply(params, carry, obs[None], start[None], noise)
        dist = jax.tree.map(lambda x: x[0], dist)
        raw = networks.mode_action(spec, dist) if greedy else networks.sample_action(spec, dist, rng)
        return networks.env_action(spec, raw), carry

    return Trainer(
        config=config, env=env, env_params=env_params, network=network, action_spec=spec,
        num_updates=num_updates, steps_per_update=steps_per_update, init=init, rollout=rollout,
        update=update, train_chunk=train_chunk, train=train, act=act, evaluate_sequence=evaluate_sequence,
        initialize_carry=network.initialize_carry, sample_noise=network.sample_noise)


# ----------------------------------------------------------------------------------------------
# Seeds x sweeps


def split_seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """PRNG keys [num_seeds]: run i uses split(PRNGKey(seed), num_seeds)[i] (also when num_seeds = 1)."""
    return jax.random.split(jax.random.PRNGKey(int(seed)), num_seeds)


def seed_keys(config: TrainConfig) -> jax.Array:
    """The config's run keys (see ``split_seed_keys``)."""
    return split_seed_keys(config.seed, config.num_seeds)


def sweep_grid(base, sweep: tuple[tuple[str, tuple[float, ...]], ...]):
    """Stack every combination of ``sweep`` over the ``base`` hyperparameters, in grid order.

    base: a pytree of scalars with the swept names as fields (HParams, or a test double);
    sweep: ((name, values), ...). Returns (base with leaves [G], the G settings as {name: value}).
    Without a sweep, G = 1 and the setting is {}.
    """
    sweep = tuple(sweep or ())
    names = [name for name, _ in sweep]
    settings = [dict(zip(names, map(float, combo))) for combo in itertools.product(*(v for _, v in sweep))] or [{}]
    for name in names:
        if not hasattr(base, name):
            raise ValueError(f"sweep: {name!r} is not a sweepable hyperparameter")
    points = [base.replace(**{k: jnp.asarray(v, jnp.asarray(getattr(base, k)).dtype) for k, v in setting.items()})
              for setting in settings]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *points), settings


def hparam_grid(config: TrainConfig) -> tuple[HParams, list[dict[str, float]]]:
    """Every combination of ``config.sweep`` values: (HParams with leaves float32[G], labels[G])."""
    return sweep_grid(hparams_from_config(config), config.sweep)


@dataclasses.dataclass(frozen=True)
class BatchedTrainer:
    """A Trainer vmapped over a hyperparameter grid G (outer) and seeds S (inner).

    hparams: HParams[G]; labels: the swept values of each grid point; rngs: keys [S].
    init(rngs, hparams) -> RunnerState[G, S]; update/train_chunk/train as in Trainer with [G, S]
    leading axes on states and metrics (train_chunk: metrics [G, S, K]). Not jitted: wrap in jax.jit
    (train_chunk with static_argnums=2).
    """

    trainer: Trainer
    hparams: HParams
    labels: list
    rngs: jax.Array
    init: Callable
    update: Callable
    train_chunk: Callable
    train: Callable


def make_batched_train(config: TrainConfig) -> BatchedTrainer:
    """Seeds x hyperparameter grid in one program (see BatchedTrainer)."""
    trainer = make_train(config)
    hparams, labels = hparam_grid(config)
    seeds_then_grid = lambda f: jax.vmap(jax.vmap(f, in_axes=(0, None)), in_axes=(None, 0))  # noqa: E731
    states_then_grid = lambda f: jax.vmap(jax.vmap(f, in_axes=(0, None)), in_axes=(0, 0))  # noqa: E731

    def train_chunk(states, hp, num_updates_in_chunk: int):
        return states_then_grid(lambda s, h: trainer.train_chunk(s, h, num_updates_in_chunk))(states, hp)

    return BatchedTrainer(
        trainer=trainer, hparams=hparams, labels=labels, rngs=seed_keys(config),
        init=seeds_then_grid(trainer.init), update=states_then_grid(trainer.update),
        train_chunk=train_chunk, train=seeds_then_grid(trainer.train))
