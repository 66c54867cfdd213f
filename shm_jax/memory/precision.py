"""Compute precision of the memory cores and the agent: float32 (default) or bfloat16 mixed precision.

Mixed precision here means: parameters stay float32 (flax ``param_dtype``), the projections and the
per-step activations are computed in the *compute dtype*, and every recurrent state (the carry, SHM's
memory M and its recurrence M_{t-1} ⊙ C_t + U_t) stays float32. ``None`` and float32 are today's
float32 path unchanged.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

PRECISIONS = ("float32", "bfloat16")
_BY_NAME = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(owner: str, dtype: Any) -> Any:
    """Resolve a ``dtype`` field to ``jnp.float32`` or ``jnp.bfloat16``; one-line ValueError otherwise.

    Accepts None (float32), the strings "float32"/"bfloat16", and ``jnp.float32``/``jnp.bfloat16``
    (or the equivalent numpy dtypes).
    """
    if dtype is None:
        return jnp.float32
    if isinstance(dtype, str):
        if dtype in _BY_NAME:
            return _BY_NAME[dtype]
    elif not isinstance(dtype, bool):
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = None
        if name in _BY_NAME:
            return _BY_NAME[name]
    raise ValueError(
        f"{owner}: dtype must be None, 'float32' or 'bfloat16' (or jnp.float32 / jnp.bfloat16), got {dtype!r}"
    )
