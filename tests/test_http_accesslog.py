"""The access log (common log format, on by default, no credentials) and X-Request-Id."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pytest
import requests

from hub.http.accesslog import redact
from tests.fixtures.http import People, RunningHttp, seed_people

CLF = re.compile(r'^(?P<host>\S+) - - \[(?P<time>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
                 r'"(?P<line>[^"]*)" (?P<status>\d{3}) (?P<size>\d+|-) (?P<rid>\S+) (?P<ms>[\d.]+)ms$')


def _access_lines(caplog: pytest.LogCaptureFixture, marker: str, count: int = 1) -> list[str]:
    """The access-log lines naming `marker`: aiohttp writes them just after the
    response is sent, so wait (bounded) for them to arrive."""
    deadline = time.monotonic() + 15
    while True:
        lines = [r.getMessage() for r in caplog.records if r.name == "hub.http.access" and marker in r.getMessage()]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.01)


@pytest.fixture
def logged(http_server_factory: Any, caplog: pytest.LogCaptureFixture) -> tuple[RunningHttp, People]:
    caplog.set_level(logging.INFO, logger="hub.http.access")
    srv = http_server_factory()
    return srv, seed_people(srv.settings)


def test_access_line_is_common_log_format_without_credentials(
        logged: tuple[RunningHttp, People], caplog: pytest.LogCaptureFixture) -> None:
    srv, people = logged
    key = people.keys["member"]
    r = requests.get(srv.api("/resources/acme/site?limit=5&pin_code=s3cr3t-pin&token=tok123&api_key=k999"),
                     headers={"Authorization": f"Bearer {key}", "Cookie": "hub_session=cookie-value"})
    assert r.status_code == 200
    rid = r.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    [line] = _access_lines(caplog, rid)
    m = CLF.match(line)
    assert m, line
    assert m["host"] == "127.0.0.1" and m["status"] == "200" and m["rid"] == rid
    assert m["line"] == ("GET /api/v1/resources/acme/site?limit=5&pin_code=REDACTED&token=REDACTED"
                         "&api_key=REDACTED HTTP/1.1")
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("s3cr3t-pin", "tok123", "k999", key, key[:20], "cookie-value"):
        assert secret not in everything


def test_request_id_from_the_proxy_when_sane(logged: tuple[RunningHttp, People],
                                             caplog: pytest.LogCaptureFixture) -> None:
    srv, _ = logged
    nginx_like = "5f0c1e2d3b4a69788796a5b4c3d2e1f0"
    r = requests.get(srv.url + "/health", headers={"X-Request-Id": nginx_like})
    assert r.headers["X-Request-Id"] == nginx_like
    assert _access_lines(caplog, nginx_like)
    for bad in ("short", "x" * 65, "has space in it", "evil\tid-with-tab", 'quote"d-request-id', "ünïcode-request"):
        r = requests.get(srv.url + "/health", headers={"X-Request-Id": bad.encode("utf-8")})
        got = r.headers["X-Request-Id"]
        assert got != bad and re.fullmatch(r"[0-9a-f]{32}", got), (bad, got)


def test_errors_and_streams_carry_a_request_id(logged: tuple[RunningHttp, People],
                                               caplog: pytest.LogCaptureFixture) -> None:
    srv, people = logged
    w = people.auth("writer")
    assert requests.post(srv.api("/resources/acme/site/notes"), headers=w,
                         json={"type": "file", "content": "hello"}).status_code == 201
    responses = {
        "unknown route": requests.get(srv.api("/no-such-route")),
        "unauthenticated": requests.get(srv.api("/me")),
        "bad key": requests.get(srv.api("/me"), headers={"Authorization": "Bearer hk_nope"}),
        "file stream": requests.get(srv.api("/resources/acme/site/notes"), headers=w),
    }
    assert [r.status_code for r in responses.values()] == [404, 401, 401, 200]
    assert responses["file stream"].text == "hello"
    ids = {name: r.headers.get("X-Request-Id") for name, r in responses.items()}
    assert all(ids.values()) and len(set(ids.values())) == len(ids), ids
    line = _access_lines(caplog, ids["bad key"])[0]
    assert '"GET /api/v1/me HTTP/1.1" 401 ' in line and "hk_nope" not in line


def test_access_log_can_be_turned_off(http_server_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hub.http.access")
    srv = http_server_factory(HTTP_ACCESS_LOG=False)
    rid = requests.get(srv.url + "/health").headers["X-Request-Id"]  # the id stays
    requests.get(srv.api("/openapi.json"))  # a second request: the first one's line would be out by now
    assert not [r for r in caplog.records if r.name == "hub.http.access"]
    assert rid


def test_redact_keeps_harmless_values() -> None:
    assert redact("/a/b") == "/a/b"
    assert redact("/h?points=100&format=csv") == "/h?points=100&format=csv"
    assert redact("/p?pin_code=1&Password=x&x-api-KEY=y&q=a%20b") == \
        "/p?pin_code=REDACTED&Password=REDACTED&x-api-KEY=REDACTED&q=a%20b"
    assert redact("/p?access_token=abc&signature=zz&csrf=1") == \
        "/p?access_token=REDACTED&signature=REDACTED&csrf=REDACTED"
