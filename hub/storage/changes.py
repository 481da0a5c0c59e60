"""The change log the broker plugin and the HTTP workers poll to refresh what they cache."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, func, or_, select
from sqlalchemy.orm import Session

from hub.storage.models import Change

KINDS = ("key", "user", "permission", "membership", "resource", "organization", "session", "rhizo_key")


def record(s: Session, kind: str, subject: str = "") -> None:
    assert kind in KINDS, kind
    s.add(Change(kind=kind, subject=subject[:100]))


def latest(s: Session) -> int:
    return int(s.scalar(select(func.coalesce(func.max(Change.id), 0))) or 0)


def since(s: Session, change_id: int, limit: int) -> Sequence[tuple[int, str, str]]:
    """(id, kind, subject) of the changes after `change_id`, oldest first, at most `limit`."""
    rows = s.execute(select(Change.id, Change.kind, Change.subject).where(Change.id > change_id)
                     .order_by(Change.id).limit(limit))
    return [(int(i), k, subj) for i, k, subj in rows]


@contextmanager
def taken_at_the_end(s: Session) -> Iterator[None]:
    """For a long transaction (an import): the changes it records inside this block take
    their ids at its end, just before the commit, not when they were first flushed. A
    follower gives up on an id not committed within GAP_SECONDS; a change flushed at the
    start of an import that commits minutes later would otherwise never be followed."""
    mine: list[Change] = []

    def collect(_session: Session, obj: Any) -> None:
        if isinstance(obj, Change):
            mine.append(obj)

    event.listen(s, "pending_to_persistent", collect)
    try:
        yield
    finally:
        event.remove(s, "pending_to_persistent", collect)
    for old in mine:
        s.delete(old)
    s.flush()
    for old in mine:
        record(s, old.kind, old.subject)
    s.flush()


GAP_SECONDS = 30.0  # how long a skipped id is waited for (a transaction still open, or one rolled back)
MAX_GAPS = 10_000
PRIME_IDS = 200  # ids below the start looked at once for ones not committed yet


class ChangeCursor:
    """A follower's place in the change log that misses nothing committed late.

    On PostgreSQL ids come from a sequence and transactions commit in any order: id N
    may commit after N+1. So the cursor remembers the ids below its high-water mark it
    has not seen (`gaps`) for `GAP_SECONDS` and reads them again with the new ones; each
    change is yielded once, in id order (applying one twice is harmless anyway). SQLite
    serialises writers and never leaves a gap for long; the code is the same.

    `read` does not move the cursor, `consume` does (a follower that cannot act on what
    it read yet reads it again next time)."""

    def __init__(self, position: int, gap_seconds: float = GAP_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.position = position  # the newest id seen
        self.gap_seconds = gap_seconds
        self.clock = clock
        self.gaps: dict[int, float] = {}  # id -> when it was first missed
        self._primed = False

    def read(self, s: Session, limit: int) -> list[tuple[int, str, str]]:
        """The changes not yet consumed: the newer ones and the missed ones now committed."""
        if not self._primed:  # ids taken before the start but not yet committed
            self._primed = True
            below = set(s.scalars(select(Change.id).where(Change.id > self.position - PRIME_IDS,
                                                          Change.id <= self.position)))
            now = self.clock()
            for i in range(max(1, self.position - PRIME_IDS + 1), self.position + 1):
                if i not in below:
                    self.gaps.setdefault(i, now)
        self._expire()
        cond = Change.id > self.position
        if self.gaps:
            cond = or_(cond, Change.id.in_(sorted(self.gaps)))
        rows = s.execute(select(Change.id, Change.kind, Change.subject).where(cond)
                         .order_by(Change.id).limit(limit))
        return [(int(i), k, subj) for i, k, subj in rows]

    def consume(self, rows: Sequence[tuple[int, str, str]]) -> None:
        """Mark `rows` (from `read`) handled; the ids they skip become gaps."""
        now = self.clock()
        for i, _, _ in rows:
            if i > self.position:
                for missing in range(max(self.position + 1, i - MAX_GAPS), i):  # a huge jump: the newest
                    self.gaps[missing] = now
                self.position = i
            else:
                self.gaps.pop(i, None)
        if len(self.gaps) > MAX_GAPS:
            for i in sorted(self.gaps)[:len(self.gaps) - MAX_GAPS]:
                del self.gaps[i]

    def _expire(self) -> None:
        cutoff = self.clock() - self.gap_seconds
        for i in [i for i, t in self.gaps.items() if t < cutoff]:
            del self.gaps[i]
