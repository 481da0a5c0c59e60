"""Every role against the routes, allowed and denied, on SQLite and PostgreSQL.

Roles: system admin, organization admin, member (read on acme/site), writer
(write on acme/site), outsider, controller key (acme/site/pi-01), revoked
key, anonymous. Below read access the answer is 404 (existence is not
revealed); with read but not enough, 403.
"""

from __future__ import annotations

from typing import Any

import requests

from tests.fixtures.http import People, seed_people

ROLES = ("admin", "orgadmin", "member", "writer", "outsider", "controller", "revoked", "anonymous")
SEQ = "acme/site/pi-01/temp"

# (method, path, json body, {role: status}); unlisted roles: revoked and anonymous get 401.
# "{role}" in a path or body is replaced by the role's name, "{outsider}" by the outsider's id.
CASES: list[tuple[str, str, Any, dict[str, int]]] = [
    ("GET", "/me", None, dict.fromkeys(ROLES[:6], 200)),
    ("GET", "/resources/acme/site", None,
     {"admin": 200, "orgadmin": 200, "member": 200, "writer": 200, "outsider": 404, "controller": 404}),
    ("GET", f"/resources/{SEQ}", None,
     {"admin": 200, "orgadmin": 200, "member": 200, "writer": 200, "outsider": 404, "controller": 200}),
    ("GET", f"/history/{SEQ}?points=10", None,
     {"admin": 200, "orgadmin": 200, "member": 200, "writer": 200, "outsider": 404, "controller": 200}),
    ("PUT", f"/resources/{SEQ}", {"value": 1.5},
     {"admin": 200, "orgadmin": 200, "member": 403, "writer": 200, "outsider": 404, "controller": 200}),
    ("POST", "/resources/acme/site/f-{role}", {"type": "folder"},
     {"admin": 201, "orgadmin": 201, "member": 403, "writer": 201, "outsider": 404, "controller": 404}),
    ("POST", "/resources/acme/site/pi-01/s-{role}", {"type": "sequence"},
     {"admin": 201, "orgadmin": 201, "member": 403, "writer": 201, "outsider": 404, "controller": 201}),
    ("POST", "/resources/acme/site/ctl-{role}", {"type": "controller"},
     {"admin": 201, "orgadmin": 201, "member": 403, "writer": 403, "outsider": 404, "controller": 404}),
    ("DELETE", "/resources/acme/site/pi-01/s-{role}", None,
     {"admin": 200, "orgadmin": 200, "member": 403, "writer": 200, "outsider": 404, "controller": 200}),
    ("GET", "/permissions/acme/site", None,
     {"admin": 200, "orgadmin": 200, "member": 403, "writer": 403, "outsider": 404, "controller": 404}),
    ("POST", "/permissions/acme/site", {"level": "read", "organization": "acme"},
     {"admin": 201, "orgadmin": 201, "member": 403, "writer": 403, "outsider": 404, "controller": 404}),
    ("GET", "/users", None,
     {"admin": 200, "orgadmin": 200, "member": 200, "writer": 200, "outsider": 200, "controller": 403}),
    ("GET", "/users/{outsider}", None,
     {"admin": 200, "orgadmin": 404, "member": 404, "writer": 404, "outsider": 200, "controller": 403}),
    ("POST", "/users", {"email": "new-{role}@example.com", "password": "a good long password",
                        "organization": "acme"},
     {"admin": 201, "orgadmin": 201, "member": 403, "writer": 403, "outsider": 403, "controller": 403}),
    ("POST", "/organizations", {"name": "org-{role}"},
     {"admin": 201, "orgadmin": 403, "member": 403, "writer": 403, "outsider": 403, "controller": 403}),
    ("GET", "/organizations/acme/members", None,
     {"admin": 200, "orgadmin": 200, "member": 200, "writer": 200, "outsider": 404, "controller": 404}),
    ("PUT", "/organizations/acme/members/{outsider}", {"role": "member"},  # the outsider is a member after
     {"admin": 200, "orgadmin": 200, "member": 403, "writer": 403, "outsider": 403, "controller": 404}),
    ("DELETE", "/organizations/acme/members/{outsider}", None,
     {"admin": 204, "orgadmin": 404, "member": 403, "writer": 403, "outsider": 404, "controller": 404}),
    ("POST", "/keys", {"name": "mine"},
     {"admin": 201, "orgadmin": 201, "member": 201, "writer": 201, "outsider": 201, "controller": 403}),
    ("POST", "/keys", {"controller": "acme/site/pi-01"},
     {"admin": 201, "orgadmin": 201, "member": 403, "writer": 403, "outsider": 404, "controller": 403}),
    ("GET", "/keys?controller=acme/site/pi-01", None,
     {"admin": 200, "orgadmin": 200, "member": 403, "writer": 403, "outsider": 404, "controller": 403}),
    ("POST", "/mqtt-token", None,
     {"admin": 200, "orgadmin": 200, "member": 200, "writer": 200, "outsider": 200, "controller": 403}),
]


