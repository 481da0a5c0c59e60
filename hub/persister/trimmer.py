"""Background trimming, off the write path.

The writer reports which sequences with a max history it wrote to; every
PERSISTER_TRIM_SECONDS this thread deletes what is beyond each one's max
history (one short transaction per sequence), deletes the bulk objects the
deleted rows pointed at (after the commit: a crash in between leaves an
orphaned object, never a row without its value), and keeps the dead-letter
table to its last PERSISTER_DEAD_LETTERS rows.

Every COMPACT_EVERY_S it also compacts (`hub.storage.compaction`): values older
than COMPACT_AFTER_SECONDS move into compressed blocks, one short transaction per
sequence and hour, at most COMPACT_BUDGET_S per round (the next round goes on).
"""

from __future__ import annotations

import logging
import threading
import time

from hub.errors import HubError
from hub.persister import deadletters
from hub.storage import compaction, revisions, values
from hub.storage.store import Store

log = logging.getLogger("hub.persister.trim")

COMPACT_EVERY_S = 300.0
COMPACT_BUDGET_S = 30.0


class Trimmer:
    def __init__(self, store: Store, interval: float, dead_letters_kept: int, compact_after_s: int = 0) -> None:
        self.store, self.interval, self.dead_letters_kept = store, max(0.1, interval), dead_letters_kept
        self.compact_after_s = compact_after_s
        self._next_compaction = 0.0  # monotonic time of the next compaction round
        self._pending: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="persister-trim", daemon=True)

    def note(self, items: dict[int, int]) -> None:
        """Sequences (id -> max history) that got new revisions."""
        if items:
            with self._lock:
                self._pending.update(items)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def run_once(self) -> None:
        """One round over the sequences written to since the last one."""
        with self._lock:
            todo, self._pending = self._pending, {}
        for rid, keep in sorted(todo.items()):
            try:
                with self.store.session() as s:
                    keys = revisions.trim(s, rid, keep)
            except Exception as e:  # noqa: BLE001 - the database may be down: try again next round
                log.warning("trimming sequence %d failed (%s); will retry", rid, e)
                self.note({rid: keep})
                continue
            for key in keys:
                try:
                    self.store.bulk.delete(key)
                except (HubError, OSError) as e:
                    log.warning("could not delete bulk object %s (%s); it is orphaned", key, e)
        try:
            with self.store.session() as s:
                deadletters.trim(s, self.dead_letters_kept)
        except Exception as e:  # noqa: BLE001
            log.warning("trimming dead letters failed (%s); will retry", e)
        if self.compact_after_s and time.monotonic() >= self._next_compaction:
            self._next_compaction = time.monotonic() + COMPACT_EVERY_S
            self.compact_once()

    def compact_once(self) -> compaction.Report | None:
        """Compact what is older than COMPACT_AFTER_SECONDS (one budgeted round)."""
        try:
            rep = compaction.compact(self.store.session, values.now_us() - self.compact_after_s * 1_000_000,
                                     time_budget_s=COMPACT_BUDGET_S)
        except Exception as e:  # noqa: BLE001 - the database may be down: try again next round
            log.warning("compaction failed (%s); will retry", e)
            return None
        if rep.values:
            log.info("compacted %d values into %d blocks in %.1f s", rep.values, rep.blocks, rep.seconds)
        return rep
