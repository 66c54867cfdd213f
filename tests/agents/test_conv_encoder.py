"""The conv encoder (``--encoder conv``, pomdp-baselines' image encoder): its layers, its layout, where it applies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.agents.trunk import RecurrentTrunk
from shm_jax.build import build
from shm_jax.memory import make_memory
from shm_jax.options import ConfigError
from shm_jax.presets import from_preset
from tests.helpers import TINY_AGENT


def _trunk(channels_first):
    shape = (3, 5, 5) if channels_first else (5, 5, 3)
    return RecurrentTrunk(
        memory=make_memory("gru", hidden_size=4),
        feature_size=6,
        pre_size=6,
        post_size=6,
        time_encoding=False,
        pixel_features=75,
        image_shape=shape,
        channels_first=channels_first,
    )


def test_channel_major_pixels_are_read_as_the_same_image_as_channel_last():
    """Two layouts of one image (with an extra non-pixel feature after it) give the same encoding and parameters."""
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (2, 3, 5, 5, 3)).astype(np.float32)  # [T, B, H, W, C]
    extra = rng.normal(size=(2, 3, 1)).astype(np.float32)
    chw = np.moveaxis(hwc, -1, 2)  # [T, B, C, H, W]
    flat_hwc = jnp.concatenate([hwc.reshape(2, 3, -1), extra], -1)
    flat_chw = jnp.concatenate([chw.reshape(2, 3, -1), extra], -1)
    first, last = _trunk(True), _trunk(False)
    starts = jnp.zeros((2, 3), bool).at[0].set(True)
    params = last.init(jax.random.PRNGKey(0), last.initialize_carry(3), flat_hwc, starts)
    assert params["params"]["conv0"]["kernel"].shape == (2, 2, 3, 8)
    assert params["params"]["conv1"]["kernel"].shape == (2, 2, 8, 16)
    assert params["params"]["feature_map"]["kernel"].shape == (3 * 3 * 16 + 1, 6)  # 5 -> 4 -> 3, then the extra
    _, a = last.apply(params, last.initialize_carry(3), flat_hwc, starts)
    _, b = first.apply(params, first.initialize_carry(3), flat_chw, starts)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    shuffled = jnp.concatenate(
        [hwc.reshape(2, 3, -1)[..., ::-1], extra], -1
    )  # a different image gives another encoding
    _, c = last.apply(params, last.initialize_carry(3), shuffled, starts)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("algo", ["ppo", "sacd"])
def test_conv_encoder_builds_on_the_credit_tasks_and_is_refused_elsewhere(algo):
    options = dict(TINY_AGENT, algo=algo, encoder="conv", memory="gru", memory_kwargs={"hidden_size": 4})
    built = build(from_preset("default", env_id="VisualMatch-Short", total_timesteps=100_000, **options))
    network = built.algorithm.network if algo == "ppo" else built.algorithm.critic
    assert network.image_shape == (3, 5, 5) and network.channels_first
    state = jax.eval_shape(built.algorithm.init, jax.random.PRNGKey(0))
    params = state.params if algo == "ppo" else state.learner.critic_params
    assert params["params"]["conv1"]["kernel"].shape == (2, 2, 8, 16)
    with pytest.raises(ConfigError) as err:
        build(from_preset("default", env_id="RepeatFirstEasy", **options))
    assert err.value.field == "encoder" and "image observations" in str(err.value)


def test_patch_conv_is_flax_conv_2x2_valid():
    """The matmul form computes nn.Conv(features, (2, 2), padding="VALID") with the same parameters, and its
    gradients."""
    import flax.linen as nn

    from shm_jax.agents.trunk import PatchConv

    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 4, 3))
    ours = PatchConv(8)
    params = ours.init(jax.random.PRNGKey(1), x)
    params = jax.tree.map(lambda p: p + 0.1, params)  # non-zero bias too
    reference = nn.Conv(8, (2, 2), padding="VALID")
    np.testing.assert_allclose(ours.apply(params, x), reference.apply(params, x), rtol=1e-5, atol=1e-5)
    grad = lambda m: jax.grad(lambda p: jnp.sum(jnp.sin(m.apply(p, x))))(params)  # noqa: E731
    for a, b in zip(jax.tree.leaves(grad(ours)), jax.tree.leaves(grad(reference))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
