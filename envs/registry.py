"""One registry for every environment id.

Each environment module calls :func:`register` at import time. ``make`` builds the environment and
its default ``EnvParams``, applies overrides (constructor arguments or ``EnvParams`` fields) and the
default wrappers. Unknown ids raise a ValueError listing the closest valid ids.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Callable

from gymnax.environments import environment


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """How to build one registered environment id.

    factory: callable(**constructor_kwargs) -> gymnax Environment.
    kwargs: constructor arguments fixed by this id (e.g. difficulty sizes).
    needs_prev_action: the original declares the task needs the previous action in the observation.
    family: "popgym", "credit" or "meta" (for docs and listing).
    """

    env_id: str
    factory: Callable[..., environment.Environment]
    kwargs: dict[str, Any]
    needs_prev_action: bool = False
    family: str = "popgym"


_SPECS: dict[str, EnvSpec] = {}
_ALIASES: dict[str, str] = {}


def register(
    env_id: str,
    factory: Callable[..., environment.Environment],
    *,
    aliases: tuple[str, ...] = (),
    needs_prev_action: bool = False,
    family: str = "popgym",
    **kwargs: Any,
) -> None:
    """Register ``env_id`` (and ``aliases`` that resolve to it)."""
    for name in (env_id, *aliases):
        if name in _SPECS or name in _ALIASES:
            raise ValueError(f"register: environment id {name!r} is already registered")
    _SPECS[env_id] = EnvSpec(env_id, factory, dict(kwargs), needs_prev_action, family)
    for alias in aliases:
        _ALIASES[alias] = env_id


def list_ids(family: str | None = None, *, include_aliases: bool = False) -> list[str]:
    """Canonical ids (sorted), optionally of one family, optionally with aliases."""
    ids = [k for k, s in _SPECS.items() if family is None or s.family == family]
    if include_aliases:
        ids += [a for a, k in _ALIASES.items() if family is None or _SPECS[k].family == family]
    return sorted(ids)


def resolve(env_id: str) -> EnvSpec:
    """The spec for a canonical id or alias; ValueError with the closest valid ids otherwise."""
    if env_id in _SPECS:
        return _SPECS[env_id]
    if env_id in _ALIASES:
        return _SPECS[_ALIASES[env_id]]
    known = list(_SPECS) + list(_ALIASES)
    close = difflib.get_close_matches(env_id, known, n=5, cutoff=0.5)
    hint = ", ".join(close) if close else ", ".join(sorted(_SPECS)[:8]) + ", ..."
    raise ValueError(f"env: unknown environment id {env_id!r}; closest valid ids: {hint}")
