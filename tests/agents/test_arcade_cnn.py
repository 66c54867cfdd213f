"""The POPGym Arcade CNN torso (``RecurrentTrunk(conv_torso="arcade")``): its layers match an independent lax
implementation of the baseline's CNN (conv 64 5x5/2, maxpool 2, conv 128 3x3/2, maxpool 2, conv 256 3x3/2,
maxpool 3/1, conv 512 1x1, leaky ReLU after every conv, input /255), a 128x128 uint8 frame becomes 512 features, and
the trunk runs it on flat uint8 observations."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.agents.trunk import ArcadeCNN, RecurrentTrunk
from shm_jax.build import make_trunk
from shm_jax.config import AgentConfig
from shm_jax.memory import make_memory


def _reference(params, x):
    """The baseline CNN written with lax ops (NHWC, VALID)."""
    layers = ((2, (2, 2)), (2, (2, 2)), (2, (3, 1)), (1, None))
    for i, (stride, pool) in enumerate(layers):
        p = params[f"conv{i}"]
        x = jax.lax.conv_general_dilated(
            x, p["kernel"], (stride, stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        x = jnp.where(x + p["bias"] >= 0, x + p["bias"], 0.01 * (x + p["bias"]))
        if pool is not None:
            window, step = pool
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, window, window, 1), (1, step, step, 1), "VALID")
    return x.reshape(x.shape[0], -1)


def test_arcade_cnn_matches_the_baseline_layers():
    x = jax.random.uniform(jax.random.key(0), (2, 128, 128, 3))
    cnn = ArcadeCNN()
    params = cnn.init(jax.random.key(1), x)["params"]
    shapes = {name: p["kernel"].shape for name, p in params.items()}
    assert shapes == {
        "conv0": (5, 5, 3, 64),
        "conv1": (3, 3, 64, 128),
        "conv2": (3, 3, 128, 256),
        "conv3": (1, 1, 256, 512),
    }
    y = cnn.apply({"params": params}, x)
    assert y.shape == (2, 512)
    np.testing.assert_allclose(np.asarray(y), np.asarray(_reference(params, x)), rtol=1e-4, atol=1e-5)


def test_trunk_with_the_arcade_torso_on_uint8_frames():
    frames = jax.random.randint(jax.random.key(2), (3, 2, 128 * 128 * 3), 0, 256).astype(jnp.uint8)
    agent = dataclasses.replace(AgentConfig(), encoder="arcade-cnn", feature_size=8, pre_size=8, post_size=8)
    trunk = make_trunk(agent, make_memory("gru", hidden_size=4), 128 * 128 * 3, ((128, 128, 3), False))
    assert trunk.conv_torso == "arcade"
    carry = trunk.initialize_carry(2)
    starts = jnp.zeros((3, 2), bool).at[0].set(True)
    variables = trunk.init(jax.random.key(3), carry, frames, starts)
    assert "arcade_cnn" in variables["params"]
    _, features = trunk.apply(variables, carry, frames, starts)
    assert features.shape == (3, 2, 8) and bool(jnp.all(jnp.isfinite(features)))
    # the torso sees pixels / 255: the same frames as floats in [0, 1] give the same features without pixel scaling
    plain = trunk.clone(pixel_features=0)
    _, scaled = plain.apply(variables, carry, frames.astype(jnp.float32) / 255.0, starts)
    np.testing.assert_allclose(np.asarray(features), np.asarray(scaled), rtol=1e-5, atol=1e-5)


def test_unknown_conv_torso():
    with pytest.raises(ValueError, match="conv_torso"):
        RecurrentTrunk(memory=make_memory("gru", hidden_size=4), conv_torso="resnet")


@pytest.mark.slow  # builds the 128x128 frame pipeline
def test_build_reads_an_arcade_frame_for_the_torso():
    pytest.importorskip("popgym_arcade")
    from shm_jax import envs
    from shm_jax.build import make_agent_parts

    env, params = envs.make("arcade:CountRecallEasy")
    agent = dataclasses.replace(AgentConfig(), encoder="arcade-cnn", memory="gru", memory_kwargs={"hidden_size": 4})
    trunk = make_agent_parts(agent, env, params, "arcade:CountRecallEasy").make_trunk()
    assert trunk.image_shape == (128, 128, 3) and not trunk.channels_first and trunk.conv_torso == "arcade"
    assert trunk.pixel_features == 128 * 128 * 3  # uint8 frames: divided by 255 before the torso


@pytest.mark.parametrize("kernel, stride, size", [(5, 2, 17), (3, 2, 12), (1, 1, 5), (3, 1, 6)])
def test_matmul_conv_is_flax_conv_with_the_same_parameters_and_init(kernel, stride, size):
    import flax.linen as nn

    from shm_jax.agents.trunk import MatmulConv

    x = jax.random.normal(jax.random.key(0), (3, size, size, 4))
    ours = MatmulConv(6, kernel, stride)
    theirs = nn.Conv(6, (kernel, kernel), strides=stride, padding="VALID")
    params = theirs.init(jax.random.key(1), x)
    mine = ours.init(jax.random.key(1), x)
    jax.tree.map(np.testing.assert_array_equal, mine, params)  # same names, shapes and initial values
    params = {"params": {**params["params"], "bias": jax.random.normal(jax.random.key(2), (6,))}}
    np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x), rtol=1e-5, atol=1e-5)

    def loss(module, p, x):
        return jnp.sum(jnp.sin(module.apply(p, x)))

    got = jax.grad(lambda p, x: loss(ours, p, x), argnums=(0, 1))(params, x)
    want = jax.grad(lambda p, x: loss(theirs, p, x), argnums=(0, 1))(params, x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), got, want)


def test_arcade_cnn_gradient_matches_the_baseline_layers():
    x = jax.random.uniform(jax.random.key(4), (2, 128, 128, 3))
    cnn = ArcadeCNN()
    params = cnn.init(jax.random.key(5), x)["params"]
    got = jax.grad(lambda p: jnp.sum(jnp.tanh(cnn.apply({"params": p}, x))))(params)
    want = jax.grad(lambda p: jnp.sum(jnp.tanh(_reference(p, x))))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4), got, want)
