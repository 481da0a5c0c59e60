"""The web console in a real browser (Debian's headless Chromium, driven by Playwright)
against the real hub: Mosquitto with the plugin, the persister, the HTTP server.

One hub and one browser for the module (each test gets a fresh browser context, so
fresh cookies). The sequence page's screenshot lands in test-artifacts/; the
publish-to-page latency (p50 over 50 updates) is printed.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.controller import Controller
from hub.storage import permissions, resources, revisions, users, values
from hub.storage.db import Database
from hub.storage.models import Level, ResourceType
from hub.storage.resources import SequenceSpec
from hub.storage.revisions import NewRevision
from tests.fixtures.http import PASSWORD
from tests.support.browser import (
    PageLog,
    launch_chromium,
    publish_and_watch,
    require_chromium,
    screenshot,
    watch_page,
)
from tests.support.compaction import compact_db
from tests.support.console_stack import HubStack, ensure_console_built, hub_stack

pytestmark = pytest.mark.slow

SEEN_WITHIN_MS = 1000  # the bound for a published value to show in the page
WAIT_MS = 10_000  # for anything else the page does
TOKEN_TTL = 10  # seconds: short, so a test sees the console refresh its MQTT token
CONTROLLER = "acme/site/pi-01"
# Console errors a test provokes on purpose: the browser logs every failed request.
EXPECTED_ERRORS = ("status of 401", "status of 403", "status of 404")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubStack]:
    require_chromium()
    ensure_console_built()
    with hub_stack(tmp_path_factory.mktemp("console"), MQTT_TOKEN_TTL=TOKEN_TTL) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser(hub: HubStack) -> Iterator[Any]:
    with launch_chromium() as b:
        yield b


@pytest.fixture
def page_log() -> PageLog:
    """The page's console errors; a test adds to `allowed` what it provokes on purpose."""
    return PageLog(allowed=list(EXPECTED_ERRORS))


@pytest.fixture
def page(browser: Any, page_log: PageLog) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    p = context.new_page()
    watch_page(p, page_log)
    yield p
    context.close()
    assert not page_log.unexpected(), page_log.errors


@pytest.fixture
def hub_db(hub: HubStack) -> Iterator[Database]:
    database = Database(hub.settings.database_url)
    yield database
    database.dispose()


def login(page: Any, hub: HubStack, who: str, at: str = "#/") -> None:
    page.goto(f"{hub.url}/{at}")
    page.wait_for_selector("#login-form")
    page.fill("input[name=email]", hub.people.emails[who])
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#whoami")
    page.wait_for_function("document.querySelector('#live-state')?.dataset.state === 'live'")


def controller(hub: HubStack) -> Controller:
    """The controller client (hub.controller), connected with the seeded controller key."""
    return Controller(hub.people.keys["controller"], CONTROLLER, host=hub.settings.MQTT_HOST,
                      port=hub.settings.MQTT_PORT).connect(wait=10)


def shows_new_value(page: Any, hub: HubStack, value: float, sequence: str = "temperature") -> None:
    """The controller publishes `value` for `sequence`; the open sequence page shows it."""
    ctl = controller(hub)
    try:
        ctl.update(sequence, value)
        page.wait_for_function(f"document.querySelector('#latest-value').textContent.startsWith('{value}')",
                               timeout=SEEN_WITHIN_MS * 3)
    finally:
        ctl.close()


