"""The persister's main loop: batches in, transactions out, acks after commit.

The main thread takes batches off the intake queue and writes each in one
transaction; paho's thread keeps receiving meanwhile (up to the session's
Receive Maximum of unacknowledged messages). When the database is down the
current batch is retried with backoff and nothing is acknowledged, so
Mosquitto keeps everything; when it returns the persister catches up.

SIGTERM / SIGINT: finish the current batch, then hand over
(PERSISTER_HANDOVER_ON_STOP, the default): unsubscribe, so Mosquitto routes new
messages to the other persisters, and store and acknowledge everything
Mosquitto still sends on this session (its in-flight window and its queue) until
nothing has come for HANDOVER_QUIET seconds. The last persister connected is
refused the unsubscribe (the broker plugin's storage gate): with nobody to hand
over to, it keeps its share, as does a persister without hand-over or one whose
hand-over does not finish within DRAIN_SECONDS (a long queue): store what had
arrived and leave the rest in the session (Mosquitto keeps queueing for it until
it runs again, within PERSISTER_SESSION_EXPIRY; controllers go on publishing).
Then disconnect and exit 0. Should anything hang on the way out, the process ends
STOP_GUARD_SECONDS after the signal anyway (status 1, with
every thread's stack in the log): nothing unacknowledged is lost.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Sequence as Seq

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hub import brokers
from hub.errors import Unavailable
from hub.persister import deadletters
from hub.persister.batcher import Incoming, drain, next_batch
from hub.persister.stats import Stats, stats_file
from hub.persister.trimmer import Trimmer
from hub.persister.writer import BatchResult, Writer
from hub.settings import Settings
from hub.stopsignals import take_stop_signals
from hub.storage.models import DeadLetter, Revision
from hub.storage.store import Store

log = logging.getLogger("hub.persister")

TRANSIENT = (Unavailable, OperationalError, InterfaceError, PoolTimeout)
DRAIN_SECONDS = 10.0
HANDOVER_QUIET = 1.0  # after unsubscribing: this long with nothing new, and the session's queue is empty
STOP_GUARD_SECONDS = DRAIN_SECONDS + 10  # after a stop signal, the process ends by then


def _exit_if_still_running() -> None:
    """Unacknowledged messages stay with Mosquitto, so a hard exit loses nothing: better
    than a persister that never ends (and blocks a restart). Says where it hung."""
    time.sleep(STOP_GUARD_SECONDS)
    log.error("still not stopped %.0f s after the stop signal: exiting now (unacknowledged messages "
              "stay with Mosquitto); where each thread was:", STOP_GUARD_SECONDS)
    faulthandler.dump_traceback(all_threads=True)
    logging.shutdown()
    os._exit(1)
MAX_BACKOFF = 5.0
SCHEMA_MISSING = ("no such table", "does not exist", "undefinedtable")


def client_id_of(settings: Settings) -> str:
    return settings.PERSISTER_CLIENT_ID or f"hub-persister-{socket.gethostname()}"


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client_id = client_id_of(settings)
        engine_kw: dict[str, object] = {}
        if not settings.database_url.startswith("sqlite"):
            engine_kw = {"connect_args": {"connect_timeout": 5}, "pool_size": 2}
        self.store = Store.from_settings(settings, **engine_kw)
        self.writer = Writer(self.store, auto_create=settings.AUTO_CREATE_SEQUENCES,
                             max_payload=settings.MQTT_MAX_PAYLOAD)
        self.batch_size = max(1, settings.PERSISTER_BATCH_SIZE)
        self.batch_wait = max(0, settings.PERSISTER_BATCH_MS) / 1000
        self.q: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self.intake = brokers.persister_intake(settings, self.q, self.client_id, receive_maximum=4 * self.batch_size)
        self.stats = Stats(stats_file(settings, self.client_id), self.client_id)
        self.trimmer = Trimmer(self.store, settings.PERSISTER_TRIM_SECONDS, settings.PERSISTER_DEAD_LETTERS,
                               settings.COMPACT_AFTER_SECONDS)
        self.stopping = threading.Event()
        self.stop_deadline = float("inf")
        self.db_down_since: float | None = None
        self._last_down_log = 0.0

    def request_stop(self, signum: int = 0, _frame: object = None) -> None:
        if not self.stopping.is_set():
            log.info("stopping: storing what has arrived, then disconnecting")
            self.stop_deadline = time.monotonic() + DRAIN_SECONDS
            if signum:  # a process being stopped: it ends in bounded time, whatever hangs
                threading.Thread(target=_exit_if_still_running, name="hub-persister-stop-guard",
                                 daemon=True).start()
        self.stopping.set()

    # -- life cycle -----------------------------------------------------------------
    def run(self) -> int:
        take_stop_signals(self.request_stop, "hub-persister-signals")  # hub/stopsignals.py says why
        try:
            rc = self.wait_for_database()
            if rc is not None:
                return rc
            self.check_bulk()
            self.intake.start()
            self.trimmer.start()
            while not self.stopping.is_set():
                batch = next_batch(self.q, self.batch_size, self.batch_wait)
                if batch:
                    self.commit(batch)
                self.write_stats()
            if self.settings.PERSISTER_HANDOVER_ON_STOP and self.hand_over():
                log.info("stopped; handed over: nothing is left queued for this persister")
                return 0
            arrived = self.q.qsize()  # what arrived before the stop; later ones stay with the broker
            while arrived > 0 and time.monotonic() < self.stop_deadline:
                batch = drain(self.q, min(arrived, self.batch_size))
                arrived -= len(batch)
                if not batch or not self.commit(batch):
                    break
            left = self.q.qsize()
            log.info("stopped; %d messages not stored are left to the broker to deliver again", left)
            return 0
        finally:
            self.intake.stop()
            self.trimmer.stop()
            self.write_stats(force=True)
            self.store.close()

    def hand_over(self) -> bool:
        """Unsubscribe, then store what Mosquitto still sends until it has nothing more for
        this session; True if that finished before the stop deadline."""
        if not self.intake.unsubscribe(max(0.5, min(5.0, self.stop_deadline - time.monotonic()))):
            return False  # refused (the last one: the session keeps the share) or unanswered
        last = time.monotonic()
        while time.monotonic() < self.stop_deadline:
            batch = next_batch(self.q, self.batch_size, self.batch_wait)
            if batch:
                if not self.commit(batch):
                    return False
                last = time.monotonic()
                continue
            if not self.intake.connected.is_set():
                return False  # the rest stays in the session, redelivered on the next run
            if time.monotonic() - max(last, self.intake.last_received) >= HANDOVER_QUIET and self.q.empty():
                return True
        log.warning("hand-over not finished within %.0f s: the rest waits in this persister's session",
                    DRAIN_SECONDS)
        return False

    def write_stats(self, force: bool = False) -> None:
        self.stats.maybe_write(received=self.intake.received, pending=self.q.qsize(),
                               broker_connected=self.intake.connected.is_set(), force=force)

    def wait_for_database(self) -> int | None:
        """None once the database answers; 2 if it has no hub schema."""
        delay = 0.5
        while not self.stopping.is_set():
            try:
                with self.store.session() as s:
                    s.execute(select(Revision.id).limit(1)).all()
                    s.execute(select(DeadLetter.id).limit(1)).all()
                if self.db_down_since is not None:
                    log.info("database %s is reachable", self.store.db.safe_url)
                    self.db_down_since = None
                return None
            except (ProgrammingError, *TRANSIENT) as e:
                if any(w in str(e).lower() for w in SCHEMA_MISSING):
                    log.error("the database %s has no hub tables: run `python run.py --init-db` first",
                              self.store.db.safe_url)
                    return 2
                self._database_down(e, 0)
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
        return 0

    def check_bulk(self) -> None:
        try:
            self.store.bulk.check()
        except Exception as e:  # noqa: BLE001 - only large values need it: warn, keep going
            log.warning("bulk storage is not usable (%s): values over BULK_THRESHOLD will wait "
                        "unacknowledged until it is", e)

    # -- one batch --------------------------------------------------------------------
    def commit(self, batch: list[Incoming]) -> bool:
        """Store `batch` (retrying while the database is down) and ack it.
        False if we gave up because we are stopping."""
        delay = 0.25
        while True:
            try:
                res = self.write(batch)
                break
            except TRANSIENT as e:
                self._database_down(e, len(batch) + self.q.qsize())
                self.write_stats()
                if self.stopping.is_set() and time.monotonic() + delay > self.stop_deadline:
                    log.error("giving up on %d messages: not acknowledged, Mosquitto will redeliver "
                              "them to the next persister run", len(batch) + self.q.qsize())
                    return False
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
        if self.db_down_since is not None:
            log.warning("database is back after %.1f s; catching up", time.monotonic() - self.db_down_since)
            self.db_down_since = None
        self.intake.ack(batch)
        self.stats.batch(res.messages, res.stored, res.duplicates, len(res.rejected), res.ignored,
                         min(m.received for m in batch))
        self.trimmer.note(res.trim)
        return True

    def _database_down(self, e: Exception, waiting: int) -> None:
        now = time.monotonic()
        text = str(getattr(e, "orig", None) or e).strip().splitlines()[0][:300] if str(e).strip() else repr(e)
        self.stats.database_down(text)
        if self.db_down_since is None:
            self.db_down_since, self._last_down_log = now, 0.0
        if now - self._last_down_log >= 30:
            self._last_down_log = now
            log.error("database %s unreachable or failing: %s; %d messages wait unacknowledged (Mosquitto "
                      "keeps them); retrying with backoff", self.store.db.safe_url, text, waiting)

    def write(self, batch: Seq[Incoming], integrity_retries: int = 2) -> BatchResult:
        """`Writer.write`, robust against one message the database refuses:
        a batch failing for a non-transient reason is split until the
        offending message is alone, and that one becomes a dead letter."""
        try:
            return self.writer.write(batch)
        except TRANSIENT:
            raise
        except IntegrityError as e:  # two persisters created the same sequence at once: look again
            if integrity_retries:
                return self.write(batch, integrity_retries - 1)
            error: Exception = e
        except Exception as e:  # noqa: BLE001 - bad data the checks missed, or a bug
            error = e
        if len(batch) == 1:
            reason = f"cannot be stored: {type(error).__name__}: {str(error).splitlines()[0][:300]}"
            log.error("message on %s %s; recorded as a dead letter", batch[0].topic[:200], reason)
            with self.store.session() as s:
                deadletters.record(s, [(batch[0].topic, reason, batch[0].payload)])
            return BatchResult(messages=1, rejected=[(batch[0], reason)])
        half = len(batch) // 2
        a, b = self.write(batch[:half]), self.write(batch[half:])
        return BatchResult(messages=a.messages + b.messages, updates=a.updates + b.updates,
                           stored=a.stored + b.stored, duplicates=a.duplicates + b.duplicates,
                           ignored=a.ignored + b.ignored, rejected=a.rejected + b.rejected,
                           trim={**a.trim, **b.trim})
