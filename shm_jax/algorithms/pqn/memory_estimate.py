"""PQN's memory estimate, from shapes alone (nothing runs or compiles); the same terms as the PPO's.

For one (setting, seed) run: the runner state (parameters, Adam moments, env states, memory carries), the
rollout kept for the update (trajectory, start carry), the parameter gradients, and the larger of what one
minibatch's backward pass keeps from its forward pass (the residuals of ``jax.vjp`` of the Q(lambda) loss,
including a scan's saved memory states) and the largest single array the gradient computation makes. XLA's
other temporaries come on top, so the estimate is a lower bound.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from shm_jax.algorithms.base import MemoryEstimate, largest_array, tree_bytes


def _with_size(tree: Any, axis: int, size: int) -> Any:
    """Abstract ``tree`` with dimension ``axis`` of every leaf set to ``size`` (one minibatch of environments)."""

    def take(x):
        shape = (*x.shape[:axis], size, *x.shape[axis + 1 :])
        return jax.ShapeDtypeStruct(shape, x.dtype)

    return jax.tree.map(take, tree)


def estimate(pqn: Any, hyperparameters: Any, num_runs: int) -> MemoryEstimate:
    """The estimate for ``num_runs`` runs of a :class:`~shm_jax.algorithms.pqn.PQN` (abstract evaluation only)."""
    state = jax.eval_shape(pqn.init, jax.random.PRNGKey(0))
    _, rollout = jax.eval_shape(pqn.rollout, state, jnp.float32(0.0))
    n = pqn.num_envs // pqn.num_minibatches
    start_carry = _with_size(rollout.start_carry, 0, n)
    trajectory = _with_size(rollout.trajectory, 1, n)
    targets = jax.ShapeDtypeStruct((pqn.num_steps, n), np.float32)

    def residuals(params, carry, traj, target):
        _, backward = jax.vjp(lambda p: pqn.loss(p, carry, traj, target)[0], params)
        return backward  # a pytree whose leaves are what the backward pass reads

    args = (state.params, start_carry, trajectory, targets)
    saved = jax.eval_shape(residuals, *args)
    gradient = jax.make_jaxpr(jax.grad(lambda p, *rest: pqn.loss(p, *rest)[0]))(*args)
    return MemoryEstimate(
        state=tree_bytes(state),
        rollout=tree_bytes(rollout),
        gradients=tree_bytes(state.params),
        backward_residuals=tree_bytes(saved),
        largest_array=largest_array(gradient.jaxpr),
        num_runs=num_runs,
    )
