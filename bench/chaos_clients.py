"""bench/chaos.py's MQTT clients: the controllers and the watching browser.

Controllers (one thread drives them all, `rate` numbered values a second each), in
thirds: the hub's client (`hub.controller.Controller`, MQTT 5), plain paho MQTT 5 and plain
paho MQTT 3.1.1, all QoS 1 and reconnecting by themselves. Each value carries its own
timestamp, so a resend is stored once. `acked()`: per folder, the numbers a successful
PUBACK came back for.

RhizoControllers: the real rhizo-client (0.1.5, from .venv-rhizo/), each in its own process
running tests/rhizo_client/drive.py's `stream` scenario: numbered values at QoS 0 (as the
client sends) over MQTT on websockets. `sent()`: per folder, every number it was asked to
send (also those it sent while its connection was down, which are gone at QoS 0).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub import wire
from hub.controller import Controller
from tests.support.broker import RunningBroker

SEQUENCE = "n"
ROOT = Path(__file__).resolve().parent.parent
RHIZO_PYTHON = ROOT / ".venv-rhizo" / "bin" / "python"
DRIVE = ROOT / "tests" / "rhizo_client" / "drive.py"


class Tracked:
    """One controller: which numbers were acknowledged, and the longest wait between acks."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.lock = threading.Lock()
        self.acked: set[int] = set()
        self.sent = 0
        self.last_ack = time.monotonic()
        self.max_gap = 0.0
        self.counting_gaps = True

    def got(self, n: int | None, ok: bool) -> None:
        if n is None or not ok:
            return
        now = time.monotonic()
        with self.lock:
            self.acked.add(n)
            if self.counting_gaps:
                self.max_gap = max(self.max_gap, now - self.last_ack)
            self.last_ack = now

    def payload(self, n: int, ts: str) -> bytes:
        return wire.update_message(SEQUENCE, n, ts)


class HubController(Tracked):
    def __init__(self, folder: str, key: str, port: int) -> None:
        super().__init__(folder)
        self.c = Controller(key, folder, port=port, client_id=f"chaos-hub-{secrets.token_hex(3)}")
        theirs = self.c.client.on_publish

        def on_publish(client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
            sent = self.c.client.sent_message(mid)
            n = json.loads(sent[1])["parameters"]["value"] if sent is not None else None
            self.got(n, not reason.is_failure and reason.value != 0x10)
            theirs(client, userdata, mid, reason, props)

        self.c.client.on_publish = on_publish
        self.c.connect(wait=None)

    def publish(self, n: int) -> None:
        self.c.update(SEQUENCE, n)
        self.sent += 1

    def unacked(self) -> int:
        return self.c.pending

    def close(self) -> None:
        self.c.close()


class PlainController(Tracked):
    def __init__(self, folder: str, key: str, port: int, protocol: int) -> None:
        super().__init__(folder)
        self.pending: dict[int, int] = {}
        self.early: dict[int, bool] = {}
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"chaos-v{protocol}-{secrets.token_hex(3)}",
                             protocol=mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311)
        self.c.username_pw_set(folder, key)
        self.c.reconnect_delay_set(1, 30)
        self.c.max_inflight_messages_set(20)
        self.c.on_publish = self._on_publish
        self._last_us = 0
        self.c.connect_async("127.0.0.1", port, keepalive=30)
        self.c.loop_start()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        # MQTT 3.1.1 has no reason: paho passes success; MQTT 5 "no matching subscribers" (16)
        # would mean the value reached no persister, so it does not count as stored-to-be
        ok = not reason.is_failure and reason.value != 0x10
        with self.lock:
            n = self.pending.pop(mid, None)
            if n is None:
                self.early[mid] = ok
                return
        self.got(n, ok)

    def publish(self, n: int) -> None:
        us = max(time.time_ns() // 1000, self._last_us + 1)
        self._last_us = us
        info = self.c.publish(self.folder, self.payload(n, wire.format_timestamp_us(us)), qos=1)
        self.sent += 1
        with self.lock:
            ok = self.early.pop(info.mid, None)
            if ok is None:
                self.pending[info.mid] = n
        if ok is not None:
            self.got(n, ok)

    def unacked(self) -> int:
        with self.lock:
            return len(self.pending)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


class Controllers:
    def __init__(self, controllers: list[tuple[str, str]], port: int, rate: float) -> None:
        self.all: list[HubController | PlainController] = []
        for i, (folder, key) in enumerate(controllers):
            kind = i % 3
            self.all.append(HubController(folder, key, port) if kind == 0
                            else PlainController(folder, key, port, 5 if kind == 1 else 4))
        self.interval = 1.0 / rate
        self.running = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.next = 0

    def start(self) -> None:
        self.running.set()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.running.wait(0.2):
                continue
            t = time.monotonic()
            for c in self.all:
                c.publish(self.next)
            self.next += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t)))

    @property
    def published(self) -> int:
        return sum(c.sent for c in self.all)

    @property
    def max_gap(self) -> float:
        return max(c.max_gap for c in self.all)

    def all_acked_since(self, t: float) -> bool:
        return all(c.last_ack > t for c in self.all)

    def pause(self, timeout: float = 180.0) -> None:
        """Stop publishing; wait until nothing sent is waiting for its acknowledgement."""
        self.running.clear()
        for c in self.all:
            c.counting_gaps = False
        deadline = time.monotonic() + timeout
        while self.unacked() and time.monotonic() < deadline:
            time.sleep(0.2)

    def resume(self) -> None:
        for c in self.all:
            c.last_ack = time.monotonic()
            c.counting_gaps = True
        self.running.set()

    def unacked(self) -> int:
        return sum(c.unacked() for c in self.all)

    def acked(self) -> dict[str, set[int]]:
        out = {}
        for c in self.all:
            with c.lock:
                out[c.folder] = set(c.acked)
        return out

    def close(self) -> None:
        self._stop.set()
        self.running.set()
        self._thread.join(5)
        for c in self.all:
            c.close()


