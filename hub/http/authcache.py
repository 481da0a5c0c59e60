"""A small in-process cache of who a credential is and what they may do.

Entries live at most `ttl` seconds and are all dropped whenever the storage
change log (`hub.storage.changes`) moves: a background task follows it every
`POLL_SECONDS` (through a `ChangeCursor`: a change committing after a newer one
counts too), and this process's own access-relevant writes clear it at once.
So a revoked key, a deleted user or a withdrawn permission stops working here
within about a second, like in the broker plugin.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hub.storage.models import Level

POLL_SECONDS = 1.0
TTL_SECONDS = 60.0  # also bounds how stale an API key's last_used_at gets
MAX_ENTRIES = 50_000


@dataclass
class _Entry:
    value: Any
    expires: float


class AuthCache:
    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self.ttl = ttl
        self.generation = -1  # the change-log id the entries are valid for
        self._callers: dict[str, _Entry] = {}
        self._levels: dict[tuple[str, str], Level] = {}
        # told each new generation and the changes that committed late (the rhizo websockets)
        self.listeners: list[Callable[[int, Sequence[tuple[int, str, str]]], None]] = []

    def clear(self) -> None:
        self._callers.clear()
        self._levels.clear()

    def observe(self, generation: int, late: Sequence[tuple[int, str, str]] = ()) -> None:
        """The change log is at `generation`: drop everything if it moved, or if changes
        below it (`late`: id, kind, subject) committed after newer ones."""
        if generation != self.generation or late:
            self.clear()
            self.generation = generation
            for listener in self.listeners:
                listener(generation, late)

    def get_caller(self, token_key: str) -> Any | None:
        e = self._callers.get(token_key)
        if e is None:
            return None
        if e.expires < time.monotonic():
            del self._callers[token_key]
            return None
        return e.value

    def put_caller(self, token_key: str, caller: Any) -> None:
        if len(self._callers) >= MAX_ENTRIES:
            self._callers.clear()
        self._callers[token_key] = _Entry(caller, time.monotonic() + self.ttl)

    def get_level(self, who: str, path: str) -> Level | None:
        return self._levels.get((who, path))

    def put_level(self, who: str, path: str, level: Level) -> None:
        if len(self._levels) >= MAX_ENTRIES:
            self._levels.clear()
        self._levels[(who, path)] = level
