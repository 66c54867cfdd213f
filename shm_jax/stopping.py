"""Stop requests: the first Ctrl-C (SIGINT) or SIGTERM asks the host loop to stop and save."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading


class StopFlag:
    """Set by the first SIGINT/SIGTERM; the loop stops after the current chunk. A second SIGINT aborts."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(f"\n{self.signal_name} received: finishing the current chunk, then saving a checkpoint "
              "(Ctrl-C again aborts without saving)", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def installed(self):
        """Install the handlers (main thread only: signal handlers cannot be set elsewhere)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
