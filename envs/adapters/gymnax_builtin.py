"""``gymnax:<id>``: gymnax's own environments (e.g. ``gymnax:CartPole-v1``), as gymnax builds them.

Overrides name ``EnvParams`` fields (e.g. ``max_steps_in_episode``, or ``memory_length`` of
``gymnax:MemoryChain-bsuite``); gymnax's step auto-resets and reports ``final_observation`` itself.
"""

from __future__ import annotations

from typing import Any

import gymnax

from shm_jax.envs.registry import register_namespace


def make(name: str, prev_action: bool | None = None, **overrides: Any) -> tuple[Any, Any]:
    """(env, params) of gymnax id ``name`` with EnvParams ``overrides``; ValueError for an unknown field."""
    if prev_action:
        raise ValueError(f"prev_action is not supported for gymnax:{name} (gymnax environments are used as defined)")
    env, params = gymnax.make(name)
    unknown = sorted(set(overrides) - set(params.__dataclass_fields__))
    if unknown:
        raise ValueError(
            f"unknown override {unknown[0]!r} for {name}; EnvParams fields: "
            f"{', '.join(sorted(params.__dataclass_fields__))}"
        )
    return env, params.replace(**overrides)


register_namespace("gymnax", make, lambda: list(gymnax.registered_envs))
