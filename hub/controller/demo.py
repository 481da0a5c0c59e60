"""A demo controller: publishes a sine wave to one sequence."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from hub.controller.client import Controller


def sine(c: Controller, sequence: str = "sine", *, period: float = 60.0, interval: float = 1.0,
         amplitude: float = 10.0, offset: float = 20.0, count: int | None = None,
         stop: Callable[[], bool] = lambda: False, echo: Callable[[str], None] | None = None) -> int:
    """Publish `offset + amplitude * sin(2 pi t / period)` every `interval` s,
    `count` times (forever if None) or until `stop()`; returns how many."""
    sent = 0
    start = time.monotonic()
    while (count is None or sent < count) and not stop():
        t = time.monotonic() - start
        value = round(offset + amplitude * math.sin(2 * math.pi * t / period), 4)
        c.update(sequence, value)
        sent += 1
        if echo:
            echo(f"{sequence} = {value}")
        next_at = start + sent * interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    return sent
