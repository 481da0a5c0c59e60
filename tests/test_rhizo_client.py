"""The real rhizo-client (0.1.5, in .venv-rhizo/ from `make rhizo-client`) against a running
hub: Mosquitto with the plugin, the persister, the notifier and the HTTP server on free
ports. Each scenario is tests/rhizo_client/drive.py run by the client's own Python in a
scratch folder; it reports each step as a JSON line, checked here."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from hub.persister import deadletters
from hub.storage import resources, users
from hub.storage.db import Database
from hub.storage.models import ResourceType
from tests.support.broker import mqtt_client
from tests.support.console_stack import HubStack, hub_stack
from tests.support.processes import stop_process
from tests.support.rhizo_drive import RHIZO_PYTHON, Drive, _config
from tests.support.settings import clean_env

ROOT = Path(__file__).resolve().parent.parent
STEP_TIMEOUT = 90.0

pytestmark = pytest.mark.skipif(not RHIZO_PYTHON.exists(),
                                reason="rhizo-client's environment is missing: run `make rhizo-client`")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubStack]:
    root = tmp_path_factory.mktemp("rhizo-client")
    # a `watchdog` message is recorded at once, not at the next check: make that check never come
    with hub_stack(root, WATCHDOG_CHECK_SECONDS=3600) as hub:
        db = Database(hub.settings.database_url)
        try:
            with db.session() as s:
                users.create_organization(s, "other")
                resources.create(s, "other/lab", ResourceType.FOLDER.value)
        finally:
            db.dispose()
        log = root / "notifier.log"
        with open(log, "ab") as out:
            notifier = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--notifier"], cwd=ROOT,
                                        env=clean_env(hub.settings_path), stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_subscribed(notifier, log)
            yield hub
        finally:
            stop_process(notifier)


def _wait_subscribed(proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until the notifier says it subscribed (before that, what controllers send is not heard)."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while "notifier subscribed" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the notifier did not subscribe:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)


def hub_logs(hub: HubStack) -> str:
    """What the hub saw, for a failed step: the broker's and the persister's log tails and
    the latest dead letters."""
    db = Database(hub.settings.database_url)
    try:
        with db.session() as s:
            dead = [f"{d.topic}: {d.reason}" for d in deadletters.recent(s, 10)]
    except Exception as e:  # a diagnostic: never hide the failure it explains
        dead = [f"(unreadable: {e})"]
    finally:
        db.dispose()
    return (f"\n--- broker ---\n{hub.broker.log_tail(40)}\n--- persister ---\n{hub.persister_log_tail(40)}"
            f"\n--- dead letters ---\n" + ("\n".join(dead) or "(none)"))


def test_controller_over_mqtt_and_http(stack: HubStack, tmp_path: Path) -> None:
    people = stack.people
    drive = Drive(tmp_path, {"scenario": "controller", "config": _config(stack, people.keys["controller"], mqtt=True),
                             "missing_folder": "/acme/no/such/folder", "foreign_folder": "/other/lab"},
                  lambda: hub_logs(stack))
    try:
        base = "/" + people.controller
        assert drive.next("path")["path"] == base
        assert drive.next("folder") == {"event": "folder", "exists": True, "missing": False}
        seqs = drive.next("sequences")
        assert seqs["temp"]["type"] == 21 and seqs["temp"]["path"] == base + "/temp"
        assert seqs["temp"]["system_attributes"] == {"data_type": 1, "decimal_places": 2, "units": "degrees_C",
                                                     "max_history": 10000, "min_storage_interval": 0}
        assert seqs["count"] == {"data_type": 1, "decimal_places": 0, "max_history": 1234,
                                 "min_storage_interval": 0}
        assert seqs["note"]["data_type"] == 2
        files = drive.next("files")
        assert files["text_ok"] and files["binary_ok"]
        assert files["info"]["type"] == 20 and files["info"]["size"] == 102400
        assert drive.next("mqtt") == {"event": "mqtt", "temp": "21.5", "note": "hello"}
        assert drive.next("http") == {"event": "http", "temp": "22.25", "note": "over http", "count": "8"}
        assert drive.next("messages") == {"event": "messages", "own": 200, "missing": 404, "foreign": 403}
        item = drive.next("listing")["item"]
        assert item["type"] == 12 and item["status"] == {"foo": "bar"}
        assert item["last_watchdog_timestamp"].endswith(" Z")
        drive.next("done")
    finally:
        drive.stop()
    # what the client stored is what the hub's own API shows
    r = requests.get(stack.http.api(f"/resources/{people.controller}/count"), headers=people.auth("admin"),
                     timeout=10)
    assert r.json()["value"] == 8 and r.json()["sequence"]["max_history"] == 1234


def test_controller_over_the_message_websocket(stack: HubStack, tmp_path: Path) -> None:
    people = stack.people
    drive = Drive(tmp_path, {"scenario": "websocket", "config": _config(stack, people.keys["controller"], mqtt=False)},
                  lambda: hub_logs(stack))
    try:
        ready = drive.next("ready")
        assert ready["wstemp"] == "20.5" and ready["wsnote"] == "typed"
        got: list[dict[str, Any]] = []

        def command_arrives() -> None:  # the websocket subscribes on its own time: send until one arrives
            while not got:
                r = requests.post(stack.http.api("/messages"), headers=people.auth("writer"), timeout=10,
                                  json={"folder": people.controller, "type": "command", "parameters": {"on": 1}})
                assert r.status_code == 202, r.text
                try:
                    got.append(drive.next("command", timeout=0.5))
                except AssertionError:
                    continue

        deadline = threading.Timer(STEP_TIMEOUT, drive.stop)
        deadline.start()
        try:
            command_arrives()
        finally:
            deadline.cancel()
        assert got[0]["params"] == {"on": 1}
        drive.next("done")
    finally:
        drive.stop()


RUNS = 50


def _stored(hub: HubStack, paths: list[str]) -> dict[str, float]:
    """The latest value of each sequence that has one (the hub's own API)."""
    got: dict[str, float] = {}
    with requests.Session() as http:
        for path in paths:
            r = http.get(hub.http.api(f"/resources/{path}"), headers=hub.people.auth("admin"), timeout=10)
            if r.status_code == 200 and r.json().get("value") is not None:
                got[path] = float(r.json()["value"])
    return got


def _all_arrive(hub: HubStack, watcher: Any, prefix: str, expect: dict[str, float]) -> None:
    """Every value stored and every first message heard, or say which were lost. Values sent
    at QoS 0 and refused by the broker never come: the bound only ends a failing run."""
    base = f"{hub.people.controller}/{prefix}"
    deadline = time.monotonic() + 30
    while True:
        stored = _stored(hub, list(expect))
        heard = {topic for topic, payload in watcher.messages if b"first" in payload}
        if stored == expect and len(heard) == RUNS:
            return
        if time.monotonic() > deadline:
            lost = sorted(p for p in expect if stored.get(p) != expect[p])
            unheard = sorted(f"{base}/run{i}" for i in range(RUNS) if f"{base}/run{i}" not in heard)
            raise AssertionError(f"{len(lost)} of {RUNS} first values lost ({lost[:5]}...), "
                                 f"{len(unheard)} first messages lost ({unheard[:5]}...)" + hub_logs(hub))
        time.sleep(0.1)


@pytest.mark.parametrize("over", ["mqtt", "websocket"])
def test_first_values_into_a_new_folder_are_kept(stack: HubStack, tmp_path: Path, over: str) -> None:
    """rhizo-client creates a folder and a sequence and sends a value and a message there at
    once, 50 times in a row: nothing is lost (the create answers once the broker has it)."""
    people, prefix = stack.people, f"first-{over}"
    watcher = mqtt_client(stack.broker, people.keys["admin"])
    try:
        assert watcher.connected.is_set()
        assert watcher.subscribe(f"{people.controller}/#", qos=0) == [0]
        drive = Drive(tmp_path, {"scenario": "first_values", "runs": RUNS, "prefix": prefix,
                                 "config": _config(stack, people.keys["controller"], mqtt=over == "mqtt")},
                      lambda: hub_logs(stack))
        try:  # the client runs on while we look: what it sent last may still be in its buffers
            assert drive.next("sent")["runs"] == RUNS
            expect = {f"{people.controller}/{prefix}/run{i}/temp": i + 0.5 for i in range(RUNS)}
            _all_arrive(stack, watcher, prefix, expect)
        finally:
            drive.stop()
    finally:
        watcher.close()


def test_first_values_after_a_create_over_the_hub_api(stack: HubStack) -> None:
    """The hub's own API creates the folder; a paho controller publishes at QoS 0 at once."""
    people, prefix = stack.people, "first-api"
    watcher = mqtt_client(stack.broker, people.keys["admin"])
    pi = mqtt_client(stack.broker, people.keys["controller"], protocol=4)
    try:
        assert watcher.connected.is_set() and pi.connected.is_set()
        assert watcher.subscribe(f"{people.controller}/#", qos=0) == [0]
        with requests.Session() as http:
            for i in range(RUNS):
                folder = f"{people.controller}/{prefix}/run{i}"
                for path, body in ((f"{people.controller}/{prefix}", {"type": "folder"}),
                                   (folder, {"type": "folder"})):
                    r = http.post(stack.http.api(f"/resources/{path}"), json=body, headers=people.auth("admin"),
                                  timeout=10)
                    assert r.status_code in (201, 409), r.text
                pi.publish(folder, json.dumps({"type": "update_sequence",
                                               "parameters": {"sequence": "temp", "value": i + 0.5}}), qos=0)
                pi.publish(folder, json.dumps({"type": "first", "parameters": {"run": i}}), qos=0)
        expect = {f"{people.controller}/{prefix}/run{i}/temp": i + 0.5 for i in range(RUNS)}
        _all_arrive(stack, watcher, prefix, expect)
    finally:
        pi.close()
        watcher.close()


def test_controller_provisioned_by_pin(stack: HubStack, tmp_path: Path) -> None:
    people = stack.people
    drive = Drive(tmp_path, {"scenario": "pin", "config": _config(stack, None, mqtt=True)}, lambda: hub_logs(stack))
    try:
        pin = drive.wait_log(r"your PIN is: (\d+)").group(1)
        r = requests.put(stack.http.api(f"/pins/{pin}"), headers=people.auth("writer"), timeout=10,
                         json={"controller": "acme/site/pi-02"})
        assert r.status_code == 200, r.text
        got = drive.next("provisioned")
        assert got["path"] == "/acme/site/pi-02"
        key = got["local"].split("secret_key:", 1)[1].strip()
        drive.next("done")
    finally:
        drive.stop()
    # the key it saved is a controller key for that folder, in the hub's own API too
    r = requests.get(stack.http.api("/resources/acme/site/pi-02"), headers={"Authorization": f"Bearer {key}"},
                     timeout=10)
    assert r.status_code == 200 and r.json()["type"] == "controller"


def test_text_lines_over_the_message_websocket(stack: HubStack) -> None:
    """`s,` lines are stored like their MQTT twins; a line for another folder is refused."""
    people = stack.people
    auth = base64.b64encode(f"0.0.6.unknown:{people.keys['controller']}".encode()).decode()
    stamp = datetime.now(UTC).replace(tzinfo=None).isoformat() + " Z"
    url = stack.http.api("/websocket").replace("http", "ws", 1)

    async def send() -> Any:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url, headers={"Authorization": f"Basic {auth}"}) as ws:
                await ws.send_str(f"s,wsline,{stamp},3.5\n")
                await ws.send_str(f"s,/other/lab/x,{stamp},1")
                return json.loads((await ws.receive(timeout=30)).data)

    refused = asyncio.run(send())
    assert refused["type"] == "error" and "outside" in refused["parameters"]["message"]
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        r = requests.get(stack.http.api(f"/resources/{people.controller}/wsline"), headers=people.auth("admin"),
                         timeout=10)
        if r.status_code == 200 and r.json()["value"] == "3.5":
            break
        assert time.monotonic() < deadline, r.text
        time.sleep(0.1)


def test_system_folder_is_for_system_admins(stack: HubStack) -> None:
    """Every rhizo-server has `/system`, open to its system admins only: a message or read
    there is 403 to anyone else (rhizo-client's own suite expects it); a system admin learns
    the hub holds nothing there (404)."""
    people, rhizo = stack.people, {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/plain"}

    def send(role: str) -> int:
        r = requests.post(stack.http.url + "/api/v1/messages", auth=("key", people.keys[role]), timeout=10,
                          headers=rhizo, data={"folder_path": "/system", "type": "testMessage", "parameters": "{}"})
        return r.status_code

    assert send("controller") == 403 and send("writer") == 403
    assert send("admin") == 404
    r = requests.get(stack.http.url + "/api/v1/resources/system/home.md", auth=("key", people.keys["member"]),
                     headers=rhizo, timeout=10)
    assert r.status_code == 403, r.text
