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


def test_request_bodies_name_every_field_they_take() -> None:
    """Every JSON request body of the document is closed (additionalProperties: false)."""
    bodies = [o["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
              for item in DOCUMENT["paths"].values() for o in item.values()
              if "application/json" in o.get("requestBody", {}).get("content", {})]
    assert len(bodies) >= 15
    for name in bodies:
        assert DOCUMENT["components"]["schemas"][name]["additionalProperties"] is False, name


def test_unknown_fields_are_refused_naming_the_field(hub: tuple[RunningHttp, People]) -> None:
    server, people = hub
    admin = people.auth("admin")

    def call(method: str, path: str, body: Any) -> requests.Response:
        return requests.request(method, server.api(path), headers=admin, json=body, timeout=30)

    me = people.users["admin"]
    cases = [("POST", "/resources/acme/site/new", {"type": "folder"}),
             ("PATCH", "/resources/acme/site", {"attributes": {"a": 1}}),
             ("PUT", "/resources", {"values": {"acme/site/x": 1}}),
             ("POST", "/users", {"email": "new@example.com", "password": "correct horse battery"}),
             ("PATCH", f"/users/{me}", {"full_name": "Ada"}),
             ("POST", "/organizations", {"name": "neworg"}),
             ("POST", "/keys", {"name": "k"}),
             ("POST", "/permissions/acme/site", {"level": "read", "organization": "acme"}),
             ("PUT", "/watchdog/acme/site/pi-01", {"minutes": None}),
             ("PUT", f"/users/{me}/phone", {"phone": None}),
             ("POST", "/login", {"email": "a@example.com", "password": "x"})]
    for method, path, body in cases:
        for extra in ("colour", "\x00", "a\x00b"):  # a NUL in an unknown name is still an unknown field
            r = call(method, path, {**body, extra: 1})
            assert r.status_code == 400, (method, path, extra, r.text)
            assert r.json()["error"]["message"].startswith(f"unknown field {extra!r}"), r.text
    # nothing was made by a refused request
    assert requests.get(server.api("/resources/acme/site/new"), headers=admin, timeout=30).status_code == 404
    assert call("GET", "/organizations/neworg", None).status_code == 404
    # free-form objects take any field; the known fields still work
    r = call("POST", "/resources/acme/site/new", {"type": "folder", "attributes": {"colour": {"deep": 1}}})
    assert r.status_code == 201, r.text


def test_unknown_fields_are_found_at_any_depth() -> None:
    from hub.errors import BadRequest
    from hub.http.params import known_fields

    inner = {"type": "object", "properties": {"b": {}}, "additionalProperties": False}
    schema = {"type": "object", "additionalProperties": False,
              "properties": {"a": inner, "list": {"type": "array", "items": inner}, "free": {"type": "object"}}}
    known_fields({"a": {"b": 1}, "list": [{"b": 2}], "free": {"anything": 3}}, schema)
    for body, name in (({"a": {"b": 1, "c": 2}}, "a.c"), ({"list": [{"b": 1}, {"d": 1}]}, "list[1].d"),
                       ({"z": 1}, "z")):
        with pytest.raises(BadRequest) as e:
            known_fields(body, schema)
        assert e.value.message.startswith(f"unknown field {name!r}"), e.value.message


TIMES = ["2026-05-01T12:00:00Z", "2026-05-01t12:00:00z", "2026-05-01T12:00:00.123456789+02:00",
         "2026-05-01T12:00:00-00:30", "2026-05-01", "1600000000", "1600000000.5", "-5", "",
         "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2024-02-29",
         # refused: no real day, not RFC 3339 (a space, no offset, no seconds, a leap second, year 0)
         "2712-02-30", "8261-02-31T03:07:24", "8261-02-31T03:07:24Z", "2023-02-29", "2024-05-01 12:00:00Z",
         "2024-05-01T12:00:00", "2024-05-01T12:00Z", "2016-12-31T23:59:60Z", "0000-01-01", "yesterday",
         "2024-5-1", "2024-05-01T12:00:00+24:00", "+2024-05-01"]


def test_query_times_are_exactly_the_documents_formats(hub: tuple[RunningHttp, People]) -> None:
    """What JSON Schema's date-time / date formats (or the epoch pattern) accept is accepted,
    anything else is a 400: an impossible date breaks the document, it is not a 422."""
    import jsonschema

    from hub.http.openapi_schemas import TIME_QUERY

    server, people = hub
    admin = people.auth("admin")
    assert requests.post(server.api("/resources/acme/site/t"), json={"type": "sequence"}, headers=admin,
                         timeout=30).status_code == 201
    valid = jsonschema.Draft202012Validator(TIME_QUERY, format_checker=jsonschema.FormatChecker()).is_valid
    accepted = 0
    for t in TIMES:
        for path, name in (("/history/acme/site/t", "start"), ("/revisions/acme/site/t", "before")):
            r = requests.get(server.api(path), params={name: t}, headers=admin, timeout=30)
            assert r.status_code == (200 if valid(t) else 400), (t, path, r.text)
            accepted += r.status_code == 200
    assert accepted == 2 * 12  # the first twelve


def test_rfc3339_times_convert_exactly() -> None:
    from hub.http.params import rfc3339_us

    assert rfc3339_us("1970-01-01T01:00:00+01:00") == 0
    assert rfc3339_us("1970-01-01t00:00:00.5z") == 500_000
    assert rfc3339_us("1970-01-01T00:00:00.0000019Z") == 1  # beyond microseconds: cut, not rounded
    assert rfc3339_us("1969-12-31T23:30:00-00:30") == 0
    assert rfc3339_us("1970-01-02") == 86_400_000_000
    assert rfc3339_us("9999-12-31T23:59:59-23:59") == (253402300799 + 86340) * 1_000_000
    assert rfc3339_us("2024-02-30") is None and rfc3339_us("2024-02-30T00:00:00Z") is None


def test_body_timestamps_are_rfc3339_date_times(hub: tuple[RunningHttp, People]) -> None:
    server, people = hub
    admin = people.auth("admin")

    def put(body: Any) -> requests.Response:
        return requests.put(server.api("/resources/acme/site/ts"), json=body, headers=admin, timeout=30)

    assert requests.post(server.api("/resources/acme/site/ts"), json={"type": "sequence"}, headers=admin,
                         timeout=30).status_code == 201
    r = put({"value": 1, "timestamp": "2026-01-01t12:00:00.1234567z"})
    assert r.status_code == 200 and r.json()["timestamp"].startswith("2026-01-01T12:00:00.123456"), r.text
    assert put({"value": 2, "timestamp": 1767270000}).status_code == 200
    for bad in ("2026-02-30T00:00:00Z", "2026-01-01 12:00:00Z", "2026-01-01", "2026-01-01T12:00:00"):
        r = put({"value": 3, "timestamp": bad})
        assert r.status_code == 400 and "'timestamp'" in r.json()["error"]["message"], (bad, r.text)
        r = requests.put(server.api("/resources"), json={"values": {"acme/site/ts": 3}, "timestamp": bad},
                         headers=admin, timeout=30)
        assert r.status_code == 400, (bad, r.text)
    # well formed, but a rule no schema can state: before 1970
    assert put({"value": 4, "timestamp": "1969-12-31T23:59:59Z"}).status_code == 422
