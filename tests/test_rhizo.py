"""rhizo-server compatibility (docs/rhizo-compat.md): each rhizo form is stored exactly
like its native twin; `d,` lines are display only. Write path against real SQLite
(and PostgreSQL with -m pg), no mocks."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from hub import credentials, wire
from hub.errors import BadRequest, Conflict, Unauthenticated
from hub.persister.batcher import Incoming
from hub.persister.writer import Writer
from hub.storage import keys, resources, revisions, users
from hub.storage.bulk import open_bulk
from hub.storage.db import Database
from hub.storage.resources import SequenceSpec
from hub.storage.store import Store
from tests.fixtures.http import start_http_server
from tests.support import free_port
from tests.support.broker import RunningBroker, mqtt_client

T = "2024-05-01T12:00:00.250000Z"


# -- parsing ------------------------------------------------------------------------
def test_rhizo_object_form_is_its_native_twin() -> None:
    assert wire.parse(b'{"send_email": {"emailAddresses": "a@example.com", "subject": "s"}}') == \
        wire.Message("send_email", {"emailAddresses": "a@example.com", "subject": "s"})
    update = wire.parse(json.dumps({"update": {"$t": T, "temp": 21.5, "sub/hum": 40}}))
    assert update == wire.Message(wire.UPDATE_SEQUENCE, {"updates": [
        {"sequence": "temp", "value": 21.5, "timestamp": T},
        {"sequence": "sub/hum", "value": 40, "timestamp": T}]})
    assert wire.updates("acme/pi", update.parameters) == [
        wire.Update("acme/pi/temp", 21.5, T), wire.Update("acme/pi/sub/hum", 40, T)]
    untimed = wire.parse(b'{"update": {"temp": 1}}')
    assert untimed.parameters == {"updates": [{"sequence": "temp", "value": 1}]}


def test_rhizo_text_lines() -> None:
    assert wire.parse(f"s,temp,{T},21.5".encode()) == wire.Message(
        wire.UPDATE_SEQUENCE, {"sequence": "temp", "value": "21.5", "timestamp": T})
    assert wire.parse(f"d,label,{T},a,b".encode()) == wire.Message(
        wire.DISPLAY_VALUE, {"sequence": "label", "value": "a,b", "timestamp": T})
    assert wire.parse(b"s,temp,,7").parameters == {"sequence": "temp", "value": "7"}


@pytest.mark.parametrize("payload,text", [
    (b"s,temp,2024-05-01T12:00:00Z", "s,<sequence>"),
    (b"d,,2024-05-01T12:00:00Z,1", "d,<sequence>"),
    (b'{"update": {"$t": "2024-05-01T12:00:00Z"}}', "no values"),
    (b'{"update": [1, 2]}', "JSON object of parameters"),
    (b'{"parameters": {}}', "no \"type\""),
])
def test_bad_rhizo_forms_say_what_to_send(payload: bytes, text: str) -> None:
    with pytest.raises(BadRequest) as e:
        wire.parse(payload)
    assert text in e.value.message


def test_rhizo_update_cannot_leave_its_folder() -> None:
    m = wire.parse(b'{"update": {"/acme/other/temp": 1}}')
    with pytest.raises(BadRequest):
        wire.updates("acme/pi", m.parameters)


# -- stored like the native twin ------------------------------------------------------
@pytest.fixture
def store(db, tmp_path):  # type: ignore[no-untyped-def]
    with db.session() as s:
        users.create_organization(s, "acme")
        for name in ("native", "rhizo"):
            resources.create(s, f"acme/{name}", "controller")
            resources.create(s, f"acme/{name}/temp", "sequence", sequence=SequenceSpec(decimal_places=1))
            resources.create(s, f"acme/{name}/label", "sequence", sequence=SequenceSpec(data_type="text"))
    return Store(db, open_bulk(f"file://{tmp_path / 'bulk'}"), bulk_threshold=1000)


def rows(store: Store, path: str) -> list[tuple[int, float | None, str | None]]:
    with store.session() as s:
        r = resources.get(s, path)
        return [(rev.timestamp_us, rev.num, rev.text) for rev in revisions.history(s, r.id, newest_first=False)]


def test_each_rhizo_form_is_stored_like_its_native_twin(store: Store) -> None:
    t1, t2, t3 = "2024-05-01T12:00:01Z", "2024-05-01T12:00:02Z", "2024-05-01T12:00:03Z"
    native = [
        wire.batch_message([("temp", 20.25, t1), ("label", "warm", t1)]),
        wire.update_message("temp", 21.5, t2),
        wire.update_message("label", "hot", t3),
    ]
    rhizo = [
        json.dumps({"update": {"$t": t1, "temp": 20.25, "label": "warm"}}).encode(),
        f"s,temp,{t2},21.5".encode(),
        f"s,label,{t3},hot".encode(),
        f"d,temp,{t3},99".encode(),  # display only: never stored
    ]
    w = Writer(store)
    res_n = w.write([Incoming("acme/native", p) for p in native])
    res_r = w.write([Incoming("acme/rhizo", p) for p in rhizo])
    assert res_n.rejected == [] and res_r.rejected == []
    assert (res_n.stored, res_r.stored, res_r.ignored) == (4, 4, 1)
    for seq in ("temp", "label"):
        assert rows(store, f"acme/rhizo/{seq}") == rows(store, f"acme/native/{seq}")
    assert [num for _, num, _ in rows(store, "acme/rhizo/temp")] == [20.25, 21.5]  # as sent
    # a redelivered rhizo update is a no-op, like a native one
    again = w.write([Incoming("acme/rhizo", rhizo[0])])
    assert (again.stored, again.duplicates) == (0, 2)


# -- end to end: real Mosquitto + plugin, the persister daemon, the HTTP server --------------
RHIZO_KEY = "site" + "k7m2p9x4q8" * 5  # a rhizo-format key: a site prefix and 50 characters


def revisions_of(db: Database, path: str) -> list[tuple[int, float | None, str | None]]:
    with db.session() as s:
        r = resources.find(s, path)
        if r is None:
            return []
        return [(rev.timestamp_us, rev.num, rev.text) for rev in revisions.history(s, r.id, newest_first=False)]


def test_rhizo_controller_over_mqtt_and_http(broker_factory: Callable[..., RunningBroker],
                                             persister_factory: Callable[..., Any]) -> None:
    broker = broker_factory(HTTP_PORT=free_port())
    db = Database(broker.settings.database_url)
    try:
        with db.session() as s:
            users.create_organization(s, "acme")
            for name in ("rhizo", "native"):
                resources.create(s, f"acme/{name}", "controller")
                for seq in ("temp", "hum"):
                    resources.create(s, f"acme/{name}/{seq}", "sequence")
            keys.import_key(s, RHIZO_KEY, controller_path="acme/rhizo")
            native_key = keys.create(s, controller_path="acme/native")[1]
        broker.sync()
        persister_factory(broker)
        # MQTT: username `key`, the (imported) key as password
        pi = mqtt_client(broker, RHIZO_KEY, username="key")
        native = mqtt_client(broker, native_key, username="key")
        watcher = mqtt_client(broker, RHIZO_KEY, username="key", client_id="rhizo-watcher")
        try:
            assert pi.connected.is_set() and native.connected.is_set(), broker.log_tail()
            assert watcher.subscribe("acme/rhizo") == [1]
            t1, t2, t3 = "2024-05-01T12:00:01Z", "2024-05-01T12:00:02Z", "2024-05-01T12:00:03Z"
            for payload in (json.dumps({"update": {"$t": t1, "temp": 20.5, "hum": 40}}),
                            f"s,temp,{t2},21.5", f"d,hum,{t3},41"):
                pi.publish("acme/rhizo", payload)
            native.publish("acme/native", wire.batch_message([("temp", 20.5, t1), ("hum", 40, t1)]))
            native.publish("acme/native", wire.update_message("temp", 21.5, t2))
            got = watcher.wait_messages(3)
            assert [p for _, p in got][2] == f"d,hum,{t3},41".encode()  # delivered to subscribers as sent
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (len(revisions_of(db, "acme/rhizo/temp")) < 2
                                                    or len(revisions_of(db, "acme/native/temp")) < 2):
                time.sleep(0.05)
            for seq in ("temp", "hum"):
                assert revisions_of(db, f"acme/rhizo/{seq}") == revisions_of(db, f"acme/native/{seq}")
            assert len(revisions_of(db, "acme/rhizo/hum")) == 1  # the d, line was not stored
        finally:
            for c in (pi, native, watcher):
                c.close()
        # HTTP: Basic with the key as the password; PUT /resources with values (rhizo's form)
        with start_http_server(broker.settings, broker.settings_path) as srv:
            basic = {"Authorization": "Basic " + base64.b64encode(f"key:{RHIZO_KEY}".encode()).decode()}
            t4 = "2024-05-01T12:00:04Z"
            r = requests.put(srv.api("/resources"), data={"values": json.dumps(
                {"/acme/rhizo/temp": 22.5, "/acme/rhizo/hum": "42"}), "timestamp": t4}, headers=basic)
            assert r.status_code == 200, r.text
            assert r.json()["stored"] == 2
            bearer = {"Authorization": f"Bearer {native_key}"}
            for seq, v in (("temp", 22.5), ("hum", "42")):
                n = requests.put(srv.api(f"/resources/acme/native/{seq}"), json={"value": v, "timestamp": t4},
                                 headers=bearer)
                assert n.status_code == 200, n.text
            for seq in ("temp", "hum"):
                assert revisions_of(db, f"acme/rhizo/{seq}") == revisions_of(db, f"acme/native/{seq}")
            # JSON works too; another controller's sequences are out of reach (not even seen)
            r = requests.put(srv.api("/resources"), json={"values": {"/acme/rhizo/temp": 23}}, headers=basic)
            assert r.status_code == 200 and r.json()["values"][0]["stored"], r.text
            r = requests.put(srv.api("/resources"), json={"values": {"/acme/rhizo/temp": 1, "/acme/native/temp": 1}},
                             headers=basic)
            assert r.status_code == 404, r.text
            r = requests.put(srv.api("/resources"), json={"values": {"/acme/rhizo/temp": 1, "/acme/rhizo/nope": 1}},
                             headers=basic)
            assert r.status_code == 404 and "acme/rhizo/nope" in r.text
            assert len(revisions_of(db, "acme/rhizo/temp")) == 4  # all or nothing
            me = requests.get(srv.api("/me"), headers=basic)
            assert me.status_code == 200 and me.json()["controller"] == "acme/rhizo"
            bad = {"Authorization": "Basic " + base64.b64encode(b"key:" + b"x" * 54).decode()}
            assert requests.get(srv.api("/me"), headers=bad).status_code == 401
    finally:
        db.dispose()


def test_imported_keys_are_checked_like_native_ones(db: Database) -> None:
    with db.session() as s:
        users.create_organization(s, "acme")
        resources.create(s, "acme/pi", "controller")
        row = keys.import_key(s, RHIZO_KEY, controller_path="acme/pi")
        assert row.secret_hash != RHIZO_KEY and credentials.key_prefix(RHIZO_KEY) == row.prefix
        with pytest.raises(Conflict):
            keys.import_key(s, RHIZO_KEY, controller_path="acme/pi")
        for bad in ("short", "hk_" + "a" * 50, "has spaces " * 5, "hbt1." + "a" * 50):
            with pytest.raises(BadRequest):
                keys.import_key(s, bad, controller_path="acme/pi")
    with db.session() as s:
        assert keys.verify(s, RHIZO_KEY).controller_id is not None
        with pytest.raises(Unauthenticated):
            keys.verify(s, RHIZO_KEY[:-1] + "Z")
        keys.revoke(s, row.prefix)
    with db.session() as s, pytest.raises(Unauthenticated):
        keys.verify(s, RHIZO_KEY)


def test_import_key_command(settings_factory: Callable[..., Any], capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    from hub import cli

    settings, path = settings_factory()
    monkeypatch.setenv("HUB_SETTINGS", str(path))  # `--settings` sets it for the process: undone after
    assert cli.main(["--settings", str(path), "--init-db"]) == 0
    assert cli.main(["--settings", str(path), "--create-org", "acme"]) == 0
    assert cli.main(["--settings", str(path), "--import-key", RHIZO_KEY, "--controller", "acme/pi"]) == 0
    assert "imported key" in capsys.readouterr().out
    assert cli.main(["--settings", str(path), "--import-key", RHIZO_KEY, "--controller", "acme/pi"]) == 2
    assert "already imported" in capsys.readouterr().err
    d = Database(settings.database_url)
    try:
        with d.session() as s:
            assert keys.verify(s, RHIZO_KEY) is not None
            assert resources.get(s, "acme/pi/status/processor_usage").type == "sequence"
    finally:
        d.dispose()