class Watcher:
    """A browser: a token client over websockets, subscribed to every folder."""

    def __init__(self, broker: RunningBroker, token: str) -> None:
        self.received = 0
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"chaos-browser-{secrets.token_hex(3)}",
                             protocol=mqtt.MQTTv5, transport="websockets")
        self.c.username_pw_set("browser", token)
        self.c.reconnect_delay_set(1, 10)
        self.c.on_connect = lambda c, *_a: c.subscribe("acme/#", qos=1)
        self.c.on_message = self._on_message
        self.c.connect_async("127.0.0.1", broker.ws_port, keepalive=30)
        self.c.loop_start()

    def _on_message(self, *_a: Any) -> None:
        self.received += 1

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


class RhizoController:
    """One rhizo-client process; `last_up`: when it last sent with its connection up."""

    def __init__(self, folder: str, key: str, workdir: Path, broker: RunningBroker, http_port: int,
                 interval: float) -> None:
        self.folder = folder
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "client.log"
        config = {"server_name": f"127.0.0.1:{http_port}", "enable_ws": False, "secret_key": key,
                  "mqtt_host": broker.host, "mqtt_port": broker.ws_port, "mqtt_tls": False}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "RHIZO_", "PYTHON"))}
        env["RHIZO_DRIVE"] = json.dumps({"scenario": "stream", "count": 10**9, "interval": interval,
                                         "config": config})
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen([str(RHIZO_PYTHON), str(DRIVE)], cwd=workdir, env=env, text=True,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        self.lock = threading.Lock()
        self.sent: set[int] = set()
        self.last_n = -1
        self.last_up = 0.0
        self.streaming = threading.Event()
        self.failed = ""
        self.stopped_at: int | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not line.startswith("{"):
                continue
            ev = json.loads(line)
            if ev["event"] == "sent":
                with self.lock:
                    self.sent.add(ev["n"])
                    self.last_n = ev["n"]
                    if ev["connected"]:
                        self.last_up = time.monotonic()
            elif ev["event"] == "streaming":
                self.streaming.set()
            elif ev["event"] == "timeout":
                self.failed = f"timed out waiting for {ev['what']}"

    def check(self) -> None:
        if self.failed or self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"rhizo-client on {self.folder}: {self.failed or 'exited'}; its log:\n{tail}")

    def close(self) -> None:
        """Stop it; the value it sent last may still be in its buffer, so it no longer counts."""
        with self.lock:
            if self.stopped_at is None:
                self.stopped_at = self.last_n
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RhizoControllers:
    def __init__(self, controllers: list[tuple[str, str]], workdir: Path, broker: RunningBroker,
                 http_port: int, rate: float) -> None:
        self.all = [RhizoController(folder, key, workdir / folder.replace("/", "-"), broker, http_port, 1.0 / rate)
                    for folder, key in controllers]

    def wait_streaming(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for c in self.all:
            while not c.streaming.wait(0.2):
                c.check()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"rhizo-client on {c.folder}: not streaming within {timeout:.0f} s")

    def all_up_since(self, t: float) -> bool:
        for c in self.all:
            c.check()
        return all(c.last_up > t for c in self.all)

    def last_sent(self) -> dict[str, int]:
        out = {}
        for c in self.all:
            with c.lock:
                out[c.folder] = c.last_n
        return out

    def sent(self) -> dict[str, set[int]]:
        out = {}
        for c in self.all:
            with c.lock:
                end = c.stopped_at if c.stopped_at is not None else c.last_n + 1
                out[c.folder] = {n for n in c.sent if n < end}
        return out

    def close(self) -> None:
        for c in self.all:
            c.close()
