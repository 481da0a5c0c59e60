"""The HTTP server's own MQTT client: publishes `POST /messages` for callers.

It logs in as `hub-service` (password derived from SECRET_KEY), which the
broker plugin lets publish to any folder; the HTTP handler checks the
caller's write permission before anything is sent. paho runs its network
loop in its own thread and reconnects by itself; `publish` blocks (call it
in a worker thread) until the broker acknowledges (QoS 1) or times out.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub import credentials
from hub.errors import Unavailable
from hub.settings import Settings

log = logging.getLogger("hub.http.publisher")
PUBLISH_TIMEOUT = 5.0


class Publisher:
    def __init__(self, settings: Settings) -> None:
        self.host, self.port = settings.MQTT_HOST, settings.MQTT_PORT
        self.connected = threading.Event()
        self.published = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"hub-http-{os.getpid()}-{secrets.token_hex(3)}",
                                  protocol=mqtt.MQTTv311)
        self.client.username_pw_set(credentials.SERVICE_USERNAME,
                                    credentials.service_password(settings.SECRET_KEY,
                                                                 credentials.SERVICE_USERNAME))
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
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
