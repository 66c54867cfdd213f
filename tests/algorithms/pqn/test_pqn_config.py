"""``--algo pqn``: its options, one-line errors before compiling, the preset, and every sweepable name in use."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import train as cli
from shm_jax.agents import QNetwork
from shm_jax.algorithms import base
from shm_jax.algorithms.pqn import PQNConfig
from shm_jax.build import build
from shm_jax.config import ConfigError, field_names, resumable, sweepable, validate
from shm_jax.presets import from_preset


def test_pqn_is_registered_with_its_own_options():
    assert base.get("pqn").config_type is PQNConfig
    assert sweepable("pqn") == ("lr", "gamma", "q_lambda", "eps_start", "eps_finish", "eps_decay", "max_grad_norm")
    assert set(resumable("pqn")) >= {"q_lambda", "eps_finish", "eval_episodes"}
    assert {"num_minibatches", "update_epochs", "anneal_lr", "adam_eps"} <= set(field_names("pqn"))
    assert "gae_lambda" not in field_names("pqn")
    with pytest.raises(ConfigError, match="^num_minibatches: must divide num_envs=16"):
        validate(from_preset("default", algo="pqn", num_minibatches=3))
    with pytest.raises(ConfigError, match="^sweep: eps_finish=1.5: must be a number in"):
        validate(from_preset("default", algo="pqn", sweep=(("eps_finish", (0.1, 1.5)),)))


@pytest.mark.parametrize("env_id, kind", [("StatelessPendulumEasy", "box"), ("BattleshipEasy", "multidiscrete")])
def test_non_discrete_action_space_is_a_one_line_error_before_compiling(env_id, kind):
    with pytest.raises(ConfigError, match=f"^algo: pqn needs a Discrete action space, this environment's is {kind}"):
        build(from_preset("default", algo="pqn", env_id=env_id))


def test_non_discrete_action_space_from_the_command_line(tmp_path, capsys):
    argv = ["--algo", "pqn", "--env", "StatelessPendulumEasy", "--out-dir", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: algo: pqn needs a Discrete action space"), err
    assert not list(tmp_path.iterdir())  # nothing written, nothing compiled


def test_the_q_network_is_the_trunk_with_a_layer_normed_head():
    built = build(from_preset("default", algo="pqn", env_id="RepeatFirstEasy"))
    network = built.algorithm.network
    assert isinstance(network, QNetwork) and network.num_actions == 4
    params = jax.eval_shape(built.algorithm.init, jax.random.PRNGKey(0)).params["params"]
    assert {"feature_map", "pre", "post", "q_hidden", "q_norm", "q_out"} <= set(params)
    assert params["q_out"]["kernel"].shape == (network.head_hidden_size, 4)


def test_pqn_credit_preset_is_pqn_on_visual_match_with_the_pomdp_shm():
    config = validate(from_preset("pqn-credit"))
    assert config.algo == "pqn" and config.env.env_id == "VisualMatch250"
    assert config.agent.memory_kwargs == {"memory_size": 24, "clamp": 100.0, "shortcut": True, "projection_size": 128}
    assert config.pqn.num_steps == 275 and config.pqn.total_timesteps % (config.pqn.num_envs * 275) == 0
    built = build(from_preset("pqn-credit", env_id="VisualMatch-Short"))
    assert built.algorithm.network.num_actions == 4


def test_every_sweepable_name_is_a_traced_hyperparameter_the_update_uses():
    """One compiled update (at update 2 of 4, mid-decay); changing any one sweepable value changes what it computes."""
    config = from_preset(
        "default",
        algo="pqn",
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
        total_timesteps=4 * 32,
        num_minibatches=1,
        update_epochs=2,
        eps_start=0.9,
        eps_finish=0.3,
        eps_decay=1.0,
        max_grad_norm=0.05,
    )
    built = build(config)
    algorithm, hp = built.algorithm, built.hyperparameters
    state = jax.jit(algorithm.init)(jax.random.PRNGKey(0)).replace(update=jnp.int32(2))
    update = jax.jit(algorithm.update)
    base_state, base_metrics = update(state, hp)
    assert float(base_metrics["epsilon"]) == pytest.approx(0.6)
    changed = {
        "lr": 3e-2,
        "gamma": 0.5,
        "q_lambda": 0.2,
        "eps_start": 0.5,
        "eps_finish": 0.1,
        "eps_decay": 0.25,
        "max_grad_norm": 10.0,
    }
    assert set(changed) == set(sweepable("pqn"))
    for name, value in changed.items():
        new_state, metrics = update(state, hp.replace(**{name: jnp.float32(value)}))
        differs = [
            not np.allclose(a, b) for a, b in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(base_state.params))
        ]
        assert any(differs) or not np.isclose(metrics["loss"], base_metrics["loss"]), name
