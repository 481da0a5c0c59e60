"""The HTTP API with the real Mosquitto and the real plugin: a browser's
token round trip over websockets, publishing over HTTP, key revocation
kicking a live connection, and /health and /metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.fixtures.http import PASSWORD, People, RunningHttp, seed_people, start_http_server
from tests.support.broker import RunningBroker, mqtt_client

FOLDER = "acme/site/pi-01"


@pytest.fixture
def stack(broker: RunningBroker) -> Iterator[tuple[RunningHttp, People, RunningBroker]]:
    with start_http_server(broker.settings, broker.settings_path) as srv:
        people = seed_people(srv.settings)
        broker.sync()  # the plugin has seen the people and keys
        yield srv, people, broker


def _browser_login(srv: RunningHttp, email: str) -> tuple[requests.Session, str]:
    s = requests.Session()
    r = s.post(srv.api("/login"), json={"email": email, "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    return s, r.json()["csrf_token"]


def test_browser_token_round_trip_over_websockets(stack: tuple[RunningHttp, People, RunningBroker]) -> None:
    srv, people, broker = stack
    s, csrf = _browser_login(srv, people.emails["member"])
    assert s.post(srv.api("/mqtt-token"), timeout=30).status_code == 403  # no CSRF token
    r = s.post(srv.api("/mqtt-token"), headers={"X-CSRF-Token": csrf}, timeout=30)
    assert r.status_code == 200, r.text
    tok = r.json()
    assert tok["url"] == f"ws://{broker.host}:{broker.ws_port}"
    assert tok["expires_at"] - time.time() == pytest.approx(broker.settings.MQTT_TOKEN_TTL, abs=5)
    browser = mqtt_client(broker, tok["token"], username=tok["username"], transport="websockets")
    controller = mqtt_client(broker, people.keys["controller"], username=FOLDER)
    try:
        assert browser.connected.is_set(), broker.log_tail()
        assert browser.subscribe(FOLDER + "/#")[0] < 128 and browser.subscribe(FOLDER)[0] < 128
        update = {"type": "update_sequence", "parameters": {"sequence": "temp", "value": 21.5}}
        controller.publish(FOLDER, json.dumps(update))
        topic, payload = browser.wait_messages(1, timeout=10)[0]
        assert topic == FOLDER and json.loads(payload) == update
    finally:
        browser.close()
        controller.close()
    # a tampered token is refused by the broker
    bad = mqtt_client(broker, tok["token"][:-2] + "xx", username=tok["username"], transport="websockets")
    try:
        assert not bad.connected.is_set()
    finally:
        bad.close()


def test_messages_published_for_writers_only(stack: tuple[RunningHttp, People, RunningBroker]) -> None:
    srv, people, broker = stack
    controller = mqtt_client(broker, people.keys["controller"], username=FOLDER)
    try:
        assert controller.subscribe(FOLDER)[0] < 128
        body = {"folder": FOLDER, "type": "set_relay", "parameters": {"relay": 2, "on": True}}
        r = requests.post(srv.api("/messages"), json=body, headers=people.auth("writer"), timeout=30)
        assert r.status_code == 202, r.text
        topic, payload = controller.wait_messages(1, timeout=10)[0]
        assert topic == FOLDER and json.loads(payload) == {"type": "set_relay",
                                                             "parameters": {"relay": 2, "on": True}}
        assert requests.post(srv.api("/messages"), json=body, headers=people.auth("member"),
                             timeout=30).status_code == 403
        assert requests.post(srv.api("/messages"), json=body, headers=people.auth("outsider"),
                             timeout=30).status_code == 404
        long_type = {**body, "type": "x" * 41}
        assert requests.post(srv.api("/messages"), json=long_type, headers=people.auth("writer"),
                             timeout=30).status_code == 400
        last = {**body, "parameters": {"relay": 3, "on": False}}
        assert requests.post(srv.api("/messages"), json=last, headers=people.auth("writer"),
                             timeout=30).status_code == 202
        got = controller.wait_messages(2, timeout=10)  # in order: whatever got through came before it
        assert [json.loads(p)["parameters"] for _, p in got] == [{"relay": 2, "on": True}, {"relay": 3, "on": False}]
    finally:
        controller.close()


def test_revoking_a_key_over_http_kicks_its_connection(stack: tuple[RunningHttp, People, RunningBroker]) -> None:
    srv, people, broker = stack
    controller = mqtt_client(broker, people.keys["controller"], username=FOLDER)
    try:
        assert controller.connected.is_set()
        admin = people.auth("orgadmin")
        keys = requests.get(srv.api(f"/keys?controller={FOLDER}"), headers=admin, timeout=30).json()["keys"]
        live = [k for k in keys if not k["revoked"]]
        assert len(live) == 1 and people.keys["controller"].split("_")[1] == live[0]["prefix"]
        r = requests.delete(srv.api(f"/keys/{live[0]['prefix']}"), headers=admin, timeout=30)
        assert r.status_code == 200 and r.json()["revoked_by"] == people.users["orgadmin"]
        assert controller.disconnected.wait(10), broker.log_tail()
    finally:
        controller.close()
    assert requests.get(srv.api("/me"), headers=people.auth("controller"), timeout=30).status_code == 401


PROXIED = {"X-Forwarded-For": "203.0.113.9"}  # what nginx adds to an outsider's request


def test_health_and_metrics(stack: tuple[RunningHttp, People, RunningBroker]) -> None:
    srv, people, _ = stack
    admin = {**PROXIED, **people.auth("admin")}
    deadline = time.monotonic() + 10
    while True:
        h: dict[str, Any] = requests.get(srv.api("/health"), headers=admin, timeout=30).json()
        if h["status"] == "ok" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert h["status"] == "ok", h
    assert all(c["ok"] for c in h["checks"].values()) and "connected" in h["checks"]["broker"]["detail"]
    assert "persister" in h and "broker_plugin" in h
    deadline = time.monotonic() + 10  # the plugin writes its counters every few seconds
    while h["broker_plugin"] is None and time.monotonic() < deadline:
        time.sleep(0.3)
        h = requests.get(srv.api("/health"), headers=admin, timeout=30).json()
    assert isinstance(h["broker_plugin"], dict) and "age_s" in h["broker_plugin"], h
    anonymous = requests.get(srv.api("/health"), headers=PROXIED, timeout=30)
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok", "failing": []}
    requests.get(srv.api("/me"), headers=people.auth("admin"), timeout=30)
    text = requests.get(srv.url + "/metrics", timeout=30).text
    assert 'hub_http_requests_total{method="GET",route="/api/v1/me",status="200"}' in text
    assert 'hub_http_request_seconds_bucket{le="0.005",method="GET",route="/api/v1/me"}' in text
    assert "hub_broker_plugin_age_s " in text  # the plugin's counters, read at scrape time


def test_health_without_broker_is_degraded(http_server_factory: Any) -> None:
    from tests.support import free_port

    srv = http_server_factory(MQTT_PORT=free_port())
    people = seed_people(srv.settings)
    h = requests.get(srv.api("/health"), timeout=30)  # direct, from this machine: the detail
    assert h.status_code == 200 and h.json()["status"] == "degraded" and h.json()["failing"] == ["broker"]
    assert not h.json()["checks"]["broker"]["ok"] and h.json()["checks"]["database"]["ok"]
    for who in ("anonymous", "member", "controller"):  # through the proxy: the status and the part's name
        for path in (srv.api("/health"), srv.url + "/health"):
            r = requests.get(path, headers={**PROXIED, **people.auth(who)}, timeout=30)
            assert r.status_code == 200 and r.json() == {"status": "degraded", "failing": ["broker"]}, (who, r.text)
    r = requests.get(srv.api("/health"), headers={**PROXIED, "Authorization": "Bearer hk_stale"}, timeout=30)
    assert r.status_code == 200 and r.json() == {"status": "degraded", "failing": ["broker"]}
    admin = requests.get(srv.api("/health"), headers={**PROXIED, **people.auth("admin")}, timeout=30).json()
    assert not admin["checks"]["broker"]["ok"] and "persister" in admin and "broker_plugin" in admin


def test_log_out_ends_the_live_feed_of_that_session(stack: tuple[RunningHttp, People, RunningBroker]) -> None:
    """The MQTT token belongs to the session that asked for it: logging out closes the
    websocket made with it (within 2 s) and the token no longer connects."""
    srv, people, broker = stack
    sessions = [_browser_login(srv, people.emails["member"]) for _ in range(2)]
    tokens = [s.post(srv.api("/mqtt-token"), headers={"X-CSRF-Token": csrf}, timeout=30).json()
              for s, csrf in sessions]
    feeds = [mqtt_client(broker, t["token"], username=t["username"], transport="websockets") for t in tokens]
    try:
        assert all(f.connected.is_set() for f in feeds), broker.log_tail()
        s, csrf = sessions[0]
        assert s.post(srv.api("/logout"), timeout=30).status_code == 204
        t0 = time.monotonic()
        assert feeds[0].disconnected.wait(2.0), broker.log_tail()
        assert time.monotonic() - t0 < 2.0
        assert not feeds[1].disconnected.is_set()  # the other session goes on
        again = mqtt_client(broker, tokens[0]["token"], username=tokens[0]["username"], transport="websockets")
        try:
            assert not again.connected.is_set()
        finally:
            again.close()
        assert broker.wait_log("its session was logged out")
    finally:
        for f in feeds:
            f.close()
