"""rhizo's message websocket (hub/http/rhizo/websocket.py, recheck.py) with the real Mosquitto
and the real plugin: a revoked key, a log-out and lost read access take effect within 2 s
(through the change log the HTTP worker follows), `message_type` filters subscriptions, and
a message the broker refuses comes back as an error to the websocket client and to both
dialects' `POST /messages`."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from hub.settings import load
from hub.storage import keys, permissions, resources, users
from hub.storage.db import Database, migrate
from hub.storage.models import Level, Permission, ResourceType
from tests.fixtures.http import PASSWORD, People, RunningHttp, seed_people, start_http_server
from tests.support import free_port, write_settings_file
from tests.support.broker import RunningBroker, start_broker

BOUND = 2.0  # seconds, as the broker kicks an MQTT connection
RHIZO = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/plain"}


@dataclass
class Hub:
    broker: RunningBroker
    http: RunningHttp
    people: People
    root: Path

    def ws_url(self, http: RunningHttp | None = None) -> str:
        return (http or self.http).api("/websocket").replace("http", "ws", 1)

    def db(self) -> Database:
        return Database(self.http.settings.database_url)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    root = tmp_path_factory.mktemp("rhizo-ws")
    path = write_settings_file(root / "config.py", {
        "DATA_DIR": str(root / "data"), "SECRET_KEY": "s" * 48, "PASSWORD_HASH_ROUNDS": 4,
        "DATABASE_URL": f"sqlite:///{root / 'hub.db'}", "MQTT_REQUIRE_PERSISTER": False,
        "HTTP_PORT": free_port(), "MQTT_PORT": free_port(), "MQTT_WS_PORT": free_port()})
    settings = load(path, env={})
    migrate(settings.database_url)
    people = seed_people(settings)
    broker = start_broker(path)
    try:
        with start_http_server(settings, path, migrate_db=False) as http:
            broker.sync()
            yield Hub(broker, http, people, root)
    finally:
        broker.stop()


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"0.0.6.test:{key}".encode()).decode()}


def new_key(hub: Hub, **owner: Any) -> tuple[str, str]:
    db = hub.db()
    try:
        with db.session() as s:
            row, key = keys.create(s, name="ws", **owner)
            return row.prefix, key
    finally:
        db.dispose()


def subscribe(*subs: dict[str, Any]) -> str:
    return json.dumps({"type": "subscribe", "parameters": {"subscriptions": list(subs)}})


async def until_closed(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> list[Any]:
    """What arrives until the server closes the socket (raises TimeoutError past `timeout`)."""
    seen: list[Any] = []
    deadline = time.monotonic() + timeout
    while True:
        m = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if m.type != aiohttp.WSMsgType.TEXT:
            return seen + [m.type]
        seen.append(json.loads(m.data))


async def synced(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Until the server has handled every message sent before (rhizo's protocol acknowledges
    nothing, so: one it refuses, and its error)."""
    await ws.send_str(json.dumps({"type": "subscribe", "parameters": {"subscriptions": "sync"}}))
    while True:
        m = await ws.receive(timeout=10)
        assert m.type == aiohttp.WSMsgType.TEXT, m
        if "subscriptions must be a list" in json.loads(m.data)["parameters"].get("message", ""):
            return


def post_message(hub: Hub, key: str, folder: str, type_: str, parameters: dict[str, Any],
                 http: RunningHttp | None = None) -> requests.Response:
    return requests.post((http or hub.http).api("/messages"), headers={"Authorization": f"Bearer {key}"},
                         json={"folder": folder, "type": type_, "parameters": parameters}, timeout=30)


# -- revocation, log-out, lost access --------------------------------------------------
def test_a_revoked_key_s_websocket_closes_within_2_s(hub: Hub) -> None:
    prefix, key = new_key(hub, controller_path=hub.people.controller)
    hub.broker.sync()

    async def run() -> tuple[float, list[Any]]:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(hub.ws_url(), headers=basic(key), protocols=("http-only",)) as ws:
                await ws.send_str(json.dumps({"type": "update_sequence",
                                              "parameters": {"sequence": "temp", "value": 21.5}}))
                await synced(ws)
                r = await asyncio.to_thread(requests.delete, hub.http.api(f"/keys/{prefix}"),
                                            headers=hub.people.auth("admin"), timeout=30)
                assert r.status_code in (200, 204), r.text
                t0 = time.monotonic()
                got = await until_closed(ws, timeout=10)
                return time.monotonic() - t0, got

    took, got = asyncio.run(run())
    assert took < BOUND, f"closed {took:.2f} s after the revocation"
    assert got[-1] in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    errors = [m for m in got[:-1] if m["type"] == "error"]
    assert len(errors) == 1 and "revoked" in errors[0]["parameters"]["message"], got


