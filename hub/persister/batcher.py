"""Messages as they come off the wire, and grouping them into batches.

The MQTT thread puts `Incoming` on a `queue.SimpleQueue`; the writer takes a
batch: up to `size` messages, waiting at most `max_wait` seconds after the
first one for the batch to fill. Throughput comes from batches, latency is
bounded by `max_wait`.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class Incoming:
    """One MQTT message: acknowledged (by `mid`) only after its batch commits.
    `generation` is the broker connection it came on: an ack is only valid
    on that connection (after a reconnect, Mosquitto redelivers instead)."""

    topic: str
    payload: bytes
    mid: int = 0
    qos: int = 1
    generation: int = 0
    received: float = field(default_factory=time.monotonic)


def next_batch(q: queue.SimpleQueue[Incoming], size: int, max_wait: float,
               idle_wait: float = 0.2) -> list[Incoming]:
    """Up to `size` messages; [] if nothing arrived within `idle_wait` s (so
    the caller can look at its stop flag)."""
    try:
        first = q.get(timeout=idle_wait)
    except queue.Empty:
        return []
    batch = [first]
    deadline = time.monotonic() + max_wait
    get_nowait = q.get_nowait
    while len(batch) < size:
        try:
            batch.append(get_nowait())
            continue
        except queue.Empty:
            pass
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            batch.append(q.get(timeout=min(left, 0.005)))
        except queue.Empty:
            continue
    return batch


def drain(q: queue.SimpleQueue[Incoming], limit: int) -> list[Incoming]:
    """What is queued right now, up to `limit`, without waiting."""
    out: list[Incoming] = []
    while len(out) < limit:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            break
    return out
