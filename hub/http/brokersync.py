"""A folder created over HTTP is a topic the broker accepts before the create answers.

The broker's plugin decides from a snapshot it refreshes off the broker's thread
(hub/broker_auth/reloader.py), so a folder is unknown to it for a moment after its commit.
After a create commits, `settle` asks the plugin to look now (a QoS 0 publish to
`SYNC_TOPIC`, which only `hub-service` may send and nobody receives) and waits until the
plugin announces on `CHANGE_TOPIC` a change id at least the create's. The wait is bounded
(MQTT_FOLDER_SYNC_SECONDS) and skipped while the broker is unreachable: the create is kept
either way. docs/architecture.md ("A new folder is a topic at once") says why this design.

One `BrokerSync` per HTTP worker, with its own paho client (its network loop in paho's
thread); `settle` runs on the event loop and never blocks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import paho.mqtt.client as mqtt
from aiohttp import web
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from hub.broker_auth.policy import CHANGE_TOPIC, SYNC_TOPIC
from hub.http.deps import in_session
from hub.http.publisher import service_client
from hub.http.typedefs import BROKER_SYNC
from hub.settings import Settings
from hub.storage import changes

log = logging.getLogger("hub.http.brokersync")


class BrokerSync:
    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop) -> None:
        self.host, self.port = settings.MQTT_HOST, settings.MQTT_PORT
        self.timeout = settings.MQTT_FOLDER_SYNC_SECONDS
        self.loop = loop
        self.seen = 0  # the newest change id the plugin announced
        self.ready = threading.Event()  # connected and subscribed to CHANGE_TOPIC
        self.tried = threading.Event()  # the first connection attempt has ended, either way
        self._tried_async = asyncio.Event()  # the same, for the event loop
        self.waited = self.timed_out = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.client = service_client(settings, "hub-sync")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_message = self._on_message
        self._started = False

    # -- paho's thread -------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                    properties: object) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("broker refused the hub-service login (%s): folder creates will not wait "
                        "for the broker", reason)
            self._attempted()
            return
        client.subscribe(CHANGE_TOPIC, qos=0)

    def _attempted(self) -> None:
        if not self.tried.is_set():
            self.tried.set()
            self.loop.call_soon_threadsafe(self._tried_async.set)

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self._attempted()

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reasons: list[ReasonCode],
                      properties: Properties) -> None:
        if all(not r.is_failure for r in reasons):
            self.ready.set()
            self._attempted()
        else:
            self._attempted()
            log.warning("the broker refused %s to hub-service: is the plugin older than this "
                        "server? Folder creates will not wait for the broker", CHANGE_TOPIC)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                       properties: object) -> None:
        self.ready.clear()
        self._attempted()
        self.loop.call_soon_threadsafe(self._release_all)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            change_id = int(msg.payload)
        except ValueError:
            return
        self.loop.call_soon_threadsafe(self._seen, change_id)

    # -- the event loop -------------------------------------------------------------
    def _seen(self, change_id: int) -> None:
        self.seen = max(self.seen, change_id)
        keep = []
        for wanted, fut in self._waiters:
            if wanted <= self.seen:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((wanted, fut))
        self._waiters = keep

    def _release_all(self) -> None:
        """The broker went away: nobody waits for it."""
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters = []

    async def settle(self, change_id: int) -> bool:
        """Wait until the plugin decides by `change_id` or later; True if it does, False
        when the broker is unreachable or the bound ran out (the caller answers anyway)."""
        if self.seen >= change_id:
            return True
        if self.timeout <= 0:
            return False
        if not self.tried.is_set():  # just started: the first connection is on its way
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tried_async.wait(), self.timeout)
        if not self.ready.is_set():
            return False
        fut: asyncio.Future[None] = self.loop.create_future()
        self._waiters.append((change_id, fut))
        self.client.publish(SYNC_TOPIC, str(change_id), qos=0)  # queued; paho's thread sends it
        self.waited += 1
        try:
            await asyncio.wait_for(fut, self.timeout)
        except TimeoutError:
            self.timed_out += 1
            log.warning("the broker's plugin did not reach change %d within %.1f s "
                        "(MQTT_FOLDER_SYNC_SECONDS): the new folder opens as a topic when it does",
                        change_id, self.timeout)
            return False
        finally:
            self._waiters = [(w, f) for w, f in self._waiters if f is not fut]
        return self.seen >= change_id

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        self._started = True

    def close(self) -> None:
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
            self._started = False


async def settle_created(request: web.Request) -> None:
    """After a create of one or more folders committed: answer once the broker has them."""
    sync = request.app.get(BROKER_SYNC)
    if sync is None or sync.timeout <= 0 or (sync.tried.is_set() and not sync.ready.is_set()):
        return  # no wait while the broker is unreachable
    await sync.settle(await in_session(request, changes.latest))
