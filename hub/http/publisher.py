"""The HTTP server's own MQTT client: publishes `POST /messages` for callers.

It logs in as `hub-service` (password derived from SECRET_KEY), which the
broker plugin lets publish to any folder; the HTTP handler checks the
caller's write permission before anything is sent. paho runs its network
loop in its own thread and reconnects by itself; `publish` blocks (call it
in a worker thread) until the broker acknowledges (QoS 1) or times out.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub import credentials
from hub.errors import BadRequest, TooLarge, Unavailable
from hub.settings import Settings

log = logging.getLogger("hub.http.publisher")
PUBLISH_TIMEOUT = 5.0


def service_client(settings: Settings, name: str) -> mqtt.Client:
    """A paho client logged in as `hub-service` (MQTT 3.1.1, reconnecting by itself within
    1-10 s); `name` starts its client id. The HTTP server's publisher and each rhizo
    websocket's bridge are such clients."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{os.getpid()}-{secrets.token_hex(4)}",
                         protocol=mqtt.MQTTv311)
    client.username_pw_set(credentials.SERVICE_USERNAME,
                           credentials.service_password(settings.SECRET_KEY, credentials.SERVICE_USERNAME))
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client


def encode_message(type_: str, parameters: object, limit: int) -> bytes:
    """The wire payload `{"type", "parameters"}` a folder's topic carries; 400 for what JSON
    cannot carry, 413 past `limit` (MQTT_MAX_PAYLOAD)."""
    try:
        payload = json.dumps({"type": type_, "parameters": parameters}, separators=(",", ":"),
                             allow_nan=False).encode()
    except ValueError:
        raise BadRequest("parameters must be plain JSON (no NaN or Infinity)") from None
    if len(payload) > limit:
        raise TooLarge(f"message of {len(payload)} bytes is over MQTT_MAX_PAYLOAD ({limit})")
    return payload


class Publisher:
    def __init__(self, settings: Settings) -> None:
        self.host, self.port = settings.MQTT_HOST, settings.MQTT_PORT
        self.connected = threading.Event()
        self.published = 0
        self.client = service_client(settings, "hub-http")
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self._started = False

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                    properties: object) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("broker refused the hub-service login (%s): check SECRET_KEY and the plugin", reason)
            return
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                       properties: object) -> None:
        self.connected.clear()

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        self._started = True

    def publish(self, topic: str, payload: bytes, timeout: float = PUBLISH_TIMEOUT) -> None:
        if not self.connected.wait(timeout):
            raise Unavailable(f"the broker at {self.host}:{self.port} is not reachable: is Mosquitto "
                              "running? (`run.py --check` says)")
        info = self.client.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as e:
            raise Unavailable(f"publishing to the broker failed: {e}") from None
        if not info.is_published():
            raise Unavailable(f"the broker did not acknowledge the message within {timeout:.0f} s")
        self.published += 1

    def close(self) -> None:
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
            self._started = False