def _fill(value: Any, role: str, people: People) -> Any:
    if isinstance(value, str):
        return value.replace("{role}", role).replace("{outsider}", str(people.users["outsider"]))
    if isinstance(value, dict):
        return {k: _fill(v, role, people) for k, v in value.items()}
    return value


def test_role_matrix(http_server_factory: Any, database_url: str) -> None:
    server = http_server_factory(DATABASE_URL=database_url)
    people = seed_people(server.settings)
    admin = people.auth("admin")
    r = requests.post(server.api(f"/resources/{SEQ}"), json={"type": "sequence", "value": 1}, headers=admin)
    assert r.status_code == 201, r.text
    wrong = []
    for method, path, body, expected in CASES:
        # Roles run in the order of ROLES: a row may see what an earlier role did.
        for role in ROLES:
            want = expected.get(role, 401)
            url = server.api(_fill(path, role, people))
            resp = requests.request(method, url, json=_fill(body, role, people), headers=people.auth(role),
                                    timeout=30)
            if resp.status_code != want:
                wrong.append(f"{role:10} {method} {path}: {resp.status_code} (want {want}) {resp.text[:120]}")
            elif want >= 400:
                assert set(resp.json()["error"]) == {"code", "message"}
    assert not wrong, "\n".join(wrong)


def test_revoked_key_and_deleted_user_stop_at_once(http_server_factory: Any, database_url: str) -> None:
    server = http_server_factory(DATABASE_URL=database_url)
    people = seed_people(server.settings)
    writer = people.auth("writer")
    assert requests.get(server.api("/me"), headers=writer).status_code == 200  # now cached
    keys = requests.get(server.api("/keys"), headers=writer).json()["keys"]
    prefix = keys[0]["prefix"]
    r = requests.delete(server.api(f"/keys/{prefix}"), headers=people.auth("outsider"))
    assert r.status_code == 404
    r = requests.delete(server.api(f"/keys/{prefix}"), headers=writer)
    assert r.status_code == 409  # not the key this very request is made with: that locks the caller out
    spare = requests.post(server.api("/keys"), json={"name": "spare"}, headers=writer).json()["key"]
    r = requests.delete(server.api(f"/keys/{prefix}"), headers={"Authorization": f"Bearer {spare}"})
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert requests.get(server.api("/me"), headers=writer).status_code == 401
    # deleting a user: system admins only, their keys stop working
    member = people.auth("member")
    assert requests.get(server.api("/me"), headers=member).status_code == 200
    uid = people.users["member"]
    assert requests.delete(server.api(f"/users/{uid}"), headers=people.auth("orgadmin")).status_code == 403
    assert requests.delete(server.api(f"/users/{uid}"), headers=people.auth("admin")).status_code == 204
    assert requests.get(server.api("/me"), headers=member).status_code == 401
    assert requests.delete(server.api(f"/users/{people.users['admin']}"),
                           headers=people.auth("admin")).status_code == 409


def test_organization_admin_adds_a_user_from_elsewhere_by_exact_email(http_server_factory: Any) -> None:
    """The outsider has an account (in another organization): the organization admin finds
    them by their exact address, not by listing, and adds them."""
    server = http_server_factory()
    people = seed_people(server.settings)
    outsider = people.emails["outsider"]

    def find(who: str, email: str) -> list[str]:
        r = requests.get(server.api("/users"), params={"email": email}, headers=people.auth(who))
        assert r.status_code == 200, r.text
        return [u["email"] for u in r.json()["users"]]

    assert outsider not in [u["email"] for u in requests.get(
        server.api("/users"), headers=people.auth("orgadmin")).json()["users"]]  # not listed
    assert find("orgadmin", outsider.upper()) == [outsider]
    assert find("orgadmin", "nobody@example.com") == []
    assert find("member", outsider) == [people.emails["member"]]  # a plain member: only themselves
    r = requests.get(server.api("/users"), params={"email": "not an address"}, headers=people.auth("orgadmin"))
    assert r.status_code == 400
    r = requests.put(server.api(f"/organizations/acme/members/{people.users['outsider']}"), json={"role": "member"},
                     headers=people.auth("orgadmin"))
    assert r.status_code == 200, r.text
    members = requests.get(server.api("/organizations/acme/members"), headers=people.auth("orgadmin")).json()
    assert outsider in str(members)
