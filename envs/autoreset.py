"""gymnax's auto-reset without a reset on every step.

gymnax's ``Environment.step`` computes ``reset_env`` on every step and selects it where the episode ended, so
under ``vmap`` every environment pays a full reset per step (a new maze, a shuffled deck, a placed board).
:class:`AutoResetWrapper` returns exactly the same values (same keys, same states, same observations) but,
when vmapped over environments, computes resets only for the environments that finished this step: the
finished ones are listed, and ``reset_env`` runs on ``resets_per_round`` of them at a time (with their own
reset keys and params) until every one has its reset. Steps where no episode ends compute no reset at all.
Un-vmapped, it is gymnax's step. The batch of stepped states goes into the reset loop and out of it in place:
the loop also carries the step's other outputs, so that nothing after it still reads the states as they were
before the loop (such a read makes XLA copy the whole batch of states on every step). When more envs finish than
``max_rounds`` rounds serve (fixed-length episodes started together all end on one step), the step resets the
whole batch in one vectorised pass and selects, as gymnax does: the same values, without a round's overhead
repeated dozens of times.

The batching is a ``jax.custom_batching.custom_vmap`` rule, so callers keep ``jax.vmap(env.step)``; outer
vmaps (seeds, sweeps) batch the rule like any other code (the round loop then runs the largest count of
rounds among them).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from gymnax.environments import environment

from shm_jax.envs.wrappers import _InnerWrapper

# Resets per round: enough that a typical step (a few episodes ending among thousands of envs) needs one
# round, few enough that a round costs a small fraction of a full batch of resets.
DEFAULT_ROUNDS_PER_BATCH = 64
# Past this many rounds (a quarter of the batch finished) one reset of every env and a select is cheaper.
DEFAULT_MAX_ROUNDS = 16
# Name scope of the reset of every env (in compiled programs' op names: tests tell its loop from the rounds').
RESET_ALL_SCOPE = "reset_all_envs"


def resets_per_round(batch_size: int, rounds_per_batch: int = DEFAULT_ROUNDS_PER_BATCH) -> int:
    """How many resets one round computes for ``batch_size`` envs: ceil(batch_size / rounds_per_batch)."""
    return max(1, math.ceil(batch_size / rounds_per_batch))


def _axes(batched) -> object:
    """A vmap ``in_axes`` tree from custom_vmap's ``in_batched`` flags: 0 where batched, None elsewhere."""
    return jax.tree.map(lambda b: 0 if b else None, batched)


def _carried(r: jax.Array, other):
    """``other`` unchanged (r >= 0 in a loop), written so that XLA cannot drop it from the loop as invariant."""
    return jax.tree.map(lambda x: jnp.where(r < 0, jnp.zeros_like(x), x), other)


def _take(tree, batched, index: jax.Array):
    """Rows ``index`` of the batched leaves of ``tree`` (``batched``: a tree of bools); the others unchanged."""
    return jax.tree.map(lambda x, b: x[index] if b else x, tree, batched)


