"""Publish-to-page latency of the web console, against plain MQTT subscribers.

    .venv/bin/python bench/console_latency.py [--updates 200]

Starts the whole hub on free loopback ports (Mosquitto with the plugin, the persister,
the HTTP server), logs a member in through the console in headless Chromium, opens a
sequence page, and has the controller client publish `--updates` values one at a time.
The page records when each value appears in `#latest-value` (a MutationObserver,
epoch milliseconds); the latency is that minus the publish time (same machine clock).
The same values go to two paho subscribers, over TCP and over websockets, as the floor
a browser can get near. Also timed: opening the sequence page until its chart is drawn
and the live feed is up. The last line is `key=value` pairs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# The repo root instead of bench/ (whose http.py would shadow the standard library's).
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from hub.controller import Controller  # noqa: E402
from tests.fixtures.http import PASSWORD  # noqa: E402
from tests.support.browser import launch_chromium, publish_and_watch  # noqa: E402
from tests.support.console_stack import HubStack, ensure_console_built, hub_stack  # noqa: E402

CONTROLLER = "acme/site/pi-01"
SEQUENCE = "bench"


class Subscriber:
    """A paho client recording (value text, epoch ms) for each update it receives."""

    def __init__(self, hub: HubStack, transport: str) -> None:
        self.seen: dict[str, float] = {}
        self.ready = threading.Event()
        port = hub.settings.MQTT_WS_PORT if transport == "websockets" else hub.settings.MQTT_PORT
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, transport=transport)
        c.username_pw_set("key", hub.people.keys["member"])
        c.on_message = self._on_message
        c.on_subscribe = lambda *_a: self.ready.set()
        c.on_connect = lambda cl, *_a: cl.subscribe(CONTROLLER, qos=0)
        c.connect(hub.settings.MQTT_HOST, port)
        c.loop_start()
        self.client = c
        if not self.ready.wait(10):
            raise RuntimeError(f"the {transport} subscriber did not subscribe")

    def _on_message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        at = time.time() * 1000
        text = m.payload.decode()
        marker = '"value":'
        i = text.find(marker)
        if i >= 0:
            self.seen.setdefault(text[i + len(marker):].split(",")[0].strip("} "), at)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), q[89], q[98]


def run(updates: int) -> dict[str, float]:
    ensure_console_built()
    with tempfile.TemporaryDirectory(prefix="hub-console-bench-") as tmp, hub_stack(Path(tmp)) as hub, \
            launch_chromium() as browser:
        ctl = Controller(hub.people.keys["controller"], CONTROLLER, host=hub.settings.MQTT_HOST,
                         port=hub.settings.MQTT_PORT).connect(wait=10)
        for i in range(20):  # a little history for the chart
            ctl.update(SEQUENCE, float(i))
        ctl.flush(10)
        time.sleep(0.5)  # the persister stores them (batch window is milliseconds)
        tcp, ws = Subscriber(hub, "tcp"), Subscriber(hub, "websockets")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        page.goto(f"{hub.url}/#/login")
        page.fill("input[name=email]", hub.people.emails["member"])
        page.fill("input[name=password]", PASSWORD)
        page.click("#login-submit")
        page.wait_for_selector("#whoami")
        t = time.perf_counter()
        page.goto(f"{hub.url}/#/r/{CONTROLLER}/{SEQUENCE}")
        page.wait_for_selector("#chart[data-points='20']")
        page.wait_for_function("document.querySelector('#live-state').dataset.state === 'live'")
        page_ready_ms = (time.perf_counter() - t) * 1000
        sent, seen = publish_and_watch(page, lambda v: ctl.update(SEQUENCE, v),
                                       [100_000 + i for i in range(updates)], 5000)
        time.sleep(0.2)
        ctl.close()
        tcp.close()
        ws.close()

    def lat(got: dict[str, float]) -> list[float]:
        return [got[k] - sent[k] for k in sent if k in got]

    page_lat, tcp_lat, ws_lat = lat(seen), lat(tcp.seen), lat(ws.seen)
    if len(page_lat) < updates:
        raise SystemExit(f"the page showed only {len(page_lat)} of {updates} values")
    p50, p90, p99 = percentiles(page_lat)
    t50, _, _ = percentiles(tcp_lat)
    w50, _, _ = percentiles(ws_lat)
    print(f"updates published one at a time:        {updates}")
    print(f"sequence page ready (chart + live feed): {page_ready_ms:.0f} ms")
    print(f"publish -> page (console, Chromium):     p50 {p50:.2f} ms  p90 {p90:.2f} ms  p99 {p99:.2f} ms")
    print(f"publish -> paho subscriber, websockets:  p50 {w50:.2f} ms")
    print(f"publish -> paho subscriber, TCP:         p50 {t50:.2f} ms")
    print(f"console p50 vs websocket subscriber:     {p50 / max(w50, 1e-3):.1f}x  (target: p50 under 50 ms)")
    return {"updates": updates, "page_ready_ms": round(page_ready_ms), "page_p50_ms": round(p50, 2),
            "page_p90_ms": round(p90, 2), "page_p99_ms": round(p99, 2), "ws_sub_p50_ms": round(w50, 2),
            "tcp_sub_p50_ms": round(t50, 2), "page_vs_ws": round(p50 / max(w50, 1e-3), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--updates", type=int, default=200)
    args = ap.parse_args()
    figures = run(args.updates)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
