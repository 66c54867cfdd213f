"""The one build step: a validated config -> environment, network, hyperparameters and the PPO object.

``build(config)`` makes each piece once. Everything that needs the package to check an option (the
memory name and kwargs, the environment id and overrides) is checked here, with a one-line
:class:`~shm_jax.config.ConfigError` naming the option, before anything is traced or compiled.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import gymnax
import jax
import jax.numpy as jnp
import numpy as np

import envs
from shm_jax import networks
from shm_jax.batched import BatchedProgram
from shm_jax.config import (GYMNAX_PREFIX, PROBE_PREFIX, AgentConfig, ConfigError, EnvConfig, TrainConfig,
                            validate)
from shm_jax.evaluation import Policy
from shm_jax.memory import make_memory, memory_names
from shm_jax.networks import ActionSpec, ActorCritic
from shm_jax.ppo import PPO, Hyperparameters, hyperparameters
from shm_jax.probes import make_probe


@dataclasses.dataclass(frozen=True)
class Built:
    """What one config builds (every piece once).

    eval_tasks: env params with a leading task axis when the task is evaluated away from its training
    distribution (meta-RL held-out tasks; ``envs`` registry ``eval_tasks``), else None.
    """

    config: TrainConfig
    env: Any
    env_params: Any
    action_spec: ActionSpec
    network: ActorCritic
    hparams: Hyperparameters
    ppo: PPO
    eval_tasks: Any = None

    def policy(self, greedy: bool) -> Policy:
        """The agent for ``shm_jax.evaluation``: mode actions when ``greedy``, else sampled ones."""
        return Policy(initialize_carry=self.network.initialize_carry,
                      act=functools.partial(self.ppo.act, greedy=greedy))

    def program(self, mesh: jax.sharding.Mesh | None = None) -> BatchedProgram:
        """Every (sweep setting, seed) run of the config in one batched program on ``mesh`` (default: all devices)."""
        run = self.config.run
        return BatchedProgram(self.ppo, self.hparams, sweep=run.sweep, seed=run.seed, num_seeds=run.num_seeds,
                              num_envs=self.config.ppo.num_envs, mesh=mesh)


def make_env(env_config: EnvConfig) -> tuple[Any, Any]:
    """(env, env_params) for ``probe:<Name>``, ``gymnax:<id>`` or an ``envs`` id; ConfigError for a bad id/override."""
    env_id, overrides = env_config.env_id, dict(env_config.env_overrides)
    if env_id.startswith(PROBE_PREFIX):
        return make_probe(env_id[len(PROBE_PREFIX):], **overrides)
    if env_id.startswith(GYMNAX_PREFIX):
        return _make_gymnax(env_id[len(GYMNAX_PREFIX):], overrides)
    try:
        envs.resolve(env_id)
    except ValueError as err:
        raise ConfigError("env_id", str(err).removeprefix("env: ")) from None
    try:
        return envs.make(env_id, prev_action=env_config.prev_action, **overrides)
    except (TypeError, ValueError) as err:
        raise ConfigError("env_overrides", f"invalid for {env_id!r}: {str(err).splitlines()[0]}") from None


def _make_gymnax(name: str, overrides: dict[str, Any]) -> tuple[Any, Any]:
    if name not in gymnax.registered_envs:
        raise ConfigError("env_id", f"unknown gymnax environment {name!r}; valid: {', '.join(gymnax.registered_envs)}")
    env, params = gymnax.make(name)
    unknown = sorted(set(overrides) - set(params.__dataclass_fields__))
    if unknown:
        raise ConfigError("env_overrides", f"unknown override {unknown[0]!r} for {name}; EnvParams fields: "
                          f"{', '.join(sorted(params.__dataclass_fields__))}")
    return env, params.replace(**overrides)


def pixel_feature_count(pixel_scale: bool | None, env: Any, env_params: Any) -> int:
    """How many leading features of the flat observation are uint8 pixels the network divides by 255.

    pixel_scale False -> 0; None (auto) -> the raw observation's size when it is one uint8 array, else 0;
    True -> the raw observation's size whatever its dtype. ``envs``' flatten keeps the raw observation
    first, before an appended previous action and start flag; ``env.unwrapped`` is that raw env.
    """
    if pixel_scale is False:
        return 0
    raw = getattr(env, "unwrapped", env)
    obs, _ = jax.eval_shape(raw.reset, jax.random.PRNGKey(0), env_params)
    leaves = jax.tree.leaves(obs)
    if len(leaves) != 1 or (pixel_scale is None and leaves[0].dtype != jnp.uint8):
        return 0
    return int(np.prod(leaves[0].shape, dtype=np.int64))


def make_memory_core(agent: AgentConfig):
    """The memory core of the agent section; ConfigError for an unknown name or bad kwargs."""
    if agent.memory not in memory_names():
        raise ConfigError("memory", f"unknown memory {agent.memory!r}; valid: {', '.join(memory_names())}")
    try:
        return make_memory(agent.memory, dtype=agent.precision, **dict(agent.memory_kwargs))
    except (TypeError, ValueError) as err:
        raise ConfigError("memory_kwargs", f"invalid for memory {agent.memory!r}: {str(err).splitlines()[0]}") from None


def make_network(agent: AgentConfig, memory: Any, action_spec: ActionSpec, pixel_features: int = 0) -> ActorCritic:
    """The ActorCritic of the agent section around a built memory core, for an action space and pixel count."""
    return ActorCritic(
        memory=memory,
        action_spec=action_spec,
        feature_size=agent.feature_size,
        feature_norm=agent.feature_norm,
        time_encoding=agent.time_encoding,
        time_encoding_max_len=agent.time_encoding_max_len,
        pre_size=agent.pre_size,
        post_size=agent.post_size,
        head_hidden_size=agent.head_hidden_size,
        pixel_features=pixel_features,
        dtype=agent.precision,
        init_scheme=agent.network_init,
    )


def _eval_tasks(env_config: EnvConfig, env_params: Any) -> Any:
    if ":" in env_config.env_id:  # probe: / gymnax: ids have no evaluation split
        return None
    spec = envs.resolve(env_config.env_id)
    return spec.eval_tasks(env_params) if spec.eval_tasks is not None else None


def build(config: TrainConfig) -> Built:
    """Validate ``config`` and build everything one run needs (see :class:`Built`)."""
    validate(config)
    memory = make_memory_core(config.agent)  # checks memory options before the environment is built
    env, env_params = make_env(config.env)
    try:
        action_spec = networks.action_spec_from_space(env.action_space(env_params))
    except ValueError as err:
        raise ConfigError("env_id", f"{config.env.env_id!r}: {str(err).split(': ', 1)[-1]}") from None
    pixels = pixel_feature_count(config.agent.pixel_scale, env, env_params)
    network = make_network(config.agent, memory, action_spec, pixels)
    ppo = PPO.from_config(config.ppo, env=env, env_params=env_params, network=network)
    return Built(config=config, env=env, env_params=env_params, action_spec=action_spec, network=network,
                 hparams=hyperparameters(config.ppo), ppo=ppo, eval_tasks=_eval_tasks(config.env, env_params))