class AutoResetWrapper(_InnerWrapper):
    """gymnax auto-reset that resets only the environments that finished (see the module docstring).

    rounds_per_batch: under vmap over B envs one round resets ceil(B / rounds_per_batch) of the finished
        envs (a static size); the rounds repeat while finished envs remain, so any number of them is served.
    max_rounds: a step that would need more rounds than this resets every env at once and selects instead.
    """

    def __init__(
        self,
        env: environment.Environment,
        rounds_per_batch: int = DEFAULT_ROUNDS_PER_BATCH,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
    ):
        super().__init__(env)
        if rounds_per_batch < 1:
            raise ValueError(f"rounds_per_batch: must be >= 1, got {rounds_per_batch}")
        if max_rounds < 1:
            raise ValueError(f"max_rounds: must be >= 1, got {max_rounds}")
        self.rounds_per_batch = rounds_per_batch
        self.max_rounds = max_rounds
        self._batched_step = jax.custom_batching.custom_vmap(self._gymnax_step)
        self._batched_step.def_vmap(self._step_rule)

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key, state, action, params=None):
        """gymnax 1.0 ``step``: (obs, state, reward, terminated, truncated, info) with auto-reset."""
        if params is None:
            params = self.default_params
        return self._batched_step(key, state, action, params)

    def _gymnax_step(self, key, state, action, params):
        return environment.Environment.step(self, key, state, action, params)

    def _step_rule(self, axis_size, in_batched, key, state, action, params):
        """The vmapped step: step every env, then reset the finished ones in rounds."""
        key_b, state_b, action_b, params_b = in_batched
        if not jax.tree.all(key_b):
            key = jnp.broadcast_to(key, (axis_size, *jnp.shape(key)))
        state_axes, action_axes, params_axes = _axes(state_b), _axes(action_b), _axes(params_b)
        keys = jax.vmap(jax.random.split)(key)
        key_step, key_reset = keys[:, 0], keys[:, 1]
        obs_st, state_st, reward, terminated, info = jax.vmap(
            self.step_env, in_axes=(0, state_axes, action_axes, params_axes)
        )(key_step, state, action, params)
        truncated = jax.vmap(self.is_truncated, in_axes=(0, params_axes))(state_st, params)
        done = jnp.logical_or(terminated, truncated)
        info = {**info, "terminated": terminated, "truncated": truncated, "final_observation": obs_st}
        # The other outputs ride through the reset loop unchanged: a value read after the loop may be fused there
        # as a read of the stepped states (a reward that looks at the deck), and then XLA copies the whole batch
        # of states every step so that the loop can update them in place.
        obs, state, (reward, info) = self._reset_finished(
            done, key_reset, obs_st, state_st, params, params_b, params_axes, (reward, info)
        )
        out = (obs, state, reward, info["terminated"], info["truncated"], info)
        return out, jax.tree.map(lambda _: True, out)

    def _reset_finished(self, done, key_reset, obs, state, params, params_batched, params_axes, other=()):
        """Replace (obs, state) of every env where ``done`` by ``reset_env(key_reset[i], params[i])``; returns
        (obs, state, other), ``other`` carried through unchanged."""
        batch = done.shape[0]
        per_round = resets_per_round(batch, self.rounds_per_batch)

        finished = jnp.sum(done, dtype=jnp.int32)
        rounds = (finished + per_round - 1) // per_round

        def one_round(carry):
            r, obs, state, other = carry
            # finished_upto[i] = number of finished envs among 0..i (a log-depth scan: XLA:CPU's cumsum is O(B^2)).
            # Computed inside the round (``r >= 0`` keeps XLA from hoisting it out of the loop): most steps end no
            # episode and then run no round, so they pay only the sum above.
            finished_upto = jax.lax.associative_scan(jnp.add, (done & (r >= 0)).astype(jnp.int32))
            rank = r * per_round + jnp.arange(per_round, dtype=jnp.int32)  # the k-th finished env, k = rank
            index = jnp.searchsorted(finished_upto, rank + 1, side="left")
            index = jnp.where(rank < finished, index, batch)  # past the last finished env: dropped on write
            safe = jnp.minimum(index, batch - 1)
            obs_re, state_re = jax.vmap(self.reset_env, in_axes=(0, params_axes))(
                key_reset[safe], _take(params, params_batched, safe)
            )
            put = lambda x, y: x.at[index].set(y.astype(x.dtype), mode="drop")  # noqa: E731
            return r + 1, jax.tree.map(put, obs, obs_re), jax.tree.map(put, state, state_re), _carried(r, other)

        @jax.named_scope(RESET_ALL_SCOPE)
        def all_at_once(carry):
            r, obs, state, other = carry
            # Every env in order; through ``r >= 0`` so that XLA cannot hoist the resets out of the loop (and then
            # compute them on every step).
            every = jnp.where(r >= 0, jnp.arange(batch, dtype=jnp.int32), 0)
            obs_re, state_re = jax.vmap(self.reset_env, in_axes=(0, params_axes))(
                key_reset[every], _take(params, params_batched, every)
            )
            pick = lambda x, y: jnp.where(done.reshape(done.shape + (1,) * (x.ndim - 1)), y.astype(x.dtype), x)  # noqa: E731
            return r + 1, jax.tree.map(pick, obs, obs_re), jax.tree.map(pick, state, state_re), _carried(r, other)

        # Loops, not a cond (a cond makes XLA copy the batch of states): the first runs once when more envs
        # finished than max_rounds rounds serve, the second the rounds otherwise; a step where no episode ends
        # runs neither.
        at_once = rounds > self.max_rounds
        _, obs, state, other = jax.lax.while_loop(
            lambda c: at_once & (c[0] < 1), all_at_once, (jnp.int32(0), obs, state, other)
        )
        _, obs, state, other = jax.lax.while_loop(
            lambda c: ~at_once & (c[0] < rounds), one_round, (jnp.int32(0), obs, state, other)
        )
        return obs, state, other
