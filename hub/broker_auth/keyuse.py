"""API key use over MQTT: noted on connect, written in batches off the broker's thread.

The broker thread only notes (prefix, time, address) in memory, and only when that
key was not noted in the last `INTERVAL` seconds: two dict look-ups per key connect,
nothing per message. The reloader thread writes what piled up every `FLUSH_SECONDS`
in one statement (`keys.record_uses`), so the console and `GET /api/v1/keys` show a
connected controller's key as used within seconds, and a reconnecting fleet costs the
database one row update per key per minute at most. A failed write keeps the uses for
the next try.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from hub.storage import keys
from hub.storage.db import Database
from hub.storage.models import utcnow

INTERVAL = 60.0  # at most one recorded use per key per minute (as over HTTP)
FLUSH_SECONDS = 2.0
MAX_PENDING = 100_000  # beyond this many unwritten keys (a long database outage) new ones wait


class KeyUse:
    def __init__(self, interval: float = INTERVAL, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.interval = interval
        self.flush_seconds = flush_seconds
        self._noted: dict[str, float] = {}  # prefix -> monotonic time it was last noted
        self._pending: dict[str, tuple[datetime, str | None]] = {}
        self._lock = threading.Lock()
        self._next_flush = 0.0
        self.written = 0

    def seen(self, prefix: str, address: str | None) -> None:
        """A connect with this key was accepted (broker thread: no I/O here)."""
        now = time.monotonic()
        last = self._noted.get(prefix)
        if last is not None and now - last < self.interval:
            return
        with self._lock:
            if len(self._pending) >= MAX_PENDING:
                return
            self._noted[prefix] = now
            self._pending[prefix] = (utcnow(), address)

    def flush(self, db: Database, *, force: bool = False) -> int:
        """Write the noted uses, at most every `flush_seconds` unless `force` (reloader
        thread). Returns how many keys were written; raises on a database error, the
        uses kept for the next call."""
        now = time.monotonic()
        if not force and now < self._next_flush:
            return 0
        self._next_flush = now + self.flush_seconds
        with self._lock:
            batch, self._pending = self._pending, {}
            for prefix in [p for p, t in self._noted.items() if now - t >= self.interval]:
                del self._noted[prefix]  # forgotten keys: the next connect is noted again
        if not batch:
            return 0
        try:
            with db.session() as s:
                keys.record_uses(s, batch)
        except Exception:
            with self._lock:
                for prefix, use in batch.items():
                    self._pending.setdefault(prefix, use)
            raise
        self.written += len(batch)
        return len(batch)
