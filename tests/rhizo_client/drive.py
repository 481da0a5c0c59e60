"""Drives the real rhizo-client (0.1.5) against a running hub, from .venv-rhizo/.

Run by tests/test_rhizo_client.py as `.venv-rhizo/bin/python drive.py` in a scratch
folder, with the scenario and the client's configuration as JSON in RHIZO_DRIVE.
Every step prints one JSON line `{"event": ..., ...}` on stdout; the test reads them.
This file runs under rhizo-client's dependencies only (gevent, paho-mqtt 1.x, ws4py).
"""

import json
import os
import sys
import time

import gevent
from rhizo.controller import Controller  # monkey-patches the standard library (gevent), as on a controller
from rhizo.resources import ApiError

SPEC = json.loads(os.environ["RHIZO_DRIVE"])
DEADLINE = 60.0


def emit(event, **fields):
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def status_of(fn):
    """The HTTP status an API call ends with (200, or ApiError's)."""
    try:
        fn()
    except ApiError as e:
        return e.status
    return 200


def wait_for(fn, what):
    """Poll `fn` until it returns something truthy (the hub stores values asynchronously)."""
    end = time.time() + DEADLINE
    while time.time() < end:
        got = fn()
        if got:
            return got
        gevent.sleep(0.1)
    emit("timeout", what=what)
    raise SystemExit(1)


def read_text(c, path):
    try:
        return c.files.read(path).decode()
    except ApiError:
        return None


def scenario_controller(c):
    """MQTT (over websockets, as the client does) plus the resource API."""
    base = c.path_on_server()
    emit("path", path=base)
    c.files.create_folder(base + "/folder/deeper")
    emit("folder", exists=c.files.exists(base + "/folder/deeper"), missing=c.files.exists(base + "/nothing"))
    # values go to the new folders at once: the create answers once the broker accepts them
    c.sequences.create("temp", "numeric", decimal_places=2, units="degrees_C", min_storage_interval=0)
    c.sequences.create("count", "numeric", decimal_places=0, max_history=1234, min_storage_interval=0)
    c.sequences.create("note", "text", min_storage_interval=0)
    c.sequences.create(base + "/folder/sub", "text", min_storage_interval=0)
    emit("sequences", temp=c.files.info(base + "/temp"), count=c.files.info(base + "/count")["system_attributes"],
         note=c.files.info(base + "/note")["system_attributes"])

    text = "This is a test.\n" * 6400  # 100 KB
    binary = bytes(range(256)) * 400  # 100 KB
    c.files.write(base + "/notes.txt", text)
    c.files.write(base + "/blob.bin", binary)
    c.files.write(base + "/notes.txt", text + "more\n")  # a second revision (PUT)
    emit("files", text_ok=c.files.read(base + "/notes.txt").decode() == text + "more\n",
         binary_ok=c.files.read(base + "/blob.bin") == binary,
         info=c.files.info(base + "/blob.bin"))

    # MQTT: an `s,` line, then an `update` message (two folders)
    c.sequences.update("temp", 21.5)
    wait_for(lambda: read_text(c, base + "/temp") == "21.5", "s, line")
    c.sequences.update_multiple({"note": "hello", "folder/sub": "below", "count": 7})
    wait_for(lambda: read_text(c, base + "/note") == "hello" and read_text(c, base + "/folder/sub") == "below"
             and read_text(c, base + "/count") == "7", "update message")
    emit("mqtt", temp=read_text(c, base + "/temp"), note=read_text(c, base + "/note"))

    # HTTP: PUT with data (the client reads the value back until it matches), then PUT /resources
    c.sequences.update(base + "/temp", 22.25, use_websocket=False)
    c.sequences.update_multiple({"note": "over http", "count": 8}, use_message=False)
    emit("http", temp=read_text(c, base + "/temp"), note=read_text(c, base + "/note"),
         count=read_text(c, base + "/count"))

    # messages over HTTP: own folder, a missing folder, someone else's folder
    emit("messages", own=status_of(lambda: c.files.send_message(base, "hello", {"a": 1})),
         missing=status_of(lambda: c.files.send_message(SPEC["missing_folder"], "hello", {})),
         foreign=status_of(lambda: c.files.send_message(SPEC["foreign_folder"], "hello", {})))

    # status and watchdog, read back from a listing of controllers
    parent, name = base.rsplit("/", 1)
    c.files.send_request_to_server("PUT", "/api/v1/resources" + base, {"status": json.dumps({"foo": "bar"})})
    c.messages.send("watchdog", {})

    def listed():
        for item in c.files.list(parent, type="controller_folder"):
            if item["name"] == name and item["last_watchdog_timestamp"]:
                return item
        return None

    emit("listing", item=wait_for(listed, "watchdog time"))


