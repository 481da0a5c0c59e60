"""The plugin's background thread: follows the change log (`changes.ChangeCursor`) a few
times a second, patches or loads a new `Snapshot` when it moved, and writes the stats file.

It never touches client state and never calls Mosquitto: it leaves the new snapshot in
`pending` and its log lines in `messages`; the broker thread takes both on tick.
`wake` (from the broker thread, for the HTTP server's SYNC_TOPIC) makes it look now rather
than at the end of its interval, and has the next tick announce the change id it is at.
Database errors keep the last good snapshot (the hub keeps running on it) and are logged
once per outage.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from hub.broker_auth import snapshot as snapshot_mod
from hub.broker_auth.policy import LOG_NOTICE, LOG_WARNING
from hub.broker_auth.snapshot import Snapshot
from hub.broker_auth.stats import WRITE_INTERVAL, Counters, write_stats
from hub.broker_auth.tickgate import TickGate
from hub.storage import changes
from hub.storage.db import Database

POLL_INTERVAL = 0.25
PATCH_LIMIT = 500  # changes read per look (a longer backlog of key changes takes a few looks)


class Reloader:
    def __init__(self, db: Database, change_id: int, counters: Counters, *,
                 stats_file: Path | None = None, extra_stats: Callable[[], dict[str, object]] | None = None,
                 interval: float = POLL_INTERVAL, gate: TickGate | None = None,
                 due: Callable[[], bool] | None = None, current: Snapshot | None = None,
                 chores: Sequence[Callable[[], object]] = ()) -> None:
        """`due`: whether the broker's tick has other work now (a token ran out);
        `current`: the snapshot in use (log-outs patch it instead of reloading);
        `chores`: other database work of the plugin (key use), run every `interval` on a
        thread of its own: a write that waits on a lock (a long transaction holding the
        key's row, SQLite's writer lock during an import) never holds up the looks, which
        carry revocations."""
        self.db = db
        self.change_id = change_id
        self.cursor = changes.ChangeCursor(change_id)  # misses no change committed late
        self.counters = counters
        self.stats_file = stats_file
        self.extra_stats = extra_stats or dict
        self.interval = interval
        self.gate = gate
        self.due = due
        self.current = current
        self.chores = chores
        self._chore_failing = False
        self.messages: deque[tuple[int, str]] = deque(maxlen=1000)
        self.loaded_at = time.time()
        self._pending: Snapshot | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.announce = False  # the next tick says which change it works from (plugin.py)
        self.looks = 0  # looks at the change log begun
        self.up_to_date = 0  # the number (of `looks`) of the latest look that found nothing new
        self._failing = False
        self._not_before = 0.0
        self._thread = threading.Thread(target=self._run, name="hub-auth-reloader", daemon=True)
        self._chore_thread = threading.Thread(target=self._run_chore_loop, name="hub-auth-chores", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if self.chores:
            self._chore_thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in (self._thread, self._chore_thread):
            if thread.is_alive():
                thread.join(timeout)

    def wake(self) -> None:
        """Look at the change log now (any thread; never blocks)."""
        self._wake.set()

    @property
    def db_ok(self) -> bool:
        """False while the database cannot be read (the last snapshot is in use)."""
        return not self._failing

    def take(self) -> Snapshot | None:
        """The newest snapshot not yet taken, if any (broker thread)."""
        with self._lock:
            snap, self._pending = self._pending, None
        return snap

    def poll_once(self) -> bool:
        """Load a new snapshot if the change log moved; True if one was loaded. When only
        keys were created or revoked, or sessions logged out, the snapshot in use is patched
        with those rows (`snapshot.patched`): no whole reload, no wait before the next.

        A reload holds the GIL for most of its run (about 0.2 s of CPU for 20,000 folders
        and 10,000 keys), which the broker thread then waits for: after a reload, the next
        one waits twice as long as it took, so bursts of changes cost the broker at most a
        third of its time, and a fleet that size still sees revocations within a second or so."""
        self.looks += 1
        look = self.looks
        with self.db.session() as s:
            changed = self.cursor.read(s, PATCH_LIMIT)
            if not changed:
                self.up_to_date = look  # all committed before this look began is in `current`
                return False
            started = time.monotonic()
            snap = None
            if self.current is not None:  # keys and log-outs only: patch those rows in
                snap = snapshot_mod.patched(self.current, s, changed)
            whole = snap is None
            if snap is None:
                if started < self._not_before:
                    return False  # a whole reload waits out the last one's pause
                snap = snapshot_mod.load(s)
        self.cursor.consume(changed)
        snap = replace(snap, change_id=self.cursor.position)
        if whole:
            self._not_before = time.monotonic() + 2 * (time.monotonic() - started)
            self.counters.reloads += 1
        else:
            self.counters.patches += 1
        with self._lock:
            self._pending = snap
        self.current = snap
        self.change_id = snap.change_id
        self.loaded_at = time.time()
        return True

    def _run(self) -> None:
        next_stats = 0.0
        while True:
            self._wake.wait(self.interval)
            if self._stop.is_set():
                break
            woken = self._wake.is_set()
            self._wake.clear()
            queued, loaded = len(self.messages), False
            try:
                loaded = self.poll_once()
                if self._failing:
                    self._failing = False
                    self.messages.append((LOG_NOTICE, "hub-auth: database reachable again"))
            except Exception as e:  # noqa: BLE001 - keep the last snapshot, say why once
                self.counters.reload_errors += 1
                if not self._failing:
                    self._failing = True
                    self.messages.append((LOG_WARNING, "hub-auth: cannot refresh keys and permissions "
                                          f"from the database ({type(e).__name__}: {e}); still using "
                                          "the last ones loaded, revocations wait until it is back"))
            if woken:
                self.announce = True
            if self.gate is not None:
                if loaded or woken or len(self.messages) > queued or (self.due is not None and self.due()):
                    self.gate.request()
                self.gate.nudge()
            now = time.monotonic()
            if self.stats_file is not None and now >= next_stats:
                next_stats = now + WRITE_INTERVAL
                self.write_stats()

    def _run_chore_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._run_chores()

    def _run_chores(self) -> None:
        try:
            for chore in self.chores:
                chore()
            self._chore_failing = False
        except Exception as e:  # noqa: BLE001 - try again next time, say why once
            if not self._chore_failing:
                self._chore_failing = True
                self.messages.append((LOG_WARNING, f"hub-auth: cannot record key use ({type(e).__name__}: "
                                      f"{e}); kept for the next try"))

    def write_stats(self) -> None:
        if self.stats_file is None:
            return
        try:
            write_stats(self.stats_file, self.counters, change_id=self.change_id,
                        snapshot_loaded_at=self.loaded_at, db_ok=not self._failing, **self.extra_stats())
        except OSError as e:
            self.messages.append((LOG_WARNING, f"hub-auth: cannot write {self.stats_file}: {e}"))
