"""The account emails (invitations, password resets: `hub.storage.accounts.queue_email`),
sent by the notifier over its SMTP path, so the HTTP server never speaks SMTP.

Each notifier claims queued rows atomically (several never send one twice; a row claimed
by a notifier that died is taken again after STALE), sends them with
`hub.notify.channels.send_email`, then marks them sent and clears the body (it holds the
link). A failed send is tried again, MAX_ATTEMPTS times in all; email being off fails it at once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from hub.notify import channels
from hub.settings import Settings
from hub.storage import outgoing
from hub.storage.models import AccountEmail, utcnow
from hub.storage.store import Store

log = logging.getLogger("hub.notify.outbox")

STALE = timedelta(minutes=5)
MAX_ATTEMPTS = 5
BATCH = 20
SENDER = "hub:accounts"  # the sender the outgoing-message record names


def claim(store: Store, now: datetime | None = None) -> list[tuple[int, str, str, str]]:
    """(id, recipient, subject, body) of the rows this notifier now owns."""
    now = now or utcnow()
    out = []
    with store.session() as s:
        rows = s.execute(select(AccountEmail.id, AccountEmail.status, AccountEmail.claimed_at).where(or_(
            AccountEmail.status == "queued",
            (AccountEmail.status == "sending") & (AccountEmail.claimed_at < now - STALE)))
            .order_by(AccountEmail.id).limit(BATCH)).all()
    for row_id, status, claimed_at in rows:
        with store.session() as s:
            q = update(AccountEmail).where(AccountEmail.id == row_id, AccountEmail.status == status)
            if claimed_at is not None:
                q = q.where(AccountEmail.claimed_at == claimed_at)
            done = s.execute(q.values(status="sending", claimed_at=now, attempts=AccountEmail.attempts + 1))
            if getattr(done, "rowcount", 0) == 1:
                e = s.get(AccountEmail, row_id)
                if e is not None:
                    out.append((e.id, e.recipient, e.subject, e.body))
    return out


def deliver(settings: Settings, store: Store) -> int:
    """Send what is queued; returns how many went out."""
    sent = 0
    for row_id, to, subject, body in claim(store):
        status, detail = "sent", ""
        try:
            channels.send_email(settings, [to], subject, body)
            sent += 1
        except channels.ChannelOff as e:
            status, detail = "failed", e.message
        except channels.DeliveryFailed as e:
            status, detail = "queued", e.message
        log.info("account email %s to %s: %s %s", row_id, to, status, detail)
        with store.session() as s:
            row = s.get(AccountEmail, row_id)
            if row is None:
                continue
            if status == "queued" and row.attempts >= MAX_ATTEMPTS:
                status = "failed"
            row.status, row.detail = status, detail[:500]
            if status != "queued":
                row.body = ""
                outgoing.record(s, sender=SENDER, kind=outgoing.EMAIL, recipients=[to], subject=subject,
                                status=outgoing.SENT if status == "sent" else outgoing.FAILED, detail=detail)
    return sent
