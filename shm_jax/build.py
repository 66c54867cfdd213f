"""The one build step: a validated config -> environment, agent parts, the algorithm and its hyperparameters.

``build(config)`` makes each piece once. Everything that needs the package to check an option (the
memory name and kwargs, the environment id and overrides, the algorithm name) is checked here, with a
one-line :class:`~shm_jax.options.ConfigError` naming the option, before anything is traced or compiled.
This is the one module that reaches every algorithm (through ``shm_jax.algorithms``' registry).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from shm_jax import envs
from shm_jax.agents.distributions import action_spec_from_space
from shm_jax.agents.parts import AgentParts
from shm_jax.agents.trunk import RecurrentTrunk
from shm_jax.algorithms import base
from shm_jax.config import AgentConfig, EnvConfig, TrainConfig, validate
from shm_jax.memory import SHM, make_memory, memory_names
from shm_jax.options import ConfigError
from shm_jax.training.built import Built


def make_env(env_config: EnvConfig) -> tuple[Any, Any]:
    """(env, env_params) of the env section; ConfigError for an unknown id or a bad override."""
    env_id, overrides = env_config.env_id, dict(env_config.env_overrides)
    try:
        envs.resolve(env_id)
    except ValueError as err:
        raise ConfigError("env_id", str(err).removeprefix("env: ")) from None
    try:
        return envs.make(env_id, prev_action=env_config.prev_action, **overrides)
    except (TypeError, ValueError) as err:
        raise ConfigError("env_overrides", f"invalid for {env_id!r}: {str(err).splitlines()[0]}") from None


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


def make_memory_core(agent: AgentConfig, name: str | None = None, kwargs: dict | None = None, field: str = "memory"):
    """The memory core ``name`` (default: the agent section's ``memory``) with the agent's precision and ``kwargs``
    (default: the section's ``memory_kwargs`` when ``name`` is its memory, else the core's own defaults);
    ConfigError naming ``field`` (or its ``_kwargs``) for an unknown name or bad kwargs."""
    name = agent.memory if name is None else name
    if name not in memory_names():
        raise ConfigError(field, f"unknown memory {name!r}; valid: {', '.join(memory_names())}")
    if kwargs is None:
        kwargs = dict(agent.memory_kwargs) if name == agent.memory else {}
    try:
        return make_memory(name, dtype=agent.precision, **dict(kwargs))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{field}_kwargs", f"invalid for memory {name!r}: {str(err).splitlines()[0]}") from None


def image_layout(env: Any, env_params: Any, env_id: str) -> tuple[tuple[int, int, int], bool]:
    """(shape, channels_first) of the image at the start of the flat observation, for the conv encoder: the raw env's
    ``IMAGE_SHAPE`` (C, H, W) of a flat observation, or the raw observation's own shape when it is 3-D (H, W, C);
    ConfigError (field ``encoder``) otherwise."""
    raw = getattr(env, "unwrapped", env)
    declared = getattr(raw, "IMAGE_SHAPE", None)
    if declared is not None:
        return tuple(int(n) for n in declared), True
    obs, _ = jax.eval_shape(raw.reset, jax.random.PRNGKey(0), env_params)
    leaves = jax.tree.leaves(obs)
    if len(leaves) == 1 and leaves[0].ndim == 3:
        return tuple(int(n) for n in leaves[0].shape), False
    shapes = [tuple(x.shape) for x in leaves]
    raise ConfigError("encoder", f"'conv' needs image observations; {env_id!r} gives {shapes} (use --encoder mlp)")


def memory_norm_for(setting: bool | None, memory: Any) -> bool:
    """The agent section's ``memory_norm`` for a trunk around ``memory``: None (automatic) is on for SHM cores only."""
    return isinstance(memory, SHM) if setting is None else setting


def make_trunk(
    agent: AgentConfig, memory: Any, pixel_features: int = 0, image: tuple[tuple[int, ...], bool] = ((), False)
) -> RecurrentTrunk:
    """The RecurrentTrunk of the agent section around a built memory core, for a pixel count."""
    return RecurrentTrunk(
        memory=memory,
        feature_size=agent.feature_size,
        feature_norm=agent.feature_norm,
        time_encoding=agent.time_encoding,
        time_encoding_max_len=agent.time_encoding_max_len,
        pre_size=agent.pre_size,
        post_size=agent.post_size,
        memory_norm=memory_norm_for(agent.memory_norm, memory),
        readout_scale=agent.readout_scale,
        pixel_features=pixel_features,
        image_shape=tuple(image[0]),
        channels_first=image[1],
        conv_torso="arcade" if agent.encoder == "arcade-cnn" else "patch",
        dtype=agent.precision,
        init_scheme=agent.network_init,
    )


def make_agent_parts(agent: AgentConfig, env: Any, env_params: Any, env_id: str, memory: Any = None) -> AgentParts:
    """The action space and a trunk maker for the algorithm; ConfigError for an unsupported action space.

    memory: the built core of the agent section's ``memory`` (the first trunk around that core uses it, so a run
    builds its core once; later trunks get new cores).
    """
    try:
        action_spec = action_spec_from_space(env.action_space(env_params))
    except ValueError as err:
        raise ConfigError("env_id", f"{env_id!r}: {str(err).split(': ', 1)[-1]}") from None
    pixels = pixel_feature_count(agent.pixel_scale, env, env_params)
    image = image_layout(env, env_params, env_id) if agent.encoder in ("conv", "arcade-cnn") else ((), False)
    unused = [memory if memory is not None else make_memory_core(agent)]

    def trunk(name: str | None = None, kwargs: dict | None = None, field: str = "memory") -> RecurrentTrunk:
        own = (name is None or name == agent.memory) and kwargs is None
        core = unused.pop() if own and unused else make_memory_core(agent, name, kwargs, field)
        return make_trunk(agent, core, pixels, image)

    return AgentParts(action_spec=action_spec, make_trunk=trunk, head_hidden_size=agent.head_hidden_size)


def _eval_tasks(env_config: EnvConfig, env_params: Any) -> Any:
    spec = envs.resolve(env_config.env_id)
    return spec.eval_tasks(env_params) if spec.eval_tasks is not None else None


def build(config: TrainConfig) -> Built:
    """Validate ``config`` and build everything one run needs (see :class:`~shm_jax.training.built.Built`)."""
    validate(config)
    spec = base.get(config.algo)
    memory = make_memory_core(config.agent)  # checks memory options before the environment is built
    env, env_params = make_env(config.env)
    agent = make_agent_parts(config.agent, env, env_params, config.env.env_id, memory)
    algorithm = spec.make(config.algorithm, env=env, env_params=env_params, agent=agent)
    return Built(
        config=config,
        env=env,
        env_params=env_params,
        action_spec=agent.action_spec,
        algorithm=algorithm,
        hyperparameters=base.hyperparameters(config.algorithm),
        eval_tasks=_eval_tasks(config.env, env_params),
    )
