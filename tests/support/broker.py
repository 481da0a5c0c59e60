"""A real Mosquitto with the real hub plugin, on the ports its settings file names.

`start_broker(settings_path)` builds the plugin if needed (`build/hub_auth.so`), writes the
config with `hub.broker_auth.runner`, starts `mosquitto -c` with the embedded Python's
environment, and waits until both listeners accept. The broker's output (including every
plugin refusal) goes to `log_path`; a failure to start raises with its tail.

`mqtt_client(...)` connects a paho client (TCP or websockets, MQTT 3.1.1 or 5) and returns
it with its CONNACK reason, running its network loop in a thread (no automatic reconnect).
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub.broker_auth import runner
from hub.settings import Settings, load
from hub.storage import changes
from hub.storage.db import Database
from tests.support.processes import stop_process
from tests.support.settings import clean_env

START_TIMEOUT = 30.0


class BrokerFailed(RuntimeError):
    pass


class RunningBroker:
    def __init__(self, settings_path: Path) -> None:
        self.settings_path = settings_path
        self.settings: Settings = load(settings_path, env={})
        self.host = self.settings.MQTT_HOST
        self.port = self.settings.MQTT_PORT
        self.ws_port = self.settings.MQTT_WS_PORT
        self.log_path = runner.config_dir(self.settings) / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        if self.is_running():
            return
        runner.ensure_plugin()
        conf = runner.write_config(self.settings, self.settings_path)
        cmd = runner.broker_command(self.settings, conf)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=runner.broker_env(clean_env(self.settings_path)),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        pending = [self.port, self.ws_port]
        while pending:
            if self.proc.poll() is not None:
                raise BrokerFailed(f"mosquitto exited with status {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerFailed(f"mosquitto did not open {pending} within {timeout:.0f} s:\n"
                                   f"{self.log_tail()}")
            try:
                with socket.create_connection((self.host, pending[0]), timeout=0.5):
                    pending.pop(0)
            except OSError:
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        p, self.proc = self.proc, None
        if p is not None:
            stop_process(p, timeout)

    def restart(self) -> None:
        self.stop()
        self.start()

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(empty log)"

    def wait_log(self, text: str, timeout: float = 5.0) -> bool:
        """True once `text` appears in the broker's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text():
                return True
            time.sleep(0.05)
        return False

    def sync(self, timeout: float = 5.0) -> None:
        """Wait until the plugin has loaded every change committed to the database so far
        (it logs the change id it is at; it polls about 4 times a second)."""
        db = Database(self.settings.database_url)
        try:
            with db.session() as s:
                latest = changes.latest(s)
        finally:
            db.dispose()
        deadline = time.monotonic() + timeout
        while self.plugin_change_id() < latest:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the plugin did not load change {latest} within {timeout} s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.05)

    def plugin_change_id(self) -> int:
        """The newest change id the plugin says it has loaded (-1 before it is ready)."""
        ids = [int(m) for m in _CHANGE_LINE.findall(self.log_text())]
        return max(ids, default=-1)


_CHANGE_LINE = re.compile(r"hub-auth: (?:ready \(.*?change|now at change) (\d+)")


def start_broker(settings_path: Path) -> RunningBroker:
    """Start Mosquitto with the plugin for this settings file (MQTT_PORT and MQTT_WS_PORT
    must be free ports, the database migrated)."""
    b = RunningBroker(settings_path)
    b.start()
    return b


