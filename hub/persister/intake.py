"""MQTT intake: the persister's connection to Mosquitto (paho 2.x, MQTT 5).

- Credentials: username `hub-persister`, password derived from SECRET_KEY (the
  broker plugin derives the same one).
- A persistent session (`clean_start=False`, a session expiry) under a stable
  client id, subscribed with QoS 1 to `$share/<group>/#`: Mosquitto queues the
  messages while this persister is down and splits them between the
  persisters of one group.
- Manual acknowledgement: `on_message` only queues the message; `ack` is
  called by the writer after the batch holding it committed. An ack is sent
  only on the connection the message came on: after a reconnect Mosquitto
  redelivers whatever was not acknowledged, and the write is idempotent.
- paho's network thread reconnects with exponential backoff (0.25 s to 10 s).
- `unsubscribe` (the stop's hand-over, daemon.py): Mosquitto stops routing to
  this session; what it already queued there keeps coming until it is empty. The
  broker refuses it to the last persister connected (storagegate.py): that one keeps
  its session and its share.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from hub import credentials
from hub.controller.fastclient import FastClient
from hub.persister.batcher import Incoming
from hub.settings import Settings

log = logging.getLogger("hub.persister.mqtt")

MAX_RECEIVE = 65535  # MQTT 5's largest Receive Maximum
_HINTS = {
    "Bad user name or password": "the broker refused the persister's credentials: the persister and "
                                 "the broker must use the same settings file (SECRET_KEY)",
    "Not authorized": "the broker refused the persister: check the broker's hub plugin is loaded "
                      "and uses the same SECRET_KEY",
}


class Intake:
    def __init__(self, settings: Settings, q: queue.SimpleQueue[Incoming], client_id: str,
                 receive_maximum: int) -> None:
        self.settings, self.q, self.client_id = settings, q, client_id
        self.topic = f"$share/{settings.PERSISTER_GROUP}/#"
        self.receive_maximum = max(20, min(MAX_RECEIVE, receive_maximum))
        self.generation = 0
        self.received = 0
        self.last_received = 0.0  # time.monotonic() of the latest message
        self.leaving = False  # unsubscribed for good (the stop's hand-over)
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self._failures = 0
        c = FastClient(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                       manual_ack=True)
        c.username_pw_set(credentials.PERSISTER_USERNAME,
                          credentials.service_password(settings.SECRET_KEY, credentials.PERSISTER_USERNAME))
        # quick first retries: after a broker restart the persister should resubscribe before
        # controllers come back (Mosquitto 2.0 does not restore shared subscriptions)
        c.reconnect_delay_set(min_delay=0.25, max_delay=10)  # type: ignore[arg-type]
        c.max_queued_messages_set(0)
        c.on_connect, c.on_disconnect, c.on_message = self._on_connect, self._on_disconnect, self._on_message
        c.on_subscribe, c.on_connect_fail = self._on_subscribe, self._on_connect_fail
        c.on_fast_message = self._on_fast_message
        self.client = c

    @property
    def where(self) -> str:
        return f"{self.settings.MQTT_HOST}:{self.settings.MQTT_PORT}"

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = max(0, int(self.settings.PERSISTER_SESSION_EXPIRY))
        props.ReceiveMaximum = self.receive_maximum
        self.client.connect_async(self.settings.MQTT_HOST, self.settings.MQTT_PORT, keepalive=30,
                                  clean_start=False, properties=props)
        self.client.loop_start()
        log.info("connecting to the broker at %s as %s (client id %s)", self.where,
                 credentials.PERSISTER_USERNAME, self.client_id)

    # -- paho callbacks (network thread) ---------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._failures += 1
            hint = _HINTS.get(str(reason), "retrying with backoff")
            log.error("broker at %s refused the connection: %s; %s", self.where, reason, hint)
            return
        with self._lock:
            self.generation += 1
        self._failures = 0
        self.connected.set()
        log.info("connected to the broker at %s (session %s)", self.where,
                 "resumed: queued messages follow" if flags.session_present else "new")
        if not self.leaving:  # a reconnect during the hand-over only fetches what its session holds
            client.subscribe(self.topic, options=SubscribeOptions(qos=1))

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
        bad = [r for r in reasons if r.is_failure]
        if bad:
            log.error("the broker refused the subscription %s: %s; nothing will be stored until the "
                      "broker's hub plugin lets %s subscribe there", self.topic, bad[0],
                      credentials.PERSISTER_USERNAME)
        else:
            self.subscribed.set()
            log.info("subscribed to %s with QoS 1", self.topic)

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        self._failures += 1
        if self._failures in (1, 5) or self._failures % 30 == 0:
            log.error("cannot reach the broker at %s (attempt %d); is Mosquitto running? "
                      "retrying with backoff up to 10 s", self.where, self._failures)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        self.subscribed.clear()
        if was:
            log.warning("lost the broker connection (%s); reconnecting with backoff; unacknowledged "
                        "messages will be redelivered", reason)

    def _on_fast_message(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        self.received += 1
        self.last_received = time.monotonic()
        self.q.put(Incoming(topic, payload, mid, qos, self.generation))

    def _on_message(self, _c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        self.received += 1
        self.last_received = time.monotonic()
        try:
            topic = m.topic
        except UnicodeDecodeError:
            topic = "(topic is not UTF-8)"
        self.q.put(Incoming(topic, bytes(m.payload), m.mid, m.qos, self.generation))

    # -- writer side ------------------------------------------------------------
    def ack(self, batch: Iterable[Incoming]) -> int:
        """Acknowledge the messages of a committed batch that came on the
        current connection; returns how many acks were sent."""
        with self._lock:
            if not self.connected.is_set():
                return 0
            gen = self.generation
            mids = [m.mid for m in batch if m.qos == 1 and m.generation == gen]
            self.client.ack_many(mids)
        return len(mids)

    def unsubscribe(self, timeout: float = 5.0) -> bool | None:
        """Leave the shared subscription: True once the broker confirmed it (from then on
        only what was already queued for this session arrives); None if the broker refused
        (this is the last persister connected: the session keeps the subscription and what
        arrives waits in it); False without an answer."""
        done = threading.Event()
        reasons: list[Any] = []

        def on_unsubscribe(_c: Any, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
            reasons.extend(codes if isinstance(codes, list) else [codes])
            done.set()

        self.client.on_unsubscribe = on_unsubscribe
        if not self.connected.is_set():
            return False
        self.leaving = True
        rc, _mid = self.client.unsubscribe(self.topic)
        if rc != mqtt.MQTT_ERR_SUCCESS or not done.wait(timeout):
            return False
        if any(getattr(r, "is_failure", False) for r in reasons):
            self.leaving = False
            log.info("the broker keeps %s for this persister (%s: no other persister is connected): "
                     "what arrives waits in this session until it runs again", self.topic, reasons[0])
            return None
        self.subscribed.clear()
        log.info("unsubscribed from %s: the other persisters take the new messages", self.topic)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Send the queued acks and disconnect (the session stays on the broker)."""
        done = threading.Event()
        self.client.on_disconnect = lambda *_a: done.set()
        if self.client.is_connected():
            self.client.disconnect()
            done.wait(timeout)
        self.client.loop_stop()
