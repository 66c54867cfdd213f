"""TrainConfig presets and validation: bad input -> one-line ValueError naming the field, before compiling."""

import dataclasses

import jax
import pytest

from shm_jax import config as cfg
from shm_jax import ppo
from shm_jax.config import TrainConfig, from_preset, validate


def test_presets_and_overrides():
    assert validate(from_preset("default")) == TrainConfig(**cfg.PRESETS["default"])
    paper = from_preset("paper-popgym", env_id="RepeatPreviousHard")
    assert (paper.num_envs, paper.num_steps, paper.num_minibatches, paper.update_epochs) == (64, 1024, 8, 30)
    assert (paper.lr, paper.gamma, paper.gae_lambda, paper.clip_eps, paper.ent_coef, paper.vf_coef) == (
        5e-5, 0.99, 1.0, 0.2, 0.0, 1.0)
    assert paper.total_timesteps == 15_000_000 and paper.max_grad_norm == 0.5 and paper.time_encoding
    assert paper.memory == "shm" and paper.memory_kwargs["memory_size"] == 32
    assert from_preset("paper-popgym", env_id="AutoencodeEasy").memory_kwargs["memory_size"] == 128
    assert from_preset("paper-popgym", memory="gru").memory_kwargs == {"hidden_size": 256}
    validate(paper)
    assert from_preset("default", lr=2e-3).lr == 2e-3


@pytest.mark.parametrize("overrides, field", [
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
])
def test_bad_config_one_line_error_naming_field(overrides, field):
    config = dataclasses.replace(TrainConfig(), **overrides)
    with pytest.raises(ValueError) as err:
        validate(config)
    message = str(err.value)
    assert message.startswith(f"{field}:"), message
    assert "\n" not in message


def test_unknown_preset_and_field():
    with pytest.raises(ValueError, match="^preset: unknown preset 'fast'"):
        from_preset("fast")
    with pytest.raises(ValueError, match="^learning_rate: unknown config field"):
        from_preset("default", learning_rate=1e-3)


def test_make_train_validates_before_compiling():
    with pytest.raises(ValueError, match="^num_minibatches:"):
        ppo.make_train(TrainConfig(num_envs=5, num_minibatches=2))


@pytest.mark.parametrize("env_id, kind, pixels", [
    ("RepeatPreviousEasy", "discrete", 0),
    ("BattleshipEasy", "multidiscrete", 0),  # previous action + start flag appended by default
    ("StatelessPendulumEasy", "box", 0),
    ("VisualMatch-Short", "discrete", 75),  # uint8 5x5 RGB crops, divided by 255 in the network
    ("gymnax:CartPole-v1", "discrete", 0),
])
def test_real_envs_trace_through_one_update(env_id, kind, pixels):
    """Every action kind and observation style traces through a whole update (eval_shape: nothing compiles)."""
    config = TrainConfig(env_id=env_id, memory="mlp", memory_kwargs={"features": 8}, feature_size=8, pre_size=8,
                         post_size=8, head_hidden_size=8, num_envs=2, num_steps=4, total_timesteps=8,
                         num_minibatches=1, update_epochs=1)
    trainer = ppo.make_train(config)
    assert trainer.action_spec.kind == kind and trainer.network.pixel_features == pixels
    hp = ppo.hparams_from_config(config)
    state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0), hp)
    _, metrics = jax.eval_shape(trainer.update, state, hp)
    assert set(metrics) >= {"episode_return_sum", "episode_count", "success_sum", "total_loss", "policy_loss",
                            "value_loss", "entropy", "approx_kl", "clip_frac", "grad_norm", "finite"}
    assert all(m.shape == () for m in metrics.values())


def test_sweepable_names_are_hparams_fields():
    assert set(cfg.SWEEPABLE) == {f for f in ppo.HParams.__dataclass_fields__}


def test_paper_preset_traces_at_full_size():
    """64 envs x 1024 steps, SHM m = 128 with the 1024 projection: one update traces (nothing runs)."""
    config = from_preset("paper-popgym", env_id="RepeatPreviousEasy")
    trainer = ppo.make_train(config)
    assert trainer.num_updates == 15_000_000 // 65_536 and trainer.steps_per_update == 65_536
    hp = ppo.hparams_from_config(config)
    state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0), hp)
    assert state.carry.memory.shape == (64, 128, 128)
    assert state.params["params"]["post"]["kernel"].shape == (1024, 64)
    _, metrics = jax.eval_shape(trainer.update, state, hp)
    assert metrics["total_loss"].shape == ()
