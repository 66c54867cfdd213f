"""One registry for every environment id.

Each environment module calls :func:`register` at import time. ``make`` builds the environment and
its default ``EnvParams``, applies overrides (constructor arguments or ``EnvParams`` fields) and the
default wrappers. Unknown ids raise a ValueError listing the closest valid ids.

Ids of the form ``<prefix>:<name>`` belong to a family served from elsewhere: ``probe:`` ids are
registered here like any other (``envs.probes``); a *namespace* (:func:`register_namespace`, e.g.
``gymnax:``) builds ids of an outside suite on request, as that suite defines them.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable
from typing import Any

from gymnax.environments import environment

from shm_jax.envs import wrappers
from shm_jax.envs.autoreset import AutoResetWrapper


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """How to build one registered environment id.

    factory: callable(**constructor_kwargs) -> gymnax Environment.
    kwargs: constructor arguments fixed by this id (e.g. difficulty sizes).
    needs_prev_action: the original declares the task needs the previous action in the observation.
    family: "popgym", "credit" or "meta" (for docs and listing).
    eval_tasks: ``eval_tasks(params) -> params`` with a leading task axis on every leaf: the tasks an agent is
        evaluated on when they differ from the training distribution (meta-RL: the held-out test tasks); None
        evaluates on the training distribution.
    """

    env_id: str
    factory: Callable[..., environment.Environment]
    kwargs: dict[str, Any]
    needs_prev_action: bool = False
    family: str = "popgym"
    eval_tasks: Callable[[Any], Any] | None = None


_SPECS: dict[str, EnvSpec] = {}
_ALIASES: dict[str, str] = {}
_NAMESPACES: dict[str, Namespace] = {}
# How an unknown ``<prefix>:<name>`` is named in its error, per prefix (default: "<prefix> environment").
_PREFIX_LABELS = {"probe": "probe"}


@dataclasses.dataclass(frozen=True)
class Namespace:
    """Ids ``<prefix>:<name>`` of an outside suite: ``make(name, **overrides) -> (env, params)`` builds one,
    ``names()`` lists the valid names.

    wrapped False: ``make`` also takes ``prev_action`` and returns the env as the suite defines it (no wrappers
    added: gymnax's own auto-reset). wrapped True: ``make`` returns a raw gymnax 1.0 ``Environment`` (an adapter)
    and ``envs.make`` adds the same wrappers as for registered ids (previous action, flatten, reset-only-finished
    auto-reset, episode statistics).
    """

    prefix: str
    make: Callable[..., tuple[Any, Any]]
    names: Callable[[], list[str]]
    wrapped: bool = False


def register_namespace(
    prefix: str, make: Callable[..., tuple[Any, Any]], names: Callable[[], list[str]], *, wrapped: bool = False
) -> None:
    """Serve ``<prefix>:<name>`` ids through ``make`` (see :class:`Namespace`)."""
    if prefix in _NAMESPACES:
        raise ValueError(f"register_namespace: prefix {prefix!r} is already registered")
    _NAMESPACES[prefix] = Namespace(prefix, make, names, wrapped)


def namespace_of(env_id: str) -> Namespace | None:
    """The namespace serving ``env_id``, or None for registered ids."""
    prefix, sep, _ = env_id.partition(":")
    return _NAMESPACES.get(prefix) if sep and env_id not in _SPECS else None


def register(
    env_id: str,
    factory: Callable[..., environment.Environment],
    *,
    aliases: tuple[str, ...] = (),
    needs_prev_action: bool = False,
    family: str = "popgym",
    eval_tasks: Callable[[Any], Any] | None = None,
    **kwargs: Any,
) -> None:
    """Register ``env_id`` (and ``aliases`` that resolve to it); see :class:`EnvSpec` for the fields."""
    for name in (env_id, *aliases):
        if name in _SPECS or name in _ALIASES:
            raise ValueError(f"register: environment id {name!r} is already registered")
    _SPECS[env_id] = EnvSpec(env_id, factory, dict(kwargs), needs_prev_action, family, eval_tasks)
    for alias in aliases:
        _ALIASES[alias] = env_id


LEVELS = ("Easy", "Medium", "Hard")


def register_levels(
    name: str,
    factory: Callable[..., environment.Environment],
    *,
    needs_prev_action: bool = False,
    family: str = "popgym",
    **levels: tuple,
) -> None:
    """Register ``name + level`` for Easy, Medium, Hard; each keyword gives the constructor argument per level,
    e.g. ``num_decks=(1, 2, 3)``."""
    for i, level in enumerate(LEVELS):
        kwargs = {arg: values[i] for arg, values in levels.items()}
        register(f"{name}{level}", factory, needs_prev_action=needs_prev_action, family=family, **kwargs)


def list_ids(family: str | None = None, *, include_aliases: bool = False) -> list[str]:
    """Canonical ids (sorted), optionally of one family, optionally with aliases."""
    ids = [k for k, s in _SPECS.items() if family is None or s.family == family]
    if include_aliases:
        ids += [a for a, k in _ALIASES.items() if family is None or _SPECS[k].family == family]
    return sorted(ids)


def resolve(env_id: str) -> EnvSpec:
    """The spec for a canonical id or alias; ValueError with the closest valid ids otherwise.

    A namespaced id (``gymnax:CartPole-v1``) resolves to a spec of family ``<prefix>`` with no factory.
    """
    if env_id in _SPECS:
        return _SPECS[env_id]
    if env_id in _ALIASES:
        return _SPECS[_ALIASES[env_id]]
    prefix, sep, name = env_id.partition(":")
    family_ids = [k.partition(":")[2] for k in _SPECS if k.startswith(prefix + ":")] if sep else []
    namespace = _NAMESPACES.get(prefix) if sep else None
    if namespace is not None and name in namespace.names():
        return EnvSpec(env_id, None, {}, family=prefix)
    if namespace is not None or family_ids:
        valid = namespace.names() if namespace is not None else [f"{prefix}:{n}" for n in family_ids]
        label = _PREFIX_LABELS.get(prefix, f"{prefix} environment")
        raise ValueError(f"env: unknown {label} {name!r}; valid: {', '.join(valid)}")
    known = list(_SPECS) + list(_ALIASES)
    close = difflib.get_close_matches(env_id, known, n=5, cutoff=0.5)
    hint = ", ".join(close) if close else ", ".join(sorted(_SPECS)[:8]) + ", ..."
    raise ValueError(f"env: unknown environment id {env_id!r}; closest valid ids: {hint}")


def _constructor_arguments(factory: Callable[..., Any]) -> tuple[list[str], bool]:
    """Named keyword arguments of ``factory`` and whether it also takes ``**kwargs``."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    names, var_keyword = [], False
    for p in inspect.signature(target).parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = True
        elif p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY) and p.name != "self":
            names.append(p.name)
    return names, var_keyword


