"""Accounts people open themselves, over the real HTTP server: invitations, password
resets and changes, account requests; bad codes, enumeration, rate limits, requests on/off.
The links are read from the outbox the notifier sends (tests/test_accounts_mail.py sends it
over SMTP)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import requests
from sqlalchemy import func, select, update

from hub.http import sessions
from hub.storage.db import Database
from hub.storage.models import AccountCode, AccountEmail, AccountRequest, EndedSession, Membership, User
from tests.fixtures.http import PASSWORD, People, RunningHttp, seed_people

NEW_PASSWORD = "a brand new passphrase"
BASE = "https://hub.example.org"


@pytest.fixture
def server(http_server_factory: Callable[..., RunningHttp], database_url: str) -> RunningHttp:
    """On SQLite and on PostgreSQL."""
    return http_server_factory(DATABASE_URL=database_url, PUBLIC_URL=BASE, SMTP_HOST="127.0.0.1",
                               SMTP_FROM="hub@example.org", ACCOUNT_REQUESTS=True, ACCOUNT_EMAILS_PER_HOUR=3)


@pytest.fixture
def people(server: RunningHttp) -> People:
    return seed_people(server.settings)


@pytest.fixture
def db(server: RunningHttp) -> Any:
    database = Database(server.settings.database_url)
    yield database
    database.dispose()


def emails(db: Database, to: str) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(AccountEmail.body).where(AccountEmail.recipient == to)
                              .order_by(AccountEmail.id)))


def code_in(body: str, kind: str) -> str:
    m = re.search(rf"{re.escape(BASE)}/#/{kind}/([A-Za-z0-9_-]+)", body)
    assert m, body
    return m.group(1)


def login(server: RunningHttp, email: str, password: str) -> requests.Session:
    s = requests.Session()
    r = s.post(server.api("/login"), json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    s.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return s


def invite(server: RunningHttp, people: People, email: str, role: str = "member") -> requests.Response:
    return requests.post(server.api("/organizations/acme/invitations"), json={"email": email, "role": role},
                         headers=people.auth("orgadmin"))


def error(r: requests.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    e = r.json()["error"]
    if code is not None:
        assert e["code"] == code, e
    return e


def test_invitation_creates_the_account_once(server: RunningHttp, people: People, db: Database) -> None:
    requests.post(server.api("/account-requests"), json={"email": "newcomer@example.com"})
    r = invite(server, people, "Newcomer@Example.com", "admin")
    assert r.status_code == 201, r.text
    assert r.json()["email"] == "newcomer@example.com" and r.json()["role"] == "admin"
    code = code_in(emails(db, "newcomer@example.com")[-1], "accept")
    with db.session() as s:  # only the hash is kept
        assert s.scalar(select(func.count()).select_from(AccountCode).where(AccountCode.code_hash == code)) == 0
    info = requests.post(server.api("/invitations/check"), json={"code": code}).json()
    assert info["organization"] == "acme" and info["existing_user"] is False

    error(requests.post(server.api("/invitations/accept"), json={"code": code}), 422)  # no password
    error(requests.post(server.api("/invitations/accept"), json={"code": code, "password": "short"}), 400)
    error(requests.post(server.api("/invitations/accept"), json={"code": code, "password": "aaaaaaaaaaaa"}), 422)
    with db.session() as s:  # nothing half-created
        assert s.scalar(select(User.id).where(User.email == "newcomer@example.com")) is None

    browser = requests.Session()
    r = browser.post(server.api("/invitations/accept"), json={"code": code, "password": NEW_PASSWORD})
    assert r.status_code == 200, r.text
    assert r.json()["created"] is True and r.json()["organization"] == "acme"
    me = browser.get(server.api("/me")).json()
    assert me["memberships"] == [{"organization": "acme", "role": "admin"}]
    error(requests.post(server.api("/invitations/accept"), json={"code": code, "password": NEW_PASSWORD}),
          410, "code_used")
    login(server, "newcomer@example.com", NEW_PASSWORD)
    with db.session() as s:  # the request the invitation answered is no longer pending
        assert s.scalar(select(AccountRequest.status).where(AccountRequest.email == "newcomer@example.com")) \
            == "approved"


def test_existing_user_joins_signed_in(server: RunningHttp, people: People, db: Database) -> None:
    email = people.emails["outsider"]
    assert invite(server, people, email).status_code == 201
    code = code_in(emails(db, email)[-1], "accept")
    assert requests.post(server.api("/invitations/check"), json={"code": code}).json()["existing_user"] is True
    error(requests.post(server.api("/invitations/accept"), json={"code": code}), 401)
    other = login(server, people.emails["member"], PASSWORD)
    error(other.post(server.api("/invitations/accept"), json={"code": code}), 401)
    me = login(server, email, PASSWORD)
    r = me.post(server.api("/invitations/accept"), json={"code": code})
    assert r.status_code == 200 and r.json()["created"] is False, r.text
    with db.session() as s:
        assert s.scalar(select(Membership.role).where(Membership.user_id == people.users["outsider"])) == "member"
    error(invite(server, people, email), 409, "conflict")


def test_bad_codes(server: RunningHttp, people: People, db: Database) -> None:
    for bad in ("x", "A" * 43, "not a code at all!"):
        r = requests.post(server.api("/invitations/accept"), json={"code": bad, "password": NEW_PASSWORD})
        assert r.status_code in (400, 404), r.text
    error(requests.post(server.api("/invitations/accept"), json={"code": "A" * 43, "password": NEW_PASSWORD}),
          404, "bad_code")
    error(requests.post(server.api("/password-reset/complete"), json={"code": "B" * 43, "password": NEW_PASSWORD}),
          404, "bad_code")
    # a replaced invitation, then an expired one
    invite(server, people, "late@example.com")
    first = code_in(emails(db, "late@example.com")[-1], "accept")
    invite(server, people, "late@example.com")
    second = code_in(emails(db, "late@example.com")[-1], "accept")
    error(requests.post(server.api("/invitations/check"), json={"code": first}), 410, "code_used")
    with db.session() as s:
        s.execute(update(AccountCode).values(expires_at=datetime(2000, 1, 1)))
    error(requests.post(server.api("/invitations/accept"), json={"code": second, "password": NEW_PASSWORD}),
          410, "code_expired")
    error(requests.post(server.api("/invitations/accept"), json={"code": second, "password": NEW_PASSWORD,
                                                                  "extra": 1}), 400)


def test_invitations_need_an_org_admin(server: RunningHttp, people: People) -> None:
    for who in ("member", "outsider", "anonymous"):
        r = requests.post(server.api("/organizations/acme/invitations"), json={"email": "x@example.com"},
                          headers=people.auth(who))
        assert r.status_code in (401, 403), (who, r.text)
    r = requests.get(server.api("/organizations/acme/invitations"), headers=people.auth("orgadmin"))
    assert r.status_code == 200 and r.json() == {"invitations": []}


def nonce(server: RunningHttp, browser: requests.Session) -> str:
    """The nonce of `browser`'s session, once it was given an MQTT token."""
    assert browser.post(server.api("/mqtt-token")).status_code == 200
    data = sessions.verify(server.settings.SECRET_KEY, browser.cookies[sessions.SESSION_COOKIE])
    assert data is not None
    return data.nonce


