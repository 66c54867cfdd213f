"""Optional TensorBoard scalars, one writer per (setting, seed) run; a no-op without tensorboardX."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from shm_jax.training.metrics import History


class TensorBoardLog:
    """Scalars per run under ``directory/<run label>``; says once why it is off when tensorboardX is missing."""

    def __init__(self, directory: Path, enabled: bool):
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

    def write(self, history: History, start: int) -> None:
        """Every metric of updates ``start..U-1``, at the env-step count of each update."""
        if not self.available:
            return
        steps = history.env_steps()
        for g, s, label in history.runs():
            writer = self.writers.get(label)
            if writer is None:
                writer = self.writers[label] = self._writer_cls(str(self.directory / label))
            for key, values in history.data.items():
                for u in range(start, history.num_updates):
                    value = float(values[g, s, u])
                    if math.isfinite(value):
                        writer.add_scalar(key, value, int(steps[u]))
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
