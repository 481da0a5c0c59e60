"""rhizo-server's dialect of /api/v1 (hub/http/rhizo/, docs/rhizo-compat.md) through the real
HTTP server on SQLite: the rule that picks it, rhizo's answers, and bad input refused with
rhizo's status code and nothing stored. rhizo-client itself: tests/test_rhizo_client.py."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import requests

from hub.settings import load
from hub.storage import resources, users
from hub.storage.db import Database
from hub.storage.models import ResourceType
from tests.fixtures.http import People, RunningHttp, seed_people, start_http_server
from tests.support import free_port, write_settings_file

RHIZO = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/plain"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHttp]:
    root = tmp_path_factory.mktemp("rhizo-dialect")
    path = write_settings_file(root / "config.py", {
        "DATA_DIR": str(root / "data"), "SECRET_KEY": "r" * 48, "PASSWORD_HASH_ROUNDS": 4,
        "HTTP_PORT": free_port(), "MQTT_PORT": free_port()})
    with start_http_server(load(path, env={}), path) as srv:
        yield srv


@pytest.fixture(scope="module")
def people(server: RunningHttp) -> People:
    got = seed_people(server.settings)
    db = Database(server.settings.database_url)
    try:
        with db.session() as s:
            users.create_organization(s, "other")
            resources.create(s, "other/lab", ResourceType.FOLDER.value)
    finally:
        db.dispose()
    return got


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"0.0.6.unknown:{key}".encode()).decode()}


def rhizo(server: RunningHttp, method: str, path: str, key: str | None, form: dict[str, Any] | None = None,
          accept: str = "text/plain") -> requests.Response:
    """A request as rhizo-client sends it: the form in the body, whatever the method."""
    headers = {**RHIZO, "Accept": accept, **(basic(key) if key else {})}
    return requests.request(method, server.api(path), data=form or {}, headers=headers, timeout=10)


def exists(server: RunningHttp, people: People, path: str) -> bool:
    r = requests.get(server.api(f"/resources/{path}"), headers=people.auth("admin"), params={"meta": "true"},
                     timeout=10)
    return r.status_code == 200


# -- the rule ---------------------------------------------------------------------------
def test_the_hub_s_own_answers_do_not_change(server: RunningHttp, people: People) -> None:
    own = requests.get(server.api(f"/resources/{people.controller}"), headers=people.auth("admin"), timeout=10)
    assert own.status_code == 200 and own.json()["path"] == people.controller and "children" in own.json()
    # a form with Accept */* (curl -d) is still the hub's: the body becomes a file
    r = requests.post(server.api(f"/resources/{people.controller}/curl.txt"), data={"a": "1"}, timeout=10,
                      headers={**people.auth("admin"), "Accept": "*/*"})
    assert r.status_code == 201 and r.json()["type"] == "file"
    # the same GET in rhizo's dialect: a listing in rhizo's shape
    listed = rhizo(server, "GET", f"/resources/{people.controller}", people.keys["admin"], {"extended": 0})
    assert listed.status_code == 200
    assert ("curl.txt", 20) in [(i["name"], i["type"]) for i in listed.json()]
    # the websocket is not in the hub's own API document
    doc = requests.get(server.api("/openapi.json"), timeout=10).json()
    assert "/api/v1/websocket" not in doc["paths"]


def test_self_is_the_controller_key_s_folder(server: RunningHttp, people: People) -> None:
    r = rhizo(server, "GET", "/resources/self", people.keys["controller"], {"meta": 1, "include_path": 1})
    assert r.status_code == 200
    body = r.json()
    assert body["path"] == "/" + people.controller and body["type"] == 12 and body["name"] == "pi-01"
    assert body["creation_timestamp"].endswith("Z") and body["system_attributes"] == {}
    assert rhizo(server, "GET", "/resources/self", people.keys["member"], {"meta": 1}).status_code == 403
    assert rhizo(server, "GET", "/resources/self", None, {"meta": 1}).status_code == 403
    assert rhizo(server, "GET", "/resources/self", "not-a-key-at-all", {"meta": 1}).status_code == 403


def test_sequence_round_trip_and_raw_reads(server: RunningHttp, people: People) -> None:
    key = people.keys["controller"]
    base = "/" + people.controller
    r = rhizo(server, "POST", "/resources", key, {"path": base + "/deep/er", "name": "level", "type": 21,
                                                  "data_type": 1, "decimal_places": 1, "units": "cm",
                                                  "min_storage_interval": 0})
    assert r.status_code == 200 and r.json()["status"] == "ok" and isinstance(r.json()["id"], int)
    again = rhizo(server, "POST", "/resources", key, {"path": base + "/deep/er", "name": "level", "type": 21,
                                                      "data_type": 1})
    assert again.status_code == 200 and again.json() == {"message": "Resource already exists.", "status": "error"}
    meta = rhizo(server, "GET", f"/resources{base}/deep/er/level", key, {"meta": 1}).json()
    assert meta["system_attributes"] == {"data_type": 1, "decimal_places": 1, "units": "cm", "max_history": 10000,
                                         "min_storage_interval": 0}
    put = rhizo(server, "PUT", f"/resources{base}/deep/er/level", key, {"data": base64.b64encode(b"12.34")})
    assert put.status_code == 200
    value = rhizo(server, "GET", f"/resources{base}/deep/er/level", key, {}, accept="application/octet-stream")
    assert value.status_code == 200 and value.text == "12.3" and value.headers["Content-Type"].startswith("text/plain")
    many = rhizo(server, "PUT", "/resources", key, {
        "values": json.dumps({f"{base}/deep/er/level": "7", "/other/lab/x": "1", f"{base}/missing": "2"}),
        "timestamp": "2024-05-01T12:00:00.250000 Z"})
    assert many.status_code == 200 and many.json()["stored"] == 1
    assert sorted(many.json()["skipped"]) == [f"{base}/missing", "/other/lab/x"]
    hist = rhizo(server, "GET", f"/resources{base}/deep/er/level", key, {"count": 10}).json()
    assert hist["values"] == ["7", "12.3"] and hist["units"] == "cm" and hist["path"] == f"{base}/deep/er/level"


def test_files_move_status_and_delete(server: RunningHttp, people: People) -> None:
    key = people.keys["orgadmin"]
    data = bytes(range(256)) * 4
    r = rhizo(server, "POST", "/resources", key, {"path": "/acme/files", "name": "blob.bin", "type": 20,
                                                  "data": base64.b64encode(data)})
    assert r.status_code == 200
    assert rhizo(server, "GET", "/resources/acme/files/blob.bin", key, accept="application/octet-stream").content \
        == data
    assert rhizo(server, "POST", "/resources", key, {"path": "/acme", "name": "archive", "type": 10}).status_code \
        == 200
    assert rhizo(server, "PUT", "/resources/acme/files/blob.bin", key, {"parent": "/acme/archive"}).status_code \
        == 200
    assert exists(server, people, "acme/archive/blob.bin") and not exists(server, people, "acme/files/blob.bin")
    st = rhizo(server, "PUT", f"/resources/{people.controller}", people.keys["controller"],
               {"status": json.dumps({"foo": "bar"})})
    assert st.status_code == 200
    listed = rhizo(server, "GET", "/resources/acme/site", people.keys["orgadmin"], {"type": "controller_folder"})
    (item,) = [i for i in listed.json() if i["name"] == "pi-01"]
    assert item["status"] == {"foo": "bar"} and item["last_watchdog_timestamp"] == "" and item["type"] == 12
    assert rhizo(server, "DELETE", "/resources/acme/archive", key).status_code == 200
    assert not exists(server, people, "acme/archive/blob.bin")


# -- bad input: rhizo's status code, nothing stored -------------------------------------
@pytest.mark.parametrize("form,status", [
    ({"path": "/acme/site", "name": "bad.bin", "type": 20, "data": "@@not base64@@"}, 400),
    ({"path": "/acme/site", "name": "bad.bin", "type": 99}, 400),
    ({"path": "/acme/site", "name": "bad.bin", "type": "file"}, 400),
    ({"path": "/acme/site", "name": "bad.bin", "type": 11}, 400),
    ({"path": "acme/site", "name": "bad.bin", "type": 10}, 400),
    ({"path": "/acme/site", "type": 10}, 400),
    ({"path": "/acme/site", "name": "bad.bin", "type": 21}, 400),
    ({"path": "/acme/site", "name": "bad.bin", "type": 21, "data_type": 7}, 400),
    ({"path": "/acme/site", "name": "bad.bin", "type": 21, "data_type": 1, "decimal_places": "two"}, 400),
    ({"path": "/acme/site", "name": "bad.bin", "type": 21, "data_type": 1, "system_attributes": "[1, 2]"}, 400),
    ({"path": "/acme/site", "name": "bad.bin", "type": 10, "user_attributes": "not json"}, 400),
    ({"path": "/acme/site", "name": "bad.bin", "type": 10, "user_attributes": '{"content_type": "x"}'}, 400),
    ({"path": "/acme/site", "name": "bad.bin", "type": 12}, 403),  # a controller folder needs admin
    ({"path": "/other/lab", "name": "bad.bin", "type": 10}, 403),
    ({"path": "/nowhere/at/all", "name": "bad.bin", "type": 10}, 403),
])
def test_bad_creates_are_refused_and_store_nothing(server: RunningHttp, people: People, form: dict[str, Any],
                                                    status: int) -> None:
    r = rhizo(server, "POST", "/resources", people.keys["writer"], form)
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]
    assert not exists(server, people, "acme/site/bad.bin") and not exists(server, people, "other/lab/bad.bin")


def test_bad_updates_are_refused_and_change_nothing(server: RunningHttp, people: People) -> None:
    key = people.keys["writer"]
    assert rhizo(server, "POST", "/resources", key, {"path": "/acme/site", "name": "num", "type": 21,
                                                     "data_type": 1}).status_code == 200
    assert rhizo(server, "PUT", "/resources/acme/site/num", key, {"data": base64.b64encode(b"5")}).status_code == 200
    for form, status in [({"data": base64.b64encode(b"five")}, 422), ({"data": "%%%"}, 400),
                         ({"system_attributes": "nope"}, 400), ({"system_attributes": "[1]"}, 400),
                         ({"decimal_places": "x"}, 400), ({"data_type": 9}, 400), ({"parent": "/acme/none"}, 404),
                         ({"name": "../up"}, 400)]:
        r = rhizo(server, "PUT", "/resources/acme/site/num", key, form)
        assert r.status_code == status, (form, r.text)
    assert rhizo(server, "GET", "/resources/acme/site/num", key).text == "5"
    assert rhizo(server, "PUT", "/resources/other/lab", key, {"user_attributes": "{}"}).status_code == 403
    assert rhizo(server, "PUT", "/resources/acme/nothing", key, {"user_attributes": "{}"}).status_code == 404
    assert rhizo(server, "DELETE", "/resources/other/lab", key).status_code == 403
    assert rhizo(server, "GET", "/resources/other/lab", key).status_code == 403
    assert rhizo(server, "GET", "/resources/acme/site", key, {"type": "bogus"}).status_code == 400
    assert rhizo(server, "GET", "/resources/acme/site/num", key, {"start_timestamp": "yesterday"}).status_code == 400
    assert rhizo(server, "PUT", "/resources", key, {"values": "{not json"}).status_code == 400
    assert rhizo(server, "PUT", "/resources", key, {"values": json.dumps({"/acme/site/num": "6"}),
                                                    "timestamp": "soon"}).status_code == 400
    assert rhizo(server, "PATCH", "/resources/acme/site/num", key).status_code == 405
    assert rhizo(server, "GET", "/resources/acme/site/num", key).text == "5"
    assert exists(server, people, "other/lab")


def test_pins_in_rhizo_s_form(server: RunningHttp, people: People) -> None:
    got = rhizo(server, "POST", "/pins", None).json()
    assert got["status"] == "ok" and isinstance(got["pin"], int) and got["pin_code"]
    pin, code = got["pin"], got["pin_code"]
    assert rhizo(server, "GET", f"/pins/{pin}", "x", {"pin_code": code}).json() == {"status": "ok"}
    assert rhizo(server, "GET", f"/pins/{pin}", "x", {"pin_code": "wrong"}).status_code == 404
    assert rhizo(server, "GET", f"/pins/{pin}", "x").status_code == 400
    assert rhizo(server, "PUT", f"/pins/{pin}", None, {"controller": "/" + people.controller}).status_code == 403
    assert rhizo(server, "PUT", f"/pins/{pin}", people.keys["writer"], {"controller": "/acme/site"}).status_code \
        == 400  # not a controller folder
    assert rhizo(server, "PUT", f"/pins/{pin}", people.keys["outsider"],
                 {"controller": "/" + people.controller}).status_code == 403
    assert rhizo(server, "PUT", f"/pins/{pin}", people.keys["writer"],
                 {"controller": "/" + people.controller}).json() == {"status": "ok"}
    ready = rhizo(server, "GET", f"/pins/{pin}", "x", {"pin_code": code}).json()
    assert ready["controller_path"] == "/" + people.controller and ready["secret_key"]
    again = rhizo(server, "GET", f"/pins/{pin}", "x", {"pin_code": code}).json()
    assert again == {"status": "ok"}  # the key is given out once
    me = rhizo(server, "GET", "/resources/self", ready["secret_key"], {"meta": 1}).json()
    assert me["path"] == "/" + people.controller


def test_messages_need_a_folder_and_write_access(server: RunningHttp, people: People) -> None:
    """What is refused before anything is published (publishing itself: tests/test_rhizo_client.py)."""
    key = people.keys["controller"]
    assert rhizo(server, "POST", "/messages", key, {"folder_path": "/acme/none", "type": "t",
                                                    "parameters": "{}"}).status_code == 404
    assert rhizo(server, "POST", "/messages", key, {"folder_path": "/other/lab", "type": "t",
                                                    "parameters": "{}"}).status_code == 403
    assert rhizo(server, "POST", "/messages", key, {"folder_path": "acme", "type": "t"}).status_code == 400
    assert rhizo(server, "POST", "/messages", key, {"folder_path": "/" + people.controller, "type": "t",
                                                    "parameters": "[]"}).status_code == 400


# -- the message websocket --------------------------------------------------------------
async def _ws_session(url: str, headers: dict[str, str], messages: list[Any]) -> list[Any]:
    out: list[Any] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, headers=headers, protocols=("http-only",)) as ws:
            for m in messages:
                await ws.send_str(m if isinstance(m, str) else json.dumps(m))
                reply = await ws.receive(timeout=10)
                out.append(json.loads(reply.data) if reply.type == aiohttp.WSMsgType.TEXT else reply.type)
    return out


def test_websocket_refuses_what_it_must(server: RunningHttp, people: People) -> None:
    url = server.api("/websocket").replace("http", "ws", 1)
    r = requests.get(server.api("/websocket"), timeout=10)
    assert r.status_code == 401
    replies = asyncio.run(_ws_session(url, basic(people.keys["controller"]), [
        {"type": "subscribe", "parameters": {"subscriptions": [{"folder": "/other/lab"}]}},
        {"type": "update_sequence", "parameters": {"sequence": "/other/lab/x", "value": 1}},
        {"type": "hello", "parameters": {}, "folder": "/acme/../etc"},
        {"type": "update", "parameters": {"/elsewhere/x": 1}},
        "not json",
    ]))
    assert [r["type"] for r in replies[:4]] == ["error"] * 4
    assert "read access" in replies[0]["parameters"]["message"]
    assert "write access" in replies[1]["parameters"]["message"]
    assert replies[4] in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


def test_websocket_closes_when_its_key_is_revoked(server: RunningHttp, people: People) -> None:
    """Through the change log the worker follows (the timing: tests/test_rhizo_websocket.py)."""
    from hub.storage import keys

    db = Database(server.settings.database_url)
    try:
        with db.session() as s:
            row, key = keys.create(s, controller_path=people.controller, name="ws")
    finally:
        db.dispose()
    url = server.api("/websocket").replace("http", "ws", 1)

    async def session() -> list[Any]:
        seen: list[Any] = []
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url, headers=basic(key), protocols=("http-only",)) as ws:
                await ws.send_str(json.dumps({"type": "subscribe", "parameters": {
                    "subscriptions": [{"folder": "self", "include_children": True}]}}))
                await ws.send_str(json.dumps({"type": "ping", "parameters": {}}))
                db2 = Database(server.settings.database_url)
                try:
                    with db2.session() as s:
                        keys.revoke(s, row.prefix)
                finally:
                    db2.dispose()
                while True:
                    m = await ws.receive(timeout=30)
                    if m.type != aiohttp.WSMsgType.TEXT:
                        return seen + [m.type]
                    seen.append(json.loads(m.data))

    got = asyncio.run(session())
    assert got[0]["type"] == "error" and "revoked" in got[0]["parameters"]["message"]
    assert got[-1] in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


def test_a_shutdown_closes_open_websockets(tmp_path: Any) -> None:
    """Stopping the server does not wait for connected controllers to leave."""
    import threading
    import time

    path = write_settings_file(tmp_path / "config.py", {
        "DATA_DIR": str(tmp_path / "data"), "SECRET_KEY": "w" * 48, "PASSWORD_HASH_ROUNDS": 4,
        "HTTP_PORT": free_port(), "MQTT_PORT": free_port()})
    with start_http_server(load(path, env={}), path) as srv:
        people = seed_people(srv.settings)
        opened, closed = threading.Event(), threading.Event()

        async def hold() -> None:
            async with aiohttp.ClientSession() as http:
                async with http.ws_connect(srv.api("/websocket").replace("http", "ws", 1),
                                           headers=basic(people.keys["controller"])) as ws:
                    opened.set()
                    async for _ in ws:
                        pass
            closed.set()

        client = threading.Thread(target=lambda: asyncio.run(hold()), daemon=True)
        client.start()
        assert opened.wait(30)
        t0 = time.monotonic()
        srv.stop()  # start_http_server gives cleanup 30 s: it would time out waiting for the socket
        assert closed.wait(30)
        assert time.monotonic() - t0 < 25
        client.join(10)


def test_a_key_brought_over_from_rhizo_server_works_in_the_dialect(tmp_path: Any) -> None:
    """`/self` and the websocket (whose key is checked again when the change log names it)
    accept a key `--import-rhizo` kept."""
    from hub.rhizo_import import keys as rhizo_keys
    from hub.storage import changes
    from hub.storage.models import ApiKey, RhizoKey
    from tests.support.rhizo_db import SALT, inner

    key = "tst" + "K7" * 25
    path = write_settings_file(tmp_path / "config.py", {
        "DATA_DIR": str(tmp_path / "data"), "SECRET_KEY": "k" * 48, "PASSWORD_HASH_ROUNDS": 4,
        "HTTP_PORT": free_port(), "MQTT_PORT": free_port(), "RHIZO_SALT": SALT})
    with start_http_server(load(path, env={}), path) as srv:
        people = seed_people(srv.settings)
        db = Database(srv.settings.database_url)
        try:
            with db.session() as s:
                c = resources.get(s, people.controller)
                prefix = rhizo_keys.prefix_for(7)
                s.add(ApiKey(prefix=prefix, secret_hash=rhizo_keys.PLACEHOLDER_HASH, controller_id=c.id,
                             organization_id=c.organization_id))
                s.flush()
                s.add(RhizoKey(prefix=prefix, key_part=rhizo_keys.key_part(key), key_hash=inner(key)))
                changes.record(s, "key", prefix)
        finally:
            db.dispose()
        me = rhizo(srv, "GET", "/resources/self", key, {"meta": 1})
        assert me.status_code == 200 and me.json()["path"] == "/" + people.controller

        def touch_key() -> None:
            """A change naming the key, then until the server has handled it."""
            db = Database(srv.settings.database_url)
            try:
                with db.session() as s:
                    changes.record(s, "key", prefix)
            finally:
                db.dispose()
            srv.sync()

        async def stays_open() -> bool:
            async with aiohttp.ClientSession() as http:
                async with http.ws_connect(srv.api("/websocket").replace("http", "ws", 1),
                                           headers=basic(key)) as ws:
                    await ws.send_str(json.dumps({"type": "ping", "parameters": {}}))
                    await asyncio.to_thread(touch_key)
                    try:
                        got = await ws.receive(timeout=1.0)  # the recheck has run meanwhile
                    except TimeoutError:
                        return True
                    raise AssertionError(f"the websocket answered {got}")

        assert asyncio.run(stays_open())
