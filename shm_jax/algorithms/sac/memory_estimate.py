"""SAC's memory estimate, from shapes alone (nothing runs or compiles); the same terms as the PPO's.

For one (setting, seed) run: the state (three parameter sets, Adam moments, the replay buffer), the episodes
collected by one iteration, the actor and critic gradients, and the larger of what one gradient update's
backward passes keep from their forward passes (the critic's and the actor's ``jax.vjp`` residuals over
B x (T + 1) steps, including a scan's saved memory states) and the largest single array an update makes.
XLA's other temporaries come on top, so the estimate is a lower bound.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from shm_jax.algorithms import replay
from shm_jax.algorithms.base import MemoryEstimate, largest_array, tree_bytes


def estimate(sac: Any, hyperparameters: Any, num_runs: int) -> MemoryEstimate:
    """The estimate for ``num_runs`` runs of a :class:`~shm_jax.algorithms.sac.SAC` (abstract evaluation only)."""
    key = jax.random.PRNGKey(0)
    state = jax.eval_shape(sac.init, key)
    learner = state.learner
    episodes, _ = jax.eval_shape(lambda p, k: sac.collect(p, k, sac.num_envs), learner.actor_params, key)
    batch = jax.eval_shape(lambda b, k: replay.sample(b, k, sac.batch_size), state.buffer, key)
    steps = batch.obs.shape[0]
    noise_a = jax.eval_shape(lambda k: sac.actor.sample_noise(k, steps, sac.batch_size), key)
    noise_c = jax.eval_shape(lambda k: sac.critic.sample_noise(k, steps, sac.batch_size), key)

    def residuals(actor_params, critic_params, batch, noise_a, noise_c):
        _, actor_back = jax.vjp(lambda p: sac._pass(sac.actor, p, batch, noise_a), actor_params)
        action = None if sac.discrete else jnp.zeros((*batch.obs.shape[:2], sac.action_spec.sizes[0]))
        _, critic_back = jax.vjp(lambda p: sac._pass(sac.critic, p, batch, noise_c, action), critic_params)
        return actor_back, critic_back

    saved = jax.eval_shape(residuals, learner.actor_params, learner.critic_params, batch, noise_a, noise_c)
    step = jax.make_jaxpr(lambda lrn, b, k: sac.gradient_step(lrn, b, hyperparameters, k))(learner, batch, key)
    return MemoryEstimate(
        state=tree_bytes(state),
        rollout=tree_bytes(episodes),
        gradients=tree_bytes((learner.actor_params, learner.critic_params)),
        backward_residuals=tree_bytes(saved),
        largest_array=largest_array(step.jaxpr),
        num_runs=num_runs,
    )
