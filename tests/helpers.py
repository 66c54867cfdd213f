"""What many tests share: the quick-tier subset of a parametrization, tree-close and tree-equal assertions, tiny sizes.

``quick_subset(values, keep)``: pytest params where every value not in ``keep`` carries the ``slow`` mark, so the
quick tier (``-m "not slow"``) checks a property on a few representative cases and the full suite on all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np
import pytest

# Tiny agent sizes: every PPO test that only needs *an* agent uses these, so programs of one shape are compiled once
# per run (the persistent compilation cache, tests/conftest.py, serves the repeats).
TINY_AGENT = dict(time_encoding=False, feature_size=8, pre_size=8, post_size=8, head_hidden_size=8)

# Small constructor kwargs per memory family (the conformance suite and the per-family tests share them); the HMF
# baselines run the log-depth associative scan here, the path that relies on the resettable monoid.
SMALL_CORE_KWARGS = {
    "shm": dict(memory_size=4, projection_size=6, shortcut=True),
    "gru": dict(hidden_size=6),
    "mlp": dict(features=6),
    "linear-attention": dict(memory_size=4, output_size=6, scan_method="associative"),
    "mlstm": dict(memory_size=4, output_size=6, scan_method="associative"),
    "ffm": dict(memory_size=4, context_size=3, output_size=6, scan_method="associative"),
}


def small_core_kwargs(name: str) -> dict:
    """The small kwargs of memory ``name`` (every ``shm*`` variant shares SHM's)."""
    return SMALL_CORE_KWARGS["shm" if name.startswith("shm") else name]


def quick_subset(values: Iterable[Any], keep: Callable[[Any], bool] | Iterable[Any], ids=None) -> list:
    """``values`` as pytest params; those ``keep`` rejects are marked slow (run by the full suite only)."""
    values = list(values)
    kept = keep if callable(keep) else set(keep).__contains__
    ids = list(ids) if ids is not None else [None] * len(values)
    return [
        pytest.param(*(v if isinstance(v, tuple) else (v,)), id=i, marks=() if kept(v) else pytest.mark.slow)
        for v, i in zip(values, ids)
    ]


def assert_trees_close(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    """Every leaf of two trees of one structure close (numpy's ``assert_allclose``); arrays are one-leaf trees."""
    jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol), a, b)


def assert_trees_equal(a: Any, b: Any) -> None:
    """Two trees of one structure, every leaf bit for bit equal (exact resume, storage that must lose nothing)."""
    assert jax.tree.structure(a) == jax.tree.structure(b), (jax.tree.structure(a), jax.tree.structure(b))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def assert_scaled_close(actual: Any, expected: Any, rtol: float = 1e-4) -> None:
    """Close relative to the expected array's magnitude: atol = 1e-5 x max(1, max |expected|) (long recurrences)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-5 * scale)
