"""The notifier's costs: what it adds to every message, how fast it delivers email, and
how fast PINs provision.

    .venv/bin/python bench/notify.py [--messages 200000] [--emails 300]

(a) filter: the notifier sees every message of the hub. Its paho callback on a stream
    of typical traffic (native `update_sequence` messages; 1 in 1000 a `send_email`,
    queued but not sent here) in this process, µs per message; against `json.loads`
    of the same payloads as a yardstick (ratio = notifier / json.loads).
(b) email: `--emails` send_email messages from 4 controllers through the real
    Mosquitto (with the hub plugin) and the notifier to a local aiosmtpd server;
    emails/s from the first publish to the last delivery, and the median latency.
(c) pins: create + attach + claim (a new controller key) on SQLite, flows/s.

The last line is `key=value` pairs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# not bench/ itself on the path: bench/http.py would shadow the standard library's http
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import paho.mqtt.client as mqtt  # noqa: E402

from hub import wire  # noqa: E402
from hub.notify.daemon import Notifier  # noqa: E402
from hub.settings import load  # noqa: E402
from hub.storage import pins, resources, users  # noqa: E402
from hub.storage.db import Database, migrate  # noqa: E402
from hub.storage.models import utcnow  # noqa: E402
from tests.support import free_port, write_settings_file  # noqa: E402
from tests.support.notify import notify_world  # noqa: E402


def bench_filter(n: int, root: Path) -> dict[str, float]:
    path = write_settings_file(root / "filter.py", {"DATA_DIR": str(root / "f"), "SECRET_KEY": "b" * 48,
                                                    "DATABASE_URL": f"sqlite:///{root / 'f.db'}",
                                                    "MQTT_PORT": free_port()})
    notifier = Notifier(load(path, env={}))  # not started: only its callback is timed
    msgs = []
    for i in range(1000):
        m = mqtt.MQTTMessage(topic=f"acme/site/pi-{i % 50:02d}".encode())
        m.payload = (wire.build("send_email", {"to": "a@example.com", "subject": "x"}) if i == 0 else
                     wire.update_message("temperature", 20 + i / 100, wire.format_timestamp()))
        msgs.append(m)
    t0 = time.perf_counter()
    for i in range(n):
        m = msgs[i % 1000]
        notifier._on_message(m.topic, m.payload, m.mid, m.qos)
    notifier_s = time.perf_counter() - t0
    payloads = [m.payload for m in msgs]
    t0 = time.perf_counter()
    for i in range(n):
        json.loads(payloads[i % 1000])
    json_s = time.perf_counter() - t0
    notifier.store.close()
    us, base = notifier_s / n * 1e6, json_s / n * 1e6
    print(f"(a) filter: {us:.2f} µs/message ({n / notifier_s:,.0f} msg/s); json.loads {base:.2f} µs; "
          f"{notifier.jobs.qsize()} send_email queued")
    return {"filter_us": us, "filter_per_s": n / notifier_s, "filter_vs_json": us / base}


def bench_email(n: int, root: Path, lone_count: int = 20) -> dict[str, float]:
    with notify_world(root / "email", controllers=4, NOTIFY_MAX_PER_HOUR=n + 10) as w:
        clients = [w.controller(f"pi-{i:02d}") for i in range(1, 5)]
        sent_at: dict[str, float] = {}
        t0 = time.monotonic()
        for i in range(n):
            subject = f"bench {i}"
            sent_at[subject] = time.monotonic()
            clients[i % 4].paho.publish(f"acme/pi-{i % 4 + 1:02d}", wire.build(  # QoS 1, not waiting for acks
                "send_email", {"to": w.emails["alice"], "subject": subject, "body": "x" * 200}), qos=1)
        mails = w.smtp.wait(n, timeout=120)
        elapsed = max(m.at for m in mails) - t0
        for c in clients:
            c.close()
        assert len(mails) >= n, f"only {len(mails)} of {n} emails arrived"
        # one at a time, for the latency of a lone email (no queue in front of it)
        lone = []
        for i in range(lone_count):
            subject = f"lone {i}"
            clients2 = w.controller("pi-01")
            start = time.monotonic()
            clients2.paho.publish("acme/pi-01", wire.build("send_email", {"to": w.emails["alice"], "subject": subject}),
                                  qos=1)
            got = w.smtp.wait(n + i + 1)
            lone.append(got[-1].at - start)
            clients2.close()
        lat = statistics.median(lone)
    print(f"(b) email: {n} send_email (a burst from 4 controllers) through Mosquitto + notifier + SMTP in "
          f"{elapsed:.2f} s: {n / elapsed:.0f} emails/s; a lone email publish->SMTP delivery: median "
          f"{lat * 1000:.0f} ms")
    return {"emails_per_s": n / elapsed, "email_latency_ms": lat * 1000}


def bench_pins(n: int, root: Path) -> dict[str, float]:
    url = f"sqlite:///{root / 'pins.db'}"
    migrate(url)
    db = Database(url)
    with db.session() as s:
        users.create_organization(s, "acme")
        uid = users.create_user(s, "bench@example.com", "correct horse battery", rounds=4).id
        resources.create(s, "acme/site", "folder")
    t0 = time.perf_counter()
    for i in range(n):
        with db.session() as s:
            row, code = pins.create(s, ttl_s=1800, now=utcnow())
        with db.session() as s:
            pins.attach(s, row.pin, f"acme/site/pi-{i}", user_id=uid)
        with db.session() as s:
            assert pins.claim(s, row.pin, code, max_attempts=5).key
    elapsed = time.perf_counter() - t0
    db.dispose()
    print(f"(c) pins: {n} create+attach+claim flows in {elapsed:.2f} s: {n / elapsed:.0f} flows/s (SQLite)")
    return {"pin_flows_per_s": n / elapsed}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--emails", type=int, default=300)
    ap.add_argument("--pins", type=int, default=200)
    ap.add_argument("--lone", type=int, default=20, help="single emails timed one at a time")
    args = ap.parse_args()
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hub-bench-notify-") as tmp:
        root = Path(tmp)
        out.update(bench_filter(args.messages, root))
        out.update(bench_email(args.emails, root, args.lone))
        out.update(bench_pins(args.pins, root))
    print(" ".join(f"{k}={v:.0f}" if v > 10 else f"{k}={v:.2f}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
