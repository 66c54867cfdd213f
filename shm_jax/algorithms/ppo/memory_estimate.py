"""PPO's memory estimate, from shapes alone (nothing runs or compiles).

It adds, for one (setting, seed) run: the runner state (parameters, Adam moments, env states, memory
carries), the rollout kept for the update (trajectory, start carry), the parameter gradients, and the
larger of what one minibatch's backward pass keeps from its forward pass (the residuals of ``jax.vjp`` of
the PPO loss, which include a scan's saved memory states) and the largest single array the gradient
computation makes (e.g. a chunk of memory states recomputed in the backward pass). XLA's other
temporaries come on top, so the estimate is a lower bound: a run it rejects cannot fit, a run it accepts
may still need more.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from shm_jax.algorithms.base import MemoryEstimate, largest_array, tree_bytes


def _minibatch(tree: Any, axis: int, size: int) -> Any:
    def take(x):
        shape = list(x.shape)
        shape[axis] = size
        return jax.ShapeDtypeStruct(tuple(shape), x.dtype)

    return jax.tree.map(take, tree)


def estimate(ppo: Any, hyperparameters: Any, num_runs: int) -> MemoryEstimate:
    """The estimate for ``num_runs`` runs of a :class:`~shm_jax.algorithms.ppo.PPO` (abstract evaluation only)."""
    state = jax.eval_shape(ppo.init, jax.random.PRNGKey(0))
    _, rollout = jax.eval_shape(ppo.rollout, state)
    n = ppo.num_envs // ppo.num_minibatches
    start_carry = _minibatch(rollout.start_carry, 0, n)
    trajectory = _minibatch(rollout.trajectory, 1, n)
    targets = jax.ShapeDtypeStruct((ppo.num_steps, n), np.float32)

    def residuals(params, hp, carry, traj, adv, target):
        _, backward = jax.vjp(lambda p: ppo.loss(p, hp, carry, traj, adv, target)[0], params)
        return backward  # a pytree whose leaves are what the backward pass reads

    args = (state.params, hyperparameters, start_carry, trajectory, targets, targets)
    saved = jax.eval_shape(residuals, *args)
    gradient = jax.make_jaxpr(jax.grad(lambda p, *rest: ppo.loss(p, *rest)[0]))(*args)
    return MemoryEstimate(
        state=tree_bytes(state),
        rollout=tree_bytes(rollout),
        gradients=tree_bytes(state.params),
        backward_residuals=tree_bytes(saved),
        largest_array=largest_array(gradient.jaxpr),
        num_runs=num_runs,
    )