def ended(db: Database) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(EndedSession.nonce)))


def test_reset_ends_sessions_and_keeps_keys(server: RunningHttp, people: People, db: Database) -> None:
    email = people.emails["member"]
    old = login(server, email, PASSWORD)
    assert old.get(server.api("/me")).status_code == 200
    live = nonce(server, old)  # a browser connected to the broker with this session's token
    r = requests.post(server.api("/password-reset"), json={"email": email.upper()})
    assert r.status_code == 202, r.text
    code = code_in(emails(db, email)[-1], "reset")
    error(requests.post(server.api("/password-reset/complete"), json={"code": code, "password": "zzzzzzzzzzzz"}),
          422)
    assert requests.post(server.api("/password-reset/complete"),
                         json={"code": code, "password": NEW_PASSWORD}).status_code == 204
    assert live in ended(db)  # the broker closes its connections as at log-out
    server.sync()
    error(old.get(server.api("/me")), 401)
    assert requests.get(server.api("/me"), headers=people.auth("member")).status_code == 200  # keys stay
    error(requests.post(server.api("/password-reset/complete"), json={"code": code, "password": NEW_PASSWORD}),
          410, "code_used")
    login(server, email, NEW_PASSWORD)


def test_reset_answers_the_same_for_unknown_addresses(server: RunningHttp, people: People, db: Database) -> None:
    def ask(email: str) -> tuple[int, bytes, float]:
        t0 = time.perf_counter()
        r = requests.post(server.api("/password-reset"), json={"email": email})
        return r.status_code, r.content, time.perf_counter() - t0

    known = ask(people.emails["writer"])
    unknown = ask("nobody-here@example.com")
    assert known[:2] == unknown[:2]
    assert known[0] == 202
    assert abs(known[2] - unknown[2]) < 0.5
    assert len(emails(db, people.emails["writer"])) == 1 and emails(db, "nobody-here@example.com") == []


