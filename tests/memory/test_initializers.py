"""vmap-safe orthogonal init: same values as flax's, and no batched QR when seeds are vmapped."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from shm_jax.memory.initializers import orthogonal


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4), (2, 3, 4)])
def test_matches_flax_orthogonal(shape):
    key = jax.random.PRNGKey(3)
    np.testing.assert_allclose(orthogonal(1.5)(key, shape), nn.initializers.orthogonal(1.5)(key, shape), atol=1e-6)


def qr_operand_ranks(jaxpr):
    """Ranks of the operands of every QR in a jaxpr (sub-jaxprs included): 2 = unbatched."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("geqrf", "householder_product", "qr"):
            yield eqn.invars[0].aval.ndim
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", None)
            if inner is not None:
                yield from qr_operand_ranks(getattr(inner, "jaxpr", inner))


def test_nested_vmap_runs_unbatched_qrs_and_matches_per_key_calls():
    keys = jax.random.split(jax.random.PRNGKey(1), 6).reshape(2, 3, 2)
    init = jax.vmap(jax.vmap(lambda k: orthogonal()(k, (6, 4))))
    jaxpr = jax.make_jaxpr(init)(keys)
    ranks = list(qr_operand_ranks(jaxpr.jaxpr))
    assert ranks and all(r == 2 for r in ranks), ranks
    out = jax.jit(init)(keys)
    np.testing.assert_allclose(out[1, 2], orthogonal()(keys[1, 2], (6, 4)), atol=1e-6)
    np.testing.assert_allclose(
        np.einsum("abij,abik->abjk", out, out), np.broadcast_to(np.eye(4), (2, 3, 4, 4)), atol=1e-5
    )


def test_gru_core_init_under_vmap_runs_unbatched_qrs_and_keeps_flax_values():
    """The GRU core's recurrent kernel (flax GRUCell) uses the vmap-safe init: batched seeds, unbatched QRs."""
    from shm_jax.memory import make_memory

    core = make_memory("gru", hidden_size=8)
    x, starts = jax.numpy.ones((3, 2, 5)), jax.numpy.zeros((3, 2), bool)

    def init(key):
        return core.init(key, core.initialize_carry(2), x, starts)

    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    ranks = list(qr_operand_ranks(jax.make_jaxpr(jax.vmap(init))(keys).jaxpr))
    assert ranks and all(r == 2 for r in ranks), ranks
    # Swapping the recurrent-kernel initialiser leaves GRUCell's parameters as flax makes them.
    cell_inputs = (jax.numpy.zeros((2, 8)), jax.numpy.ones((2, 5)))
    ours = nn.GRUCell(features=8, recurrent_kernel_init=orthogonal()).init(keys[1], *cell_inputs)
    theirs = nn.GRUCell(features=8).init(keys[1], *cell_inputs)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), ours, theirs)
