"""Stop requests and waiting that stays responsive to them.

The first Ctrl-C (SIGINT) or SIGTERM is acknowledged at once and asks the host loop to stop after the
update that is running and save; a second Ctrl-C stops at once (the newest checkpoint on disk stays).
Python runs signal handlers only in the main thread and only between bytecodes, so the main thread
must never sit inside one long C call (an XLA computation, a compilation): :func:`wait_ready` and
:func:`call_interruptibly` wait in short slices instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import jax

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}  # 128 + the signal number, what shells report
_POLL_SECONDS = 0.05
ABORTED_MESSAGE = "aborted at once: the update in progress is lost; the newest checkpoint on disk is kept"


def raise_keyboard_interrupt() -> None:
    """The second Ctrl-C in a Python session (a notebook, a test): an ordinary KeyboardInterrupt."""
    raise KeyboardInterrupt


def exit_at_once() -> None:
    """The second Ctrl-C of the command line: say so and leave now, whatever the main thread is inside.

    Raising instead would have to travel through third-party code (orbax's save, tqdm) that may catch it;
    an XLA computation may still run on a worker thread, so the process does not wait for it either.
    """
    print(f"\n{ABORTED_MESSAGE}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(EXIT_CODES["SIGINT"])


# What a second Ctrl-C does; train.py's main sets :func:`exit_at_once`.
on_second_interrupt: Callable[[], None] = raise_keyboard_interrupt


class StopFlag:
    """Set by the first SIGINT/SIGTERM. ``status_line()`` (set by the loop) says what stopping will keep."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self.status_line: Callable[[], str] = lambda: "stopping after the update that is running"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signal_name, 0)

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.requested and signum == signal.SIGINT:
            on_second_interrupt()
            return
        self.requested, self.signal_name = True, name
        print(f"\n{name} received: {self.status_line()} (Ctrl-C again stops at once)", file=sys.stderr, flush=True)

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


def wait_ready(tree: Any) -> None:
    """Block until every array of ``tree`` is computed, in short sleeps so signal handlers run meanwhile.

    The sleeps grow from 0.5 ms to 50 ms: a quick update is not slowed down, a long one costs no CPU.
    """
    leaves = [x for x in jax.tree.leaves(tree) if hasattr(x, "is_ready")]
    pause = 0.0005
    while not all(x.is_ready() for x in leaves):
        time.sleep(pause)
        pause = min(2 * pause, _POLL_SECONDS)


def call_interruptibly(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on a daemon thread (e.g. a compilation), the main thread waiting in short slices."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn(*args)
        except BaseException as err:  # re-raised in the caller's thread
            result["error"] = err

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(_POLL_SECONDS)
    if "error" in result:
        raise result["error"]
    return result["value"]
