"""The write path: one batch of MQTT messages -> one transaction.

1. Parse every message (no database): topic -> folder, payload -> updates,
   timestamps -> microseconds. A bad message is rejected whole.
2. In one transaction: look up the topics' folders and the sequences (one
   query each), create unknown sequences when allowed, check every value
   against its sequence, upload large values to bulk storage, insert the rows
   (idempotent on (resource_id, timestamp_us), so a redelivered update is a
   no-op) and record the rejected messages as dead letters.
3. The caller acknowledges the whole batch once `write` returns (committed).

Database and bulk-storage failures propagate (nothing is acknowledged, the
messages come back); bad input never does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from typing import Any

from hub import wire
from hub.errors import BadValue, HubError
from hub.persister import deadletters, lookup
from hub.persister.batcher import Incoming
from hub.storage import revisions, values
from hub.storage.revisions import NewRevision
from hub.storage.store import Store

log = logging.getLogger("hub.persister")


@dataclass(slots=True)
class _Parsed:
    index: int
    folder: str
    updates: list[tuple[str, Any, int]]  # (path, value, timestamp_us)


@dataclass
class BatchResult:
    messages: int = 0
    updates: int = 0  # updates in accepted messages
    stored: int = 0  # new rows
    duplicates: int = 0  # updates already stored (redelivery)
    ignored: int = 0  # messages of other types
    rejected: list[tuple[Incoming, str]] = field(default_factory=list)
    trim: dict[int, int] = field(default_factory=dict)  # resource_id -> max_history


class RateLimitedLog:
    """At most `burst` warnings per `period` s; then one line with the count."""

    def __init__(self, burst: int = 20, period: float = 10.0) -> None:
        self.burst, self.period = burst, period
        self.window_start, self.count, self.suppressed = 0.0, 0, 0

    def warn(self, fmt: str, *args: object) -> None:
        now = time.monotonic()
        if now - self.window_start > self.period:
            if self.suppressed:
                log.warning("... and %d more rejected messages not logged", self.suppressed)
            self.window_start, self.count, self.suppressed = now, 0, 0
        if self.count < self.burst:
            self.count += 1
            log.warning(fmt, *args)
        else:
            self.suppressed += 1


class Writer:
    def __init__(self, store: Store, *, auto_create: bool = True,
                 max_payload: int = wire.DEFAULT_MAX_BYTES) -> None:
        self.store, self.auto_create, self.max_payload = store, auto_create, max_payload
        self._last_server_us = 0
        self._rejects = RateLimitedLog()

    def _server_us(self) -> int:
        """Receive time for updates without a timestamp, strictly increasing."""
        us = max(values.now_us(), self._last_server_us + 1)
        self._last_server_us = us
        return us

    # -- 1. parse -----------------------------------------------------------------
    def parse(self, batch: Seq[Incoming], result: BatchResult) -> list[_Parsed]:
        out: list[_Parsed] = []
        now = values.now_us()
        for i, m in enumerate(batch):
            try:
                folder = wire.folder_of_topic(m.topic)
                msg = wire.parse(m.payload, max_bytes=self.max_payload)
                if msg.type != wire.UPDATE_SEQUENCE:
                    result.ignored += 1
                    continue
                ups = [(u.path, u.value, self._server_us() if u.timestamp is None
                        else values.parse_timestamp(u.timestamp, now=now))
                       for u in wire.updates(folder, msg.parameters)]
            except HubError as e:
                result.rejected.append((m, e.message))
                continue
            out.append(_Parsed(i, folder, ups))
        return out

    # -- 2. store -----------------------------------------------------------------
    def write(self, batch: Seq[Incoming]) -> BatchResult:
        """Store a batch in one transaction; returns what happened. Raises
        `Unavailable` (or a database error) when nothing could be committed."""
        result = BatchResult(messages=len(batch))
        parsed = self.parse(batch, result)
        with self.store.session() as s:
            rows: list[NewRevision] = []
            if parsed:
                rows = self._rows(s, batch, parsed, result)
            if rows:
                result.stored = revisions.append(s, rows)
                result.duplicates = len(rows) - result.stored
            if result.rejected:
                deadletters.record(s, [(m.topic, reason, m.payload) for m, reason in result.rejected])
        for m, reason in result.rejected:
            self._rejects.warn("rejected message on %s: %s", m.topic[:200], reason)
        return result

    def _rows(self, s: Any, batch: Seq[Incoming], parsed: list[_Parsed],
              result: BatchResult) -> list[NewRevision]:
        bad_topics = lookup.folders(s, {p.folder for p in parsed})
        targets = lookup.sequences(s, {path for p in parsed for path, _, _ in p.updates})
        rows: list[NewRevision] = []
        for p in parsed:
            reason = bad_topics[p.folder]
            encoded: list[tuple[int, int, values.Encoded]] = []
            if reason is None:
                try:
                    for path, value, ts in p.updates:
                        t = targets.get(path)
                        if t is None:
                            t = targets[path] = lookup.create(s, path, value, self.auto_create)
                        if t.error is not None:
                            raise BadValue(t.error)
                        assert t.seq is not None
                        encoded.append((t.resource_id, ts, values.encode(t.seq, value)))
                        if t.seq.max_history is not None:
                            result.trim[t.resource_id] = t.seq.max_history
                except HubError as e:
                    reason = f"{path}: {e.message}" if not e.message.startswith(path) else e.message
            if reason is not None:
                result.rejected.append((batch[p.index], reason))
                continue
            # Uploads (values over BULK_THRESHOLD) happen here, before the rows commit.
            rows.extend(self.store.new_revision(rid, ts, enc) for rid, ts, enc in encoded)
            result.updates += len(encoded)
        return rows