def test_a_logged_out_session_s_websocket_closes_within_2_s(hub: Hub) -> None:
    browser = requests.Session()
    assert browser.post(hub.http.api("/login"), json={"email": hub.people.emails["member"], "password": PASSWORD},
                        timeout=30).status_code == 200
    other = requests.Session()  # a second session of the same user goes on
    assert other.post(hub.http.api("/login"), json={"email": hub.people.emails["member"], "password": PASSWORD},
                      timeout=30).status_code == 200

    def cookies(s: requests.Session) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in s.cookies.items())}

    async def run() -> tuple[float, list[Any], bool]:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(hub.ws_url(), headers=cookies(browser)) as ws, \
                    http.ws_connect(hub.ws_url(), headers=cookies(other)) as stays:
                await ws.send_str(subscribe({"folder": "/acme/site"}))
                await stays.send_str(subscribe({"folder": "/acme/site"}))
                await synced(ws)
                r = await asyncio.to_thread(browser.post, hub.http.api("/logout"), timeout=30)
                assert r.status_code == 204
                t0 = time.monotonic()
                got = await until_closed(ws, timeout=10)
                took = time.monotonic() - t0
                return took, got, not stays.closed

    took, got, other_open = asyncio.run(run())
    assert took < BOUND, f"closed {took:.2f} s after the log-out"
    assert got[-1] in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert any(m["type"] == "error" and "logged out" in m["parameters"]["message"] for m in got[:-1]), got
    assert other_open


