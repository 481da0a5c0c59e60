"""The notifier's call site: extensions' message handlers, by message type.

The notifier's feed thread only offers each message (`offer`): a byte check for the handled types
and a bounded queue. One worker thread of this router parses them and calls the
handlers, so a slow handler holds back neither the broker, nor the feed's loop, nor the
notifier's own work. Delivery to handlers is at most once: a message queued when the
notifier stops, or dropped while the queue is full (logged, counted), is not handled
again.

What a handler publishes goes out on the extension's own MQTT connection, logged in
with its API key (EXTENSION_API_KEYS): the broker's access rule decides, as for any
caller, and a refusal (MQTT 5 PUBACK) raises `Forbidden` in the handler.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub import wire
from hub.errors import Forbidden, HubError, Unavailable
from hub.extensions.api import Extension, MessageHandler
from hub.extensions.loader import ExtensionError, Extensions, of
from hub.settings import Settings
from hub.storage.store import Store

log = logging.getLogger("hub.extensions")
QUEUE_SIZE = 10_000
PUBLISH_TIMEOUT = 5.0


@dataclass
class RouterStats:
    offered: int = 0
    handled: int = 0
    failed: int = 0
    dropped: int = 0


class KeyPublisher:
    """One extension's MQTT connection, with its API key (MQTT 5 on Mosquitto, so a refusal is
    heard; MQTT 3.1.1 on RabbitMQ, which closes the connection instead: `hub.brokers.mqtt_endpoint`)."""

    def __init__(self, settings: Settings, ext: Extension, key: str) -> None:
        from hub import brokers

        self.host, self.port, self.protocol = brokers.mqtt_endpoint(settings)
        self.name, self.limit = ext.name, settings.MQTT_MAX_PAYLOAD
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=self.protocol,
                        client_id=f"hub-ext-{ext.name}-{os.getpid()}-{secrets.token_hex(3)}")
        c.username_pw_set("key", key)
        c.reconnect_delay_set(min_delay=1, max_delay=10)
        c.on_connect, c.on_disconnect, c.on_publish = self._on_connect, self._on_disconnect, self._on_publish
        self.client, self.connected = c, threading.Event()
        self._refused: dict[int, str] = {}
        self._lock = threading.Lock()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("extension %s: the broker refused its API key (%s): check EXTENSION_API_KEYS",
                      self.name, reason)
            return
        self.connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        self.connected.clear()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            with self._lock:
                self._refused[mid] = str(reason)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, folder: str, type_: str, parameters: Mapping[str, Any]) -> None:
        payload = json.dumps({"type": type_, "parameters": dict(parameters)}, separators=(",", ":"),
                             allow_nan=False).encode()
        if len(payload) > self.limit:
            raise HubError(f"message of {len(payload)} bytes is over MQTT_MAX_PAYLOAD ({self.limit})")
        if not self.connected.wait(PUBLISH_TIMEOUT):
            raise Unavailable(f"extension {self.name}: not connected to the broker at {self.host}:{self.port}")
        info = self.client.publish(wire.folder_of_topic(folder), payload, qos=1)
        info.wait_for_publish(PUBLISH_TIMEOUT)
        if not info.is_published() and self.protocol != mqtt.MQTTv5 and not self.connected.is_set():
            # MQTT 3.1.1 (RabbitMQ) has no refusal in its PUBACK: the broker closes the connection
            raise Forbidden(f"extension {self.name} may not publish to {folder}: the broker closed the "
                            "connection on the publish (how an MQTT 3.1.1 broker refuses one)")
        if not info.is_published():
            raise Unavailable(f"extension {self.name}: the broker did not acknowledge within {PUBLISH_TIMEOUT} s")
        with self._lock:
            refused = self._refused.pop(info.mid, None)
        if refused is not None:
            raise Forbidden(f"extension {self.name} may not publish to {folder}: the broker said {refused}")


@dataclass
class Context:
    """The `MessageContext` a handler gets."""

    ext: Extension
    store: Store
    publisher: KeyPublisher | None = field(default=None, repr=False)

    def publish(self, folder: str, type: str, parameters: Mapping[str, Any]) -> None:
        if self.publisher is None:
            raise Forbidden(f"extension {self.ext.name} has no API key to publish with: set "
                            f"EXTENSION_API_KEYS = {{{self.ext.name!r}: '<key>'}}")
        self.publisher.publish(folder, type, parameters)

    def send_email(self, folder: str, to: list[str], subject: str, body: str) -> None:
        self.publish(folder, "send_email", {"to": list(to), "subject": subject, "body": body})


class Router:
    def __init__(self, settings: Settings, store: Store, extensions: Extensions | None = None) -> None:
        self.settings, self.stats = settings, RouterStats()
        exts = extensions if extensions is not None else of(settings)
        self.handlers: dict[str, list[tuple[Context, MessageHandler]]] = {}
        self.contexts: list[Context] = []
        for ext in exts:
            table = exts.call("hub_message_handlers", ext) or {}
            if not isinstance(table, Mapping) or not all(isinstance(t, str) and callable(h)
                                                          for t, h in table.items()):
                raise ExtensionError(f"extension {ext.name}: hub_message_handlers must return "
                                     "{message type: function}")
            if not table:
                continue
            key = settings.EXTENSION_API_KEYS.get(ext.name)
            ctx = Context(ext, store, KeyPublisher(settings, ext, key) if key else None)
            self.contexts.append(ctx)
            for type_, handler in table.items():
                self.handlers.setdefault(type_, []).append((ctx, handler))
        # every form wire.parse reads: {"type": "T"}, rhizo's {"T": {...}}, {"update": ...} and s-lines
        self._markers = tuple(f'"{t}"'.encode() for t in self.handlers)
        self._rhizo_lines = wire.UPDATE_SEQUENCE in self.handlers
        if self._rhizo_lines:
            self._markers += (f'"{wire.RHIZO_UPDATE}"'.encode(),)
        self.jobs: queue.Queue[tuple[str, bytes] | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return bool(self.handlers)

    def start(self) -> None:
        if not self.active or self._thread is not None:
            return
        for ctx in self.contexts:
            if ctx.publisher is not None:
                ctx.publisher.start()
        self._thread = threading.Thread(target=self._work, name="hub-extensions", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        try:
            self.jobs.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        for ctx in self.contexts:
            if ctx.publisher is not None:
                ctx.publisher.stop()

    def offer(self, topic: str, payload: bytes) -> None:
        """From the notifier feed's thread: queue the message if it may be of a handled type (a byte
        check only; the worker parses it)."""
        if not self._markers or not (any(m in payload for m in self._markers)
                                     or self._rhizo_lines and payload[:2] == b"s,"):
            return
        self.stats.offered += 1
        try:
            self.jobs.put_nowait((topic, payload))
        except queue.Full:
            self.stats.dropped += 1
            log.error("extensions' queue full: dropping a message from %s", topic)

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    return
                topic, payload = job
                try:
                    msg = wire.parse(payload, max_bytes=self.settings.MQTT_MAX_PAYLOAD)
                except HubError:
                    continue  # the persister logs and keeps bad messages
                self.handle(topic, msg)
            finally:
                self.jobs.task_done()

    def handle(self, topic: str, msg: wire.Message) -> None:
        for ctx, handler in self.handlers.get(msg.type, []):
            try:
                handler(ctx, topic, msg)
                self.stats.handled += 1
            except Exception as e:  # noqa: BLE001 - one extension's failure must not stop the others
                self.stats.failed += 1
                detail = e.message if isinstance(e, HubError) else f"{type(e).__name__}: {e}"
                log.warning("extension %s failed on %s from %s: %s", ctx.ext.name, msg.type, topic, detail,
                            exc_info=not isinstance(e, HubError))
