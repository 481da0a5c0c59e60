"""`python -m hub.controller`: publish a value, run the sine demo, or listen.

    python -m hub.controller --key KEY --folder acme/pi --sequence temp --value 21.5
    python -m hub.controller --key KEY --folder acme/pi --demo sine --interval 0.5
    python -m hub.controller --key KEY --folder acme/pi --listen

The key may come from the environment (HUB_CONTROLLER_KEY) or a file (--key-file)
instead of the command line, where other users of the machine could see it. A new
controller gets its key with a PIN (hub/controller/provision.py):

    python -m hub.controller --provision https://hub.example.com --key-file ~/.hub-key
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from hub.controller.client import Controller
from hub.controller.demo import sine
from hub.controller.provision import provision, read_key
from hub.controller.status import StatusReporter
from hub.errors import HubError
from hub.stopsignals import take_stop_signals

KEY_ENV = "HUB_CONTROLLER_KEY"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hub.controller", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--key", default=os.environ.get(KEY_ENV), help=f"controller API key (or ${KEY_ENV})")
    p.add_argument("--key-file", type=Path, help="read the key from this file (written by --provision)")
    p.add_argument("--provision", metavar="URL",
                   help="get a key with a PIN from the hub's HTTP API at URL and save it to --key-file (0600)")
    p.add_argument("--folder", help="the controller's folder, e.g. acme/greenhouse/pi-01")
    p.add_argument("--host", default=os.environ.get("HUB_MQTT_HOST", "127.0.0.1"),
                   help="the broker's host (default 127.0.0.1 or $HUB_MQTT_HOST); for a cluster, its nodes "
                        "separated by commas, each HOST or HOST:PORT (mq1,mq2,mq3:8884): when one is lost the "
                        "next is tried")
    p.add_argument("--port", type=int, default=int(os.environ.get("HUB_MQTT_PORT", "1883")),
                   help="the broker's port, for each --host without one (default 1883 or $HUB_MQTT_PORT)")
    p.add_argument("--mqtt-version", type=int, choices=(4, 5), default=int(os.environ.get("HUB_MQTT_VERSION", "5")),
                   help="MQTT protocol level: 5 (Mosquitto), or 4 (3.1.1) for a hub on RabbitMQ (default 5 or "
                        "$HUB_MQTT_VERSION)")
    p.add_argument("--tls", action="store_true", help="connect with TLS (port 8883 in production)")
    p.add_argument("--ca-file", help="CA certificate to trust (default: the system's)")
    p.add_argument("--sequence", help="sequence name or path relative to --folder")
    p.add_argument("--value", help="value to publish: JSON (21.5, \"text\", {...}) or plain text")
    p.add_argument("--timestamp", help="ISO 8601 timestamp (default: now)")
    p.add_argument("--demo", choices=["sine"], help="publish a sine wave to --sequence (default 'sine')")
    p.add_argument("--interval", type=float, default=1.0, help="demo: seconds between values")
    p.add_argument("--period", type=float, default=60.0, help="demo: seconds per sine period")
    p.add_argument("--count", type=int, help="demo: stop after this many values")
    p.add_argument("--listen", action="store_true", help="print commands sent to the folder")
    p.add_argument("--status-interval", type=float, default=60.0,
                   help="with --listen or --demo: report status (disk, processor, messages) every this many "
                        "seconds, and a `connected` message on each connect; 0: off")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the broker")
    return p


def parse_nodes(hosts: str, port: int) -> list[tuple[str, int]]:
    """`mq1,mq2:8884,[::1]:1885` -> [("mq1", port), ("mq2", 8884), ("::1", 1885)]; a bare IPv6
    address takes `port`. ValueError says what is wrong."""
    nodes = []
    for item in (i.strip() for i in hosts.split(",")):
        if item.startswith("["):
            host, bracket, rest = item[1:].partition("]")
            sep, p = rest[:1], rest[1:]
            ok = bool(bracket) and (rest == "" or sep == ":")
        elif item.count(":") == 1:
            host, sep, p = item.partition(":")
            ok = True
        else:
            host, sep, p, ok = item, "", "", True
        if not (ok and host and (not sep or (p.isdigit() and 0 < int(p) < 65536))):
            raise ValueError(f"--host: {item!r} is not HOST or HOST:PORT (e.g. mq1 or mq1:8883)")
        nodes.append((host, int(p) if sep else port))
    return nodes


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    if args.provision:
        if not args.key_file:
            print("error: --provision needs --key-file PATH (where the key is saved, mode 0600)", file=sys.stderr)
            return 2
        try:
            provision(args.provision, args.key_file, say=lambda line: print(line, flush=True))
        except HubError as e:
            print(f"error: {e.message}", file=sys.stderr)
            return 2
        return 0
    if args.key_file and not args.key:
        try:
            args.key = read_key(args.key_file)
        except HubError as e:
            print(f"error: {e.message}", file=sys.stderr)
            return 2
    if not args.folder:
        print("error: give the controller's folder with --folder", file=sys.stderr)
        return 2
    if not args.key:
        print(f"error: give the controller's API key with --key or ${KEY_ENV}", file=sys.stderr)
        return 2
    if not (args.listen or args.demo or (args.sequence and args.value is not None)):
        print("error: give --sequence and --value, or --demo sine, or --listen", file=sys.stderr)
        return 2
    try:
        nodes = parse_nodes(args.host, args.port)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    take_stop_signals(lambda _signum: stop.set(), "hub-controller-signals")  # hub/stopsignals.py says why

    def show(kind: str, params: dict[str, Any], topic: str) -> None:
        print(json.dumps({"topic": topic, "type": kind, "parameters": params}), flush=True)

    reporter: StatusReporter | None = None
    (host, port), *others = nodes
    c = Controller(args.key, args.folder, host=host, port=port, tls=args.tls, ca_certs=args.ca_file,
                   on_command=show if args.listen else None, mqtt_version=args.mqtt_version, brokers=others)
    try:
        c.connect(wait=args.timeout)
        if (args.listen or args.demo) and args.status_interval > 0:
            reporter = StatusReporter(c, args.status_interval).start()
        if args.sequence and args.value is not None and not args.demo:
            c.update(args.sequence, parse_value(args.value), args.timestamp)
        if args.demo:
            n = sine(c, args.sequence or "sine", period=args.period, interval=args.interval,
                     count=args.count, stop=stop.is_set, echo=lambda line: print(line, flush=True))
            print(f"published {n} values", flush=True)
        if args.listen:
            print(f"listening for commands on {c.folder} (Ctrl-C stops)", flush=True)
            stop.wait()
        if not c.flush(args.timeout):
            print(f"error: {c.pending} updates not acknowledged by the broker within {args.timeout} s",
                  file=sys.stderr)
            return 1
        if c.rejected:
            print(f"error: the broker refused {c.rejected} messages: does the key have write access "
                  f"to {c.folder}?", file=sys.stderr)
            return 1
        return 0
    except HubError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    finally:
        if reporter is not None:
            reporter.stop()
        c.close()


if __name__ == "__main__":
    sys.exit(main())
