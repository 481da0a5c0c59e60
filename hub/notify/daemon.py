"""The notifier: one MQTT subscriber that sends emails and text messages, keeps
controller status and runs the watchdog.

- Its feed (`hub.brokers.notifier_feed`): on Mosquitto it subscribes with the `hub-persister`
  service credential to `$share/<NOTIFY_GROUP>/#` (QoS 1, a persistent session of
  SESSION_EXPIRY s, `hub.notify.mqttfeed`), so it sees every message once per notifier
  group, independently of the persisters' group; on RabbitMQ it consumes the durable
  quorum queue PREFIX.notify over AMQP (`hub.rabbitmq.intake.AmqpNotifyFeed`).
- The feed's thread only notes "topic heard at t" and queues the few messages it acts on
  (`send_email`, `send_text_message` / `send_sms`, `status`, `connected`); worker
  threads do the slow part (SMTP, HTTP, the database). One controller's `status` and
  `connected` messages are handled one after the other in the order they arrived (a lane
  per topic, `hub.notify.lanes`), so an older report never lands over a newer one; other
  controllers' go on in parallel. Those messages are acknowledged to the broker once
  handled, the rest as soon as nothing before them waits (acknowledgements go out in the
  order the messages came, `hub.notify.acks`): an email in flight when the notifier is
  killed comes again when it restarts (at least once: it, and what came after it, may then
  be handled twice). The notifier takes up to MAX_JOBS unacknowledged messages (its MQTT
  Receive Maximum); while that many wait behind slow sends, the feed waits.
- Every WATCHDOG_CHECK_SECONDS the watchdog thread writes the last-heard times to the
  controllers' status rows, then sends the alerts that are due (claimed atomically,
  so several notifiers never send one twice).
"""

from __future__ import annotations

import logging
import queue
import re
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any, TypeAlias

from hub import brokers, wire
from hub.errors import HubError
from hub.notify import mqttfeed, outbox, parse
from hub.notify.acks import InOrderAcks, Ticket
from hub.notify.dispatch import Dispatcher, Stats
from hub.notify.lanes import Lanes
from hub.settings import Settings
from hub.storage import controllers, outgoing
from hub.storage.models import utcnow
from hub.storage.store import Store

log = logging.getLogger("hub.notify")

SESSION_EXPIRY = mqttfeed.SESSION_EXPIRY
WORKERS = 4
STATUS, CONNECTED, WATCHDOG = "status", "connected", "watchdog"
SEND_TYPES = frozenset({parse.SEND_EMAIL, parse.SEND_TEXT, parse.SEND_SMS})
# A `watchdog` message is recorded as heard at once (rhizo-server kept its time on receipt),
# the rest of what is heard every WATCHDOG_CHECK_SECONDS.
ACTED_ON = SEND_TYPES | {STATUS, CONNECTED, WATCHDOG}
ORDERED = frozenset({STATUS, CONNECTED})  # applied per topic in the order heard
# What a controller sends: these count as "heard" for the watchdog; commands sent *to* a
# controller's folder (by people or scripts) do not.
HEARD = ACTED_ON | {wire.UPDATE_SEQUENCE, wire.DISPLAY_VALUE, WATCHDOG}
# Cheap filter before any JSON parsing: every message in HEARD contains one of these.
_MARKERS = (b"update", b"send_", b"status", b"connected", b"watchdog", b"display_value")
# The common case, decided without parsing: a native message whose type (first) only counts as heard.
_HEARD_ONLY = re.compile(rb'\s*\{\s*"type"\s*:\s*"(?:update_sequence|display_value)"')
PURGE_EVERY = 3600.0
MAX_JOBS = 10_000  # unacknowledged messages at most, so the jobs queued and in lanes too
Job: TypeAlias = tuple[str, wire.Message, Ticket | None, datetime]  # topic, message, its ack, heard at


def client_id_of(settings: Settings) -> str:
    return settings.NOTIFY_CLIENT_ID or f"hub-notifier-{socket.gethostname()}"


