"""One websocket's line to the broker: an MQTT client (the HTTP server's `hub-service`
login, as `hub.http.publisher`) that subscribes to the folders the websocket client may
read and hands what arrives to the event loop. paho runs its network loop in its own
thread and reconnects (and subscribes again) by itself; nothing here blocks the loop.
`subscribe` returns once the broker has acknowledged the subscription (or after
SUBSCRIBE_TIMEOUT), so whatever the websocket client does after subscribing is heard.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        """Made on the event loop `loop`, where `deliver` is called and `subscribe` awaited."""
        self.loop, self.deliver = loop, deliver
        self.host, self.port = settings.MQTT_HOST, settings.MQTT_PORT
        self.topics: set[str] = set()
        self._lock = threading.Lock()  # `topics`: read by paho's thread on (re)connect
        self._ready = asyncio.Event()  # connected (set and cleared on the loop)
        self._acks: dict[int, asyncio.Future[None]] = {}  # SUBSCRIBE mid -> its SUBACK
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

    def _later(self, fn: Callable[..., None], *args: object) -> None:
        """Run `fn(*args)` on the loop (from paho's thread); nothing once the loop is closed."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(fn, *args)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                    properties: object) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("broker refused the websocket bridge's hub-service login (%s)", reason)
            return
        with self._lock:
            topics = sorted(self.topics)
        for t in topics:
            client.subscribe(t, qos=0)
        self._later(self._ready.set)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                       properties: object) -> None:
        self._later(self._ready.clear)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reasons: object,
                      properties: object) -> None:
        self._later(self._acked, mid)

    def _acked(self, mid: int) -> None:
        fut = self._acks.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self._later(self.deliver, msg.topic, bytes(msg.payload))

    async def subscribe(self, topic: str, timeout: float = SUBSCRIBE_TIMEOUT) -> None:
        """Subscribe `topic`, returning once the broker acknowledged it (at most `timeout`:
        with the broker away, it is subscribed when the connection is back). paho's
        `subscribe` only queues the packet for its thread, so this never blocks the loop."""
        with self._lock:
            if topic in self.topics:
                return
            self.topics.add(topic)
        mid = None
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
                result, mid = self.client.subscribe(topic, qos=0)
                if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
                    return  # the connection dropped meanwhile: `_on_connect` subscribes it again
                fut = self._acks[mid] = self.loop.create_future()  # before the loop can run `_acked`
                await fut
        except TimeoutError:
            log.debug("no SUBACK for %r within %.0f s", topic, timeout)
        finally:
            if mid is not None:
                self._acks.pop(mid, None)

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
