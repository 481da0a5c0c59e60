"""What the hub's auth plugin costs Mosquitto: three brokers side by side.

    .venv/bin/python bench/broker_auth.py [--messages 200000] [--connects 2000] [--rounds 3]

Starts, on free loopback ports: `anonymous` (no auth at all), `aclfile` (Mosquitto's own
password_file + acl_file) and `plugin` (the hub plugin on a SQLite database). For each it
measures QoS 0 throughput of 100-byte messages with one publisher and one subscriber,
then one publisher and ten subscribers, and sequential connects (CONNECT, CONNACK,
DISCONNECT) per second. Broker CPU (user + system, from /proc/PID/stat) is read around
each phase: CPU per message counts published messages (with ten subscribers, each one is
ten deliveries, each an ACL check with auth). Clients are raw sockets, so the clients'
own cost stays small; on a shared 2-core machine the figures wobble by 10-20%.

The last line is `key=value` pairs: the plugin's ratios to the anonymous and acl_file
brokers (CPU per message, 1 and 10 subscribers) and to password_file (CPU per connect).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# The project root instead of bench/ (whose modules, e.g. bench/http.py, would shadow the stdlib's).
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from hub.broker_auth import runner  # noqa: E402
from hub.storage import keys, permissions, resources, users  # noqa: E402
from hub.storage.db import Database, migrate  # noqa: E402
from hub.storage.models import Level  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.settings import write_settings_file  # noqa: E402

TOPIC = "acme/pi-01"
PAYLOAD = b"x" * 100
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- raw MQTT 3.1.1 ------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: bytes) -> bytes:
    return struct.pack("!H", len(s)) + s


def connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = _str(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 60) + _str(client_id.encode())
    if username is not None:
        body += _str(username.encode())
    if password is not None:
        body += _str(password.encode())
    return b"\x10" + _varint(len(body)) + body


def publish_packet(topic: str, payload: bytes) -> bytes:
    body = _str(topic.encode()) + payload
    return b"\x30" + _varint(len(body)) + body


def subscribe_packet(topic: str) -> bytes:
    body = struct.pack("!H", 1) + _str(topic.encode()) + b"\x00"
    return b"\x82" + _varint(len(body)) + body


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def open_client(port: int, cred: tuple[str | None, str | None], client_id: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(connect_packet(client_id, *cred))
    connack = recv_exact(s, 4)
    if connack[3] != 0:
        raise ConnectionError(f"CONNACK refused ({connack[3]})")
    return s


# -- brokers ---------------------------------------------------------------------------
@dataclass
class Broker:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    pub: tuple[str | None, str | None]
    sub: tuple[str | None, str | None]

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


BASE_CONF = """\
user {user}
listener {port} 127.0.0.1
persistence false
log_dest file {log}
log_type error
log_type warning
connection_messages false
max_queued_messages 1000000
"""


def start(name: str, tmp: Path, extra: str, env: dict[str, str] | None = None,
          pub: tuple[str | None, str | None] = (None, None),
          sub: tuple[str | None, str | None] = (None, None), port: int = 0) -> Broker:
    port = port or free_port()
    conf = tmp / f"{name}.conf"
    conf.write_text(BASE_CONF.format(user=os.environ.get("USER") or "root", port=port,
                                     log=tmp / f"{name}.log") + extra)
    proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return Broker(name, port, proc, pub, sub)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name} broker did not start:\n{(tmp / f'{name}.log').read_text()}") from None
            time.sleep(0.05)


def start_all(tmp: Path) -> list[Broker]:
    anonymous = start("anonymous", tmp, "allow_anonymous true\n")

    pwfile, aclfile = tmp / "passwd", tmp / "acl"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pwfile), "pub", "pub-password"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "sub", "sub-password"], check=True)
    aclfile.write_text(f"user pub\ntopic write {TOPIC}\n\nuser sub\ntopic read acme/#\n")
    acl = start("aclfile", tmp, f"allow_anonymous false\npassword_file {pwfile}\nacl_file {aclfile}\n",
                pub=("pub", "pub-password"), sub=("sub", "sub-password"))

    url = f"sqlite:///{tmp / 'hub.db'}"
    port = free_port()  # in the settings too: the plugin wakes itself up through it (tickgate.py)
    settings = write_settings_file(tmp / "config.py", {
        "DATA_DIR": str(tmp / "data"), "SECRET_KEY": secrets.token_hex(24), "DATABASE_URL": url,
        "MQTT_PORT": port, "MQTT_REQUIRE_PERSISTER": False})  # no persister: the ACL cost alone
    migrate(url)
    db = Database(url)
    with db.session() as s:
        users.create_organization(s, "acme")
        resources.create(s, TOPIC, "controller")
        _, ctl_key = keys.create(s, controller_path=TOPIC)
        reader = users.create_user(s, "reader@example.com", "correct horse battery", rounds=4)
        permissions.grant(s, "acme", Level.READ, user_id=reader.id)
        _, reader_key = keys.create(s, user_id=reader.id)
    db.dispose()
    (tmp / "data" / "mosquitto").mkdir(parents=True)
    plugin = runner.ensure_plugin()
    env = runner.broker_env({k: v for k, v in os.environ.items() if not k.startswith("HUB_")})
    hub = start("plugin", tmp, f"allow_anonymous false\nplugin {plugin}\nplugin_opt_settings {settings}\n",
                env=env, pub=("key", ctl_key), sub=("key", reader_key), port=port)
    return [anonymous, acl, hub]


# -- measurements ----------------------------------------------------------------------
def throughput(b: Broker, messages: int, subscribers: int) -> tuple[float, float]:
    """(messages per second, broker CPU microseconds per published message)."""
    subs = [open_client(b.port, b.sub, f"sub-{i}-{secrets.token_hex(3)}") for i in range(subscribers)]
    for s in subs:
        s.sendall(subscribe_packet("acme/#"))
        recv_exact(s, 5)  # SUBACK
        s.setblocking(False)
    pub = open_client(b.port, b.pub, f"pub-{secrets.token_hex(3)}")
    packet = publish_packet(TOPIC, PAYLOAD)
    batch = packet * 500
    messages = max(1, messages // 500) * 500
    expected = len(packet) * messages
    received = {s: 0 for s in subs}
    sel = selectors.DefaultSelector()
    for s in subs:
        sel.register(s, selectors.EVENT_READ)
    pub.setblocking(False)
    out = memoryview(batch * (messages // 500))
    cpu0, t0 = b.cpu(), time.perf_counter()
    sel.register(pub, selectors.EVENT_WRITE)
    sent = 0
    last_progress = time.monotonic()
    while any(n < expected for n in received.values()):
        if time.monotonic() - last_progress > 5:
            break  # a broker dropping QoS 0 messages: count what arrived
        for key, _ in sel.select(0.5):
            s = key.fileobj
            if s is pub:
                try:
                    sent += pub.send(out[sent:sent + (1 << 16)])
                except BlockingIOError:
                    continue
                if sent >= len(out):
                    sel.unregister(pub)
                continue
            try:
                chunk = s.recv(1 << 20)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            received[s] += len(chunk)  # type: ignore[index]
            last_progress = time.monotonic()
    elapsed, cpu = time.perf_counter() - t0, b.cpu() - cpu0
    delivered = min(received.values()) // len(packet)
    for s in [*subs, pub]:
        s.close()
    return delivered / elapsed, cpu / max(delivered, 1) * 1e6


def connects(b: Broker, n: int) -> tuple[float, float]:
    """(connects per second, broker CPU microseconds per connect)."""
    disconnect = b"\xe0\x00"
    cpu0, t0 = b.cpu(), time.perf_counter()
    for i in range(n):
        s = open_client(b.port, b.pub, f"c-{i}")
        s.sendall(disconnect)
        s.close()
    return n / (time.perf_counter() - t0), (b.cpu() - cpu0) / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200_000, help="published per 1-subscriber run")
    ap.add_argument("--connects", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3, help="each figure is the best of these")
    args = ap.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-broker-auth-") as d:
        brokers = start_all(Path(d))
        try:
            for b in brokers:
                throughput(b, 20_000, 1)  # warm-up (caches, allocator)
            # Rounds interleave the brokers; each figure is the best round's (the least
            # disturbed by whatever else the machine runs).
            for _ in range(args.rounds):
                for b in brokers:
                    r: dict[str, float] = {}
                    r["rate_1sub"], r["cpu_us_per_msg_1sub"] = throughput(b, args.messages, 1)
                    r["rate_10sub"], r["cpu_us_per_msg_10sub"] = throughput(b, args.messages // 10, 10)
                    r["connects_per_s"], r["cpu_us_per_connect"] = connects(b, args.connects)
                    best = results.setdefault(b.name, r)
                    for k, v in r.items():
                        best[k] = max(best[k], v) if k.startswith(("rate", "connects_per")) else min(best[k], v)
            plugin_stats = json.loads((Path(d) / "data" / "mosquitto" / "hub_auth_stats.json").read_text())
        finally:
            for b in brokers:
                b.stop()
            print(Path(d, "plugin.log").read_text()[-300:])
    for name, r in results.items():
        print(f"{name:>9}: 1 sub {r['rate_1sub']:9.0f} msg/s {r['cpu_us_per_msg_1sub']:6.2f} us CPU/msg"
              f" | 10 subs {r['rate_10sub']:8.0f} msg/s {r['cpu_us_per_msg_10sub']:6.2f} us CPU/msg"
              f" | {r['connects_per_s']:6.0f} connects/s {r['cpu_us_per_connect']:6.1f} us CPU/connect")
    print(f"plugin stats: {plugin_stats['acl_allowed']} ACL checks allowed, {plugin_stats['acl_denied']} denied, "
          f"tick {'on' if plugin_stats['tick_on'] else 'off'} at the end, {plugin_stats['pokes']} wake-up pokes")
    p, a, f = results["plugin"], results["anonymous"], results["aclfile"]
    figures = {
        "plugin_vs_anonymous_cpu_per_msg": p["cpu_us_per_msg_1sub"] / a["cpu_us_per_msg_1sub"],
        "plugin_vs_aclfile_cpu_per_msg": p["cpu_us_per_msg_1sub"] / f["cpu_us_per_msg_1sub"],
        "plugin_vs_anonymous_cpu_per_msg_10sub": p["cpu_us_per_msg_10sub"] / a["cpu_us_per_msg_10sub"],
        "plugin_vs_aclfile_cpu_per_msg_10sub": p["cpu_us_per_msg_10sub"] / f["cpu_us_per_msg_10sub"],
        "plugin_vs_pwfile_cpu_per_connect": p["cpu_us_per_connect"] / f["cpu_us_per_connect"],
        "plugin_cpu_us_per_msg": p["cpu_us_per_msg_1sub"],
        "anonymous_cpu_us_per_msg": a["cpu_us_per_msg_1sub"],
        "plugin_msgs_per_s": p["rate_1sub"],
        "anonymous_msgs_per_s": a["rate_1sub"],
        "plugin_connects_per_s": p["connects_per_s"],
        "pwfile_connects_per_s": f["connects_per_s"],
    }
    print("ratios: plugin/anonymous CPU per message {:.2f} (1 sub), {:.2f} (10 subs); plugin/acl_file "
          "{:.2f}, {:.2f}; plugin/password_file CPU per connect {:.2f}".format(
              figures["plugin_vs_anonymous_cpu_per_msg"], figures["plugin_vs_anonymous_cpu_per_msg_10sub"],
              figures["plugin_vs_aclfile_cpu_per_msg"], figures["plugin_vs_aclfile_cpu_per_msg_10sub"],
              figures["plugin_vs_pwfile_cpu_per_connect"]))
    print(" ".join(f"{k}={v:.3g}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
