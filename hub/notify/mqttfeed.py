"""The notifier's feed on Mosquitto: paho (MQTT 5), `$share/<NOTIFY_GROUP>/#` with QoS 1.

A persistent session (SESSION_EXPIRY s, `clean_start=False`) under the notifier's client id,
manual acknowledgement, Receive Maximum = the notifier's job limit. On each connect it calls
`on_connect` (the notifier forgets the old connection's tickets: Mosquitto redelivers those)
before it subscribes; each message goes to `on_message(topic, payload, mid, qos)` (topic None
when it is not UTF-8); `ack(mid)` sends the PUBACK.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from hub import credentials
from hub.settings import Settings

log = logging.getLogger("hub.notify")

SESSION_EXPIRY = 3600  # s Mosquitto queues messages for a stopped notifier
NotifierMessage = Callable[[str | None, bytes, int, int], None]


class MqttFeed:
    def __init__(self, settings: Settings, client_id: str, on_message: NotifierMessage,
                 on_connect: Callable[[], None], max_unacked: int) -> None:
        self.settings, self.client_id = settings, client_id
        self.on_message, self.on_connect, self.max_unacked = on_message, on_connect, max_unacked
        self.topic = f"$share/{settings.NOTIFY_GROUP}/#"
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.stopping = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True)
        c.username_pw_set(credentials.PERSISTER_USERNAME,
                          credentials.service_password(settings.SECRET_KEY, credentials.PERSISTER_USERNAME))
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.on_connect, c.on_disconnect, c.on_message = self._on_connect, self._on_disconnect, self._on_message
        c.on_subscribe = self._on_subscribe
        self.client = c

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY
        props.ReceiveMaximum = self.max_unacked
        log.info("notifier connecting to %s:%s as %s (client id %s, %s)", self.settings.MQTT_HOST,
                 self.settings.MQTT_PORT, credentials.PERSISTER_USERNAME, self.client_id, self.topic)
        self.client.connect_async(self.settings.MQTT_HOST, self.settings.MQTT_PORT, keepalive=30,
                                  clean_start=False, properties=props)
        self.client.loop_start()

    def ack(self, mid: int) -> None:
        self.client.ack(mid, 1)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.client.is_connected():
            self.client.disconnect()  # what is not acknowledged comes again next time
        self.client.loop_stop()

    # -- paho's thread -------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("the broker refused the notifier: %s; it needs the same SECRET_KEY as the broker", reason)
            return
        self.on_connect()
        self.connected.set()
        client.subscribe(self.topic, options=SubscribeOptions(qos=1))

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("the broker refused the subscription %s: %s", self.topic, reasons[0])
        else:
            self.subscribed.set()
            log.info("notifier subscribed to %s", self.topic)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if not self.stopping.is_set():
            log.warning("notifier lost the broker (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        try:
            topic: str | None = m.topic
        except UnicodeDecodeError:
            topic = None
        self.on_message(topic, bytes(m.payload), m.mid, m.qos)
