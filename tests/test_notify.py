"""The notifier end to end: a controller publishes through the real Mosquitto (with the hub
plugin), the notifier delivers to a real local SMTP server (aiosmtpd) and a local
Twilio-compatible HTTP endpoint; throttling, recipient rules and controller status."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from hub.settings import Settings
from hub.storage import controllers, keys, permissions, resources, users
from hub.storage.models import ControllerStatus, Level
from tests.support.notify import World, notify_world, self_signed, smtp_server, wait_for
from tests.support.settings import clean_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with notify_world(tmp_path_factory.mktemp("notify"), controllers=6) as w:
        yield w


def test_email_reaches_the_smtp_server_with_the_right_recipients(world: World) -> None:
    before = len(world.smtp.mails)
    c = world.controller("pi-01")
    try:
        c.publish("acme/pi-01", json.dumps({"type": "send_email", "parameters": {
            "to": [world.emails["alice"], world.emails["bob"]], "subject": "Tank low\r\nBcc: evil@example.com",
            "body": "Level at 12 %."}}))
        # the rhizo form, from the same controller
        c.publish("acme/pi-01", json.dumps({"send_email": {
            "emailAddresses": world.emails["bob"], "subject": "rhizo form", "body": "hello"}}))
        mails = world.smtp.wait(before + 2)[before:]
    finally:
        c.close()
    assert len(mails) == 2, world.outgoing("acme/pi-01")
    first = next(m for m in mails if m.message["Subject"].startswith("Tank low"))
    assert sorted(first.rcpt_tos) == sorted([world.emails["alice"], world.emails["bob"]])
    assert first.mail_from == "hub@example.com"
    assert first.message["Subject"] == "Tank low Bcc: evil@example.com"  # no header injection
    assert first.message["X-Hub-Folder"] == "acme/pi-01"
    assert first.message.get_payload(decode=True).decode().strip() == "Level at 12 %."
    second = next(m for m in mails if m.message["Subject"] == "rhizo form")
    assert second.rcpt_tos == [world.emails["bob"]]
    assert wait_for(lambda: [r.status for r in world.outgoing("acme/pi-01")].count("sent") == 2)


def test_recipients_outside_the_organization_are_refused(world: World, caplog: pytest.LogCaptureFixture) -> None:
    before = len(world.smtp.mails)
    c = world.controller("pi-03")
    try:
        with caplog.at_level(logging.WARNING, logger="hub.notify"):
            c.publish("acme/pi-03", json.dumps({"type": "send_email", "parameters": {
                "to": [world.emails["alice"], world.emails["stranger"]], "subject": "x", "body": "y"}}))
            assert wait_for(lambda: len(world.outgoing("acme/pi-03")) == 1)
    finally:
        c.close()
    row = world.outgoing("acme/pi-03")[0]
    assert row.status == "refused" and world.emails["stranger"] in row.detail
    assert "NOTIFY_ANY_RECIPIENT" in row.detail
    assert any("refused" in r.getMessage() and world.emails["stranger"] in r.getMessage() for r in caplog.records)
    assert world.notifier.wait_idle()  # every job done: nothing is left to send
    assert len(world.smtp.mails) == before


def test_text_message_is_a_twilio_request(world: World) -> None:
    before = len(world.sms.received)
    c = world.controller("pi-04")
    try:
        c.publish("acme/pi-04", json.dumps({"type": "send_text_message", "parameters": {
            "to": "+1 (555) 123-0001", "message": "Pump 2 stopped"}}))
        # rhizo's names; the provider refuses this number (400 with a Twilio-style message)
        c.publish("acme/pi-04", json.dumps({"send_sms": {"phoneNumbers": "+15551230001", "message": "again"}}))
        got = world.sms.wait(before + 2)[before:]
    finally:
        c.close()
    assert {"To": "+15551230001", "From": "+15559990000", "Body": "Pump 2 stopped"} in got
    assert {"To": "+15551230001", "From": "+15559990000", "Body": "again"} in got
    assert world.sms.refused_auth == 0
    assert wait_for(lambda: [r.status for r in world.outgoing("acme/pi-04")] == ["sent", "sent"])


def test_provider_error_is_recorded_as_failed(world: World) -> None:
    with world.db.session() as s:
        users.find_user_by_email(s, world.emails["bob"]).phone = world.sms.fail_number  # type: ignore[union-attr]
    c = world.controller("pi-05")
    try:
        c.publish("acme/pi-05", json.dumps({"type": "send_text_message", "parameters": {
            "to": world.sms.fail_number, "message": "hi"}}))
        assert wait_for(lambda: [r.status for r in world.outgoing("acme/pi-05")] == ["failed"])
    finally:
        c.close()
    assert "is not valid" in world.outgoing("acme/pi-05")[0].detail


def test_throttle_refuses_the_eleventh_message(world: World, caplog: pytest.LogCaptureFixture) -> None:
    before = len(world.smtp.mails)
    throttled = world.notifier.stats.throttled
    with world.db.session() as s:
        resources.create(s, "acme/pi-02/pump", "folder")
    world.broker.sync()
    c = world.controller("pi-02")
    try:
        with caplog.at_level(logging.WARNING, logger="hub.notify"):
            for i in range(11):  # a controller's subfolders share its quota
                c.publish("acme/pi-02" if i < 6 else "acme/pi-02/pump", json.dumps({
                    "type": "send_email", "parameters": {"to": world.emails["alice"], "subject": f"n{i}"}}))
            assert wait_for(lambda: world.notifier.stats.throttled == throttled + 1)
    finally:
        c.close()
    assert len(world.smtp.wait(before + 10)) == before + 10
    assert wait_for(lambda: [r.status for r in world.outgoing("acme/pi-02")].count("sent") == 10)
    rows = world.outgoing("acme/pi-02")
    assert [r.status for r in rows].count("throttled") == 1
    assert "NOTIFY_MAX_PER_HOUR=10" in next(r for r in rows if r.status == "throttled").detail
    assert any("throttled" in r.getMessage() for r in caplog.records)
    assert world.notifier.wait_idle()
    assert len(world.smtp.mails) == before + 10


def test_status_and_connected_messages_are_kept(world: World) -> None:
    c = world.controller("pi-06")
    try:
        c.publish("acme/pi-06", json.dumps({"type": "connected", "parameters": {"client_version": "1.2.3"}}))
        c.publish("acme/pi-06", json.dumps({"type": "status", "parameters": {"ip": "10.0.0.6", "uptime": 42}}))

        def described() -> dict:
            with world.db.session() as s:
                return controllers.describe(s, resources.get(s, "acme/pi-06"))

        assert wait_for(lambda: described()["status"] == {"ip": "10.0.0.6", "uptime": 42}
                        and described()["last_message"] is not None)
    finally:
        c.close()
    d = described()
    assert d["client_version"] == "1.2.3" and d["last_connect"] is not None
    with world.db.session() as s:
        assert s.get(ControllerStatus, resources.get(s, "acme/pi-06").id) is not None


def test_smtp_login_and_refused_login(tmp_path: Path, settings_factory: Callable[..., tuple[Settings, Path]]) -> None:
    from hub.notify import channels

    with smtp_server(login=("hub", "s3cret")) as (sink, port):
        base = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "SMTP_TLS": "none", "SMTP_USER": "hub"}
        good, _ = settings_factory(**base, SMTP_PASSWORD="s3cret")
        channels.send_email(good, ["a@example.com"], "hi", "body")
        assert [m.rcpt_tos for m in sink.wait(1)] == [["a@example.com"]]
        assert sink.mails[0].mail_from == "hub"  # SMTP_FROM empty: the login
        bad, _ = settings_factory(**base, SMTP_PASSWORD="wrong")
        with pytest.raises(channels.DeliveryFailed) as e:
            channels.send_email(bad, ["a@example.com"], "hi", "body")
        assert "SMTP_PASSWORD" in e.value.message and "wrong" not in e.value.message
    off, _ = settings_factory()
    with pytest.raises(channels.ChannelOff) as e2:
        channels.send_email(off, ["a@example.com"], "hi", "body")
    assert "SMTP_HOST" in e2.value.message


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_smtp_over_tls_checks_the_servers_certificate(tmp_path: Path, tls: str, monkeypatch: pytest.MonkeyPatch,
                                                      settings_factory: Callable[..., tuple[Settings, Path]]) -> None:
    from hub.notify import channels

    cert = self_signed(tmp_path)
    with smtp_server(login=("hub", "s3cret"), tls=tls, cert=cert) as (sink, port):
        settings, _ = settings_factory(SMTP_HOST="localhost", SMTP_PORT=port, SMTP_TLS=tls, SMTP_USER="hub",
                                       SMTP_PASSWORD="s3cret", SMTP_FROM="hub@example.com")
        with pytest.raises(channels.DeliveryFailed) as e:  # a certificate nobody vouches for
            channels.send_email(settings, ["a@example.com"], "hi", "body")
        assert "CERTIFICATE_VERIFY_FAILED" in e.value.message and sink.mails == []
        monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))  # now the system trusts it
        channels.send_email(settings, ["a@example.com"], "over tls", "body")
        assert [m.message["Subject"] for m in sink.wait(1)] == ["over tls"]


def test_controller_client_reports_connect_and_status(world: World) -> None:
    from hub.controller.client import Controller
    from hub.controller.status import CLIENT_VERSION, StatusReporter

    c = Controller(world.keys["pi-06"], "acme/pi-06", host=world.broker.host, port=world.broker.port)
    c.connect(wait=10)
    reporter = StatusReporter(c, interval=0.2).start()
    try:
        def described() -> dict:
            with world.db.session() as s:
                return controllers.describe(s, resources.get(s, "acme/pi-06"))

        assert wait_for(lambda: (described()["status"] or {}).get("client_version") == CLIENT_VERSION)
        d = described()
        assert d["client_version"] == CLIENT_VERSION and d["last_connect"] is not None
        assert d["status"]["free_disk_space"] > 0 and 0 <= d["status"]["processor_usage"] <= 100
        assert d["status"]["messages_sent"] >= 1
        assert wait_for(lambda: reporter.reports >= 2)  # keeps reporting every interval
    finally:
        reporter.stop()
        c.close()


def test_send_email_through_the_http_api(world: World) -> None:
    from tests.fixtures.http import start_http_server

    with world.db.session() as s:
        resources.create(s, "acme/ops", "folder")
        alice = users.find_user_by_email(s, world.emails["alice"])
        assert alice is not None
        permissions.grant(s, "acme/ops", Level.WRITE, user_id=alice.id)
        key = keys.create(s, user_id=alice.id)[1]
    world.broker.sync()
    before = len(world.smtp.mails)
    with start_http_server(world.settings, world.settings_path, migrate_db=False) as srv:
        r = requests.post(srv.api("/messages"), json={"folder": "acme/ops", "type": "send_email", "parameters": {
            "to": world.emails["bob"], "subject": "from a script", "body": "hi"}},
            headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 202, r.text
        mails = world.smtp.wait(before + 1)
    assert mails[-1].message["Subject"] == "from a script" and mails[-1].rcpt_tos == [world.emails["bob"]]
    # the SMTP server has the mail before the notifier marks it sent: wait for the mark
    assert wait_for(lambda: [row.status for row in world.outgoing("acme/ops")] == ["sent"]), world.outgoing("acme/ops")


def test_email_in_flight_when_the_notifier_is_killed_is_sent_after_restart(tmp_path: Path) -> None:
    """At least once: a send_email is acknowledged to the broker only once handled, so a
    notifier killed (-9) while its SMTP server hangs gets the message again on restart."""
    with socket.socket() as hang, notify_world(tmp_path, controllers=1) as w:
        hang.bind(("127.0.0.1", 0))
        hang.listen(8)  # accepts connections, never says a word: the send blocks
        w.notifier.stop()  # its MQTT session (and the shared subscription) outlives it
        log_path = tmp_path / "notifier.log"

        def start(**env: str) -> subprocess.Popen[bytes]:
            with open(log_path, "ab") as log:
                return subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--notifier"],
                                        env=clean_env(w.settings_path, HUB_LOG_LEVEL="INFO", **env),
                                        stdout=log, stderr=subprocess.STDOUT)

        first = start(HUB_SMTP_PORT=str(hang.getsockname()[1]))
        try:
            assert wait_for(lambda: b"notifier subscribed" in log_path.read_bytes(), 15), log_path.read_text()
            c = w.controller("pi-01")
            try:
                c.publish("acme/pi-01", json.dumps({"type": "send_email", "parameters": {
                    "to": [w.emails["alice"]], "subject": "in flight", "body": "b"}}))
            finally:
                c.close()
            hang.settimeout(10)
            held, _ = hang.accept()  # the notifier is inside its SMTP send now
        finally:
            first.kill()
            first.wait(10)
        held.close()
        second = start()
        try:
            mails = w.smtp.wait(1, timeout=20)
            assert [m.message["Subject"] for m in mails] == ["in flight"], log_path.read_text()
        finally:
            second.terminate()
            second.wait(10)
