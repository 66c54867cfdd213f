"""The vocabulary of options: the one-line ConfigError, field checks, and ``option()`` (a field with its check).

Every config section (``shm_jax.config``'s env/agent/run, each algorithm's own) declares its fields with
``option(default, check)``; which options are traced (sweepable) hyperparameters each algorithm
says through its typed hyperparameter pytree (``shm_jax.algorithms.base``). This module imports nothing from the
package, so every layer may use it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any


class ConfigError(ValueError):
    """A bad option: ``str(err)`` is one line, ``"<field>: <what is wrong and what is allowed>"``."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


# ----------------------------------------------------------------------------------------------------
# Field checks: each takes (field, value) and raises ConfigError


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(field: str, value: Any) -> None:
    if not _is_int(value) or value <= 0:
        raise ConfigError(field, f"must be a positive integer, got {value!r}")


def non_negative_int(field: str, value: Any) -> None:
    if not _is_int(value) or value < 0:
        raise ConfigError(field, f"must be a non-negative integer, got {value!r}")


def positive_number(field: str, value: Any) -> None:
    if not _is_number(value) or not value > 0:
        raise ConfigError(field, f"must be a positive finite number, got {value!r}")


def non_negative_number(field: str, value: Any) -> None:
    if not _is_number(value) or not value >= 0:
        raise ConfigError(field, f"must be a non-negative finite number, got {value!r}")


def unit_interval(field: str, value: Any) -> None:
    if not _is_number(value) or not 0 <= value <= 1:
        raise ConfigError(field, f"must be a number in [0, 1], got {value!r}")


def boolean(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(field, f"must be true or false, got {value!r}")


def optional_boolean(field: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise ConfigError(field, f"must be true, false or None (automatic), got {value!r}")


def non_empty_string(field: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(field, f"must be a non-empty string, got {value!r}")


def optional_name(field: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip() or "/" in value):
        raise ConfigError(field, f"must be None or a folder name without '/', got {value!r}")


def keyword_mapping(field: str, value: Any) -> None:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(field, f"must be a mapping of argument names to values, got {value!r}")
    for key, item in value.items():
        if not isinstance(item, (int, float, bool, str)) and item is not None:
            raise ConfigError(field, f"value of {key!r} must be a number, bool or string, got {item!r}")


def one_of(*choices: str) -> Callable[[str, Any], None]:
    def check(field: str, value: Any) -> None:
        if value not in choices:
            raise ConfigError(field, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")

    return check


def option(default: Any, check: Callable[[str, Any], None]) -> Any:
    """A config field with its check (``metadata["check"](name, value)`` raises ConfigError)."""
    metadata = {"check": check}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def check_fields(section: Any) -> None:
    """Run every field's check of a config section (a dataclass declared with :func:`option`)."""
    for f in dataclasses.fields(section):
        f.metadata["check"](f.name, getattr(section, f.name))
