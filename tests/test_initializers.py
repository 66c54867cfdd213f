"""vmap-safe orthogonal init: same values as flax's, and no batched QR when seeds are vmapped."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from shm_jax.initializers import orthogonal


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4), (2, 3, 4)])
def test_matches_flax_orthogonal(shape):
    key = jax.random.PRNGKey(3)
    np.testing.assert_allclose(orthogonal(1.5)(key, shape), nn.initializers.orthogonal(1.5)(key, shape), atol=1e-6)


def test_nested_vmap_runs_unbatched_qrs_and_matches_per_key_calls():
    keys = jax.random.split(jax.random.PRNGKey(1), 6).reshape(2, 3, 2)
    init = jax.vmap(jax.vmap(lambda k: orthogonal()(k, (6, 4))))
    jaxpr = jax.make_jaxpr(init)(keys)

    def qr_operand_ranks(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name in ("geqrf", "householder_product", "qr"):
                yield eqn.invars[0].aval.ndim
            for sub in jax.core.subjaxprs(eqn) if hasattr(jax.core, "subjaxprs") else []:
                yield from qr_operand_ranks(sub)
            for param in eqn.params.values():
                inner = getattr(param, "jaxpr", None)
                if inner is not None:
                    yield from qr_operand_ranks(getattr(inner, "jaxpr", inner))

    ranks = list(qr_operand_ranks(jaxpr.jaxpr))
    assert ranks and all(r == 2 for r in ranks), ranks
    out = jax.jit(init)(keys)
    np.testing.assert_allclose(out[1, 2], orthogonal()(keys[1, 2], (6, 4)), atol=1e-6)
    np.testing.assert_allclose(np.einsum("abij,abik->abjk", out, out), np.broadcast_to(np.eye(4), (2, 3, 4, 4)),
                               atol=1e-5)
