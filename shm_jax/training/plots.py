"""Learning-curve PNG: mean +- std over seeds of the per-update mean return, one curve per sweep setting."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from shm_jax.training.metrics import History, setting_label


def _fill_gaps(curve: np.ndarray) -> np.ndarray:
    """Carry the last finite value forward over updates where no episode finished: float[U]."""
    out = curve.astype(np.float64).copy()
    last = np.nan
    for i, value in enumerate(out):
        if np.isfinite(value):
            last = value
        else:
            out[i] = last
    return out


def plot_learning_curves(history: History, path: Path, *, title: str = "", metric: str = "mean_return") -> Path | None:
    """Write the learning-curve PNG to ``path``; returns the path, or None when there is nothing to plot."""
    if history.num_updates == 0 or metric not in history.data:
        return None
    steps = history.env_steps()
    # A bare Figure renders without pyplot's global backend state: no display needed on servers, and
    # notebooks keep their inline backend.
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for g, setting in enumerate(history.settings):
        curves = np.stack([_fill_gaps(c) for c in history.data[metric][g]])  # [S, U]
        with warnings.catch_warnings():  # all-NaN columns (no episode finished yet) are expected
            warnings.simplefilter("ignore", category=RuntimeWarning)
            mean = np.nanmean(curves, axis=0)
            std = np.nanstd(curves, axis=0)
        n = len(history.seeds)
        (line,) = ax.plot(steps, mean, label=f"{setting_label(setting)} (n={n})")
        if n > 1:
            ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("environment steps per run")
    ax.set_ylabel(metric.replace("_", " ") + (" (mean ± std over seeds)" if len(history.seeds) > 1 else ""))
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)
