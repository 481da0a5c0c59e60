"""Outgoing emails and text messages: the record the per-sender throttle counts, and
who a folder's messages may go to.

A sender is the folder a `send_email` / `send_text_message` was published to (its
topic): the broker let the publisher write there, so the folder is accountable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hub.errors import BadRequest
from hub.storage.models import Membership, OutgoingMessage, User, utcnow

EMAIL, SMS = "email", "sms"
SENT, FAILED, THROTTLED, REFUSED, SENDING = "sent", "failed", "throttled", "refused", "sending"
COUNTED = (SENT, FAILED, SENDING)  # what the throttle counts: every attempt to reach someone
WINDOW = timedelta(hours=1)
KEEP = timedelta(days=30)
_PHONE_JUNK = re.compile(r"[ \t\n\r\f\v().\-]")
_PHONE = re.compile(r"\+?[0-9]{6,15}")


def normalize_phone(text: str) -> str | None:
    """`+1 (555) 123-4567` -> `+15551234567`; None if it is not a phone number."""
    p = _PHONE_JUNK.sub("", text or "")
    return p if _PHONE.fullmatch(p) else None


@dataclass
class Contacts:
    """Emails and phone numbers of an organization's users."""

    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)


def contacts(s: Session, organization_id: int | None) -> Contacts:
    out = Contacts()
    if organization_id is None:
        return out
    for email, phone in s.execute(select(User.email, User.phone).join(
            Membership, Membership.user_id == User.id).where(
            Membership.organization_id == organization_id, ~User.deleted)):
        out.emails.add(email.lower())
        if phone and (p := normalize_phone(phone)):
            out.phones.add(p)
    return out


def sent_recently(s: Session, sender: str, now: datetime | None = None) -> int:
    """Messages counted against `sender` in the last hour."""
    now = now or utcnow()
    return int(s.scalar(select(func.count()).select_from(OutgoingMessage).where(
        OutgoingMessage.sender == sender, OutgoingMessage.created_at > now - WINDOW,
        OutgoingMessage.status.in_(COUNTED))) or 0)


def oldest_recent(s: Session, sender: str, now: datetime) -> datetime | None:
    return s.scalar(select(func.min(OutgoingMessage.created_at)).where(
        OutgoingMessage.sender == sender, OutgoingMessage.created_at > now - WINDOW,
        OutgoingMessage.status.in_(COUNTED)))


def record(s: Session, *, sender: str, kind: str, recipients: list[str], subject: str, status: str,
           detail: str = "", now: datetime | None = None) -> OutgoingMessage:
    row = OutgoingMessage(created_at=now or utcnow(), sender=sender[:500], kind=kind,
                          recipients=", ".join(recipients), subject=subject[:200], status=status,
                          detail=detail[:500])
    s.add(row)
    s.flush()
    return row


def finish(s: Session, message_id: int, status: str, detail: str = "") -> None:
    row = s.get(OutgoingMessage, message_id)
    if row is not None:
        row.status, row.detail = status, detail[:500]


def purge(s: Session, now: datetime | None = None) -> int:
    """Forget messages older than 30 days."""
    result = s.execute(delete(OutgoingMessage).where(OutgoingMessage.created_at < (now or utcnow()) - KEEP))
    return int(getattr(result, "rowcount", 0) or 0)


def set_phone(s: Session, user: User, phone: str | None) -> None:
    """A user's number for text messages (None clears it)."""
    if phone is None or phone == "":
        user.phone = None
        return
    p = normalize_phone(phone)
    if p is None:
        raise BadRequest(f"{phone!r} is not a phone number: use E.164, e.g. +15551234567")
    user.phone = p
