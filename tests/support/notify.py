"""Real local endpoints for the notifier's tests: an SMTP server (aiosmtpd) and an HTTP
endpoint that answers like Twilio's Messages API (aiohttp), each on a free port in a
background thread, recording what arrived; and `notify_world`: those two, a migrated
SQLite database with organizations `acme` (alice, bob) and `other` (stranger), N
controllers `acme/pi-NN` with keys, the real Mosquitto with the hub plugin, and a
running `Notifier` (WATCHDOG_CHECK_SECONDS 0.2)."""

from __future__ import annotations

import asyncio
import base64
import email
import secrets
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from hub.notify.daemon import Notifier
from hub.settings import Settings, load
from hub.storage import keys, resources, users
from hub.storage.db import Database, migrate
from hub.storage.models import OutgoingMessage
from tests.support.broker import Client, RunningBroker, mqtt_client, start_broker
from tests.support.ports import free_port
from tests.support.settings import write_settings_file


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: Message
    at: float = field(default_factory=time.monotonic)  # when it arrived


class SmtpSink:
    """aiosmtpd handler: keeps every message; with `login`, only that user/password may send."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self._cv = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content or envelope.content)
        with self._cv:
            self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), msg))
            self._cv.notify_all()
        return "250 OK"

    def wait(self, count: int, timeout: float = 10.0) -> list[Mail]:
        with self._cv:
            self._cv.wait_for(lambda: len(self.mails) >= count, timeout)
            return list(self.mails)


@contextmanager
def smtp_server(login: tuple[str, str] | None = None, tls: str = "none",
                cert: tuple[Path, Path] | None = None) -> Iterator[tuple[SmtpSink, int]]:
    """A local SMTP server; `tls` "starttls" (required) or "ssl" with `cert` (certificate, key)."""
    sink = SmtpSink()
    port = free_port()
    kw: dict[str, Any] = {}
    if login is not None:
        def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == login
            return AuthResult(success=ok, handled=False)

        # (aiosmtpd knows of STARTTLS, not of a TLS listener: there it would not offer AUTH)
        kw = {"authenticator": check, "auth_require_tls": tls == "starttls"}
    if tls != "none":
        assert cert is not None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        kw |= {"tls_context": ctx, "require_starttls": True} if tls == "starttls" else {"ssl_context": ctx}
    ctl = Controller(sink, hostname="127.0.0.1", port=port, **kw)
    ctl.start()
    try:
        yield sink, port
    finally:
        ctl.stop()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate (and its key) for localhost and 127.0.0.1, made by openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return cert, key


@dataclass
class SmsEndpoint:
    """A Twilio-compatible Messages endpoint: POST .../Accounts/{sid}/Messages.json with
    HTTP Basic (sid, token) and form fields To, From, Body; 201 and a JSON body on success.
    A `To` of `fail_number` gets 400 with a Twilio-style error."""

    account: str
    token: str
    port: int = 0
    fail_number: str = "+15550000000"
    received: list[dict[str, str]] = field(default_factory=list)
    refused_auth: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/2010-04-01/Accounts/{{account}}/Messages.json"

    async def handle(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{self.account}:{self.token}".encode()).decode()
        if request.headers.get("Authorization") != expected or request.match_info["sid"] != self.account:
            self.refused_auth += 1
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        form = dict(await request.post())
        if form.get("To") == self.fail_number:
            return web.json_response({"code": 21211, "message": f"The 'To' number {form['To']} is not valid."},
                                     status=400)
        self.received.append({k: str(v) for k, v in form.items()})
        return web.json_response({"sid": f"SM{len(self.received):032d}", "status": "queued"}, status=201)

    def wait(self, count: int, timeout: float = 10.0) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received)


@contextmanager
def sms_endpoint(account: str = "AC0123456789", token: str = "sms-token-123") -> Iterator[SmsEndpoint]:
    ep = SmsEndpoint(account, token, port=free_port())
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", ep.handle)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", ep.port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="sms-endpoint", daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield ep
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


PASSWORD = "correct horse battery"


@dataclass
class World:
    settings: Settings
    settings_path: Path
    db: Database
    broker: RunningBroker
    notifier: Notifier
    smtp: SmtpSink
    sms: SmsEndpoint
    emails: dict[str, str]
    keys: dict[str, str]  # controller name (pi-01, ...) -> key

    def controller(self, name: str) -> Client:
        c = mqtt_client(self.broker, self.keys[name], username="key")
        assert c.connected.is_set(), self.broker.log_tail()
        return c

    def outgoing(self, sender: str) -> list[OutgoingMessage]:
        with self.db.session() as s:
            return list(s.scalars(select(OutgoingMessage).where(OutgoingMessage.sender == sender)
                                  .order_by(OutgoingMessage.id)))


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def seed(db: Database, n_controllers: int) -> tuple[dict[str, str], dict[str, str]]:
    tag = secrets.token_hex(3)
    with db.session() as s:
        acme, other = users.create_organization(s, "acme"), users.create_organization(s, "other")
        emails = {}
        for name, org in (("alice", acme), ("bob", acme), ("stranger", other)):
            u = users.create_user(s, f"{name}-{tag}@example.com", PASSWORD, rounds=4)
            users.set_membership(s, org, u)
            emails[name] = u.email
            if name == "alice":
                u.phone = "+15551230001"
        made = {}
        for i in range(1, n_controllers + 1):
            path = f"acme/pi-{i:02d}"
            resources.create(s, path, "controller")
            made[f"pi-{i:02d}"] = keys.create(s, controller_path=path, name="test")[1]
    return emails, made


@contextmanager
def notify_world(root: Path, controllers: int = 1, **overrides: Any) -> Iterator[World]:
    with smtp_server() as (smtp, smtp_port), sms_endpoint() as sms:
        values: dict[str, Any] = {
            "DATA_DIR": str(root / "data"), "SECRET_KEY": secrets.token_hex(24),
            "DATABASE_URL": f"sqlite:///{root / 'hub.db'}", "MQTT_PORT": free_port(), "MQTT_WS_PORT": free_port(),
            "HTTP_PORT": free_port(), "PASSWORD_HASH_ROUNDS": 4,
            "SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp_port, "SMTP_TLS": "none", "SMTP_FROM": "hub@example.com",
            "SMS_URL": sms.url, "SMS_ACCOUNT": sms.account, "SMS_TOKEN": sms.token, "SMS_FROM": "+15559990000",
            "WATCHDOG_CHECK_SECONDS": 0.2, "NOTIFY_CLIENT_ID": "notifier-" + secrets.token_hex(3),
            "MQTT_REQUIRE_PERSISTER": False}  # no persister in this world: the broker only relays
        values.update(overrides)
        path = write_settings_file(root / "config.py", values)
        settings = load(path, env={})
        migrate(settings.database_url)
        db = Database(settings.database_url)
        emails, made = seed(db, controllers)
        broker = start_broker(path)
        notifier = Notifier(settings)
        notifier.start()
        try:
            assert notifier.subscribed.wait(10), broker.log_tail()
            yield World(settings, path, db, broker, notifier, smtp, sms, emails, made)
        finally:
            notifier.stop()
            notifier.store.close()
            broker.stop()
            db.dispose()
