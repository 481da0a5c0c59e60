"""Admit, throttle, send and record one outgoing email or text message.

Admission (one short transaction, serialised in this process): the topic must be a
live folder; the channel must be configured; recipients must be users of the
folder's organization (unless NOTIFY_ANY_RECIPIENT); the sender must have sent fewer
than NOTIFY_MAX_PER_HOUR in the last hour. The sender is the controller folder the
topic is in (a controller cannot multiply its quota by publishing to its subfolders),
else the topic's folder; rows are recorded under it. Every request leaves an
`outgoing_messages` row (sent, failed, refused or throttled) and a count in `Stats`;
refusals are logged with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from hub.errors import HubError
from hub.notify import channels, parse
from hub.settings import Settings
from hub.storage import controllers, outgoing, resources, users
from hub.storage.controllers import Alert
from hub.storage.models import utcnow
from hub.storage.outgoing import EMAIL, FAILED, REFUSED, SENDING, SENT, SMS, THROTTLED
from hub.storage.resources import FOLDER_TYPES
from hub.storage.store import Store

log = logging.getLogger("hub.notify")
THROTTLE_NOTE_SECONDS = 60.0  # a throttled sender is logged and recorded at most this often


@dataclass
class Stats:
    requests: int = 0
    emails_sent: int = 0
    texts_sent: int = 0
    refused: int = 0
    throttled: int = 0
    failed: int = 0
    alerts: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Dispatcher:
    def __init__(self, settings: Settings, store: Store, stats: Stats | None = None,
                 send_email: Callable[..., None] = channels.send_email,
                 send_text: Callable[..., None] = channels.send_text) -> None:
        self.settings, self.store = settings, store
        self.stats = stats or Stats()
        self._send_email, self._send_text = send_email, send_text
        # One writer at a time from this process: SQLite has one anyway, and its busy
        # handler's sleeps under contention cost far more than waiting here.
        self._lock = threading.Lock()
        self._throttle_noted: dict[str, float] = {}

    # -- requests from messages ----------------------------------------------------------
    def request(self, folder: str, type_: str, params: Mapping[str, Any]) -> str:
        """Handle one send_email / send_text_message published to `folder`; returns the
        status recorded (sent, failed, refused, throttled)."""
        self.stats.requests += 1
        kind = EMAIL if type_ == parse.SEND_EMAIL else SMS
        try:
            req: parse.EmailRequest | parse.TextRequest = (
                parse.email_request(params) if kind == EMAIL else parse.text_request(params))
        except HubError as e:
            return self._refuse(folder, kind, [], "", e.message)
        subject = req.subject if isinstance(req, parse.EmailRequest) else req.message[:60]
        with self._lock, self.store.session() as s:
            status, detail, row_id = self._admit(s, folder, kind, req.to, subject)
        if status == REFUSED:
            return self._refuse(folder, kind, req.to, subject, detail, recorded=True)
        if status == THROTTLED:
            return THROTTLED
        status, detail = self._deliver(folder, req)
        with self._lock, self.store.session() as s:
            outgoing.finish(s, row_id, status, detail)
        return status

    def _admit(self, s: Session, folder: str, kind: str, to: list[str],
               subject: str) -> tuple[str, str, int]:
        def rec(status: str, detail: str = "", sender: str = folder) -> tuple[str, str, int]:
            row = outgoing.record(s, sender=sender, kind=kind, recipients=to, subject=subject,
                                  status=status, detail=detail)
            return status, detail, row.id

        r = resources.find(s, folder)
        if r is None or r.type not in FOLDER_TYPES:
            return rec(REFUSED, f"topic {folder} names no folder")
        # A controller is one sender wherever below its folder it publishes.
        owner = controllers.controllers_of(s, [folder]).get(folder)
        account = resources.by_id(s, owner).path if owner is not None else folder  # type: ignore[union-attr]
        try:
            (channels.check_email if kind == EMAIL else channels.check_sms)(self.settings)
        except HubError as e:
            return rec(REFUSED, e.message)
        if not self.settings.NOTIFY_ANY_RECIPIENT:
            c = outgoing.contacts(s, r.organization_id)
            known = c.emails if kind == EMAIL else c.phones
            strangers = [x for x in to if x.lower() not in known]
            if strangers:
                org = users.get_organization_by_id(s, r.organization_id) if r.organization_id else None
                return rec(REFUSED, f"{', '.join(strangers)} {'is' if len(strangers) == 1 else 'are'} not "
                                    f"among the {'emails' if kind == EMAIL else 'phone numbers'} of organization "
                                    f"{org.name if org else '?'}'s users (NOTIFY_ANY_RECIPIENT allows any)")
        now = utcnow()
        n = outgoing.sent_recently(s, account, now)
        limit = self.settings.NOTIFY_MAX_PER_HOUR
        if n >= limit:
            self.stats.throttled += 1
            oldest = outgoing.oldest_recent(s, account, now) or now
            free_in = int(max(0.0, (oldest + outgoing.WINDOW - now) / timedelta(seconds=1))) + 1
            detail = (f"{account} already sent {n} messages in the last hour (NOTIFY_MAX_PER_HOUR={limit}); "
                      f"the next is possible in {free_in} s")
            last = self._throttle_noted.get(account, 0.0)
            if time.monotonic() - last >= THROTTLE_NOTE_SECONDS:
                self._throttle_noted[account] = time.monotonic()
                log.warning("%s from %s throttled: %s", kind, folder, detail)
                return rec(THROTTLED, detail, account)
            return THROTTLED, detail, 0
        return rec(SENDING, "", account)

    def _deliver(self, folder: str, req: parse.EmailRequest | parse.TextRequest) -> tuple[str, str]:
        try:
            if isinstance(req, parse.EmailRequest):
                self._send_email(self.settings, req.to, req.subject, req.body, folder=folder)
                self.stats.emails_sent += 1
            else:
                for number in req.to:
                    self._send_text(self.settings, number, req.message)
                    self.stats.texts_sent += 1
        except HubError as e:
            self.stats.failed += 1
            log.warning("message from %s not delivered: %s", folder, e.message)
            return FAILED, e.message
        return SENT, ""

    def _refuse(self, folder: str, kind: str, to: list[str], subject: str, reason: str,
                recorded: bool = False) -> str:
        self.stats.refused += 1
        log.warning("%s from %s refused: %s", "send_email" if kind == EMAIL else "send_text_message",
                    folder, reason)
        if not recorded:
            with self._lock, self.store.session() as s:
                outgoing.record(s, sender=folder, kind=kind, recipients=to, subject=subject,
                                status=REFUSED, detail=reason)
        return REFUSED

    # -- watchdog alerts --------------------------------------------------------------------
    def alert(self, a: Alert) -> None:
        """Tell a silent (or returned) controller's watchdog recipients, by email and text."""
        emails = [r.lower() for r in a.recipients if "@" in r]
        phones = [p for r in a.recipients if "@" not in r and (p := outgoing.normalize_phone(r))]
        if not self.settings.NOTIFY_ANY_RECIPIENT:
            with self.store.session() as s:
                c = outgoing.contacts(s, a.organization_id)
            dropped = [x for x in emails if x not in c.emails] + [x for x in phones if x not in c.phones]
            if dropped:
                log.warning("watchdog of %s: not telling %s (no longer users of its organization)",
                            a.path, ", ".join(dropped))
            emails = [x for x in emails if x in c.emails]
            phones = [x for x in phones if x in c.phones]
        subject, body, short = _alert_text(a)
        sender = f"watchdog:{a.path}"
        self.stats.alerts += 1
        if emails:
            self._record_delivery(sender, EMAIL, emails, subject, parse.EmailRequest(emails, subject, body))
        if phones:
            self._record_delivery(sender, SMS, phones, short[:60], parse.TextRequest(phones, short))
        if not emails and not phones:
            log.warning("watchdog of %s: %s, but it has no recipients to tell", a.path, subject)

    def _record_delivery(self, sender: str, kind: str, to: list[str], subject: str,
                         req: parse.EmailRequest | parse.TextRequest) -> None:
        status, detail = self._deliver(sender, req)
        with self._lock, self.store.session() as s:
            outgoing.record(s, sender=sender, kind=kind, recipients=to, subject=subject, status=status,
                            detail=detail)


def _alert_text(a: Alert) -> tuple[str, str, str]:
    heard = f"{a.last_message_at:%Y-%m-%d %H:%M:%S} UTC" if a.last_message_at else "never"
    if a.back_online:
        subject = f"[hub] {a.path} is back online"
        body = (f"Controller {a.path} is sending messages again (last heard {heard}).\n\n"
                f"Its watchdog is watching again: you will hear if it is silent for {a.minutes} minutes.\n")
        return subject, body, f"hub: {a.path} is back online"
    subject = f"[hub] {a.path} is silent"
    body = (f"Controller {a.path} has sent no message for more than {a.minutes} minutes "
            f"(last heard: {heard}).\n\nYou will get one more message when it is back online; "
            f"no more alerts until then.\n")
    return subject, body, f"hub: {a.path} silent for over {a.minutes} min (last heard {heard})"
