"""One websocket's line to the broker: an MQTT client (the HTTP server's `hub-service`
login, as `hub.http.publisher`) that subscribes to the folders the websocket client may
read and hands what arrives to the event loop. paho runs its network loop in its own
thread and reconnects (and subscribes again) by itself; nothing here blocks the loop.
`subscribe` returns once the broker has acknowledged the subscription (or after
SUBSCRIBE_TIMEOUT), so whatever the websocket client does after subscribing is heard.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt

from hub.http.publisher import service_client
from hub.settings import Settings

log = logging.getLogger("hub.http.rhizo")
Deliver = Callable[[str, bytes], None]
SUBSCRIBE_TIMEOUT = 5.0


class Bridge:
    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop, deliver: Deliver) -> None:
        self.loop, self.deliver = loop, deliver
        self.host, self.port = settings.MQTT_HOST, settings.MQTT_PORT
        self.topics: set[str] = set()
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self._acked = threading.Condition()
        self._subacks: set[int] = set()  # mids of SUBACKs not yet waited for
        self.client = service_client(settings, "hub-ws")
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.started = False

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        self.started = True

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                    properties: object) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("broker refused the websocket bridge's hub-service login (%s)", reason)
            return
        with self._lock:
            topics = sorted(self.topics)
        for t in topics:
            client.subscribe(t, qos=0)
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                       properties: object) -> None:
        self.connected.clear()

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reasons: object,
                      properties: object) -> None:
        with self._acked:
            self._subacks.add(mid)
            self._acked.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.loop.call_soon_threadsafe(self.deliver, msg.topic, bytes(msg.payload))

    def subscribe(self, topic: str, timeout: float = SUBSCRIBE_TIMEOUT) -> None:
        """Blocking (until the SUBACK): call it off the event loop. With the broker away the
        topic is subscribed once the connection is back."""
        with self._lock:
            if topic in self.topics:
                return
            self.topics.add(topic)
        if not self.connected.wait(timeout):
            return
        result, mid = self.client.subscribe(topic, qos=0)
        if result != mqtt.MQTT_ERR_SUCCESS:
            return  # the connection dropped meanwhile: `_on_connect` subscribes it again
        with self._acked:
            if self._acked.wait_for(lambda: mid in self._subacks, timeout):
                self._subacks.discard(mid)

    def unsubscribe(self, topic: str) -> None:
        with self._lock:
            self.topics.discard(topic)
        if self.client.is_connected():
            self.client.unsubscribe(topic)

    def close(self) -> None:
        """Blocking (joins paho's thread): call it off the event loop."""
        if self.started:
            self.client.disconnect()
            self.client.loop_stop()
            self.started = False
