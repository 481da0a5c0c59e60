"""The watchdog: one alert after a controller's silence, one "back online" when it
returns, never one per check. Storage rules with an explicit clock (SQLite and
PostgreSQL), then end to end through Mosquitto, the notifier and a real SMTP server
with the check interval shortened to 0.2 s and the silence made by moving the last-heard
time back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import requests

from hub.errors import BadRequest, Unprocessable
from hub.settings import load
from hub.storage import controllers, resources, users
from hub.storage.db import Database
from hub.storage.models import ControllerStatus
from tests.fixtures.http import People, RunningHttp, seed_people, start_http_server
from tests.support import free_port, write_settings_file
from tests.support.notify import World, notify_world, wait_for

T0 = datetime(2024, 5, 1, 12, 0, 0)


def test_alert_once_after_silence_then_back_online_once(db: Database) -> None:
    with db.session() as s:
        users.create_organization(s, "acme")
        c = resources.create(s, "acme/pi", "controller")
        resources.create(s, "acme/pi/sub", "folder")
        controllers.set_watchdog(s, c, 5, ["a@example.com", "+15551230001"], now=T0)
    with db.session() as s:
        assert controllers.record_activity(s, {"acme/pi/sub": T0, "acme/elsewhere": T0}) == 1
    at = [T0 + timedelta(minutes=m) for m in (4, 6, 7, 60)]
    with db.session() as s:
        assert controllers.claim_alerts(s, at[0]) == []  # 4 min: still fine
    with db.session() as s:
        (alert,) = controllers.claim_alerts(s, at[1])
    assert (alert.path, alert.back_online, alert.minutes) == ("acme/pi", False, 5)
    assert alert.recipients == ["a@example.com", "+15551230001"] and alert.last_message_at == T0
    for when in at[2:]:
        with db.session() as s:
            assert controllers.claim_alerts(s, when) == []  # one alert per silence
    back = T0 + timedelta(minutes=61)
    with db.session() as s:
        controllers.record_activity(s, {"acme/pi": back})
    with db.session() as s:
        (alert,) = controllers.claim_alerts(s, back + timedelta(seconds=1))
    assert alert.back_online and alert.last_message_at == back
    with db.session() as s:
        assert controllers.claim_alerts(s, back + timedelta(minutes=2)) == []  # heard: no new alert yet
        assert controllers.describe(s, resources.get(s, "acme/pi"))["watchdog"]["alerted_at"] is None


def test_watchdog_settings_are_checked_and_a_silent_new_controller_counts_from_setup(db: Database) -> None:
    with db.session() as s:
        users.create_organization(s, "acme")
        c = resources.create(s, "acme/pi", "controller")
        with pytest.raises(BadRequest):
            controllers.set_watchdog(s, c, 0, ["a@example.com"])
        with pytest.raises(Unprocessable):  # a rule the API document cannot state: 422
            controllers.set_watchdog(s, c, 10, [])
        controllers.set_watchdog(s, c, 10, ["a@example.com"], now=T0)
    with db.session() as s:
        assert controllers.claim_alerts(s, T0 + timedelta(minutes=9)) == []
        (alert,) = controllers.claim_alerts(s, T0 + timedelta(minutes=11))
        assert alert.last_message_at is None
        controllers.set_watchdog(s, resources.get(s, "acme/pi"), None, [])  # off
    with db.session() as s:
        assert controllers.claim_alerts(s, T0 + timedelta(days=1)) == []


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with notify_world(tmp_path_factory.mktemp("watchdog"), controllers=1) as w:
        yield w


def status_of(w: World) -> ControllerStatus:
    with w.db.session() as s:
        st = s.get(ControllerStatus, resources.get(s, "acme/pi-01").id)
        assert st is not None
        return st


def test_watchdog_end_to_end(world: World) -> None:
    alice = world.emails["alice"]
    with world.db.session() as s:
        controllers.set_watchdog(s, resources.get(s, "acme/pi-01"), 1, [alice, "+15551230001"])
    pi = world.controller("pi-01")
    try:
        # a command *to* the controller does not count as hearing from it
        received = world.notifier.received
        pi.publish("acme/pi-01", json.dumps({"type": "set_relay", "parameters": {"on": True}}))
        assert wait_for(lambda: world.notifier.received > received)
        world.notifier.check_watchdogs()  # records what it heard (here: nothing)
        assert status_of(world).last_message_at is None
        pi.publish("acme/pi-01", json.dumps({"update": {"temp": 21.5}}))  # rhizo form counts
        assert wait_for(lambda: status_of(world).last_message_at is not None)
        # silence: pretend it was last heard 2 minutes ago
        with world.db.session() as s:
            st = s.get(ControllerStatus, resources.get(s, "acme/pi-01").id)
            st.last_message_at -= timedelta(minutes=2)  # type: ignore[operator]
        mails = world.smtp.wait(1)
        assert [m.message["Subject"] for m in mails] == ["[hub] acme/pi-01 is silent"]
        assert mails[0].rcpt_tos == [alice]
        assert "no more alerts until then" in mails[0].message.get_payload(decode=True).decode()
        assert [m["Body"][:23] for m in world.sms.wait(1)] == ["hub: acme/pi-01 silent "]
        assert [world.notifier.check_watchdogs() for _ in range(5)] == [0] * 5  # still one alert
        assert len(world.smtp.mails) == 1 and len(world.sms.received) == 1
        pi.publish("acme/pi-01", "s,temp,,22.0")  # heard again (rhizo text line)
        mails = world.smtp.wait(2)
        assert [m.message["Subject"] for m in mails][1:] == ["[hub] acme/pi-01 is back online"]
        assert len(world.sms.wait(2)) == 2
        assert [world.notifier.check_watchdogs() for _ in range(5)] == [0] * 5
        assert len(world.smtp.mails) == 2 and len(world.sms.received) == 2
    finally:
        pi.close()
    assert [r.status for r in world.outgoing("watchdog:acme/pi-01")] == ["sent"] * 4
    assert world.notifier.stats.alerts == 2


# -- the HTTP routes: /controllers/{path}, /watchdog/{path}, /users/{id}/phone ----------------
@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHttp, People]]:
    root = tmp_path_factory.mktemp("watchdog-http")
    path = write_settings_file(root / "config.py", {
        "DATA_DIR": str(root / "data"), "SECRET_KEY": "w" * 48, "PASSWORD_HASH_ROUNDS": 4,
        "HTTP_PORT": free_port(), "MQTT_PORT": free_port()})
    with start_http_server(load(path, env={}), path) as srv:
        yield srv, seed_people(srv.settings)


def test_watchdog_and_status_routes(api: tuple[RunningHttp, People]) -> None:
    srv, people = api
    url = srv.api("/watchdog/acme/site/pi-01")
    writer, member = people.auth("writer"), people.auth("member")
    ok = requests.put(url, json={"minutes": 15, "recipients": [people.emails["member"].upper()]}, headers=writer)
    assert ok.status_code == 200, ok.text
    assert ok.json()["watchdog"] == {"minutes": 15, "recipients": [people.emails["member"]], "alerted_at": None}
    stranger = requests.put(url, json={"minutes": 15, "recipients": [people.emails["outsider"]]}, headers=writer)
    assert stranger.status_code == 422 and "NOTIFY_ANY_RECIPIENT" in stranger.json()["error"]["message"]
    assert requests.put(url, json={"minutes": 15, "recipients": [people.emails["member"]]},
                        headers=member).status_code == 403
    assert requests.put(url, json={"minutes": 0, "recipients": ["x"]}, headers=writer).status_code == 400
    assert requests.put(url, json={"recipients": []}, headers=writer).status_code == 400
    assert requests.put(srv.api("/watchdog/acme/site"), json={"minutes": None}, headers=writer).status_code == 409
    got = requests.get(srv.api("/controllers/acme/site/pi-01"), headers=member)
    assert got.status_code == 200 and got.json()["watchdog"]["minutes"] == 15
    assert got.json()["last_message"] is None and got.json()["status"] is None
    assert requests.get(srv.api("/controllers/acme/site/pi-01"), headers=people.auth("outsider")).status_code == 404
    off = requests.put(url, json={"minutes": None}, headers=writer)
    assert off.status_code == 200 and off.json()["watchdog"] == {"minutes": None, "recipients": [],
                                                                  "alerted_at": None}


def test_phone_numbers_are_the_users_own(api: tuple[RunningHttp, People]) -> None:
    srv, people = api
    me, other = people.users["writer"], people.users["member"]
    r = requests.put(srv.api(f"/users/{me}/phone"), json={"phone": "+1 (555) 010-2030"}, headers=people.auth("writer"))
    assert r.status_code == 200 and r.json() == {"user_id": me, "phone": "+15550102030"}
    assert requests.put(srv.api(f"/users/{other}/phone"), json={"phone": "+15550102031"},
                        headers=people.auth("writer")).status_code == 403
    assert requests.put(srv.api(f"/users/{me}/phone"), json={"phone": "call me"},
                        headers=people.auth("writer")).status_code == 400
    assert requests.put(srv.api(f"/users/{other}/phone"), json={"phone": "+15550102031"},
                        headers=people.auth("admin")).status_code == 200
    assert requests.get(srv.api(f"/users/{other}/phone"), headers=people.auth("member")).json()["phone"] == \
        "+15550102031"
    # now the number is a valid watchdog recipient
    r = requests.put(srv.api("/watchdog/acme/site/pi-01"), json={"minutes": 5, "recipients": "+1 555 010 2031"},
                     headers=people.auth("writer"))
    assert r.status_code == 200 and r.json()["watchdog"]["recipients"] == ["+15550102031"], r.text
