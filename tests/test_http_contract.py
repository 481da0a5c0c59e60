"""The cases where the OpenAPI document and the hub once disagreed, one by one (the
schemathesis run in tests/test_http_schema.py finds such cases; these pin them down):
400 when a request breaks the document, 422 when it breaks a rule the document cannot
state, never a 500, and nothing stored by a refused request."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from hub.http.openapi import DOCUMENT
from tests.fixtures.http import People, RunningHttp, seed_people


@pytest.fixture
def hub(http_server_factory: Any, database_url: str) -> tuple[RunningHttp, People]:
    server = http_server_factory(DATABASE_URL=database_url)
    return server, seed_people(server.settings)


def test_refusals_match_the_document(hub: tuple[RunningHttp, People]) -> None:
    server, people = hub
    admin = people.auth("admin")

    def call(method: str, path: str, **kw: Any) -> requests.Response:
        return requests.request(method, server.api(path), headers=admin, timeout=30, **kw)

    member = people.users["writer"]
    # a user id beyond 64 bits, or beyond the 32-bit ids the hub gives out: 400, not a 500
    for user_id in (728029557427725664256, 2**31):
        assert call("POST", "/permissions/acme/site", json={"level": "read", "user_id": user_id}).status_code == 400
    assert call("GET", "/keys", params={"user_id": 2**31}).status_code == 400
    assert call("DELETE", "/permissions/acme/site", params={"id": 2**40}).status_code == 400
    # a role of the wrong type is refused and makes no member
    outsider = people.users["outsider"]
    for role in (None, 5, ["admin"]):
        r = call("PUT", f"/organizations/acme/members/{outsider}", json={"role": role})
        assert r.status_code == 400, r.text
    members = call("GET", "/organizations/acme/members").json()["members"]
    assert outsider not in [m["user"]["id"] for m in members]
    # empty names and addresses break the document's patterns: 400
    assert call("POST", "/organizations", json={"name": ""}).status_code == 400
    assert call("POST", "/organizations", json={"name": "x", "full_name": "y" * 201}).status_code == 400
    assert call("POST", "/keys", json={"name": "k" * 101}).status_code == 400
    assert call("POST", "/keys", json={"name": "", "controller": ""}).status_code == 400
    assert call("GET", "/users", params={"email": ""}).status_code == 400
    assert call("GET", "/keys", params={"controller": ""}).status_code == 400
    assert call("GET", "/resources/acme", params={"meta": "yes"}).status_code == 400
    for recipients in (False, ["ada@example.com"] * 11):  # not a list or text; more than 10 entries
        r = call("PUT", "/watchdog/acme/site/pi-01", json={"minutes": None, "recipients": recipients})
        assert r.status_code == 400, r.text
    # an integer sent as 5.0 is an integer (JSON Schema says so)
    r = call("POST", "/keys", json={"name": "float id", "user_id": float(member)})
    assert r.status_code == 201 and r.json()["user_id"] == member
    # well formed but refused by a rule the document cannot state: 422
    assert call("POST", "/keys", json={"name": "nul\x00"}).status_code == 422
    r = call("POST", "/users", json={"email": "weak@example.com", "password": "abababababab"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unprocessable"
    # the state of what is named: 409
    assert call("POST", "/resources/toplevel", json={"type": "folder"}).status_code == 409
    assert call("PUT", "/resources/acme/site", json={"value": 1}).status_code == 409


def test_the_caller_cannot_lock_themselves_out(hub: tuple[RunningHttp, People]) -> None:
    server, people = hub
    admin = people.auth("admin")
    me = people.users["admin"]
    r = requests.patch(server.api(f"/users/{me}"), json={"is_admin": False}, headers=admin, timeout=30)
    assert r.status_code == 409
    prefix = people.keys["admin"].split("_")[1]
    assert requests.delete(server.api(f"/keys/{prefix}"), headers=admin, timeout=30).status_code == 409
    assert requests.get(server.api("/me"), headers=admin, timeout=30).json()["user"]["is_admin"] is True


def test_every_operation_is_named_and_creations_link_onwards() -> None:
    ops = {(m, p): o for p, item in DOCUMENT["paths"].items() for m, o in item.items()}
    ids = [o["operationId"] for o in ops.values()]
    assert len(ids) == len(set(ids)) == len(ops)
    for method, path in [("post", "/api/v1/resources/{path}"), ("post", "/api/v1/users"), ("post", "/api/v1/keys"),
                         ("post", "/api/v1/pins"), ("post", "/api/v1/organizations"),
                         ("post", "/api/v1/permissions/{path}")]:
        created = ops[(method, path)]["responses"]["201"]
        assert created.get("links"), f"{method} {path} links nowhere"
        for link in created["links"].values():
            assert link["operationId"] in ids
    assert "application/x-www-form-urlencoded" not in str(DOCUMENT)  # the rhizo dialect is not described
