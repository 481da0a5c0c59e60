"""The app's frame: error shape, limits, sessions, CSRF, rate limit, docs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from hub.http.app import init_app
from hub.http.openapi import DOCUMENT
from hub.http.readcache import ReadCache
from hub.settings import load
from hub.storage import users
from hub.storage.db import Database
from tests.fixtures.http import PASSWORD, People, RunningHttp, seed_people, start_http_server
from tests.support import free_port, write_settings_file


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHttp]:
    root = tmp_path_factory.mktemp("http-core")
    path = write_settings_file(root / "config.py", {
        "DATA_DIR": str(root / "data"), "SECRET_KEY": "k" * 48, "PASSWORD_HASH_ROUNDS": 4,
        "HTTP_PORT": free_port(), "MAX_REQUEST_BYTES": 4096, "MQTT_PORT": free_port()})
    with start_http_server(load(path, env={}), path) as srv:
        yield srv


@pytest.fixture(scope="module")
def people(server: RunningHttp) -> People:
    return seed_people(server.settings)


def assert_error(r: requests.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


def test_error_shape_locked(server: RunningHttp, people: People) -> None:
    assert_error(requests.get(server.api("/me")), 401, "unauthenticated")
    assert_error(requests.get(server.api("/nowhere")), 404, "not_found")
    assert_error(requests.delete(server.api("/me")), 405, "method_not_allowed")
    assert_error(requests.get(server.api("/me"), headers={"Authorization": "Basic x"}), 401, "unauthenticated")
    auth = people.auth("admin")
    assert_error(requests.get(server.api("/resources/acme/bad name"), headers=auth), 400, "bad_path")
    assert_error(requests.get(server.api("/resources/acme/nothing"), headers=auth), 404, "not_found")
    assert_error(requests.post(server.api("/organizations"), data="{", headers={
        **auth, "Content-Type": "application/json"}), 400, "bad_request")
    assert_error(requests.post(server.api("/organizations"), data="x", headers={
        **auth, "Content-Type": "text/plain"}), 415, "unsupported_media_type")


def test_body_over_limit_is_413_before_reading(server: RunningHttp, people: People) -> None:
    r = requests.post(server.api("/resources/acme/site/big.bin"), data=b"x" * 5000,
                      headers={**people.auth("admin"), "Content-Type": "application/octet-stream"})
    assert_error(r, 413, "too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while reading
        for _ in range(10):
            yield b"y" * 1000

    r = requests.post(server.api("/resources/acme/site/big2.bin"), data=chunks(),
                      headers={**people.auth("admin"), "Content-Type": "application/octet-stream"})
    assert_error(r, 413, "too_large")
    r = requests.get(server.api("/resources/acme/site/big2.bin?meta=true"), headers=people.auth("admin"))
    assert r.status_code == 404


def test_server_error_leaks_nothing(tmp_path: Path) -> None:
    """A database that is not there: a clean 5xx, no traceback, no URL."""
    from tests.fixtures.http import RunningHttp as _R  # noqa: F401

    s = load(write_settings_file(tmp_path / "c.py", {
        "DATA_DIR": str(tmp_path), "SECRET_KEY": "s" * 48, "HTTP_PORT": free_port(),
        "DATABASE_URL": f"postgresql+psycopg://u:supersecret@127.0.0.1:{free_port()}/x"}), env={})
    with start_http_server(s, migrate_db=False) as srv:
        r = requests.get(srv.api("/me"), headers={"Authorization": "Bearer hk_abcdefghij_" + "x" * 40})
    assert r.status_code in (500, 503)
    assert "supersecret" not in r.text and "Traceback" not in r.text
    assert set(r.json()["error"]) == {"code", "message"}


def test_login_cookie_flags_me_and_logout(server: RunningHttp, people: People) -> None:
    s = requests.Session()
    r = s.post(server.api("/login"), json={"email": people.emails["member"], "password": PASSWORD})
    assert r.status_code == 200, r.text
    cookie = r.headers["Set-Cookie"]
    session_part = [c for c in r.raw.headers.getlist("Set-Cookie") if c.startswith("hub_session=")][0]
    assert "HttpOnly" in session_part and "SameSite=Lax" in session_part and "Secure" not in session_part
    assert cookie
    me = s.get(server.api("/me")).json()
    assert me["via"] == "session" and me["user"]["email"] == people.emails["member"]
    assert me["memberships"] == [{"organization": "acme", "role": "member"}]
    assert me["csrf_token"] == r.json()["csrf_token"]
    assert s.post(server.api("/logout")).status_code == 204
    assert s.get(server.api("/me")).status_code == 401


def test_logout_ends_the_session_on_the_server(server: RunningHttp, people: People) -> None:
    """A copy of the cookie (a stolen one) stops working at log-out; other sessions go on."""
    email = people.emails["member"]
    a, b = requests.Session(), requests.Session()
    for s in (a, b):
        assert s.post(server.api("/login"), json={"email": email, "password": PASSWORD}).status_code == 200
    stolen = a.cookies.get("hub_session")
    assert requests.get(server.api("/me"), cookies={"hub_session": stolen}).status_code == 200  # cached now
    assert a.post(server.api("/logout")).status_code == 204
    r = requests.get(server.api("/me"), cookies={"hub_session": stolen})
    assert "logged out" in assert_error(r, 401, "unauthenticated")["message"]
    assert b.get(server.api("/me")).status_code == 200
    assert requests.post(server.api("/logout"), cookies={"hub_session": stolen}).status_code == 204  # again: fine


def test_secure_cookie_behind_tls(server: RunningHttp, people: People) -> None:
    r = requests.post(server.api("/login"), json={"email": people.emails["member"], "password": PASSWORD},
                      headers={"X-Forwarded-Proto": "https"})
    assert r.status_code == 200
    assert all("Secure" in c for c in r.raw.headers.getlist("Set-Cookie"))


def test_csrf_needed_for_cookie_writes(server: RunningHttp, people: People) -> None:
    s = requests.Session()
    token = s.post(server.api("/login"), json={"email": people.emails["writer"], "password": PASSWORD}
                   ).json()["csrf_token"]
    body = {"type": "folder"}
    assert_error(s.post(server.api("/resources/acme/site/f1"), json=body), 403, "forbidden")
    assert_error(s.post(server.api("/resources/acme/site/f1"), json=body, headers={"X-CSRF-Token": "nope"}),
                 403, "forbidden")
    assert_error(s.post(server.api("/resources/acme/site/f1"), json=body, headers={
        "X-CSRF-Token": token, "Origin": "https://evil.example"}), 403, "forbidden")
    r = s.post(server.api("/resources/acme/site/f1"), json=body,
               headers={"X-CSRF-Token": token, "Origin": server.url})
    assert r.status_code == 201, r.text
    # reads need no token; API keys need none either
    assert s.get(server.api("/resources/acme/site/f1")).status_code == 200
    r = requests.post(server.api("/resources/acme/site/f2"), json=body, headers=people.auth("writer"))
    assert r.status_code == 201, r.text


def locked_out_account(server: RunningHttp, name: str) -> str:
    """A user of its own for a test that locks its account: the people of the module
    must still log in in whichever test comes after."""
    db = Database(server.settings.database_url)
    try:
        with db.session() as s:
            return users.create_user(s, f"{name}@example.com", PASSWORD, rounds=4).email
    finally:
        db.dispose()


def test_login_rate_limit(server: RunningHttp) -> None:
    email = locked_out_account(server, "locked-out")
    for _ in range(5):
        assert_error(requests.post(server.api("/login"), json={"email": email, "password": "wrong password!"}),
                     401, "unauthenticated")
    r = requests.post(server.api("/login"), json={"email": email, "password": PASSWORD})
    err = assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= 300
    assert "try again" in err["message"]


def test_login_rate_limit_is_one_for_every_worker(server: RunningHttp) -> None:
    """Two HTTP workers on one database: failures at either count for both."""
    email = locked_out_account(server, "locked-out-twice")
    with start_http_server(dataclasses.replace(server.settings, HTTP_PORT=free_port()), migrate_db=False) as other:
        for i in range(5):
            target = server if i % 2 else other
            assert_error(requests.post(target.api("/login"), json={"email": email, "password": "wrong password!"}),
                         401, "unauthenticated")
        for target in (server, other):
            r = requests.post(target.api("/login"), json={"email": email, "password": PASSWORD})
            assert_error(r, 429, "rate_limited")


def test_unknown_email_same_answer(server: RunningHttp) -> None:
    r = requests.post(server.api("/login"), json={"email": "nobody@example.com", "password": "x" * 12})
    assert assert_error(r, 401, "unauthenticated")["message"] == "wrong email or password"


def test_openapi_served_and_docs_page(server: RunningHttp) -> None:
    doc = requests.get(server.api("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1") and doc == DOCUMENT
    page = requests.get(server.api("/docs"))
    assert page.status_code == 200 and "openapi.json" in page.text
    assert page.headers["Content-Type"].startswith("text/html")


def test_every_route_documented_and_back() -> None:
    app = init_app(load(Path("/nonexistent/config.py"), env={"SECRET_KEY": "z" * 40}))
    served = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method == "HEAD" or path == "/" or path.startswith(("/static", "/ext/")):
            continue  # HEAD mirrors GET; the console and extensions (documents of their own) are not the API
        served.add((route.method.lower(), path))
    documented = {(m, p) for p, item in DOCUMENT["paths"].items() for m in item}
    assert served - documented == set(), "routes missing from hub/http/openapi.py"
    assert documented - served == set(), "documented routes the app does not have"


def test_openapi_document_is_valid() -> None:
    from openapi_spec_validator import validate

    validate(DOCUMENT)


def test_read_cache_ages_and_can_be_off() -> None:
    cache = ReadCache(max_age=60)
    cache.observe((1, 1))
    cache.put(("a",), b"x")
    assert cache.get(("a",)) == b"x"
    cache.observe((1, 2))  # a new revision somewhere: everything goes
    assert cache.get(("a",)) is None
    off = ReadCache(max_age=0)  # HTTP_READ_CACHE_SECONDS=0
    off.put(("a",), b"x")
    assert off.get(("a",)) is None
