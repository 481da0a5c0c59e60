"""PIN provisioning through the real HTTP server: the whole flow, expiry, single use,
wrong pin codes, who may attach, and the rate limit."""

from __future__ import annotations

import dataclasses
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import update

from hub.storage import controllers, resources
from hub.storage.db import Database
from hub.storage.models import Pin, utcnow
from tests.fixtures.http import People, RunningHttp, seed_people, start_http_server
from tests.support import clean_env, free_port, write_settings_file


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHttp]:
    from hub.settings import load

    root = tmp_path_factory.mktemp("pins")
    path = write_settings_file(root / "config.py", {
        "DATA_DIR": str(root / "data"), "SECRET_KEY": "p" * 48, "PASSWORD_HASH_ROUNDS": 4,
        "HTTP_PORT": free_port(), "MQTT_PORT": free_port(), "PIN_MAX_ATTEMPTS": 3})
    with start_http_server(load(path, env={}), path) as srv:
        yield srv


@pytest.fixture(scope="module")
def people(server: RunningHttp) -> People:
    return seed_people(server.settings)


def new_pin(server: RunningHttp) -> tuple[str, str]:
    r = requests.post(server.api("/pins"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert len(body["pin"]) == 6 and len(body["pin_code"]) >= 40 and body["expires_at"].endswith("Z")
    assert r.headers["Cache-Control"] == "no-store"
    return body["pin"], body["pin_code"]


def poll(server: RunningHttp, pin: str, code: str) -> requests.Response:
    return requests.get(server.api(f"/pins/{pin}"), params={"pin_code": code})


def error_code(r: requests.Response) -> str:
    return str(r.json()["error"]["code"])


def test_whole_flow_gives_the_key_exactly_once(server: RunningHttp, people: People) -> None:
    pin, code = new_pin(server)
    assert poll(server, pin, code).json() == {"status": "waiting"}
    r = requests.put(server.api(f"/pins/{pin.lower()[:3]}-{pin.lower()[3:]}"),  # typed loosely by a person
                     json={"controller": "acme/site/pi-new"}, headers=people.auth("writer"))
    assert r.status_code == 200, r.text
    assert r.json()["controller"] == "acme/site/pi-new" and r.json()["pin"] == pin
    got = poll(server, pin, code)
    assert got.status_code == 200 and got.json()["status"] == "ready", got.text
    assert got.json()["controller"] == "acme/site/pi-new"
    key = got.json()["key"]
    me = requests.get(server.api("/me"), headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200 and me.json()["controller"] == "acme/site/pi-new", me.text
    again = poll(server, pin, code)
    assert again.status_code == 409 and error_code(again) == "conflict"
    assert "used once" in again.json()["error"]["message"]
    db = Database(server.settings.database_url)
    try:
        with db.session() as s:
            assert resources.get(s, "acme/site/pi-new").type == "controller"
            for name in controllers.STATUS_SEQUENCES:
                assert resources.get(s, f"acme/site/pi-new/status/{name}").type == "sequence"
            row = s.query(Pin).filter_by(pin=pin).one()
            assert row.key_prefix and row.code_hash != code and row.claimed_at is not None
    finally:
        db.dispose()


def test_wrong_pin_code_is_counted_and_kills_the_pin(server: RunningHttp, people: People) -> None:
    pin, code = new_pin(server)
    assert requests.put(server.api(f"/pins/{pin}"), json={"controller": "acme/site/pi-01"},
                        headers=people.auth("writer")).status_code == 200
    r = poll(server, pin, "x" * 43)
    assert r.status_code == 403 and "2 more tries" in r.json()["error"]["message"]
    assert poll(server, pin, "y").status_code == 403
    assert poll(server, pin, "z").status_code == 404  # the third wrong code kills it
    dead = poll(server, pin, code)  # even the right code now
    assert dead.status_code == 404 and "ask for a new one" in dead.json()["error"]["message"]
    assert requests.get(server.api(f"/pins/{pin}"), params={}).status_code == 400


def test_expired_pin_cannot_be_attached_or_collected(server: RunningHttp, people: People) -> None:
    pin, code = new_pin(server)
    db = Database(server.settings.database_url)
    try:
        with db.session() as s:
            s.execute(update(Pin).where(Pin.pin == pin).values(expires_at=utcnow() - timedelta(seconds=1)))
    finally:
        db.dispose()
    r = requests.put(server.api(f"/pins/{pin}"), json={"controller": "acme/site/pi-01"},
                     headers=people.auth("writer"))
    assert r.status_code == 404 and "expired" in r.json()["error"]["message"]
    assert poll(server, pin, code).status_code == 404
    assert poll(server, "ZZZZZZ", code).status_code == 404
    assert poll(server, "not a pin!", code).status_code == 404


@pytest.mark.parametrize("who,body,status", [
    ("anonymous", {"controller": "acme/site/pi-01"}, 401),
    ("controller", {"controller": "acme/site/pi-01"}, 403),  # keys of controllers cannot attach
    ("member", {"controller": "acme/site/pi-01"}, 403),  # read only
    ("outsider", {"controller": "acme/site/pi-01"}, 404),  # cannot even see it
    ("writer", {"controller": "acme/site"}, 409),  # a folder, not a controller
    ("writer", {"controller": "acme"}, 400),
    ("writer", {}, 400),
])
def test_who_may_attach(server: RunningHttp, people: People, who: str, body: dict, status: int) -> None:
    pin, code = new_pin(server)
    r = requests.put(server.api(f"/pins/{pin}"), json=body, headers=people.auth(who))
    assert r.status_code == status, r.text
    assert poll(server, pin, code).json() == {"status": "waiting"}  # nothing attached


def test_attach_twice_is_a_conflict(server: RunningHttp, people: People) -> None:
    pin, _ = new_pin(server)
    url = server.api(f"/pins/{pin}")
    assert requests.put(url, json={"controller": "acme/site/pi-01"}, headers=people.auth("writer")).status_code == 200
    r = requests.put(url, json={"controller": "acme/site/pi-01"}, headers=people.auth("orgadmin"))
    assert r.status_code == 409 and "already attached" in r.json()["error"]["message"]


def test_asking_for_pins_is_rate_limited(http_server_factory: Callable[..., RunningHttp]) -> None:
    srv = http_server_factory(PIN_CREATE_PER_HOUR=3)
    assert [requests.post(srv.api("/pins")).status_code for _ in range(3)] == [201] * 3
    r = requests.post(srv.api("/pins"))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 3000
    assert "new PINs" in r.json()["error"]["message"]
    # counted in the database: another worker on it refuses too
    with start_http_server(dataclasses.replace(srv.settings, HTTP_PORT=free_port()), migrate_db=False) as other:
        assert requests.post(other.api("/pins")).status_code == 429


def test_controller_client_provisions_and_saves_its_key(server: RunningHttp, people: People, tmp_path: Path) -> None:
    key_file = tmp_path / "etc" / "hub-key"
    proc = subprocess.Popen([sys.executable, "-m", "hub.controller", "--provision", server.url,
                             "--key-file", str(key_file)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=clean_env(), text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.match(r"PIN ([2-9A-Z]{6}):", line)
        assert m, line
        r = requests.put(server.api(f"/pins/{m.group(1)}"), json={"controller": "acme/site/pi-cli"},
                         headers=people.auth("writer"))
        assert r.status_code == 200, r.text
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "provisioned as acme/site/pi-cli" in out
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert key not in out  # never printed
    me = requests.get(server.api("/me"), headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200 and me.json()["controller"] == "acme/site/pi-cli"
