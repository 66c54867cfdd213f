"""Compiled steps update each environment's large state arrays in place: the vmapped, auto-resetting step inside
a scan (as a rollout runs it) copies no dealt deck or visited-cell grid. A copy there costs the whole batch of
states every step (the card games and labyrinths ran several times slower with one)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import pytest

from shm_jax import envs
from shm_jax.envs.autoreset import RESET_ALL_SCOPE

BATCH = 64

# (id, the state field that a step updates at one position, its per-env shape)
CASES = [
    ("RepeatFirstHard", "suits", (832,)),
    ("CountRecallEasy", "values", (52,)),
    ("AutoencodeMedium", "suits", (104,)),
    ("LabyrinthExploreEasy", "explored", (11, 11)),
]


def compiled_rollout_text(env_id: str) -> str:
    env, params = envs.make(env_id, prev_action=False, flatten=False, log=False)
    space = env.action_space(params)

    def run(key):
        _, state = env.reset(key, params)

        def body(carry, key):
            state, total = carry
            key_action, key_step = jax.random.split(key)
            obs, state, reward, *_ = env.step(key_step, state, space.sample(key_action), params)
            return (state, total + reward + sum(jnp.sum(x.astype(jnp.float32)) for x in jax.tree.leaves(obs))), None

        return jax.lax.scan(body, (state, jnp.float32(0)), jax.random.split(key, 4))[0]

    keys = jax.random.split(jax.random.key(0), BATCH)
    return jax.jit(jax.vmap(run)).lower(keys).compile().as_text()


def loop_bodies(text: str) -> dict[str, str]:
    """The computations of the compiled HLO text that are while-loop bodies (run once per step or round)."""
    bodies = set(re.findall(r"\bbody=%([\w.\-]+)", text))
    computations = re.findall(r"^%([\w.\-]+) .*?\{\n(.*?)^\}", text, flags=re.M | re.S)
    return {name: body for name, body in computations if name in bodies}


@pytest.mark.parametrize("env_id, field, shape", CASES, ids=[c[0] for c in CASES])
def test_step_copies_no_batch_of_state_arrays(env_id, field, shape):
    text = compiled_rollout_text(env_id)
    batch_shape = ",".join(str(d) for d in (BATCH, *shape))
    # The loop that resets every env at once (a step where most episodes end) builds a batch of new states: the
    # arrays it writes are not copies of the stepped ones. Every other loop runs on every step or round.
    bodies = {name: body for name, body in loop_bodies(text).items() if RESET_ALL_SCOPE not in body}
    assert any(re.search(rf"\[{batch_shape}\]", body) for body in bodies.values()), (
        f"{field}: no [{batch_shape}] array in any loop body"
    )
    copies = [name for name, body in bodies.items() if re.search(rf"= \w+\[{batch_shape}\]\S* copy\(", body)]
    assert not copies, f"{env_id}: {field} is copied on every step (in loop bodies {copies})"
