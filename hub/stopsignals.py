"""SIGTERM and SIGINT taken on a thread of their own, never by a handler in the main thread.

A Python signal handler runs in the main thread between two bytecodes, wherever that
thread is. Two ways that went wrong here:
- CPython 3.11's `SimpleQueue.get(timeout=...)`, interrupted by a handler that outlasts
  the remaining timeout, waits forever (the time left comes out negative and is taken as
  "no timeout"): a persister stopped inside `next_batch` hung.
- `Event.set()` from a handler that lands while the main thread is inside that Event's
  `wait()` (between taking and releasing its non-reentrant lock) deadlocks on that lock.

So the daemons block both signals before any other thread starts (every thread inherits
the mask) and a daemon thread takes them with `sigwait`, calling `on_signal(signum)` in
ordinary thread context. The mask is inherited across exec too: these processes start
no child processes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def take_stop_signals(on_signal: Callable[[int], object], name: str) -> bool:
    """Route SIGTERM/SIGINT to `on_signal` on a thread called `name`. Call it from the main
    thread before starting any other; False (and nothing changed) from any other thread."""
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

    def wait_for_signals() -> None:
        while True:
            on_signal(signal.sigwait(STOP_SIGNALS))

    threading.Thread(target=wait_for_signals, name=name, daemon=True).start()
    return True