def test_lost_read_access_stops_delivery_within_2_s(hub: Hub) -> None:
    db = hub.db()
    try:
        with db.session() as s:
            u = users.create_user(s, f"reader-{time.monotonic_ns()}@example.com", PASSWORD, rounds=4)
            grant = permissions.grant(s, "acme/site", Level.READ, user_id=u.id)
            reader = keys.create(s, user_id=u.id, name="reader")[1]
            grant_id = grant.id
    finally:
        db.dispose()
    writer = hub.people.keys["controller"]
    folder = "/" + hub.people.controller

    async def next_message(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
        m = await ws.receive(timeout=10)
        assert m.type == aiohttp.WSMsgType.TEXT, m
        return dict(json.loads(m.data))

    async def run() -> tuple[float, dict[str, Any], bool]:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(hub.ws_url(), headers=basic(reader)) as ws, \
                    http.ws_connect(hub.ws_url(), headers=basic(hub.people.keys["admin"])) as admin:
                await ws.send_str(subscribe({"folder": "/acme/site", "include_children": True}))
                await admin.send_str(subscribe({"folder": "/acme/site", "include_children": True}))
                await synced(ws)
                await synced(admin)
                r = await asyncio.to_thread(post_message, hub, writer, folder, "before", {})
                assert r.status_code == 202, r.text
                assert (await next_message(ws))["type"] == "before"
                assert (await next_message(admin))["type"] == "before"

                def take_away() -> None:
                    d = hub.db()
                    try:
                        with d.session() as s:
                            permissions.revoke(s, grant_id)
                    finally:
                        d.dispose()

                await asyncio.to_thread(take_away)
                t0 = time.monotonic()
                said = await next_message(ws)
                took = time.monotonic() - t0
                r = await asyncio.to_thread(post_message, hub, writer, folder, "after", {})
                assert r.status_code == 202, r.text
                assert (await next_message(admin))["type"] == "after"  # it was published
                try:
                    extra = await ws.receive(timeout=1.0)  # (the admin's copy already came)
                except TimeoutError:
                    return took, said, True
                return took, said, extra.type != aiohttp.WSMsgType.TEXT

    took, said, nothing_after = asyncio.run(run())
    assert said["type"] == "error" and "read access to /acme/site was taken away" in said["parameters"]["message"]
    assert took < BOUND, f"unsubscribed {took:.2f} s after the permission went"
    assert nothing_after
    db = hub.db()
    try:
        with db.session() as s:
            assert s.get(Permission, grant_id) is None
    finally:
        db.dispose()


# -- message_type ----------------------------------------------------------------------
def test_message_type_filters_a_subscription(hub: Hub) -> None:
    controller = hub.people.keys["controller"]
    folder = "/" + hub.people.controller

    async def run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(hub.ws_url(), headers=basic(hub.people.keys["admin"])) as ws:
                await ws.send_str(subscribe({"folder": folder, "message_type": "alert"},
                                            {"folder": "/acme/site", "messageType": "note"}))
                await ws.send_str(subscribe({"folder": folder, "message_type": 7}))
                bad = json.loads((await ws.receive(timeout=10)).data)
                for type_ in ("note", "chatter", "alert", "note"):
                    target = "/acme/site" if type_ == "note" else folder
                    r = await asyncio.to_thread(post_message, hub, hub.people.keys["admin"], target, type_,
                                                {"n": type_})
                    assert r.status_code == 202, r.text
                got = [json.loads((await ws.receive(timeout=10)).data) for _ in range(3)]
                return got, bad

    got, bad = asyncio.run(run())
    assert bad["type"] == "error" and "message_type" in bad["parameters"]["message"]
    assert [(m["type"], m["folder"]) for m in got] == [("note", "/acme/site"), ("alert", folder),
                                                       ("note", "/acme/site")]
    assert controller  # the controller's own socket is not involved


# -- refusals --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ahead(hub: Hub) -> Iterator[RunningHttp]:
    """A second HTTP server on the same broker whose database has a folder the broker's
    does not (`acme/site/pi-01/newer`): the broker refuses what the server accepts."""
    copy = hub.root / "ahead.db"
    shutil.copyfile(hub.root / "hub.db", copy)
    path = write_settings_file(hub.root / "ahead.py", {
        "DATA_DIR": str(hub.root / "ahead-data"), "SECRET_KEY": "s" * 48, "PASSWORD_HASH_ROUNDS": 4,
        "DATABASE_URL": f"sqlite:///{copy}", "MQTT_REQUIRE_PERSISTER": False,
        "HTTP_PORT": free_port(), "MQTT_PORT": hub.broker.port, "MQTT_WS_PORT": hub.broker.ws_port})
    settings = load(path, env={})
    db = Database(settings.database_url)
    try:
        with db.session() as s:
            resources.create(s, hub.people.controller + "/newer", ResourceType.FOLDER.value)
    finally:
        db.dispose()
    with start_http_server(settings, path, migrate_db=False) as http:
        yield http


def test_a_message_the_broker_refuses_is_an_error_in_each_dialect(hub: Hub, ahead: RunningHttp) -> None:
    key = hub.people.keys["controller"]
    newer = "/" + hub.people.controller + "/newer"
    ok = post_message(hub, key, "/" + hub.people.controller, "fine", {}, http=ahead)
    assert ok.status_code == 202, ok.text  # the broker takes what it knows
    r = post_message(hub, key, newer, "lost", {"a": 1}, http=ahead)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "broker_refused" and "Not authorized" in r.json()["error"]["message"]
    form = requests.post(ahead.api("/messages"), headers={**RHIZO, **basic(key)},
                         data={"folder_path": newer, "type": "lost", "parameters": "{}"}, timeout=30)
    assert form.status_code == 502, form.text
    assert "broker_refused" in form.text
    assert hub.broker.wait_log(f"denied publish '{newer[1:]}'")


def test_a_value_the_broker_refuses_comes_back_on_the_websocket(hub: Hub, ahead: RunningHttp) -> None:
    key = hub.people.keys["controller"]

    async def run() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(hub.ws_url(ahead), headers=basic(key)) as ws:
                for m in ({"type": "update_sequence", "parameters": {"sequence": "newer/temp", "value": 3}},
                          {"type": "update_sequence", "parameters": {"sequence": "temp", "value": 3}},
                          {"type": "note", "parameters": {}, "folder": f"/{hub.people.controller}/newer"}):
                    await ws.send_str(json.dumps(m))
                return [json.loads((await ws.receive(timeout=10)).data) for _ in range(2)]

    got = asyncio.run(run())
    folder = f"/{hub.people.controller}/newer"
    assert [(m["type"], m["parameters"]["type"], m["parameters"]["folder"]) for m in got] == [
        ("error", "update_sequence", folder), ("error", "note", folder)], got
    assert all("refused" in m["parameters"]["message"] for m in got)


def test_a_key_made_and_revoked_with_rhizo_s_routes_opens_and_closes_the_websocket(hub: Hub) -> None:
    """The stress test's way of provisioning (rhizo's form POST /keys), then rhizo's DELETE."""
    db = hub.db()
    try:
        with db.session() as s:
            controller_id = resources.get(s, hub.people.controller).id
    finally:
        db.dispose()
    admin = {**RHIZO, **basic(hub.people.keys["orgadmin"])}
    made = requests.post(hub.http.api("/keys"), headers=admin, data={"access_as_controller_id": controller_id},
                         timeout=30)
    assert made.status_code == 200, made.text
    key, key_id = made.json()["secret_key"], made.json()["id"]

    async def run() -> tuple[float, list[Any]]:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(hub.ws_url(), headers=basic(key)) as ws:
                await ws.send_str(subscribe({"folder": "self"}))
                await synced(ws)
                r = await asyncio.to_thread(requests.delete, hub.http.api(f"/keys/{key_id}"), headers=admin,
                                            timeout=30)
                assert r.status_code == 200, r.text
                t0 = time.monotonic()
                got = await until_closed(ws, timeout=10)
                return time.monotonic() - t0, got

    took, got = asyncio.run(run())
    assert took < BOUND and got[-1] in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), (took, got)


