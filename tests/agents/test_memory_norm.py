"""``memory_norm``: a LayerNorm on the memory core's output, so SHM's small, growing read-out reaches the post layer
at unit scale; the option flows from the config to the trunk, automatic (None) meaning on for SHM cores only."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.agents.trunk import RecurrentTrunk
from shm_jax.build import build
from shm_jax.memory import make_memory, memory_names
from shm_jax.presets import from_preset
from tests.helpers import TINY_AGENT

T, B = 16, 4


def _memory_output(memory_kwargs: dict, memory_norm: bool, readout_scale: float = 1.0) -> np.ndarray:
    """The post layer's input, captured with flax's intermediates: float32[T, B, F]."""
    trunk = RecurrentTrunk(
        memory=make_memory("shm", **memory_kwargs),
        time_encoding=False,
        memory_norm=memory_norm,
        readout_scale=readout_scale,
    )
    obs = jax.random.normal(jax.random.PRNGKey(0), (T, B, 5))
    starts = jnp.zeros((T, B), bool).at[0].set(True)
    noise = trunk.sample_noise(jax.random.PRNGKey(1), T, B)
    carry = trunk.initialize_carry(B)
    params = trunk.init(jax.random.PRNGKey(2), carry, obs, starts, noise)

    @jax.jit
    def post_input(params):
        seen = []

        def capture(next_fun, args, kwargs, context):
            if context.module.name == "post":
                seen.append(args[0])
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(capture):
            trunk.apply(params, carry, obs, starts, noise)
        (y,) = seen
        return y.materialize() if hasattr(y, "materialize") else y

    return np.asarray(post_input(params))


@pytest.mark.parametrize("memory_kwargs", [{"memory_size": 16}, {"memory_size": 16, "projection_size": 8}])
def test_the_post_layer_sees_a_unit_scale_read_out_from_the_first_step(memory_kwargs):
    raw = _memory_output(memory_kwargs, memory_norm=False)
    normed = _memory_output(memory_kwargs, memory_norm=True)
    assert raw.shape == normed.shape
    if "projection_size" not in memory_kwargs:
        scale = raw.std(axis=-1).mean(axis=-1)  # [T]
        assert scale[0] < 0.05 and scale[-1] > 2 * scale[0]  # SHM's bare read-out: small at first, then growing
    np.testing.assert_allclose(normed.std(axis=-1), 1.0, atol=0.05)  # every step, the first included
    np.testing.assert_allclose(normed.mean(axis=-1), 0.0, atol=1e-5)


@pytest.mark.parametrize("memory_kwargs", [{"memory_size": 16}, {"memory_size": 16, "projection_size": 8}])
def test_the_readout_scale_multiplies_what_the_post_layer_sees(memory_kwargs):
    raw = _memory_output(memory_kwargs, memory_norm=False)
    np.testing.assert_allclose(_memory_output(memory_kwargs, False, readout_scale=32.0), 32.0 * raw, rtol=1e-5)
    normed = _memory_output(memory_kwargs, memory_norm=True)
    np.testing.assert_allclose(_memory_output(memory_kwargs, True, readout_scale=4.0), 4.0 * normed, rtol=1e-5)


def test_the_readout_scale_reaches_the_trunk():
    assert build(from_preset("default", **TINY_AGENT, readout_scale=32.0)).algorithm.network.readout_scale == 32.0
    assert from_preset("default").agent.readout_scale == 1.0


def _norm_of(memory: str, preset: str = "default", **options) -> bool:
    return build(from_preset(preset, **TINY_AGENT, memory=memory, **options)).algorithm.network.memory_norm


@pytest.mark.parametrize("memory", memory_names())
def test_automatic_memory_norm_is_on_for_shm_cores_only(memory):
    # None (the default preset's value): the shm-study's choice for SHM, and nothing changes for a GRU or FFM agent.
    assert from_preset("default").agent.memory_norm is None
    assert _norm_of(memory) == memory.startswith("shm")


def test_an_explicit_setting_wins_over_the_automatic_one():
    assert not _norm_of("shm", memory_norm=False)
    assert _norm_of("gru", memory_norm=True)


@pytest.mark.parametrize("preset", ["paper-popgym", "paper-popgym-official", "ppo-credit", "ppo-meta", "pqn-credit"])
def test_the_paper_presets_keep_the_papers_agent_without_the_norm(preset):
    assert from_preset(preset).agent.memory_norm is False
    assert not _norm_of("shm", preset)


@pytest.mark.parametrize("preset", ["paper-credit", "paper-meta"])
def test_the_papers_off_policy_presets_keep_their_critics_without_the_norm(preset):
    sac = build(from_preset(preset, **TINY_AGENT, total_timesteps=200_000)).algorithm
    assert from_preset(preset).agent.memory_norm is False
    assert type(sac.critic.memory).__name__ == "SHM" and not sac.critic.memory_norm and not sac.actor.memory_norm


def test_each_trunk_of_an_actor_critic_resolves_its_own_core():
    # SAC-D with the released code's GRU actor and an SHM critic: automatic means on for the critic only.
    config = from_preset("default", **TINY_AGENT, algo="sacd", actor_memory="gru", total_timesteps=20_000)
    sacd = build(config).algorithm
    assert (type(sacd.actor.memory).__name__, sacd.actor.memory_norm) == ("GRU", False)
    assert (type(sacd.critic.memory).__name__, sacd.critic.memory_norm) == ("SHM", True)
