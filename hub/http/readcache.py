"""A short-lived cache of resource read responses (latest values, listings).

An entry is served while neither the change log nor the newest revision id
has moved (the watcher in `app.py` polls both every `POLL_SECONDS`) and for
at most `max_age` seconds (HTTP_READ_CACHE_SECONDS, which bounds what a poll cannot see, such as an
attribute edit made through another worker). This process's own writes
clear it at once, so a client reads its own writes. Another process's new
value (the persister's) shows within about POLL_SECONDS.

Permission checks are never cached here: the handler checks access first and
only then reads the body from this cache.
"""

from __future__ import annotations

import time

POLL_SECONDS = 0.25
MAX_ENTRIES = 10_000


class ReadCache:
    def __init__(self, max_age: float = 2.0) -> None:
        self.max_age = max_age
        self.generation: tuple[int, int] = (-1, -1)
        self._entries: dict[tuple[str, ...], tuple[float, bytes]] = {}
        self.hits = self.misses = 0

    def observe(self, generation: tuple[int, int]) -> None:
        if generation != self.generation:
            self._entries.clear()
            self.generation = generation

    def clear(self) -> None:
        self._entries.clear()

    def get(self, key: tuple[str, ...]) -> bytes | None:
        e = self._entries.get(key)
        if e is None or e[0] < time.monotonic():
            self.misses += 1
            return None
        self.hits += 1
        return e[1]

    def put(self, key: tuple[str, ...], body: bytes) -> None:
        if self.max_age <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.max_age, body)