def make(
    env_id: str,
    *,
    prev_action: bool | None = None,
    flatten: bool = True,
    log: bool = True,
    checked: bool = False,
    **overrides: Any,
):
    """Build a registered environment and its params: ``make(env_id, **overrides) -> (env, params)``.

    env_id: a canonical id (popjym naming, e.g. "RepeatPreviousEasy", "MultiArmedBanditEasy") or an alias (the
        original popgym class names, e.g. "MultiarmedBanditEasy", "PositionOnlyCartPoleHard"). Unknown ids raise a
        ValueError listing the closest valid ids.
    overrides: names of ``EnvParams`` fields go to ``params.replace(...)`` (e.g. ``max_steps_in_episode``), the
        other names to the constructor (e.g. ``num_decks=2``); any other name raises a one-line ValueError.
    prev_action: append the previous action (one-hot for discrete actions, zeros = null action at an episode's
        start) and an episode-start flag (1.0 on the first observation of EVERY episode, auto-resets included).
        None (default) = the task's default, ``needs_prev_action`` of its registration: True for the tasks whose
        original declares ``obs_requires_prev_action`` (Battleship, Concentration, MineSweeper, MultiArmedBandit)
        and for credit/meta tasks registered that way, because their observation does not say what was done (a
        bandit's payout bit without the pulled arm, a shot's hit bit without the cell), so they cannot be learned
        without it. The other POPGym tasks (Autoencode, RepeatPrevious, RepeatFirst, CountRecall, HigherLower,
        CartPole, Pendulum, ...) get none by default, as the original envs are defined; pass ``prev_action=True`` to
        reproduce the POPGym paper's baselines, which wrapped every env as Antialias(PreviousAction(env)).
    flatten: observation -> float32[obs_dim] (discrete parts one-hot, uint8 images as 0..255 floats).
    log: outermost EpisodeStatsWrapper adding ``episode_return``, ``episode_length`` and ``episode_done`` to info.
    checked: also check every action against the action space with ``jax.experimental.checkify``; run the
        stepping code through ``envs.wrappers.run_checked`` to get a clear error. Without it, out-of-range actions
        are clipped to the valid range (every environment documents this). Checked mode keeps gymnax's own auto-reset
        (a reset on every step): checkify cannot trace through ``envs.autoreset``'s batching rule.

    The returned env has ``reset(key, params)``, ``step(key, state, action, params)`` (gymnax 1.0 6-tuple with
    auto-reset; under ``vmap`` only the environments that finished compute a reset, see ``envs.autoreset``),
    ``observation_space(params)``, ``action_space(params)`` (the raw env's) and ``default_params``.
    """
    spec = resolve(env_id)
    namespace = namespace_of(env_id)
    if namespace is not None and not namespace.wrapped:
        return namespace.make(env_id.partition(":")[2], prev_action=prev_action, **overrides)
    if namespace is not None:
        env, params = namespace.make(env_id.partition(":")[2], **overrides)
        return wrap(env, params, prev_action=bool(prev_action), flatten=flatten, log=log, checked=checked)
    ctor_names, ctor_var_keyword = _constructor_arguments(spec.factory)
    ctor_overrides = {k: v for k, v in overrides.items() if k in ctor_names}
    env = spec.factory(**{**spec.kwargs, **ctor_overrides})
    params = env.default_params
    param_names = [f.name for f in dataclasses.fields(params)] if dataclasses.is_dataclass(params) else []
    param_overrides = {k: v for k, v in overrides.items() if k not in ctor_overrides and k in param_names}
    unknown = sorted(set(overrides) - set(ctor_overrides) - set(param_overrides))
    if unknown and ctor_var_keyword:
        env = spec.factory(**{**spec.kwargs, **ctor_overrides, **{k: overrides[k] for k in unknown}})
        ctor_overrides.update({k: overrides[k] for k in unknown})
        params, unknown = env.default_params, []
    if unknown:
        raise ValueError(
            f"make({env_id!r}): unknown override(s) {', '.join(unknown)}; allowed: constructor arguments "
            f"[{', '.join(ctor_names)}], EnvParams fields [{', '.join(param_names)}]"
        )
    if param_overrides:
        params = params.replace(**param_overrides)
    prev_action = spec.needs_prev_action if prev_action is None else prev_action
    return wrap(env, params, prev_action=prev_action, flatten=flatten, log=log, checked=checked)


def wrap(env, params, *, prev_action: bool = False, flatten: bool = True, log: bool = True, checked: bool = False):
    """``(env, params)`` with ``envs.make``'s wrappers (see :func:`make` for the flags), innermost first."""
    if checked:
        env = wrappers.CheckedActionWrapper(env)
    if prev_action:
        env = wrappers.PrevActionWrapper(env)
    if flatten:
        env = wrappers.FlattenWrapper(env)
    if not checked:  # checkify cannot see through the custom_vmap rule: checked mode keeps gymnax's auto-reset
        env = AutoResetWrapper(env)
    if log:
        env = wrappers.EpisodeStatsWrapper(env)
    return env, params
