"""The notifier's outbox of account emails (hub/notify/outbox.py) against a real SMTP
server (aiosmtpd): sent once and the link cleared from the database, a failure tried
again, email off failing at once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hub.notify import outbox
from hub.storage import accounts
from hub.storage.db import migrate
from hub.storage.models import AccountEmail, OutgoingMessage
from hub.storage.store import Store
from tests.support.notify import smtp_server
from tests.support.ports import free_port


def _store(settings_factory: Any, **overrides: Any) -> tuple[Any, Store]:
    settings, _ = settings_factory(SMTP_FROM="hub@example.org", SMTP_TLS="none", **overrides)
    migrate(settings.database_url)
    store = Store.from_settings(settings)
    with store.session() as s:
        accounts.queue_email(s, "ada@example.com", "Reset your hub password", "the link: http://x/#/reset/abc")
    return settings, store


def _row(store: Store) -> AccountEmail:
    with store.session() as s:
        row = s.scalars(select(AccountEmail)).one()
        s.expunge(row)
        return row


def test_sent_once_and_the_link_forgotten(settings_factory: Any) -> None:
    with smtp_server() as (sink, port):
        settings, store = _store(settings_factory, SMTP_HOST="127.0.0.1", SMTP_PORT=port)
        assert outbox.deliver(settings, store) == 1
        assert outbox.deliver(settings, store) == 0  # not twice
        mails = sink.wait(1)
    assert len(mails) == 1 and mails[0].rcpt_tos == ["ada@example.com"]
    assert mails[0].message["Subject"] == "Reset your hub password"
    row = _row(store)
    assert (row.status, row.body, row.attempts) == ("sent", "", 1)
    with store.session() as s:
        assert s.scalars(select(OutgoingMessage.status)).all() == ["sent"]


def test_a_failed_send_is_tried_again(settings_factory: Any) -> None:
    settings, store = _store(settings_factory, SMTP_HOST="127.0.0.1", SMTP_PORT=free_port())  # nobody listens
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        assert outbox.deliver(settings, store) == 0
        row = _row(store)
        assert row.attempts == attempt and "SMTP server" in row.detail
        assert row.status == ("failed" if attempt == outbox.MAX_ATTEMPTS else "queued")
    assert row.body == ""


def test_email_off_fails_at_once(settings_factory: Any) -> None:
    settings, store = _store(settings_factory)
    outbox.deliver(settings, store)
    row = _row(store)
    assert (row.status, row.body) == ("failed", "") and "SMTP_HOST" in row.detail