def test_an_expired_session_s_websocket_closes(hub: Hub) -> None:
    from hub.http import sessions
    from hub.storage.models import User

    db = hub.db()
    try:
        with db.session() as s:
            u = s.get(User, hub.people.users["member"])
            assert u is not None
            cookie = sessions.issue(hub.http.settings.SECRET_KEY, u.id, u.password_hash, ttl=2)
    finally:
        db.dispose()
    expires = time.time() + 2

    async def run() -> tuple[float, list[Any]]:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(hub.ws_url(), headers={"Cookie": f"{sessions.SESSION_COOKIE}={cookie}"}) as ws:
                got = await until_closed(ws, timeout=10)
                return time.time() - expires, got

    late, got = asyncio.run(run())
    assert got[-1] in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert "expired" in got[0]["parameters"]["message"]
    assert -1.0 < late < BOUND, f"closed {late:.2f} s after the session's expiry"


def test_many_sockets_cost_one_look_and_only_the_concerned_are_checked(hub: Hub) -> None:
    """With many sockets open, a change naming one key rechecks only that key's socket; a
    permission change rechecks them all in one job, within the bound."""
    from hub.http.rhizo import recheck

    many = 200
    watch = hub.http.app[recheck.WATCH] if hub.http.app is not None else None
    assert watch is not None
    prefix, key = new_key(hub, user_id=hub.people.users["writer"])
    controller = hub.people.keys["controller"]

    def until(done: Any, what: str) -> float:
        t0 = time.monotonic()
        while not done():
            assert time.monotonic() - t0 < 10, f"no {what} within 10 s"
            time.sleep(0.01)
        return time.monotonic() - t0

    async def run() -> dict[str, Any]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            crowd = [await http.ws_connect(hub.ws_url(), headers=basic(controller)) for _ in range(many)]
            one = await http.ws_connect(hub.ws_url(), headers=basic(key))
            try:
                for ws in crowd:
                    await ws.send_str(subscribe({"folder": "self"}))
                await asyncio.gather(*(synced(ws) for ws in crowd))
                before = (watch.rechecks, watch.rechecked)
                r = await asyncio.to_thread(requests.delete, hub.http.api(f"/keys/{prefix}"),
                                            headers=hub.people.auth("admin"), timeout=30)
                assert r.status_code == 200, r.text
                t0 = time.monotonic()
                await until_closed(one, timeout=10)
                closed_in = time.monotonic() - t0
                after_key = (watch.rechecks - before[0], watch.rechecked - before[1])

                def grant() -> None:
                    d = hub.db()
                    try:
                        with d.session() as s:
                            permissions.grant(s, "acme/site", Level.READ, user_id=hub.people.users["outsider"])
                    finally:
                        d.dispose()

                mark = watch.rechecked
                await asyncio.to_thread(grant)
                took = await asyncio.to_thread(until, lambda: watch.rechecked >= mark + many, "recheck")
                return {"closed_in": closed_in, "after_key": after_key, "all_in": took,
                        "open": sum(not ws.closed for ws in crowd)}
            finally:
                for ws in crowd:
                    await ws.close()

    got = asyncio.run(run())
    print(f"rhizo_ws_recheck sockets={many} key_closed_s={got['closed_in']:.2f} "
          f"permission_recheck_all_s={got['all_in']:.2f}")
    assert got["closed_in"] < BOUND, got
    assert got["after_key"] == (1, 1), got  # one job, one socket: the crowd was not looked at
    assert got["all_in"] < BOUND and got["open"] == many, got
