"""Optional TensorBoard scalars, one writer per (setting, seed) run; a no-op without tensorboardX.

``TensorBoardLog`` is a :class:`~shm_jax.training.loggers.Logger`: every metric of a row becomes a scalar at the row's
environment steps (non-finite values are skipped).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from shm_jax.training.loggers import metrics_of


class TensorBoardLog:
    """Scalars per run under ``directory/<run label>``; says once why it is off when tensorboardX is missing."""

    def __init__(self, directory: Path, enabled: bool = True):
        self.writers = {}
        self.available = False
        if not enabled:
            return
        try:
            from tensorboardX import SummaryWriter  # optional dependency (the tensorboard extra)
        except ImportError:
            print(
                "tensorboard: tensorboardX is not installed; skipping TensorBoard logs (pip install tensorboardX)",
                file=sys.stderr,
            )
            return
        self.available = True
        self._writer_cls = SummaryWriter
        self.directory = Path(directory)

    def log(self, row: dict[str, Any], step: int) -> None:
        """Every metric of one (update, run) row at ``step`` (environment steps per run)."""
        if not self.available:
            return
        label = row["run"]
        writer = self.writers.get(label)
        if writer is None:
            writer = self.writers[label] = self._writer_cls(str(self.directory / label))
        for key, value in metrics_of(row).items():
            value = float(value)
            if math.isfinite(value):
                writer.add_scalar(key, value, step)

    def flush(self) -> None:
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
