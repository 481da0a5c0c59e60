"""Keys brought over from rhizo-server (`run.py --import-rhizo`), checked on the broker's
thread the fast way only: the key's `key_part` finds its candidates in the snapshot, one
SHA-512 (`hub.rhizo_import.keys.fast_match`) tells which one it is.

A key rhizo still kept as bcrypt (one it never saw used since it moved to the fast hash)
is refused on the broker's thread, which never runs bcrypt, and handed to `SlowChecks`: a
thread of its own checks it (bcrypt releases the GIL while it hashes) and, on a match,
stores the fast hash in its place (as rhizo did on first use). The reloader then brings
it into the snapshot, and the controller's next connection attempt (clients retry) is
accepted. Using the key once with the HTTP API does the same. The checks are bounded
(a short queue, a budget per minute), so wrong keys cannot keep a core busy.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.rhizo_import import keys as rhizo
from hub.storage.db import Database
from hub.storage.models import ApiKey, RhizoKey

# key_part -> ((prefix, stored hash), ...) of the unrevoked imported keys
Hashes = Mapping[str, tuple[tuple[str, str], ...]]


def load_hashes(s: Session) -> dict[str, tuple[tuple[str, str], ...]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for part, prefix, stored in s.execute(
            select(RhizoKey.key_part, RhizoKey.prefix, RhizoKey.key_hash)
            .join(ApiKey, ApiKey.prefix == RhizoKey.prefix).where(ApiKey.revoked_at.is_(None))):
        out.setdefault(part, []).append((prefix, stored))
    return {part: tuple(c) for part, c in out.items()}


def find(hashes: Hashes, password: str, salt: str) -> tuple[str | None, str, bool]:
    """(prefix of the imported key `password` is, "", False) or (None, why not, whether a
    bcrypt hash among the candidates could still match: a `SlowChecks` job)."""
    candidates = hashes.get(rhizo.key_part(password), ()) if rhizo.is_imported_key_text(password) else ()
    for prefix, stored in candidates:
        if rhizo.fast_match(password, salt, stored):
            return prefix, "", False
    if any(rhizo.is_bcrypt(stored) for _, stored in candidates):
        return None, ("a rhizo-server key rhizo kept as bcrypt (checked now off the broker's thread: connect "
                      "again in a moment; or use it once with the HTTP API), or a wrong key"), True
    return None, "unknown or revoked key", False


class SlowChecks:
    """bcrypt checks of rhizo keys, one at a time, on a thread of their own."""

    def __init__(self, db: Database, salt: str, per_minute: int = 30,
                 log: Callable[[str], None] = lambda _line: None) -> None:
        self.db, self.salt, self.log = db, salt, log
        self.jobs: queue.Queue[str | None] = queue.Queue(maxsize=4)
        self.pending: set[str] = set()  # SHA-256 of the keys queued (set operations are atomic)
        self.budget = rhizo.Budget(per_minute)
        self.thread = threading.Thread(target=self._run, name="hub-auth-rhizo-keys", daemon=True)
        self.thread.start()

    def submit(self, key: str) -> bool:
        """Queue a check (on the broker's thread: never blocks). False when it was not
        queued: already queued, the queue is full, or this minute's budget is spent."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        if digest in self.pending or self.jobs.full() or not self.budget.take():
            return False
        try:
            self.jobs.put_nowait(key)
        except queue.Full:
            return False
        self.pending.add(digest)
        return True

    def _run(self) -> None:
        while (key := self.jobs.get()) is not None:
            try:
                with self.db.session() as s:  # on a match: the fast hash, and a change
                    row = rhizo.verify(s, key, self.salt, budget=rhizo.Budget(1))  # counted in submit
                if row is not None:
                    self.log(f"hub-auth: rhizo-server key {row.prefix} checked; it connects from now on")
            except Exception as e:  # the database may be away: the client retries, the check runs again
                self.log(f"hub-auth: could not check a rhizo-server key: {type(e).__name__}")
            finally:
                self.pending.discard(hashlib.sha256(key.encode()).hexdigest())

    def stop(self) -> None:
        try:
            self.jobs.put(None, timeout=1)
        except queue.Full:
            return
        self.thread.join(5)