# -- clients ------------------------------------------------------------------
class Client:
    """A connected (or refused) paho client with its loop in a thread, recording what
    arrives. `messages` holds (topic, payload) pairs; `disconnected` is set when the
    broker drops the connection."""

    def __init__(self, paho: mqtt.Client) -> None:
        self.paho = paho
        self.messages: list[tuple[str, bytes]] = []
        self.connack: Any = None
        self.connected = threading.Event()
        self.answered = threading.Event()
        self.disconnected = threading.Event()
        self.thread: threading.Thread | None = None
        self.subacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        self._cv = threading.Condition()

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5.0) -> list[int]:
        """Subscribe; return the SUBACK's reason codes (MQTT 5: 135 not authorized) or
        granted QoS (3.1.1: 128 refused)."""
        _, mid = self.paho.subscribe(topic, qos)
        return self._wait(self.subacks, mid, timeout)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, timeout: float = 5.0) -> int | None:
        """Publish; for QoS 1 return the PUBACK's reason code (MQTT 5: 135 not authorized;
        3.1.1: always 0)."""
        info = self.paho.publish(topic, payload, qos)
        if qos == 0:
            return None
        return self._wait(self.pubacks, info.mid, timeout)

    def _wait(self, table: dict[int, Any], mid: int, timeout: float) -> Any:
        with self._cv:
            if not self._cv.wait_for(lambda: mid in table, timeout):
                raise TimeoutError(f"no acknowledgement for message {mid} within {timeout} s")
            return table.pop(mid)

    def wait_messages(self, count: int, timeout: float = 5.0) -> list[tuple[str, bytes]]:
        with self._cv:
            self._cv.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def close(self) -> None:
        self.paho.disconnect()
        if self.thread is not None:
            self.thread.join(5)
        # the callbacks refer back to this object: drop the cycle, so that paho's wake-up sockets
        # close as soon as the client is dropped (not at a garbage collection, with a ResourceWarning)
        p = self.paho
        p.on_connect = p.on_disconnect = p.on_message = p.on_subscribe = p.on_publish = None


def mqtt_client(broker: RunningBroker, password: str | None, *, username: str | None = "key",
                protocol: int = 5, transport: str = "tcp", client_id: str = "",
                timeout: float = 5.0, will: tuple[str, bytes] | None = None) -> Client:
    """Connect and wait for the CONNACK; `client.connected` tells whether it was accepted."""
    version = mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311
    paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version,
                       transport="websockets" if transport == "websockets" else "tcp",
                       reconnect_on_failure=False)
    c = Client(paho)
    if transport == "websockets":  # Mosquitto takes any path; the hub sets rabbitmq_web_mqtt to /mqtt
        paho.ws_set_options(path=getattr(broker, "ws_path", "/mqtt"))
    if username is not None or password is not None:
        paho.username_pw_set(username, password)
    if will is not None:
        paho.will_set(will[0], will[1], qos=1)

    def on_connect(_c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        c.connack = reason
        if not reason.is_failure:
            c.connected.set()
        c.answered.set()

    def on_disconnect(_c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        c.disconnected.set()
        c.answered.set()

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with c._cv:
            c.messages.append((msg.topic, msg.payload))
            c._cv.notify_all()

    def on_subscribe(_c: Any, _u: Any, mid: int, reasons: Any, _props: Any) -> None:
        with c._cv:
            c.subacks[mid] = [int(getattr(r, "value", r)) for r in reasons]
            c._cv.notify_all()

    def on_publish(_c: Any, _u: Any, mid: int, reason: Any, _props: Any) -> None:
        with c._cv:
            c.pubacks[mid] = int(getattr(reason, "value", reason))
            c._cv.notify_all()

    paho.on_connect, paho.on_disconnect, paho.on_message = on_connect, on_disconnect, on_message
    paho.on_subscribe, paho.on_publish = on_subscribe, on_publish
    paho.connect(broker.host, broker.ws_port if transport == "websockets" else broker.port, keepalive=30)
    # paho's loop_start() polls once a second, which makes every close() take up to 1 s: run
    # the same loop with a short poll, and tell paho it is threaded (else publish() writes to
    # the socket from the caller's thread, racing the loop: corrupt websocket frames).
    c.thread = threading.Thread(target=paho.loop_forever, kwargs={"timeout": 0.05}, daemon=True)
    paho._thread = c.thread
    c.thread.start()
    if not c.answered.wait(timeout):
        c.close()
        raise TimeoutError(f"no CONNACK within {timeout} s:\n{broker.log_tail()}")
    return c
