"""TrainConfig.precision: validated, wired to the network and its memory core, and a bf16 PPO run trains."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.build import build
from shm_jax.config import PRECISIONS, ConfigError, TrainConfig, validate
from shm_jax.memory import precision as memory_precision
from shm_jax.presets import from_preset

TINY = dict(
    env_id="RepeatPreviousEasy",
    memory="shm",
    memory_kwargs={"memory_size": 8},
    time_encoding=False,
    feature_size=8,
    pre_size=8,
    post_size=8,
    head_hidden_size=8,
    num_envs=4,
    num_steps=8,
    total_timesteps=3 * 32,
    num_minibatches=1,
    update_epochs=1,
)


def float_dtypes(tree) -> set:
    return {leaf.dtype for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.floating)}


def test_precision_defaults_to_float32_and_reaches_network_and_core():
    assert TrainConfig().agent.precision == "float32"
    assert PRECISIONS == memory_precision.PRECISIONS  # the option offers exactly what the cores accept
    for precision in ("float32", "bfloat16"):
        network = build(from_preset("default", **TINY, precision=precision)).algorithm.network
        assert network.dtype == precision and network.memory.dtype == precision


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(precision="float16"), "precision"),
        (dict(precision="bf16"), "precision"),
        (dict(precision=None), "precision"),
        (dict(memory_kwargs={"memory_size": 8, "dtype": "bfloat16"}), "memory_kwargs"),
    ],
)
def test_bad_precision_one_line_error(overrides, field):
    with pytest.raises(ConfigError) as err:
        validate(from_preset("default", **{**TINY, **overrides}))
    message = str(err.value)
    assert message.startswith(f"{field}:") and "\n" not in message, message


@pytest.mark.slow
def test_bfloat16_ppo_run_is_finite_and_keeps_float32_state():
    """A few bf16 updates: finite float32 losses; params, optimiser state and memory carry stay float32."""
    built = build(from_preset("default", **TINY, precision="bfloat16"))
    trainer = built.algorithm
    state, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0), built.hyperparameters)
    assert metrics["total_loss"].shape == (trainer.num_updates,) == (3,)
    for name in ("total_loss", "policy_loss", "value_loss", "entropy", "grad_norm"):
        assert metrics[name].dtype == jnp.float32 and np.all(np.isfinite(metrics[name])), name
    assert np.all(metrics["finite"])
    assert float_dtypes(state.params) == float_dtypes(state.opt_state) == {jnp.dtype(jnp.float32)}
    assert state.carry.memory.dtype == jnp.float32 and state.carry.memory.shape == (4, 8, 8)
    assert np.all(np.isfinite(np.asarray(state.carry.memory)))
    assert np.all(metrics["grad_norm"] > 0)  # gradients through the bf16 compute reached the float32 params