class Notifier:
    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store.from_settings(settings)
        self.stats = Stats()
        self.dispatcher = Dispatcher(settings, self.store, self.stats)
        from hub.extensions.messages import Router  # extensions' message handlers, by type

        self.extensions = Router(settings, self.store)
        self.client_id = client_id_of(settings)
        self.received = 0
        self.stopping = threading.Event()
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=MAX_JOBS)
        self.lanes: Lanes[Job] = Lanes(MAX_JOBS)
        self._seen: dict[str, float] = {}  # topic -> epoch seconds heard
        self._seen_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._last_purge = 0.0
        # the broker's feed (Mosquitto or RabbitMQ, hub/brokers.py): its thread calls
        # _on_connect on each new connection, then _on_message for each message
        self.feed = brokers.notifier_feed(settings, self.client_id, self._on_message, self._on_connect, MAX_JOBS)
        self.topic = self.feed.topic
        self.connected, self.subscribed = self.feed.connected, self.feed.subscribed
        self.acks = InOrderAcks(self.feed.ack)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.extensions.start()  # they see each message first (_on_message), and handle it on their thread
        self.feed.start()
        for i in range(WORKERS):
            self._spawn(self._work, f"hub-notify-{i}")
        self._spawn(self._watch, "hub-watchdog")
        self._spawn(self._send_account_emails, "hub-outbox")

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        for _ in range(WORKERS):  # after the jobs queued so far, whose acks still reach the broker
            try:
                self.jobs.put_nowait(None)
            except queue.Full:
                break  # workers are daemon threads: they end with the process
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
        self.feed.stop()  # what came after the sentinels comes again next time
        self.extensions.stop()
        try:
            self.check_watchdogs()  # record what was heard last
        except Exception as e:  # noqa: BLE001 - stopping anyway
            log.warning("could not record the last-heard times on stop: %s", e)

    # -- the feed's thread -------------------------------------------------------------
    def _on_connect(self) -> None:
        self.acks.reset()  # what the last connection left unacknowledged comes again

    def _on_message(self, topic: str | None, payload: bytes, mid: int, qos: int) -> None:
        if topic is not None and self.extensions.active:
            try:
                self.extensions.offer(topic, payload)
            except Exception:  # noqa: BLE001 - never in the way of the notifier's own handling
                log.exception("extensions: offering a message failed")
        ticket = self.acks.take(mid, qos)
        if not self._take(topic, payload, ticket):
            self.acks.done(ticket)  # a worker acks what it took, once done

    def _take(self, topic: str | None, payload: bytes, ticket: Ticket | None = None) -> bool:
        """Note what the message says; True if a worker took it (with its `ticket`)."""
        self.received += 1
        if topic is None:  # not UTF-8: names no folder
            return False
        if payload[:2] in (b"s,", b"d,"):  # rhizo's text lines: sequence values
            self._heard(topic)
            return False
        if _HEARD_ONLY.match(payload):
            self._heard(topic)
            return False
        if not any(marker in payload for marker in _MARKERS):
            return False
        try:
            msg = wire.parse(payload, max_bytes=self.settings.MQTT_MAX_PAYLOAD)
        except HubError:
            return False  # the persister logs and keeps bad messages
        if msg.type in HEARD:
            self._heard(topic)
        if msg.type in ACTED_ON:
            job = (topic, msg, ticket, utcnow())
            if msg.type in ORDERED:
                behind = self.lanes.add(topic, job)
                if behind:
                    return True  # handled after the one of its topic in hand
                if behind is None:
                    log.error("notifier lanes full: dropping %s from %s", msg.type, topic)
                    return False
            try:
                self.jobs.put_nowait(job)
                return True
            except queue.Full:
                if msg.type in ORDERED:
                    self.lanes.close(topic)
                log.error("notifier queue full: dropping %s from %s", msg.type, topic)
        return False

    def _heard(self, topic: str) -> None:
        now = time.time()
        with self._seen_lock:
            self._seen[topic] = now

    # -- workers ---------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            try:
                self._do(job)
                if job[1].type in ORDERED:  # then the rest of its lane, in order
                    while (later := self.lanes.next(job[0])) is not None:
                        self._do(later)
            finally:
                self.jobs.task_done()  # (a lane counts as unfinished until it is empty)

    def _do(self, job: Job) -> None:
        topic, msg, ticket, heard = job
        try:
            self.handle(topic, msg, heard)
        except Exception:  # noqa: BLE001 - one bad job must not kill a worker
            log.exception("notifier failed on %s from %s", msg.type, topic)
        finally:
            self.acks.done(ticket)  # handled (sent, or its failure recorded)

    def handle(self, topic: str, msg: wire.Message, heard: datetime | None = None) -> None:
        if msg.type in SEND_TYPES:
            self.dispatcher.request(topic, msg.type, msg.parameters)
            return
        if msg.type == WATCHDOG:
            with self.store.session() as s:
                controllers.record_activity(s, {topic: datetime.now(UTC).replace(tzinfo=None)})
            return
        try:
            with self.store.session() as s:
                controllers.record_status(s, topic, msg.parameters, connected=msg.type == CONNECTED, now=heard)
        except HubError as e:
            log.info("%s message on %s not kept: %s", msg.type, topic, e.message)

    # -- watchdog --------------------------------------------------------------------------
    def _watch(self) -> None:
        interval = max(0.05, float(self.settings.WATCHDOG_CHECK_SECONDS))
        while not self.stopping.wait(interval):
            try:
                self.check_watchdogs()
            except Exception as e:  # noqa: BLE001 - database away: keep what was heard, retry
                log.warning("watchdog check failed (%s); retrying in %.0f s", e, interval)

    def _send_account_emails(self) -> None:
        interval = max(0.05, float(self.settings.ACCOUNT_EMAIL_POLL_SECONDS))
        while not self.stopping.wait(interval):
            try:
                outbox.deliver(self.settings, self.store)
            except Exception as e:  # noqa: BLE001 - database away: the rows wait
                log.warning("account emails not sent (%s); retrying in %.0f s", e, interval)

    def check_watchdogs(self) -> int:
        """Record what was heard since last time, then send the alerts that are due;
        returns how many alerts were sent."""
        with self._seen_lock:
            seen, self._seen = self._seen, {}
        try:
            with self.store.session() as s:
                if seen:
                    controllers.record_activity(s, {topic: datetime.fromtimestamp(t, UTC).replace(tzinfo=None)
                                                    for topic, t in seen.items()})
                due = controllers.claim_alerts(s)
                if time.monotonic() - self._last_purge > PURGE_EVERY:
                    self._last_purge = time.monotonic()
                    outgoing.purge(s)
        except Exception:
            with self._seen_lock:
                for topic, t in seen.items():
                    if topic not in self._seen or self._seen[topic] < t:
                        self._seen[topic] = t
            raise
        for alert in due:
            log.info("watchdog: %s %s", alert.path, "is back online" if alert.back_online else
                     f"silent for over {alert.minutes} min")
            self.dispatcher.alert(alert)
        return len(due)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once every queued job is done (for tests and orderly stops)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.jobs.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False
