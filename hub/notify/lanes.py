"""Per-key order over a pool of worker threads.

The notifier's workers take jobs from one queue, so two jobs of one controller could be
handled at once and finish in either order. A lane keeps them in order: the first job of
a key goes to the queue as usual (the lane's head); the key's later jobs wait in its lane,
in the order they arrived, and the worker that handled the head handles them next, one at
a time. Jobs of other keys go on in parallel on the other workers.

`add` must be called from one thread (paho's: the order it is called in is the order kept);
`next` from the worker that holds the lane's head.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Lanes(Generic[T]):
    def __init__(self, limit: int) -> None:
        self.limit = limit  # jobs waiting in all lanes together
        self._waiting: dict[str, deque[T]] = {}
        self._count = 0
        self._lock = threading.Lock()

    def add(self, key: str, job: T) -> bool | None:
        """True: `job` waits behind the key's job in hand; False: there is none, so the
        caller queues `job` as the head of a new lane; None: the lanes are full (drop it)."""
        with self._lock:
            lane = self._waiting.get(key)
            if lane is None:
                self._waiting[key] = deque()
                return False
            if self._count >= self.limit:
                return None
            lane.append(job)
            self._count += 1
            return True

    def next(self, key: str) -> T | None:
        """The key's next job, or None: then the lane is closed (the next job of the key
        will be a new head)."""
        with self._lock:
            lane = self._waiting[key]
            if not lane:
                del self._waiting[key]
                return None
            self._count -= 1
            return lane.popleft()

    def close(self, key: str) -> None:
        """Give up the lane whose head could not be queued (nothing waits in it yet)."""
        with self._lock:
            self._waiting.pop(key, None)