def test_rate_limits_per_address(server: RunningHttp, people: People) -> None:
    for email in (people.emails["writer"], "ghost@example.com"):  # the same for both
        codes = [requests.post(server.api("/password-reset"), json={"email": email}).status_code
                 for _ in range(4)]
        assert codes == [202, 202, 202, 429], codes


def test_change_password(server: RunningHttp, people: People, db: Database) -> None:
    email = people.emails["writer"]
    other, me = login(server, email, PASSWORD), login(server, email, PASSWORD)
    theirs, mine = nonce(server, other), nonce(server, me)
    error(me.post(server.api("/me/password"), json={"current_password": "wrong one!", "password": NEW_PASSWORD}),
          403, "wrong_password")
    error(me.post(server.api("/me/password"), json={"current_password": PASSWORD, "password": "abababababab"}), 422)
    r = me.post(server.api("/me/password"), json={"current_password": PASSWORD, "password": NEW_PASSWORD})
    assert r.status_code == 200, r.text
    me.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    assert theirs in ended(db) and mine not in ended(db)
    server.sync()
    assert me.get(server.api("/me")).status_code == 200  # this session goes on
    error(other.get(server.api("/me")), 401)
    login(server, email, NEW_PASSWORD)


def test_account_requests(server: RunningHttp, people: People, db: Database) -> None:
    body = {"email": "hopeful@example.com", "full_name": "Hope", "organization": "acme", "message": "hi"}
    first = requests.post(server.api("/account-requests"), json=body)
    again = requests.post(server.api("/account-requests"), json={**body, "message": "again"})
    existing = requests.post(server.api("/account-requests"), json={**body, "email": people.emails["member"]})
    assert first.status_code == again.status_code == existing.status_code == 202
    assert first.content == again.content == existing.content
    listed = requests.get(server.api("/account-requests"), headers=people.auth("orgadmin")).json()["requests"]
    assert [(r["email"], r["message"]) for r in listed] == [("hopeful@example.com", "again")]  # folded
    error(requests.get(server.api("/account-requests"), headers=people.auth("member")), 403)
    rid = listed[0]["id"]
    r = requests.post(server.api(f"/account-requests/{rid}/approve"), json={"role": "member"},
                      headers=people.auth("orgadmin"))
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    error(requests.post(server.api(f"/account-requests/{rid}/refuse"), headers=people.auth("admin")), 409)
    code = code_in(emails(db, "hopeful@example.com")[-1], "accept")
    assert requests.post(server.api("/invitations/accept"),
                         json={"code": code, "password": NEW_PASSWORD}).status_code == 200
    requests.post(server.api("/account-requests"), json={"email": "nope@example.com"})
    with db.session() as s:
        nope = s.scalar(select(AccountRequest.id).where(AccountRequest.email == "nope@example.com"))
    error(requests.post(server.api(f"/account-requests/{nope}/refuse"), headers=people.auth("orgadmin")), 404)
    error(requests.post(server.api(f"/account-requests/{nope}/approve"), headers=people.auth("admin")), 422)
    r = requests.post(server.api(f"/account-requests/{nope}/refuse"), headers=people.auth("admin"))
    assert r.json()["status"] == "refused"


def test_account_requests_off_by_default(http_server_factory: Callable[..., RunningHttp]) -> None:
    server = http_server_factory()
    error(requests.post(server.api("/account-requests"), json={"email": "a@example.com"}), 404, "requests_off")
    # with email off, resets are refused for every address alike
    error(requests.post(server.api("/password-reset"), json={"email": "a@example.com"}), 409, "email_off")


def test_other_sites_cannot_post_the_public_forms(server: RunningHttp, people: People, db: Database) -> None:
    evil = {"Origin": "https://evil.example"}
    for path, body in (("/password-reset", {"email": people.emails["member"]}),
                       ("/account-requests", {"email": "someone@example.com"}),
                       ("/invitations/accept", {"code": "C" * 43, "password": NEW_PASSWORD})):
        error(requests.post(server.api(path), json=body, headers=evil), 403, "forbidden")
    assert emails(db, people.emails["member"]) == []
    r = requests.post(server.api("/password-reset"), json={"email": people.emails["member"]},
                      headers={"Origin": server.url})
    assert r.status_code == 202
