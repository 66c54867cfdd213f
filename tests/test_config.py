"""TrainConfig sections, presets and validation: bad input -> one-line ConfigError naming the field, before
compiling."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax import config as cfg
from shm_jax.algorithms.base import hyperparameters
from shm_jax.algorithms.ppo import PPOConfig
from shm_jax.build import build
from shm_jax.config import ConfigError, TrainConfig, from_dict, to_dict, validate, with_overrides
from shm_jax.presets import from_preset


def test_presets_and_overrides():
    assert validate(from_preset("default")) == TrainConfig()
    paper = from_preset("paper-popgym", env_id="RepeatPreviousHard")
    p = paper.ppo
    assert (p.num_envs, p.num_steps, p.num_minibatches, p.update_epochs) == (64, 1024, 8, 30)
    assert (p.lr, p.gamma, p.gae_lambda, p.clip_eps, p.ent_coef, p.vf_coef) == (5e-5, 0.99, 1.0, 0.2, 0.0, 1.0)
    assert p.total_timesteps == 15_000_000 and p.max_grad_norm == 0.5 and paper.agent.time_encoding
    assert paper.agent.memory == "shm" and paper.agent.memory_kwargs["memory_size"] == 32
    assert from_preset("paper-popgym", env_id="AutoencodeEasy").agent.memory_kwargs["memory_size"] == 128
    assert from_preset("paper-popgym", memory="gru").agent.memory_kwargs == {"hidden_size": 256}
    assert paper.agent.network_init == "official" and paper.agent.memory_kwargs["shortcut"]
    validate(paper)
    assert from_preset("default", lr=2e-3).ppo.lr == 2e-3


def test_official_popgym_preset_is_the_paper_preset_with_fixed_theta():
    official = from_preset("paper-popgym-official", env_id="AutoencodeEasy")
    paper = from_preset("paper-popgym", env_id="AutoencodeEasy")
    assert official.agent.memory == "shm-fixed-theta" and paper.agent.memory == "shm"
    assert with_overrides(official, memory="shm") == paper
    assert build(official).algorithm.network.memory.calibration == "fixed_theta"


@pytest.mark.parametrize(
    "preset, env_id, hidden, budget",
    [
        ("ppo-credit", "VisualMatch250", 128, 240 * 64 * 275),
        ("ppo-meta", "Wind-50-150", 64, 40 * 64 * 200),
        ("ppo-meta", "PointRobot-10-190", 128, 84 * 64 * 200),
    ],
)
def test_ppo_pomdp_presets_use_the_official_pomdp_baselines_shm(preset, env_id, hidden, budget):
    config = validate(from_preset(preset, env_id=env_id))
    assert config.agent.memory_kwargs == {
        "memory_size": 24,
        "clamp": 100.0,
        "shortcut": True,
        "projection_size": hidden,
    }
    assert config.ppo.total_timesteps == budget and not config.agent.time_encoding
    assert from_preset(preset, env_id=env_id, memory="gru").agent.memory_kwargs == {"hidden_size": hidden}
    assert from_preset(preset, memory_kwargs={"memory_size": 8}).agent.memory_kwargs == {"memory_size": 8}
    assert from_preset(preset, env_id=env_id, total_timesteps=64 * 275 * 2).ppo.total_timesteps == 64 * 275 * 2
    built = build(config)
    core = built.algorithm.network.memory
    assert (core.memory_size, core.clamp, core.output_size, core.calibration) == (24, 100.0, hidden, "random_theta")
    state = jax.eval_shape(built.algorithm.init, jax.random.PRNGKey(0))  # one update traces (nothing runs)
    assert state.carry.memory.shape == (config.ppo.num_envs, 24, 24)
    _, metrics = jax.eval_shape(built.algorithm.update, state, built.hyperparameters)
    assert metrics["total_loss"].shape == ()


@pytest.mark.parametrize(
    "preset, env_id, algo, hidden, budget, updates",
    [
        ("paper-credit", "VisualMatch250", "sacd", 128, 15_000 * 275, 69),  # ceil(0.25 * 275) per episode
        ("paper-credit", "KeyToDoor250", "sacd", 128, 15_000 * 275, 66),  # ceil(0.25 * 263)
        ("paper-meta", "Wind-50-150", "sac", 64, 510_000, 500),
        ("paper-meta", "PointRobot-10-190", "sac", 128, 1_080_000, 1000),
    ],
)
def test_paper_pomdp_presets_run_sac_with_a_gru_actor_and_the_official_shm_critic(
    preset, env_id, algo, hidden, budget, updates
):
    config = validate(from_preset(preset, env_id=env_id))
    assert config.algo == algo and config.algorithm.total_timesteps == budget
    assert config.algorithm.actor_memory == "gru" and config.algorithm.actor_memory_kwargs == {"hidden_size": hidden}
    algorithm = build(config).algorithm
    assert type(algorithm.actor.memory).__name__ == "GRU" and algorithm.actor.memory.hidden_size == hidden
    core = algorithm.critic.memory
    assert (core.memory_size, core.clamp, core.output_size) == (24, 100.0, hidden)
    assert algorithm.updates_per_iter == updates
    assert bool(algorithm.critic.image_shape) == bool(algorithm.actor.image_shape) == (preset == "paper-credit")
    if algo == "sac":  # the meta buffers never overwrite (pomdp-baselines: 1e6 rows Wind, 4e6 Point Robot)
        assert algorithm.capacity == algorithm.warmup_episodes + algorithm.num_updates * algorithm.num_envs
    same = build(from_preset(preset, env_id=env_id, actor_memory="shm")).algorithm
    assert type(same.actor.memory).__name__ == type(core).__name__ and same.actor.memory.memory_size == 24


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(env_id="RepeatPreviousEasyy"), "env_id"),
        (dict(env_id="probe:Nope"), "env_id"),
        (dict(env_id="gymnax:Nope-v0"), "env_id"),
        (dict(env_overrides={"no_such_option": 1}), "env_overrides"),
        (dict(memory="lstm"), "memory"),
        (dict(memory="gru", memory_kwargs={"hidden": 3}), "memory_kwargs"),
        (dict(memory="gru", memory_kwargs={"hidden_size": 0}), "memory_kwargs"),
        (dict(num_envs=6, num_minibatches=4), "num_minibatches"),
        (dict(num_envs=0), "num_envs"),
        (dict(num_steps=-3), "num_steps"),
        (dict(update_epochs=1.5), "update_epochs"),
        (dict(total_timesteps=10), "total_timesteps"),
        (dict(lr=0.0), "lr"),
        (dict(lr=-1e-3), "lr"),
        (dict(gamma=1.5), "gamma"),
        (dict(gae_lambda=-0.1), "gae_lambda"),
        (dict(ent_coef=-0.01), "ent_coef"),
        (dict(max_grad_norm=0.0), "max_grad_norm"),
        (dict(num_seeds=0), "num_seeds"),
        (dict(sweep=(("learning_rate", (1e-3,)),)), "sweep"),
        (dict(sweep=(("lr", ()),)), "sweep"),
        (dict(sweep=(("lr", (1e-3,)), ("lr", (2e-3,)))), "sweep"),
        (dict(sweep=(("lr", (-1e-3, 1e-3)),)), "sweep"),  # swept values obey the plain option's rule
        (dict(sweep=(("gamma", (0.9, 2.0)),)), "sweep"),
    ],
)
def test_bad_config_one_line_error_naming_field(overrides, field):
    with pytest.raises(ConfigError) as err:
        build(from_preset("default", **overrides))
    message = str(err.value)
    assert message.startswith(f"{field}:") and err.value.field == field, message
    assert "\n" not in message


def test_unknown_preset_and_field():
    with pytest.raises(ValueError, match="^preset: unknown preset 'fast'"):
        from_preset("fast")
    with pytest.raises(ValueError, match="^learning_rate: unknown config field"):
        from_preset("default", learning_rate=1e-3)


def test_build_validates_before_compiling():
    with pytest.raises(ValueError, match="^num_minibatches:"):
        build(from_preset("default", num_envs=5, num_minibatches=2))


def test_config_json_round_trip_and_old_flat_files_still_load():
    config = from_preset("paper-popgym", env_id="AutoencodeEasy", sweep=(("lr", (1e-4, 3e-4)),), num_seeds=2)
    data = json.loads(json.dumps(to_dict(config)))
    assert set(data) == {"env", "agent", "ppo", "run"} and data["ppo"]["lr"] == 5e-5
    assert from_dict(data) == config
    # a flat config.json of an older run: every option at the top level
    flat = {name: value for section in data.values() for name, value in section.items()}
    assert from_dict(flat) == config
    with pytest.raises(ConfigError, match="^no_such_field: unknown config field"):
        from_dict({**flat, "no_such_field": 1})
    with pytest.raises(ConfigError, match=r"^ppo\.memory: unknown option in section 'ppo'"):
        from_dict({**data, "ppo": {**data["ppo"], "memory": "gru"}})


def test_every_option_has_one_name_and_one_section():
    names = cfg.field_names()
    sections = [*cfg.SECTIONS.values(), PPOConfig]
    assert len(names) == len(set(names)) == sum(len(vars(s())) for s in sections) + 1  # + algo
    assert set(cfg.sweepable()) <= set(vars(PPOConfig()))
    assert with_overrides(TrainConfig(), memory="gru", lr=2e-3) == TrainConfig(
        agent=cfg.AgentConfig(memory="gru"), algorithm=PPOConfig(lr=2e-3)
    )


@pytest.mark.parametrize(
    "env_id, kind, pixels",
    [
        ("RepeatPreviousEasy", "discrete", 0),
        ("BattleshipEasy", "multidiscrete", 0),  # previous action + start flag appended by default
        ("StatelessPendulumEasy", "box", 0),
        ("VisualMatch-Short", "discrete", 75),  # uint8 5x5 RGB crops, divided by 255 in the network
        ("gymnax:CartPole-v1", "discrete", 0),
    ],
)
def test_real_envs_trace_through_one_update(env_id, kind, pixels):
    """Every action kind and observation style traces through a whole update (eval_shape: nothing compiles)."""
    config = from_preset(
        "default",
        env_id=env_id,
        memory="mlp",
        memory_kwargs={"features": 8},
        feature_size=8,
        pre_size=8,
        post_size=8,
        head_hidden_size=8,
        num_envs=2,
        num_steps=4,
        total_timesteps=8,
        num_minibatches=1,
        update_epochs=1,
    )
    built = build(config)
    assert built.action_spec.kind == kind and built.algorithm.network.pixel_features == pixels
    state = jax.eval_shape(built.algorithm.init, jax.random.PRNGKey(0))
    _, metrics = jax.eval_shape(built.algorithm.update, state, built.hyperparameters)
    assert set(metrics) >= {
        "episode_return_sum",
        "episode_count",
        "success_sum",
        "total_loss",
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clip_frac",
        "grad_norm",
        "finite",
    }
    assert all(m.shape == () for m in metrics.values())


def test_every_sweepable_name_is_a_traced_hyperparameter_the_update_uses():
    """One compiled update; changing any one sweepable value (a traced input) changes what it computes."""
    config = from_preset(
        "default",
        env_id="probe:Recall",
        env_overrides={"delay": 2},
        memory="mlp",
        memory_kwargs={"features": 8},
        time_encoding=False,
        feature_size=8,
        pre_size=8,
        post_size=8,
        head_hidden_size=8,
        num_envs=4,
        num_steps=8,
        total_timesteps=32,
        num_minibatches=1,
        update_epochs=2,
        max_grad_norm=0.05,
    )
    built = build(config)
    assert set(vars(built.hyperparameters)) == set(cfg.sweepable()) == set(vars(hyperparameters(config.ppo)))
    state = jax.jit(built.algorithm.init)(jax.random.PRNGKey(0))
    update = jax.jit(built.algorithm.update)
    base_state, base = update(state, built.hyperparameters)
    changed = {
        "lr": 3e-2,
        "gamma": 0.5,
        "gae_lambda": 0.5,
        "clip_eps": 1e-3,
        "ent_coef": 0.5,
        "vf_coef": 2.0,
        "max_grad_norm": 10.0,
    }
    assert set(changed) == set(cfg.sweepable())
    for name, value in changed.items():
        new_state, metrics = update(state, built.hyperparameters.replace(**{name: jnp.float32(value)}))
        differs = [
            not np.allclose(a, b) for a, b in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(base_state.params))
        ]
        assert any(differs) or not np.isclose(metrics["total_loss"], base["total_loss"]), name


def test_paper_preset_traces_at_full_size():
    """64 envs x 1024 steps, SHM m = 128 with the 1024 projection: one update traces (nothing runs)."""
    built = build(from_preset("paper-popgym", env_id="RepeatPreviousEasy"))
    trainer = built.algorithm
    assert trainer.num_updates == 15_000_000 // 65_536 and trainer.steps_per_update == 65_536
    state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    assert state.carry.memory.shape == (64, 128, 128)
    assert state.params["params"]["post"]["kernel"].shape == (1024, 64)
    _, metrics = jax.eval_shape(trainer.update, state, built.hyperparameters)
    assert metrics["total_loss"].shape == ()
