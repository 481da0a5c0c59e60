"""Accounts in a real browser (Debian's headless Chromium, driven by Playwright) against the
real hub, its emails sent by the real notifier to a local SMTP server (aiosmtpd): an
invitation accepted with a new password, and a forgotten password reset (the old sessions
end)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hub.notify.daemon import Notifier
from hub.storage import permissions, users
from hub.storage.db import Database
from hub.storage.models import Level
from tests.fixtures.http import PASSWORD
from tests.support.browser import PageLog, launch_chromium, require_chromium, watch_page
from tests.support.console_stack import HubStack, ensure_console_built, hub_stack
from tests.support.notify import SmtpSink, smtp_server
from tests.support.ports import free_port

pytestmark = pytest.mark.slow

WAIT_MS = 10_000
NEW_PASSWORD = "a brand new passphrase"
# the browser logs every failed request: /me before logging in, the ended session, a wrong
# current password, the used link
EXPECTED_ERRORS = ("status of 401", "status of 403", "status of 410")  # 403, 410: on purpose


@pytest.fixture(scope="module")
def mail() -> Iterator[tuple[SmtpSink, int]]:
    with smtp_server() as (sink, port):
        yield sink, port


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, mail: tuple[SmtpSink, int]) -> Iterator[HubStack]:
    require_chromium()
    ensure_console_built()
    port = free_port()
    with hub_stack(tmp_path_factory.mktemp("accounts"), HTTP_PORT=port, PUBLIC_URL=f"http://127.0.0.1:{port}",
                   SMTP_HOST="127.0.0.1", SMTP_PORT=mail[1], SMTP_TLS="none", SMTP_FROM="hub@example.org",
                   ACCOUNT_EMAIL_POLL_SECONDS=0.1) as stack:
        db = Database(stack.settings.database_url)
        try:
            with db.session() as s:  # the lab lets its members read its tree
                org = users.get_organization(s, "acme")
                permissions.grant(s, "acme", Level.READ, organization_id=org.id)
        finally:
            db.dispose()
        notifier = Notifier(stack.settings)
        notifier.start()
        try:
            yield stack
        finally:
            notifier.stop()


@pytest.fixture(scope="module")
def browser(hub: HubStack) -> Iterator[Any]:
    with launch_chromium() as b:
        yield b


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """`new_page()`: a page in a fresh browser context (its own cookies)."""
    made: list[tuple[Any, PageLog]] = []

    def make() -> Any:
        log = PageLog(allowed=list(EXPECTED_ERRORS))
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        watch_page(page, log)
        made.append((context, log))
        return page

    yield make
    for context, log in made:
        context.close()
        assert not log.unexpected(), log.errors


def link_in(sink: SmtpSink, to: str, count: int, kind: str) -> str:
    """The link of kind `kind` in the `count`th email (all told) once it arrived, sent to `to`."""
    mails = sink.wait(count)
    assert len(mails) >= count, [m.rcpt_tos for m in mails]
    m = mails[count - 1]
    assert m.rcpt_tos == [to]
    payload = m.message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    found = re.search(rf"(http://127\.0\.0\.1:\d+/#/{kind}/[A-Za-z0-9_-]+)", payload.decode())
    assert found, payload
    return found.group(1)


def log_in(page: Any, hub: HubStack, email: str, password: str) -> None:
    page.goto(f"{hub.url}/#/login")
    page.wait_for_selector("#login-form")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("#login-submit")
    page.wait_for_selector("#whoami")


def test_invitation_in_the_browser(hub: HubStack, new_page: Any, mail: tuple[SmtpSink, int]) -> None:
    sink = mail[0]
    before = len(sink.mails)
    admin = new_page()
    log_in(admin, hub, hub.people.emails["orgadmin"], PASSWORD)
    admin.goto(f"{hub.url}/#/admin/org/acme")
    admin.wait_for_selector("#invite-form")
    admin.fill("#invite-form input[name=email]", "invited@example.com")
    admin.select_option("#invite-form select[name=role]", "member")
    admin.click("#invite-submit")
    admin.wait_for_selector('#invitations tr[data-email="invited@example.com"]')

    link = link_in(sink, "invited@example.com", before + 1, "accept")
    person = new_page()
    person.goto(link)
    person.wait_for_selector("#accept-form")
    assert person.inner_text("#accept-email") == "invited@example.com"
    person.fill("input[name=full_name]", "Ivy Invited")
    person.fill("input[name=password]", NEW_PASSWORD)
    person.fill("input[name=confirm]", NEW_PASSWORD + "x")
    person.click("#accept-submit")
    person.wait_for_selector("#accept-error:not([hidden])")  # the two passwords differ
    person.fill("input[name=confirm]", NEW_PASSWORD)
    person.click("#accept-submit")
    person.wait_for_function("document.querySelector('#whoami')?.textContent === 'invited@example.com'")
    person.wait_for_selector('#children a[href="#/r/acme"]')  # signed in, seeing the organization

    again = new_page()  # the link works once
    again.goto(link)
    again.wait_for_selector("#invitation-bad")
    assert "already used" in again.inner_text("#invitation-bad")


def test_password_reset_in_the_browser(hub: HubStack, new_page: Any, mail: tuple[SmtpSink, int]) -> None:
    sink = mail[0]
    email = "forgetful@example.com"
    db = Database(hub.settings.database_url)
    try:
        with db.session() as s:
            users.create_user(s, email, PASSWORD, rounds=4)
    finally:
        db.dispose()
    old = new_page()
    log_in(old, hub, email, PASSWORD)
    old.wait_for_function("document.querySelector('#live-state')?.dataset.state === 'live'")  # on the broker
    cookies = {c["name"]: c["value"] for c in old.context.cookies()}
    assert requests.get(f"{hub.url}/api/v1/me", cookies=cookies).status_code == 200

    before = len(sink.mails)
    page = new_page()
    page.goto(f"{hub.url}/#/login")
    page.click("#forgot-link")
    page.wait_for_selector("#forgot-form")
    page.fill("input[name=email]", email)
    page.click("#forgot-submit")
    page.wait_for_selector("#forgot-sent")
    link = link_in(sink, email, before + 1, "reset")
    page.goto(link)
    page.wait_for_selector("#reset-form")
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=confirm]", NEW_PASSWORD)
    page.click("#reset-submit")
    page.wait_for_selector("#login-form")
    log_in(page, hub, email, NEW_PASSWORD)

    hub.http.sync()
    assert requests.get(f"{hub.url}/api/v1/me", cookies=cookies).status_code == 401  # the old session ended
    # the broker closed the old page's connection, and it cannot get a new token: it is sent to log in
    old.wait_for_selector("#login-form")


def test_change_password_in_the_browser(hub: HubStack, new_page: Any) -> None:
    email = "changer@example.com"
    db = Database(hub.settings.database_url)
    try:
        with db.session() as s:
            users.create_user(s, email, PASSWORD, rounds=4)
    finally:
        db.dispose()
    other, page = new_page(), new_page()
    log_in(other, hub, email, PASSWORD)
    log_in(page, hub, email, PASSWORD)
    page.click("#account-link")
    page.wait_for_selector("#password-form")
    page.fill("input[name=current]", "not my password")
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=confirm]", NEW_PASSWORD)
    page.click("#password-submit")
    page.wait_for_selector("#password-error:not([hidden])")
    assert "current password is not right" in page.inner_text("#password-error")
    page.fill("input[name=current]", PASSWORD)
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=confirm]", NEW_PASSWORD)
    page.click("#password-submit")
    page.wait_for_function("document.querySelector('#password-error').hidden && "
                           "!document.querySelector('#password-form input[name=current]').value")
    hub.http.sync()
    other.reload()
    other.wait_for_selector("#login-form")  # the other session ended
    page.reload()
    page.wait_for_selector("#whoami")  # this one goes on
    page.wait_for_function("document.querySelector('#live-state')?.dataset.state === 'live'")
