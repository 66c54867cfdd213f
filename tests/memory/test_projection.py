"""projection.Linear: flax's Dense when applied; folding a deferred output into the next layer computes the same
function with the same parameter gradients; the agent folds a core's output projection (SHM's, the HMF baselines')
into its post layer."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shm_jax.agents import ActionSpec, actor_critic
from shm_jax.memory import make_memory
from shm_jax.memory.projection import AffineOutput, Linear


def test_linear_is_flax_dense():
    x = jax.random.normal(jax.random.key(0), (3, 5, 7))
    for kwargs in (
        {},
        {"use_bias": False},
        {"dtype": jnp.bfloat16},
        {"kernel_init": nn.initializers.orthogonal(), "bias_init": nn.initializers.normal(1.0)},
    ):
        ours, flax_dense = Linear(11, **kwargs), nn.Dense(11, **kwargs)
        params = ours.init(jax.random.key(1), x)
        assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, flax_dense.init(jax.random.key(1), x))
        jax.tree.map(np.testing.assert_array_equal, params, flax_dense.init(jax.random.key(1), x))
        y = ours.apply(params, x)
        assert y.dtype == flax_dense.apply(params, x).dtype
        np.testing.assert_array_equal(y, flax_dense.apply(params, x))
        deferred = ours.apply(params, x, defer=True)
        assert isinstance(deferred, AffineOutput) and deferred.features == 11
        np.testing.assert_array_equal(deferred.materialize(), y)


class _TwoLayers(nn.Module):
    """Linear(K -> F) then Linear(F -> P), the first handed on deferred or applied."""

    defer: bool
    first_bias: bool = True

    @nn.compact
    def __call__(self, x):
        first = Linear(64, use_bias=self.first_bias, bias_init=nn.initializers.normal(1.0), name="first")
        return Linear(5, bias_init=nn.initializers.normal(1.0), name="second")(first(x, defer=self.defer))


def test_folding_keeps_the_function_and_the_gradients():
    x = jax.random.normal(jax.random.key(2), (4, 6, 9))
    for first_bias in (True, False):
        folded, applied = _TwoLayers(True, first_bias), _TwoLayers(False, first_bias)
        params = applied.init(jax.random.key(3), x)
        assert jax.tree.map(jnp.shape, folded.init(jax.random.key(3), x)) == jax.tree.map(jnp.shape, params)
        np.testing.assert_allclose(folded.apply(params, x), applied.apply(params, x), rtol=1e-5, atol=1e-5)

        def loss(model):
            return lambda p, x: jnp.sum(jnp.sin(model.apply(p, x)))

        grads = [jax.grad(loss(m), argnums=(0, 1))(params, x) for m in (folded, applied)]
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), *grads)


def _applied(core):
    """The same core (same parameters) that never defers its output projection: the agent then applies W_o and
    its post layer apart."""
    applied = type(
        f"Applied{type(core).__name__}", (type(core),), {"can_defer_projection": property(lambda self: False)}
    )
    return applied(**{f: getattr(core, f) for f in core.__dataclass_fields__ if f not in ("parent", "name")})


@pytest.mark.parametrize(
    "memory, kwargs",
    [
        ("shm", dict(memory_size=8, projection_size=96, shortcut=True)),
        ("linear-attention", dict(memory_size=8, output_size=96)),
        ("mlstm", dict(memory_size=8, output_size=96)),
    ],
)
def test_agent_folds_the_core_projection_into_its_post_layer(memory, kwargs):
    core = make_memory(memory, **kwargs)
    nets = [
        actor_critic(
            memory=c,
            action_spec=ActionSpec("discrete", (3,)),
            feature_size=16,
            pre_size=8,
            post_size=8,
            head_hidden_size=8,
            init_scheme="official",
        )
        for c in (core, _applied(core))
    ]
    assert nets[0].memory.can_defer_projection and not nets[1].memory.can_defer_projection
    T, B = 12, 3
    carry = nets[0].initialize_carry(B)
    obs = jax.random.normal(jax.random.key(4), (T, B, 5))
    starts = jnp.zeros((T, B), bool).at[0].set(True).at[7, 1].set(True)
    noise = nets[0].sample_noise(jax.random.key(5), T, B)
    params = nets[1].init(jax.random.key(6), carry, obs, starts, noise)
    jax.tree.map(np.testing.assert_array_equal, nets[0].init(jax.random.key(6), carry, obs, starts, noise), params)
    assert params["params"]["post"]["kernel"].shape == (96, 8)

    # A deferred projection reaches the post layer: no [T, B, 96] activation in the folded program.
    def widths(net):
        jaxpr = jax.make_jaxpr(lambda p: net.apply(p, carry, obs, starts, noise))(params)
        return {v.aval.shape[-1] for eqn in jaxpr.jaxpr.eqns for v in eqn.outvars if len(v.aval.shape) == 3}

    assert 96 not in widths(nets[0]) and 96 in widths(nets[1])

    def objective(net):
        def f(p):
            _, logits, value = net.apply(p, carry, obs, starts, noise)
            return jnp.sum(jnp.tanh(logits)) + jnp.sum(value**2), (logits, value)

        return f

    (loss_folded, outs_folded), grads_folded = jax.value_and_grad(objective(nets[0]), has_aux=True)(params)
    (loss_applied, outs_applied), grads_applied = jax.value_and_grad(objective(nets[1]), has_aux=True)(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), outs_folded, outs_applied)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6), grads_folded, grads_applied)
    assert float(jnp.abs(grads_folded["params"]["memory"]["out"]["kernel"]).max()) > 0
