"""Persister counters, written as JSON to DATA_DIR/persister/<client id>.json
(at most once a second, atomically) and read by the HTTP server's /health
and /metrics through `read_stats(settings)`.

Each persister writes its own file; `read_stats` sums the counters of all of
them and lists each one, marking a file not refreshed for `STALE_SECONDS` as
not running.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from hub.settings import Settings

STALE_SECONDS = 10.0
COUNTERS = ("received", "stored", "duplicates", "rejected", "ignored", "batches", "messages")


def stats_dir(settings: Settings) -> Path:
    return settings.data_path / "persister"


def stats_file(settings: Settings, client_id: str) -> Path:
    return stats_dir(settings) / (re.sub(r"[^A-Za-z0-9_.-]", "_", client_id)[:100] + ".json")


class Stats:
    """Counters of one persister; the writer thread updates them."""

    def __init__(self, path: Path, client_id: str, interval: float = 1.0) -> None:
        self.path, self.interval = path, interval
        self.started = time.time()
        self.data: dict[str, Any] = {c: 0 for c in COUNTERS}
        self.data.update(client_id=client_id, pid=os.getpid(), started_at=self.started,
                         last_batch_size=0, max_batch_size=0, lag_ms=0.0, pending=0,
                         broker_connected=False, database_ok=None, database_error=None,
                         last_commit_at=None)
        self._written = 0.0

    def batch(self, messages: int, stored: int, duplicates: int, rejected: int, ignored: int,
              oldest_received: float) -> None:
        d = self.data
        d["batches"] += 1
        d["messages"] += messages
        d["stored"] += stored
        d["duplicates"] += duplicates
        d["rejected"] += rejected
        d["ignored"] += ignored
        d["last_batch_size"] = messages
        d["max_batch_size"] = max(d["max_batch_size"], messages)
        d["lag_ms"] = round((time.monotonic() - oldest_received) * 1000, 1)
        d["last_commit_at"] = time.time()
        d["database_ok"], d["database_error"] = True, None

    def database_down(self, error: str) -> None:
        self.data["database_ok"], self.data["database_error"] = False, error[:300]

    def maybe_write(self, *, received: int, pending: int, broker_connected: bool, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._written < self.interval:
            return
        self._written = now
        self.data.update(received=received, pending=pending, broker_connected=broker_connected,
                         updated_at=time.time())
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
            with os.fdopen(fd, "w") as f:
                json.dump(self.data, f)
            os.replace(tmp, self.path)
        except OSError:
            pass  # counters are best effort; never stop storing for them


def read_stats(settings: Settings) -> dict[str, Any] | None:
    """Totals over every persister of this DATA_DIR, or None if none ever ran.

    Keys: the counters (received, stored, duplicates, rejected, ignored,
    batches, messages), `running` (how many wrote within STALE_SECONDS),
    `lag_ms` and `pending` (worst of the running ones), `database_ok`,
    `broker_connected` (all running ones), and `persisters` (each file's data
    plus `running`)."""
    d = stats_dir(settings)
    if not d.is_dir():
        return None
    now = time.time()
    each = []
    for p in sorted(d.glob("*.json")):
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            data["running"] = now - float(data.get("updated_at") or 0) < STALE_SECONDS
            each.append(data)
    if not each:
        return None
    live = [x for x in each if x["running"]]
    out: dict[str, Any] = {c: sum(int(x.get(c) or 0) for x in each) for c in COUNTERS}
    out.update(running=len(live),
               lag_ms=max((float(x.get("lag_ms") or 0) for x in live), default=0.0),
               pending=sum(int(x.get("pending") or 0) for x in live),
               database_ok=bool(live) and all(x.get("database_ok") is not False for x in live),
               broker_connected=bool(live) and all(x.get("broker_connected") for x in live),
               persisters=each)
    return out
