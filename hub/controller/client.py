"""The controller client: what a Raspberry Pi runs to talk to the hub.

    from hub.controller import Controller

    with Controller(key, "acme/greenhouse/pi-01", host="hub.example.com", port=8883,
                    tls=True, on_command=handle) as c:
        c.update("temp", 21.5)          # QoS 1, stamped now (ISO 8601, microseconds)
        c.update_many([("temp", 21.6, None), ("humidity", 40, None)])
        c.flush(10)                     # wait until the broker has every update

- Connects over MQTT 5 with the API key as the password (the username is the
  controller's folder), reconnecting by itself with backoff (1 s to 60 s).
- On a broker cluster, `brokers` names the other nodes: when the connection is
  lost or cannot be made, the next node in the list is tried, so a node that
  dies costs about a second rather than its whole restart.
- Every update carries a timestamp (strictly increasing within this client),
  so the persister stores it exactly once even when it is redelivered.
- At most `max_inflight` updates are unacknowledged at once (20: Mosquitto's
  Receive Maximum); the rest wait in the client's queue.
- While no persister is subscribed (right after a broker start, or when the
  last persister left) the hub's broker closes the connection instead of
  accepting it, or ends it at the first publish, unacknowledged (the storage
  gate, hub/broker_auth/storagegate.py): the client logs that once and keeps
  retrying with backoff; unacknowledged updates are sent again on reconnect.
- A second line: an update the broker acknowledges with "no matching
  subscribers" is kept and sent again every second until it is routed; `flush`
  waits for that too.
- While offline, updates are buffered in memory (up to `max_buffer`) and sent
  on reconnect; `update` raises `Unavailable` when the buffer is full.
- Commands (messages of any other type on the controller's own folder) are
  passed to `on_command(type, parameters, topic)`, in paho's thread; `listening`
  is set once the broker has acknowledged that subscription (commands sent
  before then are not delivered: they are not queued for a new session).

Only paho-mqtt and the standard library are needed (plus `hub.wire`).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from hub import paths, wire
from hub.controller.fastclient import FastClient
from hub.errors import HubError, Unauthenticated, Unavailable

log = logging.getLogger("hub.controller")

NO_MATCHING_SUBSCRIBERS = 0x10  # an MQTT 5 PUBACK reason code
RETRY_SECONDS = 1.0
OnCommand = Callable[[str, dict[str, Any], str], None]


class Controller:
    def __init__(self, key: str, folder: str, *, host: str = "127.0.0.1", port: int = 1883,
                 tls: bool = False, ca_certs: str | None = None, client_id: str | None = None,
                 on_command: OnCommand | None = None, max_buffer: int = 100_000,
                 max_inflight: int = 20, keepalive: int = 30, mqtt_version: int = 5,
                 brokers: Sequence[tuple[str, int]] = ()) -> None:
        """`mqtt_version`: 5, or 4 (MQTT 3.1.1, for a RabbitMQ broker: no reason codes).
        `brokers`: other `(host, port)` nodes of the same broker, tried in turn after
        `host`:`port` when a connection is lost or fails."""
        if mqtt_version not in (4, 5):
            raise ValueError(f"mqtt_version must be 4 or 5, got {mqtt_version!r}")
        self.mqtt_version = mqtt_version
        self.folder = paths.normalize(folder)
        self.host, self.port = host, port
        self.nodes = [(host, port)] + [n for n in brokers if n != (host, port)]
        self._at = 0
        self.on_command, self.keepalive = on_command, keepalive
        self._started = self._closing = self._gave_up = False
        self._held_logged = False  # "closed before accepting" is logged once per outage
        self._unrouted: list[tuple[str, bytes]] = []
        self._stop = threading.Event()
        self.connected = threading.Event()
        self.listening = threading.Event()  # the subscription to commands is in place
        self.refused: str | None = None  # the broker's reason when it refused the key
        self.published = self.acknowledged = self.rejected = 0
        self._last_us = 0
        self._ts_lock = threading.Lock()
        self._cv = threading.Condition()
        c = FastClient(CallbackAPIVersion.VERSION2, client_id=client_id or f"ctl-{secrets.token_hex(6)}",
                       protocol=mqtt.MQTTv5 if mqtt_version == 5 else mqtt.MQTTv311)
        c.username_pw_set(self.folder, key)
        c.reconnect_delay_set(min_delay=1, max_delay=60)
        c.max_inflight_messages_set(max_inflight)
        c.max_queued_messages_set(max_buffer)
        if tls:
            c.tls_set(ca_certs=ca_certs)
        c.on_connect, c.on_disconnect, c.on_publish = self._on_connect, self._on_disconnect, self._on_publish
        c.on_message, c.on_subscribe = self._on_message, self._on_subscribe
        c.on_connect_fail = self._on_connect_fail
        self.client = c

    # -- connection ------------------------------------------------------------------
    def connect(self, wait: float | None = 10.0) -> Controller:
        """Start connecting (and reconnecting) in the background. With `wait`,
        block until connected: `Unauthenticated` if the broker refuses the key,
        `Unavailable` if it cannot be reached in time (the client keeps trying)."""
        self._aim()
        self.client.loop_start()
        self._started = True
        threading.Thread(target=self._retry_unrouted, name="controller-retry", daemon=True).start()
        if wait is not None:
            deadline = time.monotonic() + wait
            while not self.connected.wait(0.05):
                if self.refused:
                    self.close()
                    raise Unauthenticated(f"the broker refused the key for {self.folder}: {self.refused}")
                if time.monotonic() > deadline:
                    raise Unavailable(f"cannot reach the broker at {self.host}:{self.port} within {wait} s; "
                                      "still trying in the background (updates are buffered)")
        return self

    def close(self, flush: float | None = None) -> None:
        if flush:
            self.flush(flush)
        self._closing = True
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()
        # The callbacks are this object's methods: a cycle that would keep the client, and paho's
        # wake-up socket pair, open until a garbage collection. Without it they go with `self`.
        c = self.client
        c.on_connect = c.on_disconnect = c.on_publish = c.on_message = c.on_subscribe = None

    def _aim(self) -> None:
        """Point the client at `self.host`:`self.port` for its next (re)connect."""
        if self.mqtt_version == 5:
            self.client.connect_async(self.host, self.port, keepalive=self.keepalive, clean_start=True)
        else:  # 3.1.1: a clean session is the client's default
            self.client.connect_async(self.host, self.port, keepalive=self.keepalive)

    def _next_node(self) -> None:
        """In paho's thread, after a lost or failed connection: aim at the next node."""
        if len(self.nodes) < 2 or self._closing or self._gave_up:
            return
        self._at = (self._at + 1) % len(self.nodes)
        self.host, self.port = self.nodes[self._at]
        log.info("trying the broker node at %s:%s next", self.host, self.port)
        self._aim()  # paho's public way to change the address: its loop reconnects there, with its backoff

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        self._next_node()

    def __enter__(self) -> Controller:
        return self if self._started else self.connect()

    def __exit__(self, *_exc: object) -> None:
        self.close(flush=10)

    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            log.error("broker at %s:%s refused %s: %s", self.host, self.port, self.folder, reason)
            if str(reason) in ("Bad user name or password", "Not authorized"):
                self._gave_up = True
                client.disconnect()  # a wrong key does not get better by retrying, nor on another node
            return
        self.refused = None
        if self._held_logged:
            log.info("connected to the broker at %s:%s as %s", self.host, self.port, self.folder)
        self._held_logged = False
        self.connected.set()
        if self.on_command is not None:
            client.subscribe(self.folder, options=SubscribeOptions(qos=1, noLocal=True))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self._closing:
            pass
        elif self.connected.is_set():
            log.warning("lost the broker connection (%s); reconnecting, updates are buffered", reason)
        elif not self._held_logged and self.refused is None:
            self._held_logged = True
            log.warning("the broker at %s:%s closed the connection before accepting it: the hub is not "
                        "storing values yet (no persister subscribed, e.g. right after a broker restart) "
                        "or the broker is shutting down; retrying with backoff, updates are buffered",
                        self.host, self.port)
        self.connected.clear()
        self.listening.clear()
        self._next_node()

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("the broker refused the subscription to commands on %s: %s", self.folder, reasons[0])
        else:
            self.listening.set()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        unrouted = None
        if reason.value == NO_MATCHING_SUBSCRIBERS:
            # Nobody subscribed: for an update, that means no persister (a broker that just
            # restarted has not got the persister's shared subscription back yet). Keep it
            # and send it again until someone takes it.
            sent = self.client.sent_message(mid)
            if sent is not None and b'"update_sequence"' in sent[1][:64]:
                unrouted = sent
        with self._cv:
            self.acknowledged += 1
            if unrouted is not None:
                self._unrouted.append(unrouted)
            if reason.is_failure:
                self.rejected += 1
                log.warning("the broker refused an update: %s (does the key have write access to %s?)",
                            reason, self.folder)
            if self.acknowledged >= self.published:  # only `flush` waits, and only for this
                self._cv.notify_all()

    def _on_message(self, _c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        try:
            msg = wire.parse(m.payload)
        except HubError as e:
            log.warning("ignoring a message on %s: %s", m.topic, e.message)
            return
        if msg.type == wire.UPDATE_SEQUENCE or self.on_command is None:
            return
        try:
            self.on_command(msg.type, msg.parameters, m.topic)
        except Exception:  # noqa: BLE001 - a failing handler must not stop the client
            log.exception("the command handler failed on %s", msg.type)

    # -- publishing ------------------------------------------------------------------
    def timestamp(self) -> str:
        """Now, as ISO 8601 text, strictly later than any this client made before."""
        with self._ts_lock:
            us = max(time.time_ns() // 1000, self._last_us + 1)
            self._last_us = us
        return wire.format_timestamp_us(us)

    def publish(self, payload: bytes, folder: str | None = None) -> None:
        """Send a message (QoS 1) to `folder` (default: this controller's)."""
        topic = self.folder if folder is None else paths.normalize(folder)
        info = self.client.publish(topic, payload, qos=1)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            raise Unavailable("the offline buffer is full: the broker has been unreachable too long; "
                              "updates are being refused")
        with self._cv:
            self.published += 1

    def update(self, sequence: str, value: Any, timestamp: str | None = None) -> None:
        self.publish(wire.update_message(sequence, value, timestamp or self.timestamp()))

    def update_values(self, sequence: str, values: Iterable[tuple[Any, str | None]]) -> None:
        """Many values of one sequence in one message."""
        self.publish(wire.values_message(sequence, [(v, ts or self.timestamp()) for v, ts in values]))

    def update_many(self, items: Iterable[tuple[str, Any, str | None]]) -> None:
        """Many `(sequence, value, timestamp)` in one message."""
        self.publish(wire.batch_message([(s, v, ts or self.timestamp()) for s, v, ts in items]))

    def send(self, type: str, parameters: dict[str, Any] | None = None, folder: str | None = None) -> None:
        """A command or any other message, to this folder or another one."""
        self.publish(wire.build(type, parameters), folder)

    @property
    def pending(self) -> int:
        with self._cv:
            return self.published - self.acknowledged

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the broker acknowledged everything published (and
        routed every update to a subscriber); False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: self.acknowledged >= self.published and not self._unrouted,
                                     timeout)

    def _retry_unrouted(self) -> None:
        warned = False
        while not self._stop.wait(RETRY_SECONDS):
            with self._cv:
                if not self._unrouted or not self.connected.is_set():
                    warned = warned and bool(self._unrouted)
                    continue
                again, self._unrouted = self._unrouted, []
                self.published += len(again)
            if not warned:
                log.warning("the broker has no subscriber for updates (is the hub's persister running?); "
                            "holding them and sending them again every %.0f s", RETRY_SECONDS)
                warned = True
            for topic, payload in again:
                self.client.publish(topic, payload, qos=1)
