"""rhizo-server's terms and hashes without a rhizo database: the mapping rules, the key
and password checks, and the broker policy's handling of imported rhizo keys on a
snapshot loaded from a real (SQLite) database."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import requests
from sqlalchemy import select

from hub.broker_auth import rhizo_keys as broker_rhizo
from hub.broker_auth.policy import ACL_WRITE, Policy
from hub.broker_auth.snapshot import load
from hub.rhizo_import import keys as rhizo
from hub.rhizo_import import mapping
from hub.rhizo_import.history import storage_path
from hub.settings import load as load_settings
from hub.storage import changes, resources, users
from hub.storage.db import Database
from hub.storage.models import ApiKey, Level, RhizoKey
from tests.fixtures.http import People, RunningHttp, seed_people, start_http_server
from tests.support import free_port, write_settings_file
from tests.support.rhizo_db import SALT, bcrypt_inner, inner

KEY = "tst" + "K7" * 25
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_names_attributes_values_and_permissions_map_to_the_hubs() -> None:
    assert mapping.safe_name("pi 02") == "pi_02" and mapping.safe_name("..") == "_"
    assert mapping.safe_name("a.b") == "a.b"
    spec, extra = mapping.sequence_spec({"data_type": 1, "decimal_places": 2, "units": "degrees C",
                                         "max_history": 500, "min_storage_interval": 30})
    assert (spec.data_type, spec.decimal_places, spec.units, spec.max_history) == ("numeric", 2, "degrees C", 500)
    assert extra == {"min_storage_interval": 30}
    assert mapping.sequence_spec({"data_type": 3})[0].data_type == "image"
    assert mapping.sequence_spec({"data_type": "x", "decimal_places": 99})[0].data_type == "text"
    assert mapping.sequence_spec({"decimal_places": 99})[0].decimal_places is None
    assert mapping.sequence_value("numeric", b"21.5") == 21.5
    assert mapping.sequence_value("numeric", b"nan") is None and mapping.sequence_value("numeric", b"x") is None
    assert mapping.sequence_value("text", "grüß".encode()) == "grüß"
    assert mapping.sequence_value("image", b"\x89PNG") == b"\x89PNG"
    t = datetime(2024, 1, 1)
    first = mapping.timestamps_us(None, t)
    assert first == 1_704_067_200_000_000 and mapping.timestamps_us(first, t) == first + 1
    grants, skipped = mapping.grants('[[110, 1, 20], [120, 1, 10], [130, 5, 10], [140, 9, 20], [100, 0, 10], '
                                     '[130, 5, 0], "x"]')
    assert [(g.kind, g.source_id, g.level) for g in grants] == [
        ("organization", 1, Level.WRITE), ("org_controllers", 1, Level.READ), ("user", 5, Level.READ),
        ("controller", 9, Level.WRITE)]
    assert sorted(skipped) == ["malformed permission records", "public permissions (the hub has no anonymous access)"]
    assert mapping.grants("not json") == ([], ["permissions that are not JSON"])
    assert storage_path(1, 13, 3023) == "1/000/000/013/13_3023"
    assert storage_path(7, 1_234_567_890, 5) == "7/234/567/890/1234567890_5"


def test_rhizo_key_and_password_hashes() -> None:
    assert rhizo.key_part(KEY) == "tst7K7"
    assert rhizo.fast_match(KEY, SALT, inner(KEY)) and not rhizo.fast_match(KEY, "other salt", inner(KEY))
    assert not rhizo.fast_match(KEY, "", inner(KEY, ""))  # no RHIZO_SALT: nothing matches
    slow = bcrypt_inner(KEY)
    assert not rhizo.fast_match(KEY, SALT, slow)  # never bcrypt on the fast path
    assert rhizo.slow_match(KEY, SALT, slow) and not rhizo.slow_match(KEY + "X", SALT, slow)
    assert not rhizo.slow_match(KEY, SALT, "$2b$12$broken")
    prefix = rhizo.prefix_for(42)
    assert prefix == rhizo.prefix_for(42) != rhizo.prefix_for(43) and len(prefix) == 10 and prefix.startswith("rz")
    stored = rhizo.stored_password(bcrypt_inner("a password 1"))
    assert stored.startswith(rhizo.PASSWORD_TAG)
    assert rhizo.password_matches("a password 1", SALT, stored) and not rhizo.password_matches("nope", SALT, stored)
    assert rhizo.stored_password("5f4dcc3b5aa765d61d8327deb882cf99") == rhizo.UNUSABLE_PASSWORD
    assert not users.password_ok(rhizo.UNUSABLE_PASSWORD, "anything", rhizo_salt=SALT)
    assert users.password_ok(stored, "a password 1", rhizo_salt=SALT)
    assert not users.password_ok(stored, "a password 1")  # without RHIZO_SALT


def _import_key(db: Database, controller: str, stored: str, source_id: int) -> str:
    with db.session() as s:
        c = resources.get(s, controller)
        prefix = rhizo.prefix_for(source_id)
        s.add(ApiKey(prefix=prefix, secret_hash=rhizo.PLACEHOLDER_HASH, controller_id=c.id,
                     organization_id=c.organization_id))
        s.flush()
        s.add(RhizoKey(prefix=prefix, key_part=rhizo.key_part(KEY), key_hash=stored))
        changes.record(s, "key", prefix)
    return prefix


@sqlite_only
def test_policy_accepts_a_fast_hashed_rhizo_key_and_queues_a_bcrypt_one(db: Database) -> None:
    with db.session() as s:
        users.create_organization(s, "lab")
        resources.create(s, "lab/pi", "controller")
        resources.create(s, "lab/pi2", "controller")
    prefix = _import_key(db, "lab/pi", inner(KEY), 1)
    other = "tst" + "Q7" + "K7" * 24  # the same key_part as KEY, another key
    assert rhizo.key_part(other) == rhizo.key_part(KEY)
    _import_key(db, "lab/pi2", bcrypt_inner(other), 2)
    with db.session() as s:
        snap = load(s)
    queued: list[str] = []
    lines: list[str] = []
    pol = Policy("s" * 48, snap, lambda _lvl, line: lines.append(line), rhizo_salt=SALT,
                 rhizo_slow_check=lambda key: queued.append(key) or True)
    assert pol.authenticate("h1", "c1", "key", KEY)
    assert pol.check("h1", ACL_WRITE, b"lab/pi") and not pol.check("h1", ACL_WRITE, b"lab/pi2")
    assert pol.clients["h1"].key_prefix == prefix
    assert not pol.authenticate("h2", "c2", "key", other) and queued == [other]  # checked off this thread
    assert "rhizo kept as bcrypt" in lines[-1] and other not in lines[-1]  # never the secret in a log
    assert not Policy("s" * 48, snap, lambda *_: None).authenticate("h3", "c3", "key", KEY)  # no RHIZO_SALT
    with db.session() as s:  # revoked: the next snapshot kicks the live connection
        s.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).one().revoked_at = datetime(2025, 1, 1)
        changes.record(s, "key", prefix)
    with db.session() as s:
        assert pol.install(load(s)) == ["c1"]


@sqlite_only
def test_slow_checks_are_bounded_and_upgrade_a_matching_key(db: Database) -> None:
    with db.session() as s:
        users.create_organization(s, "lab")
        resources.create(s, "lab/pi", "controller")
    prefix = _import_key(db, "lab/pi", bcrypt_inner(KEY), 1)
    done: list[str] = []
    checks = broker_rhizo.SlowChecks(db, SALT, per_minute=1, log=done.append)
    try:
        assert checks.submit(KEY)
        assert not checks.submit(KEY[:-4] + "ZZ" + KEY[-2:])  # this minute's budget is spent
        deadline = time.monotonic() + 30
        while not done and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done and prefix in done[0], done
        with db.session() as s:
            assert s.get(RhizoKey, prefix).key_hash == inner(KEY)  # type: ignore[union-attr]
    finally:
        checks.stop()


@sqlite_only
def test_http_bcrypt_checks_are_budgeted(db: Database) -> None:
    with db.session() as s:
        users.create_organization(s, "lab")
        resources.create(s, "lab/pi", "controller")
    prefix = _import_key(db, "lab/pi", bcrypt_inner(KEY), 1)
    wrong = "tst" + "Q7" + "K7" * 24  # the same key_part, another secret
    budget = rhizo.Budget(1)
    with db.session() as s:
        assert rhizo.verify(s, wrong, SALT, budget) is None  # spends the minute's one bcrypt check
        assert rhizo.verify(s, KEY, SALT, budget) is None  # refused until the next minute
        assert rhizo.verify(s, "hk_" + "a" * 60, SALT, budget) is None  # not a rhizo key at all
    with db.session() as s:
        row = rhizo.verify(s, KEY, SALT, rhizo.Budget(1))
        assert row is not None and row.prefix == prefix
    with db.session() as s:  # upgraded: the fast path needs no budget now
        assert rhizo.verify(s, KEY, SALT, rhizo.Budget(0)) is not None


# -- rhizo's key routes (hub/http/rhizo/keys.py) through the real HTTP server ----------------
@pytest.fixture(scope="module")
def key_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHttp, People, int]]:
    root = tmp_path_factory.mktemp("rhizo-keys")
    path = write_settings_file(root / "config.py", {
        "DATA_DIR": str(root / "data"), "SECRET_KEY": "q" * 48, "PASSWORD_HASH_ROUNDS": 4,
        "HTTP_PORT": free_port(), "MQTT_PORT": free_port()})
    with start_http_server(load_settings(path, env={}), path) as srv:
        people = seed_people(srv.settings)
        db = Database(srv.settings.database_url)
        try:
            with db.session() as s:
                controller_id = resources.get(s, people.controller).id
                resources.create(s, "acme/site/pi-02", "controller")  # the organization admin's, by rank
        finally:
            db.dispose()
        yield srv, people, controller_id


def _rhizo(srv: RunningHttp, method: str, path: str, key: str | None, form: dict[str, Any] | None = None
           ) -> requests.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/plain"}
    if key:
        headers["Authorization"] = "Basic " + base64.b64encode(f"resource_client:{key}".encode()).decode()
    return requests.request(method, srv.api(path), data=form or {}, headers=headers, timeout=30)


def test_rhizo_s_form_creates_a_controller_key_shown_once_and_stored_hashed(
        key_server: tuple[RunningHttp, People, int]) -> None:
    srv, people, controller_id = key_server
    r = _rhizo(srv, "POST", "/keys", people.keys["orgadmin"], {"access_as_controller_id": controller_id})
    assert r.status_code == 200, r.text
    made = r.json()
    assert made["status"] == "ok" and isinstance(made["id"], int) and made["secret_key"].startswith("hk_")
    me = _rhizo(srv, "GET", "/resources/self", made["secret_key"], {"meta": 1})
    assert me.status_code == 200 and me.json()["path"] == "/" + people.controller  # it works as the controller
    db = Database(srv.settings.database_url)
    try:
        with db.session() as s:
            row = s.get(ApiKey, made["id"])
            assert row is not None and row.controller_id == controller_id
            assert made["secret_key"] not in row.secret_hash and row.secret_hash != made["secret_key"]
    finally:
        db.dispose()
    listed = _rhizo(srv, "GET", "/keys", people.keys["orgadmin"], {"access_as_controller_id": controller_id})
    assert listed.status_code == 200
    entry = listed.json()[str(made["id"])]
    assert entry["access_as_controller_id"] == controller_id and entry["revocation_timestamp"] == ""
    assert entry["creation_timestamp"].endswith("Z") and isinstance(entry["organization_id"], int)
    assert made["secret_key"] not in listed.text and "secret" not in listed.text
    every = _rhizo(srv, "GET", "/keys", people.keys["admin"])
    assert every.status_code == 200 and str(made["id"]) in every.json()


def test_who_may_create_list_and_revoke_rhizo_keys(key_server: tuple[RunningHttp, People, int]) -> None:
    srv, people, controller_id = key_server
    form = {"access_as_controller_id": controller_id}
    # the hub's rule: ADMIN on the controller folder (read or write access is not enough), a user's key
    assert _rhizo(srv, "POST", "/keys", people.keys["writer"], form).status_code == 403
    assert _rhizo(srv, "POST", "/keys", people.keys["outsider"], form).status_code == 404
    assert _rhizo(srv, "POST", "/keys", people.keys["controller"], form).status_code == 403
    assert _rhizo(srv, "POST", "/keys", None, form).status_code == 403
    assert _rhizo(srv, "GET", "/keys", people.keys["writer"], form).status_code == 403
    assert _rhizo(srv, "GET", "/keys", people.keys["orgadmin"]).status_code == 403  # every key: admins only
    # bad input: a clear 400, nothing made
    before = _rhizo(srv, "GET", "/keys", people.keys["admin"]).json()
    for bad in ({}, {"access_as_controller_id": "x"}, {"access_as_controller_id": 0},
                {"access_as_controller_id": controller_id, "access_as_user_id": people.users["member"]},
                {**form, "key": "tst" + "K7" * 25}):
        r = _rhizo(srv, "POST", "/keys", people.keys["admin"], bad)
        assert r.status_code == 400, (bad, r.text)
    site = _rhizo(srv, "GET", "/resources/acme/site", people.keys["admin"], {"meta": 1}).json()["id"]
    assert _rhizo(srv, "POST", "/keys", people.keys["admin"], {"access_as_controller_id": site}).status_code == 400
    assert _rhizo(srv, "POST", "/keys", people.keys["admin"], {"access_as_controller_id": 999999}).status_code == 404
    assert _rhizo(srv, "GET", "/keys", people.keys["admin"]).json() == before
    # user keys: your own, or anyone's as a system admin
    own = _rhizo(srv, "POST", "/keys", people.keys["member"], {"access_as_user_id": people.users["member"],
                                                               "organization_id": 1})
    assert own.status_code == 200, own.text
    assert _rhizo(srv, "POST", "/keys", people.keys["member"],
                  {"access_as_user_id": people.users["writer"]}).status_code == 403
    assert _rhizo(srv, "POST", "/keys", people.keys["admin"],
                  {"access_as_user_id": people.users["writer"]}).status_code == 200
    # revoking: the owner, ADMIN on the controller, a system admin; never by an outsider
    made = _rhizo(srv, "POST", "/keys", people.keys["orgadmin"], form).json()
    assert _rhizo(srv, "DELETE", f"/keys/{made['id']}", people.keys["writer"]).status_code == 403
    assert _rhizo(srv, "DELETE", f"/keys/{own.json()['id']}", people.keys["outsider"]).status_code == 404
    assert _rhizo(srv, "DELETE", "/keys/99999999", people.keys["admin"]).status_code == 404
    assert _rhizo(srv, "GET", "/resources/self", made["secret_key"], {"meta": 1}).status_code == 200
    r = _rhizo(srv, "DELETE", f"/keys/{made['id']}", people.keys["orgadmin"], {"delete": 1})
    assert r.status_code == 200 and r.json() is None
    assert _rhizo(srv, "GET", "/resources/self", made["secret_key"], {"meta": 1}).status_code in (401, 403)
    assert _rhizo(srv, "DELETE", f"/keys/{own.json()['id']}", people.keys["member"]).status_code == 200
    listed = _rhizo(srv, "GET", "/keys", people.keys["admin"]).json()
    assert listed[str(made["id"])]["revocation_timestamp"].endswith("Z")  # revoked, kept