class Device:
    """A controller as the hub expects one, in plain paho: a last will saying it is gone,
    a status message on connect; it records the messages it receives."""

    def __init__(self, hub: HubStack, key: str, retry_for: float = 0.0) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.subscribed, self.accepted, self.closed = threading.Event(), threading.Event(), threading.Event()
        deadline = time.monotonic() + retry_for
        while True:  # a key made a moment ago reaches the broker within about a second
            self.accepted.clear()
            self.closed.clear()
            c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            c.username_pw_set(CONTROLLER, key)
            c.will_set(CONTROLLER, b'{"type":"status","parameters":{"connected":false}}', qos=1)
            c.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
            c.on_subscribe = lambda *_a: self.subscribed.set()
            c.on_connect = lambda _c, _u, _f, reason, _p: (not reason.is_failure and self.accepted.set(),
                                                            reason.is_failure and self.closed.set())
            c.on_disconnect = lambda *_a: self.closed.set()
            c.connect(hub.settings.MQTT_HOST, hub.settings.MQTT_PORT)
            c.loop_start()
            self.client = c
            answered = time.monotonic() + 10
            while not (self.accepted.is_set() or self.closed.is_set()) and time.monotonic() < answered:
                time.sleep(0.02)
            if self.accepted.is_set():
                return
            c.loop_stop()
            if time.monotonic() > deadline:
                raise AssertionError("the broker refused the controller's key")
            time.sleep(0.2)

    def start(self) -> None:
        self.client.subscribe(CONTROLLER, qos=1)
        assert self.subscribed.wait(5), "no SUBACK"
        info = self.client.publish(CONTROLLER, b'{"type":"status","parameters":{"connected":true}}', qos=1)
        info.wait_for_publish(5)

    def wait_message(self, payload: bytes, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (CONTROLLER, payload) in self.messages:
                return True
            time.sleep(0.02)
        return False

    def vanish(self) -> None:
        """Drop the connection without a DISCONNECT (power cut): the broker sends the will."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()


def sequence_with_a_value(hub: HubStack, db: Database, name: str) -> str:
    """`CONTROLLER/name`, a numeric sequence with a stored value: made by the test that
    needs it, which so needs no other test to run before it."""
    ctl = controller(hub)
    try:
        ctl.update(name, 1.0)
        assert ctl.flush(10)
    finally:
        ctl.close()
    wait_stored(db, f"{CONTROLLER}/{name}", 1)
    return f"{CONTROLLER}/{name}"


def wait_stored(db: Database, path: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as s:
            r = resources.find(s, path)
            if r is not None and len(revisions.history(s, r.id, count=count + 1)) >= count:
                return
        time.sleep(0.05)
    raise AssertionError(f"{path}: fewer than {count} values stored after {timeout} s")


# -- log in / out ------------------------------------------------------------------
def test_login_wrong_password_then_right_then_logout(page: Any, hub: HubStack) -> None:
    page.goto(f"{hub.url}/#/r/acme/site")
    page.wait_for_selector("#login-form")
    page.fill("input[name=email]", hub.people.emails["member"])
    page.fill("input[name=password]", "not the password")
    page.click("#login-submit")
    page.wait_for_selector("#login-error:not([hidden])")
    assert "do not match" in page.inner_text("#login-error")

    page.fill("input[name=password]", PASSWORD)
    page.click("#login-submit")
    # Back where the user was going, with the folder's contents and breadcrumbs.
    page.wait_for_selector("#children tr[data-path='acme/site/pi-01']")
    assert page.inner_text(".breadcrumbs").split() == ["All", "acme", "site"]
    assert page.inner_text("#whoami") == hub.people.emails["member"]

    page.click("#logout")
    page.wait_for_selector("#login-form")
    page.goto(f"{hub.url}/#/r/acme/site")
    page.wait_for_selector("#login-form")  # the cookie is gone: no way in without logging in


def test_expired_session_goes_back_to_login(page: Any, hub: HubStack) -> None:
    login(page, hub, "member", "#/r/acme/site")
    page.wait_for_selector("#children")
    page.context.clear_cookies()  # what an expired or revoked session looks like to the page
    page.click("#children a[href$='pi-01']")
    page.wait_for_selector("#login-form")
    assert "session has ended" in page.inner_text("#notice")
    assert "next=" in page.url


# -- live sequences ------------------------------------------------------------------
def test_sequence_page_live_values_chart_and_latency(page: Any, hub: HubStack, hub_db: Database) -> None:
    path = f"{CONTROLLER}/temperature"  # only this test writes it: the chart counts its points
    ctl = controller(hub)
    try:
        for i in range(5):  # some history for the chart
            ctl.update("temperature", 20.0 + i)
        assert ctl.flush(10)
        wait_stored(hub_db, path, 5)

        login(page, hub, "member", f"#/r/{path}")
        page.wait_for_selector("#chart[data-points='5']")
        assert page.inner_text("#latest-value").startswith("24")

        for i, value in enumerate((31.5, 32.25, 33.125)):
            ctl.update("temperature", value)
            t0 = time.monotonic()
            page.wait_for_function(f"document.querySelector('#latest-value').textContent.startsWith('{value}')",
                                   timeout=SEEN_WITHIN_MS)
            assert time.monotonic() - t0 < SEEN_WITHIN_MS / 1000 + 0.2
            page.wait_for_selector(f"#chart[data-points='{6 + i}']", timeout=SEEN_WITHIN_MS)
        shot = screenshot(page, "sequence-page")
        assert shot.stat().st_size > 10_000

        latencies = publish_to_page_latencies(page, ctl, 50)
    finally:
        ctl.close()
    p50 = statistics.median(latencies)
    p90 = statistics.quantiles(latencies, n=10)[-1]
    print(f"\nconsole publish->page latency over {len(latencies)} updates: p50={p50:.1f} ms "
          f"p90={p90:.1f} ms max={max(latencies):.1f} ms (screenshot: {shot})")
    assert p50 < SEEN_WITHIN_MS


def test_sequence_chart_over_compacted_history(page: Any, hub: HubStack, hub_db: Database) -> None:
    """Two days old values, moved into compacted blocks, chart as they did as rows."""
    path = f"{CONTROLLER}/archived"
    start = values.now_us() - 2 * 86_400_000_000
    with hub_db.session() as s:
        rid = resources.create(s, path, "sequence", sequence=SequenceSpec(units="C")).id
        revisions.append(s, [NewRevision(rid, start + i * 90_000_000, num=10.5 + (i % 7) / 4, size=8)
                             for i in range(120)])  # three hours, 90 s apart
    with hub_db.session() as s:
        rows = revisions.downsample(s, rid, start, start + 120 * 90_000_000, 400)
    assert compact_db(hub_db).values == 119
    with hub_db.session() as s:
        assert revisions.downsample(s, rid, start, start + 120 * 90_000_000, 400) == rows
    login(page, hub, "member", f"#/r/{path}")
    page.wait_for_selector("#chart[data-points='120']")  # one chart point per value, none lost or doubled
    assert page.inner_text("#latest-value") == "10.5 C"  # the latest value, a row still


def publish_to_page_latencies(page: Any, ctl: Controller, n: int) -> list[float]:
    """Latency of each of n values: when the page showed it - when it was published."""
    sent, shown = publish_and_watch(page, lambda v: ctl.update("temperature", v), [1000 + i for i in range(n)],
                                    SEEN_WITHIN_MS * 5)
    assert not set(sent) - set(shown), f"never shown: {sorted(set(sent) - set(shown))}"
    return [shown[k] - sent[k] for k in sent]


def test_folder_page_shows_latest_values_live(page: Any, hub: HubStack, hub_db: Database) -> None:
    ctl = controller(hub)
    try:
        ctl.update("humidity", 40)
        assert ctl.flush(10)
        wait_stored(hub_db, f"{CONTROLLER}/humidity", 1)
        login(page, hub, "member", f"#/r/{CONTROLLER}")
        cell = f"#children tr[data-path='{CONTROLLER}/humidity'] td.value"
        page.wait_for_function(f"document.querySelector(\"{cell}\")?.textContent === '40'")
        ctl.update("humidity", 41.5)
        page.wait_for_function(f"document.querySelector(\"{cell}\").textContent === '41.5'",
                               timeout=SEEN_WITHIN_MS)
        # A sequence created by its first update appears without reloading the page.
        ctl.update("pressure", 1013)
        page.wait_for_selector(f"#children tr[data-path='{CONTROLLER}/pressure']")
    finally:
        ctl.close()


# -- controllers and keys ---------------------------------------------------------------
def test_controller_page_connected_status_and_command(page: Any, hub: HubStack) -> None:
    login(page, hub, "writer", f"#/r/{CONTROLLER}")
    page.wait_for_selector("#controller-status")
    device = Device(hub, hub.people.keys["controller"])
    try:
        device.start()
        page.wait_for_selector("#controller-status[data-connected='true']")

        page.fill("#command-form input[name=type]", "reboot")
        page.fill("#command-form textarea[name=parameters]", '{"delay": 5}')
        page.click("#send-command")
        page.wait_for_function("document.querySelector('#command-result').textContent.includes('Sent')")
        assert device.wait_message(b'{"type":"reboot","parameters":{"delay":5}}')
    finally:
        device.vanish()
    page.wait_for_selector("#controller-status[data-connected='false']")

    page.click("#edit-watchdog")
    page.fill("dialog input[name=minutes]", "30")
    page.fill("dialog input[name=recipients]", hub.people.emails["member"])
    page.click("dialog button[type=submit]")
    page.wait_for_selector("#watchdog[data-minutes='30']")
    assert hub.people.emails["member"] in page.inner_text("#watchdog")


def test_member_cannot_send_commands(page: Any, hub: HubStack) -> None:
    """The page shows a reader no command form; the broker refuses the message anyway."""
    login(page, hub, "member", f"#/r/{CONTROLLER}")  # read access only
    page.wait_for_selector("#controller-status")
    assert page.locator("#command-form").count() == 0
    refused = page.evaluate(f"""() => window.hubConsole.live.publish({CONTROLLER!r}, "reboot", {{}})
        .then(() => "sent", (e) => e.message)""")
    assert "may not send messages" in refused


def test_create_key_listed_then_revoked_disconnects_controller(page: Any, hub: HubStack) -> None:
    login(page, hub, "orgadmin", f"#/r/{CONTROLLER}")
    page.click("#new-controller-key")
    page.fill("dialog input[name=name]", "field unit")
    page.click("dialog button[type=submit]:has-text('Create key')")
    secret = page.input_value("#new-key-secret")
    assert secret.startswith("hk_")
    page.click("#copy-key")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.click("#close-key")
    prefix = secret.split("_")[1]
    row = f"#controller-keys tr[data-prefix='{prefix}']"
    page.wait_for_selector(row)
    assert "field unit" in page.inner_text(row)
    assert secret not in page.content()  # shown once, never listed

    device = Device(hub, secret, retry_for=5)
    try:
        device.start()
        page.wait_for_selector("#controller-status[data-connected='true']")
        page.click(f"{row} button:has-text('Revoke')")
        page.click("#confirm-ok")
        page.wait_for_selector(f"{row}[data-revoked='true']")
        # The broker closes the revoked key's connection within seconds, sending its last
        # will (the one message the plugin still lets through): the page shows it gone.
        assert device.closed.wait(10), "the revoked key's connection is still open"
        page.wait_for_selector("#controller-status[data-connected='false']", timeout=5000)
    finally:
        device.vanish()

    page.goto(f"{hub.url}/#/keys")  # the keys page lists the user's own keys
    page.click("#new-key")
    page.click("dialog button[type=submit]:has-text('Create key')")
    own = page.input_value("#new-key-secret").split("_")[1]
    page.click("#close-key")
    page.wait_for_selector(f"#keys-list tr[data-prefix='{own}'][data-revoked='false']")


def test_key_table_shows_when_and_where_a_controller_key_was_used(page: Any, hub: HubStack,
                                                                   hub_db: Database) -> None:
    """A key used only over MQTT: "never" until the controller connects, then the time
    and the address (the broker plugin records it, at most once a minute per key)."""
    from hub.storage import keys

    with hub_db.session() as s:
        prefix, secret = (lambda made: (made[0].prefix, made[1]))(
            keys.create(s, controller_path=CONTROLLER, name="mqtt only"))
    login(page, hub, "orgadmin", f"#/r/{CONTROLLER}")
    cell = f"#controller-keys tr[data-prefix='{prefix}'] td.last-used"
    page.wait_for_selector(cell)
    assert page.inner_text(cell) == "never"
    device = Device(hub, secret, retry_for=5)  # a new key reaches the broker within about a second
    try:
        device.start()
        deadline = time.monotonic() + 30  # written by the plugin every couple of seconds
        while "never" in page.inner_text(cell) and time.monotonic() < deadline:
            page.reload()
            page.wait_for_selector(cell)
        text = page.inner_text(cell)
        assert "never" not in text and "from 127.0.0.1" in text, text
    finally:
        device.vanish()


# -- folders, permissions, errors ---------------------------------------------------------
def test_create_rename_delete_folder_with_confirmation(page: Any, hub: HubStack) -> None:
    login(page, hub, "writer", "#/r/acme/site")
    page.click("#new-folder")
    page.fill("dialog input[name=name]", "barn")
    page.click("dialog button[type=submit]:has-text('Create')")
    page.wait_for_selector("#resource-name:text-is('barn')")
    page.click("#rename")
    page.fill("dialog input[name=name]", "barn-2")
    page.click("dialog button[type=submit]:has-text('Rename')")
    page.wait_for_selector("#resource-name:text-is('barn-2')")
    assert page.url.endswith("#/r/acme/site/barn-2")
    page.click(".breadcrumbs a:text-is('site')")
    page.click("#children a:text-is('barn-2')")

    page.click("#delete")
    page.click("dialog button:has-text('Cancel')")  # nothing happens without confirming
    assert page.inner_text("#resource-name") == "barn-2"
    page.click("#delete")
    page.click("#confirm-ok")
    page.wait_for_selector("#children tr[data-path='acme/site/pi-01']")
    assert page.locator("#children tr[data-path='acme/site/barn-2']").count() == 0


def test_long_folder_pages_with_show_more(page: Any, hub: HubStack, hub_db: Database) -> None:
    with hub_db.session() as s:
        resources.create(s, "acme/site/many", ResourceType.FOLDER.value)
        for i in range(105):
            resources.create(s, f"acme/site/many/f{i:03d}", ResourceType.FOLDER.value)
    login(page, hub, "member", "#/r/acme/site/many")
    page.wait_for_selector("#children tr[data-path='acme/site/many/f099']")
    assert page.locator("#children tr[data-path]").count() == 100
    page.click("#more")
    page.wait_for_selector("#children tr[data-path='acme/site/many/f104']")
    assert page.locator("#children tr[data-path]").count() == 105
    assert page.locator("#more").count() == 0


def test_upload_file_preview_new_revision_download(page: Any, hub: HubStack) -> None:
    login(page, hub, "writer", "#/r/acme/site")
    page.click("#upload")
    page.set_input_files("dialog input[name=file]", files=[
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"first version\n"}])
    page.click("dialog button[type=submit]:has-text('Upload')")
    page.wait_for_selector("#resource-name:text-is('notes.txt')")
    page.wait_for_selector("#file-text:text-is('first version')")
    page.wait_for_selector("#revisions tr")

    page.click("#upload-revision")
    page.set_input_files("dialog input[name=file]", files=[
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"second version\n"}])
    page.click("dialog button[type=submit]:has-text('Upload')")
    page.wait_for_selector("#file-text:text-is('second version')")
    page.wait_for_function("document.querySelectorAll('#revisions tr').length === 2")
    # Each revision downloads as it was (the page's links, with the session cookie).
    links = page.eval_on_selector_all("#revisions a", "els => els.map(e => e.href)")
    bodies = [page.request.get(href).body() for href in links]
    assert bodies == [b"second version\n", b"first version\n"]


def test_denied_write_is_explained(page: Any, hub: HubStack, hub_db: Database) -> None:
    """Access withdrawn while the page is open: the button is still there, the API says no."""
    folder = "acme/site/borrowed"
    with hub_db.session() as s:
        if resources.find(s, folder) is None:
            resources.create(s, folder, ResourceType.FOLDER.value)
        grant_id = permissions.grant(s, folder, Level.WRITE, user_id=hub.people.users["member"]).id
    login(page, hub, "member", f"#/r/{folder}")
    page.wait_for_selector("#new-folder")
    with hub_db.session() as s:
        permissions.revoke(s, grant_id)
    hub.http.sync()  # the HTTP server has seen the change (and dropped what it had cached)
    page.click("#new-folder")
    page.fill("dialog input[name=name]", "nope")
    page.click("dialog button[type=submit]:has-text('Create')")
    page.wait_for_selector("#notice .notice.error")
    assert "You do not have permission" in page.inner_text("#notice")


def test_member_cannot_see_another_organizations_folder(page: Any, hub: HubStack, hub_db: Database) -> None:
    with hub_db.session() as s:
        if resources.find(s, "globex") is None:
            users.create_organization(s, "globex")
            resources.create(s, "globex/secret-lab", ResourceType.FOLDER.value)
    login(page, hub, "admin")  # the admin sees both organizations...
    page.wait_for_selector("#children a:text-is('globex')")
    page.click("#logout")
    login(page, hub, "member")  # ...the member of acme does not see globex
    page.wait_for_selector("#children tr")
    assert page.locator("#children a:text-is('globex')").count() == 0
    page.goto(f"{hub.url}/#/r/globex/secret-lab")
    page.wait_for_selector("#page-error")
    assert "nothing at globex/secret-lab that you can see" in page.inner_text("#page-error")
    hidden = page.inner_text("#page-error").replace("globex/secret-lab", "PATH")
    page.goto(f"{hub.url}/#/r/globex/no-such-folder")
    page.wait_for_function("document.querySelector('#page-error')?.textContent.includes('no-such-folder')")
    # The page cannot tell a folder it may not see from one that does not exist.
    assert page.inner_text("#page-error").replace("globex/no-such-folder", "PATH") == hidden


def test_grant_permission_then_outsider_sees_folder(page: Any, hub: HubStack, browser: Any) -> None:
    login(page, hub, "admin", "#/permissions/acme/site")  # an admin can find any user by email
    page.fill("#grant-form input[name=who]", hub.people.emails["outsider"])
    page.select_option("#grant-form select[name=level]", "read")
    page.click("#grant")
    page.wait_for_selector(f"#permissions td:text-is('{hub.people.emails['outsider']}')")

    other = browser.new_context()
    try:
        p2 = other.new_page()
        login(p2, hub, "outsider", "#/r/acme/site")
        p2.wait_for_selector("#children tr[data-path='acme/site/pi-01']")
    finally:
        other.close()

    row = f"#permissions tr:has(td:text-is('{hub.people.emails['outsider']}'))"
    page.click(f"{row} button:has-text('Revoke')")
    page.click("#confirm-ok")
    page.wait_for_selector(row, state="detached")


def test_admin_creates_organization(page: Any, hub: HubStack) -> None:
    login(page, hub, "admin", "#/admin")
    page.click("#new-organization")
    page.fill("dialog input[name=name]", "initech")
    page.click("dialog button[type=submit]:has-text('Create')")
    page.wait_for_selector("#organizations tr[data-name='initech']")
    page.wait_for_selector("#users tr[data-email]")
    page.click("#organizations a:text-is('initech')")
    page.fill("#add-member-form input[name=email]", hub.people.emails["outsider"])
    page.select_option("#add-member-form select[name=role]", "admin")
    page.click("#add-member-form button[type=submit]")
    row = f"#members tr[data-email='{hub.people.emails['outsider']}']"
    page.wait_for_selector(row)
    assert page.locator(f"{row} select").input_value() == "admin"


def test_organization_admin_adds_someone_from_another_organization(page: Any, hub: HubStack,
                                                                   hub_db: Database) -> None:
    email = f"contractor-{time.monotonic_ns()}@example.com"
    with hub_db.session() as s:
        other = users.create_organization(s, "hooli")  # its own: the admin test creates initech
        users.set_membership(s, other, users.create_user(s, email, PASSWORD, rounds=4))
    login(page, hub, "orgadmin", "#/admin/org/acme")
    page.fill("#add-member-form input[name=email]", email)
    page.click("#add-member-form button[type=submit]")
    page.wait_for_selector(f"#members tr[data-email='{email}']")
    # and grants a folder to another one, without making them a member
    guest = email.replace("contractor", "guest")
    with hub_db.session() as s:
        users.set_membership(s, users.get_organization(s, "hooli"), users.create_user(s, guest, PASSWORD, rounds=4))
    page.goto(f"{hub.url}/#/permissions/acme/site")
    page.fill("#grant-form input[name=who]", guest)
    page.select_option("#grant-form select[name=level]", "read")
    page.click("#grant")

    def guest_level() -> Level:
        with hub_db.session() as s:
            u = users.find_user_by_email(s, guest)
            assert u is not None
            return permissions.level(s, users.subject_for_user(s, u), "acme/site")

    deadline = time.monotonic() + 5
    while guest_level() != Level.READ and time.monotonic() < deadline:
        time.sleep(0.05)
    assert guest_level() == Level.READ


# -- the live feed survives a broker restart, with a refreshed token ------------------
def test_token_refreshed_and_reconnects_after_broker_restart(page: Any, page_log: PageLog,
                                                              hub: HubStack, hub_db: Database) -> None:
    page_log.allowed += ["ERR_CONNECTION_REFUSED", "ERR_CONNECTION_RESET"]  # while the broker is down / starting
    path = sequence_with_a_value(hub, hub_db, "restart-temperature")
    login(page, hub, "member", f"#/r/{path}")
    page.wait_for_selector("#chart")
    first = page.evaluate("window.hubConsole.live.client.options.password")
    # Refreshed at 3/4 of its life, and the first token has expired by the time we restart.
    page.wait_for_function("window.hubConsole.live.refreshes >= 1", timeout=TOKEN_TTL * 1000)
    assert page.evaluate("window.hubConsole.live.client.options.password") != first
    time.sleep(max(0.0, TOKEN_TTL + 1 - 0.75 * TOKEN_TTL))
    hub.restart_broker()  # and the persister has subscribed again: later tests find the hub whole
    page.wait_for_function("document.querySelector('#live-state').dataset.state === 'live'",
                           timeout=15_000)
    shows_new_value(page, hub, 77.25, "restart-temperature")



# -- the broker ends a connection when its token runs out; the console carries on -----
def test_token_expiry_renews_the_live_feed_quietly(page: Any, hub: HubStack, hub_db: Database) -> None:
    path = sequence_with_a_value(hub, hub_db, "expiry-temperature")
    login(page, hub, "member", f"#/r/{path}")
    page.wait_for_function("document.querySelector('#live-state').dataset.state === 'live'", timeout=15_000)
    page.evaluate("""() => { window.__states = [];
        window.hubConsole.live.addEventListener('state', (e) => window.__states.push(e.detail.state)); }""")
    connects = page.evaluate("window.hubConsole.live.connects")
    # the broker ends the connection when its (TOKEN_TTL) token runs out; the console reconnects
    page.wait_for_function(f"window.hubConsole.live.connects > {connects}", timeout=(TOKEN_TTL + 8) * 1000)
    page.wait_for_function("document.querySelector('#live-state').dataset.state === 'live'", timeout=5_000)
    states = page.evaluate("window.__states")
    assert "connecting" in states and "offline" not in states, states
    shows_new_value(page, hub, 66.5, "expiry-temperature")
    assert hub.broker.wait_log("its token expired")


# -- a page offers only what the caller may do -----------------------------------------
@pytest.mark.parametrize(("who", "shown", "hidden"), [
    ("member", [], ["#new-folder", "#upload", "#new-controller", "#permissions-link", "#rename", "#delete",
                    "#send-command", "#edit-watchdog", "#new-controller-key"]),
    ("writer", ["#new-folder", "#upload", "#send-command", "#edit-watchdog"],
     ["#new-controller", "#permissions-link", "#new-controller-key"]),
    ("orgadmin", ["#new-folder", "#new-controller", "#permissions-link", "#send-command", "#new-controller-key"],
     []),
])
def test_buttons_follow_the_callers_access(page: Any, hub: HubStack, who: str, shown: list[str],
                                           hidden: list[str]) -> None:
    login(page, hub, who, "#/r/acme/site")
    page.wait_for_function("document.querySelector('#resource-name')?.textContent === 'site'")
    page.wait_for_selector("#entries, table, .empty", state="attached")
    seen = {sel: page.locator(sel).count() > 0 for sel in shown + hidden if not sel.startswith(("#send", "#edit",
                                                                                               "#new-controller-"))}
    page.goto(f"{hub.url}/#/r/{CONTROLLER}")
    page.wait_for_selector("#controller-status")
    page.wait_for_selector("#controller-keys p, #controller-keys table", state="attached")
    seen |= {sel: page.locator(sel).count() > 0 for sel in shown + hidden if sel.startswith(("#send", "#edit",
                                                                                            "#new-controller-"))}
    assert {s for s in shown if not seen[s]} == set() and {s for s in hidden if seen[s]} == set(), seen
