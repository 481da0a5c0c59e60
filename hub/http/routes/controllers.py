"""/api/v1/controllers/{path} and /api/v1/watchdog/{path}: a controller's status and
its watchdog (kept by the notifier, hub/storage/controllers.py).

- `GET /controllers/{path}` (read access): client version, last connect, last message,
  the status JSON it last reported, and its watchdog.
- `PUT /watchdog/{path}` (write access) `{"minutes": 30, "recipients": ["a@x.org",
  "+15551234567"]}`; `{"minutes": null}` turns it off. Recipients must be users of the
  controller's organization (their email or phone) unless NOTIFY_ANY_RECIPIENT.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from hub import paths
from hub.errors import BadRequest, Unprocessable
from hub.http.auth import caller_of, require_level
from hub.http.deps import in_session
from hub.http.params import field, json_body
from hub.http.routes import API
from hub.http.typedefs import SETTINGS
from hub.storage import controllers, outgoing, users
from hub.storage.models import Level

routes = web.RouteTableDef()
MAX_RECIPIENTS = 10


@routes.get(API + "/controllers/{path:.+}")
async def get_controller(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    path = paths.normalize(request.match_info["path"])
    await require_level(request, caller, path, Level.READ)
    return web.json_response(await in_session(
        request, lambda s: controllers.describe(s, controllers.controller(s, path))))


def _check_recipients(s: Session, organization_id: int | None, recipients: list[str],
                      any_recipient: bool) -> list[str]:
    out = []
    contacts = outgoing.contacts(s, organization_id)
    for r in recipients:
        p = outgoing.normalize_phone(r)
        if "@" in r and users.EMAIL.fullmatch(r.strip()):
            v = users.normalize_email(r)
            known = v in contacts.emails
        elif "@" not in r and p is not None:
            v, known = p, p in contacts.phones
        else:
            raise Unprocessable(f"{r!r} is neither an email address nor a phone number (E.164, +15551234567)")
        if not known and not any_recipient:
            raise Unprocessable(f"{r} is not the email or phone of a user of this organization "
                             "(add them as a member, or set NOTIFY_ANY_RECIPIENT)")
        out.append(v)
    return out


@routes.put(API + "/watchdog/{path:.+}")
async def set_watchdog(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    path = paths.normalize(request.match_info["path"])
    await require_level(request, caller, path, Level.WRITE)
    body = await json_body(request, "WatchdogSet")
    if "minutes" not in body:
        raise BadRequest("field 'minutes' is required (null turns the watchdog off)")
    minutes = field(body, "minutes", int, nullable=True)
    if minutes is not None and not 1 <= minutes <= controllers.MAX_WATCHDOG_MINUTES:
        raise BadRequest(f"watchdog minutes must be 1-{controllers.MAX_WATCHDOG_MINUTES} (or null to turn it off)")
    raw = body.get("recipients")
    raw = [] if raw is None else raw
    if not isinstance(raw, (list, str)):
        raise BadRequest("field 'recipients' must be a list (or comma-separated text)")
    recipients = controllers.split_recipients(raw)
    if len(recipients) > MAX_RECIPIENTS or isinstance(raw, list) and len(raw) > MAX_RECIPIENTS:
        raise BadRequest(f"at most {MAX_RECIPIENTS} recipients")
    any_recipient = request.app[SETTINGS].NOTIFY_ANY_RECIPIENT

    def work(s: Session) -> dict[str, Any]:
        c = controllers.controller(s, path)
        checked = _check_recipients(s, c.organization_id, recipients, any_recipient) if minutes is not None else []
        controllers.set_watchdog(s, c, minutes, checked)
        return controllers.describe(s, c)

    return web.json_response(await in_session(request, work))
