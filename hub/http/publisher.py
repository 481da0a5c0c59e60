"""The HTTP server's own MQTT client: publishes `POST /messages` for callers.

It logs in as `hub-service` (password derived from SECRET_KEY), which the
broker plugin lets publish to any folder the broker knows; the HTTP handler checks the
caller's write permission before anything is sent. paho runs its network
loop in its own thread and reconnects by itself; `publish` blocks (call it
in a worker thread) until the broker acknowledges (QoS 1) or times out.

It speaks MQTT 5, so the PUBACK says whether the broker took the message: one the broker
refuses (its plugin denies a topic it does not know as a folder, a size over its limit)
raises `Refused` (502), so the HTTP caller or the websocket client hears it instead of
the message vanishing. With the storage gate closed (no persister subscribed) the plugin
ends the connection without a PUBACK, as for any client: `publish` answers 503 after
PUBLISH_TIMEOUT, and paho sends the message again once it is back in.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from hub import credentials
from hub.errors import BadRequest, HubError, TooLarge, Unavailable
from hub.settings import Settings

log = logging.getLogger("hub.http.publisher")
PUBLISH_TIMEOUT = 5.0
NOT_AUTHORIZED = 0x87  # MQTT 5's reason code for a publish the broker's plugin denied


class Refused(HubError):
    """The broker answered a publish with a failure reason code (MQTT 5 PUBACK)."""

    status = 502
    code = "broker_refused"


def service_client(settings: Settings, name: str,
                   protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311) -> mqtt.Client:
    """A paho client logged in as `hub-service` (MQTT 3.1.1 unless `protocol` says, reconnecting
    by itself within 1-10 s); `name` starts its client id. The HTTP server's publisher (MQTT 5)
    and each rhizo websocket's bridge are such clients."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{os.getpid()}-{secrets.token_hex(4)}",
                         protocol=protocol)
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
        self.published = self.refused = 0
        self._acks: dict[int, ReasonCode] = {}  # mid -> the reason code of its PUBACK, until read
        self.client = service_client(settings, "hub-http", protocol=MQTTProtocolVersion.MQTTv5
                                     if settings.broker_has_mqtt5 else MQTTProtocolVersion.MQTTv311)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
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

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: ReasonCode,
                    properties: object) -> None:
        # paho calls this before it marks the message published, so the waiter finds it; a
        # later message given the same mid overwrites what an abandoned wait left here
        self._acks[mid] = reason

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
        reason = self._acks.pop(info.mid, None)
        if reason is not None and reason.is_failure:
            self.refused += 1
            log.warning("broker refused a message to %r (%s)", topic[:200], reason)
            hint = " (the broker does not know this folder yet: try again in a second)" \
                if reason.value == NOT_AUTHORIZED else ""
            raise Refused(f"the broker refused the message to /{topic}: {reason}{hint}; nothing was "
                          "delivered or stored")
        self.published += 1

    def close(self) -> None:
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
            self._started = False