def scenario_websocket(c):
    """No mqtt_host: everything over rhizo's message websocket."""
    base = c.path_on_server()
    got = []
    c.messages.add_handler(lambda kind, params: got.append((kind, params)))
    c.sequences.create("wstemp", "numeric", decimal_places=1, min_storage_interval=0)
    c.sequences.update("wstemp", 19.5)
    wait_for(lambda: read_text(c, base + "/wstemp") == "19.5", "update_sequence over the websocket")
    c.sequences.update_multiple({"wstemp": 20.5, "wsnote": "typed"})
    wait_for(lambda: read_text(c, base + "/wstemp") == "20.5", "update over the websocket")
    emit("ready", wstemp=read_text(c, base + "/wstemp"), wsnote=read_text(c, base + "/wsnote"))
    found = wait_for(lambda: [g for g in got if g[0] == "command"], "a command from the hub")
    emit("command", params=found[0][1])


def scenario_first_values(c):
    """A program written from rhizo-client's README: create a folder and a sequence in it,
    then send a value and a message there at once, `runs` times in a row (MQTT or the
    message websocket, as configured). Nothing waits for the hub in between."""
    base = c.path_on_server()
    wait_for(c.messages.connected, "the client's own connection")
    for i in range(SPEC["runs"]):
        folder = "{}/{}/run{}".format(base, SPEC["prefix"], i)
        c.files.create_folder(folder)
        c.sequences.create(folder + "/temp", "numeric", decimal_places=1, min_storage_interval=0)
        c.sequences.update(folder + "/temp", i + 0.5)
        c.messages.send("first", {"run": i}, folder=folder)
    emit("sent", runs=SPEC["runs"])
    gevent.sleep(DEADLINE)  # keeps its connections while the test reads what arrived


def scenario_stream(c):
    """Numbered values at a steady pace over MQTT (QoS 0, as the client sends), while the
    test restarts parts of the hub; "sent" after each (with whether the client's MQTT
    connection was up when it sent it: at QoS 0, a value sent while it is down is gone)."""
    base = c.path_on_server()
    c.sequences.create("n", "numeric", decimal_places=0, min_storage_interval=0)
    c.sequences.update("n", -1)
    wait_for(lambda: read_text(c, base + "/n") == "-1", "the first value")
    emit("streaming")
    for i in range(SPEC["count"]):
        c.sequences.update("n", i)
        emit("sent", n=i, connected=bool(c.messages.connected()))
        gevent.sleep(SPEC["interval"])


def scenario_pin(c):
    """Provisioned by PIN (the Controller asked for its key before this runs)."""
    emit("provisioned", path=c.path_on_server(), local=open("local.yaml").read())


def main():
    config = dict(SPEC["config"])
    c = Controller(config)
    scenarios = {"controller": scenario_controller, "websocket": scenario_websocket, "pin": scenario_pin,
                 "first_values": scenario_first_values, "stream": scenario_stream}
    scenarios[SPEC["scenario"]](c)
    emit("done")
    os._exit(0)  # the client's greenlets (websocket, MQTT) never end by themselves


if __name__ == "__main__":
    main()
