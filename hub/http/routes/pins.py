"""/api/v1/pins: provisioning a controller with a PIN (hub/storage/pins.py).

- `POST /pins` (no login; PIN_CREATE_PER_HOUR per client address): a new PIN and its
  long pin code; the controller shows the PIN and keeps the pin code.
- `PUT /pins/{pin}` `{"controller": "acme/site/pi-01"}` (a user with write access there;
  the folder is created as a controller folder if missing): attaches the PIN.
- `GET /pins/{pin}?pin_code=...` (no login; polled by the controller): `waiting` until
  attached, then `ready` with the controller's path and a new controller key, once.
  Wrong pin codes count; after PIN_MAX_ATTEMPTS the PIN is dead.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from hub.errors import BadRequest, Conflict, Forbidden, NotFound, RateLimited
from hub.http import ratelimit, views
from hub.http.auth import caller_of, forget_access, require_level, require_user
from hub.http.deps import in_session
from hub.http.params import json_body, path_field
from hub.http.routes import API
from hub.http.routes.auth import client_address
from hub.http.typedefs import SETTINGS
from hub.storage import controllers, pins
from hub.storage.models import Level

routes = web.RouteTableDef()
PIN = API + "/pins/{pin}"
POLLS_PER_MINUTE = 120  # GETs per client address (a controller polls every few seconds)
NO_STORE = {"Cache-Control": "no-store"}


class Window:
    """At most `limit` events per key in a sliding `period` (in memory, per worker)."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit, self.period = limit, period
        self.events: dict[str, deque[float]] = {}

    def hit(self, key: str, what: str) -> None:
        now = time.monotonic()
        q = self.events.setdefault(key, deque())
        while q and q[0] <= now - self.period:
            q.popleft()
        if len(q) >= self.limit:
            retry = q[0] + self.period - now
            raise RateLimited(f"too many {what} from your address: try again in {int(retry) + 1} s",
                              retry_after=retry)
        q.append(now)
        if len(self.events) > 100_000:
            self.events.clear()  # memory bound under a flood


_windows: weakref.WeakKeyDictionary[web.Application, dict[str, Window]] = weakref.WeakKeyDictionary()


def _window(request: web.Request, name: str, limit: int, period: float) -> Window:
    per_app = _windows.setdefault(request.app, {})
    if name not in per_app:
        per_app[name] = Window(limit, period)
    return per_app[name]


@routes.post(API + "/pins")
async def create_pin(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    address = client_address(request)

    def work(s: Session) -> dict[str, Any]:
        ratelimit.take(s, "pin-create", address, max(1, settings.PIN_CREATE_PER_HOUR), 3600.0,
                       "new PINs from your address")
        row, code = pins.create(s, ttl_s=settings.PIN_TTL_SECONDS)
        return {"pin": row.pin, "pin_code": code, "expires_at": views.ts(row.expires_at)}

    return web.json_response(await in_session(request, work), status=201, headers=NO_STORE)


@routes.put(PIN)
async def attach_pin(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    user_id = require_user(caller)
    pin = pins.normalize(request.match_info["pin"])
    body = await json_body(request, "PinAttach")
    controller = path_field(body, "controller", required=True)
    if "/" not in controller:
        raise BadRequest("a controller folder lives inside an organization: send e.g. acme/site/pi-01")
    await require_level(request, caller, controller, Level.WRITE)

    def work(s: Session) -> dict[str, Any]:
        row = pins.attach(s, pin, controller, user_id=user_id)
        controllers.ensure_status_folder(s, controller)
        return {"pin": row.pin, "controller": controller, "attached_at": views.ts(row.attached_at),
                "expires_at": views.ts(row.expires_at)}

    out = await in_session(request, work)
    forget_access(request)
    return web.json_response(out)


@routes.get(PIN)
async def claim_pin(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    _window(request, "poll", POLLS_PER_MINUTE, 60.0).hit(client_address(request), "PIN requests")
    code = request.query.get("pin_code")
    if not code:
        raise BadRequest("send ?pin_code=<the pin code you got with the PIN>")
    claim = await in_session(request, pins.claim, request.match_info["pin"], code,
                             max_attempts=settings.PIN_MAX_ATTEMPTS)
    o = pins.Outcome
    if claim.outcome in (o.UNKNOWN, o.DEAD):
        raise NotFound("no such PIN, it expired, or it had too many wrong pin codes: ask for a new one "
                       "(POST /api/v1/pins)")
    if claim.outcome == o.WRONG_CODE:
        raise Forbidden(f"wrong pin code ({claim.attempts_left} more tries before the PIN is dead)")
    if claim.outcome == o.USED:
        raise Conflict("this PIN already gave out its key: a PIN is used once; ask for a new one")
    if claim.outcome == o.WAITING:
        return web.json_response({"status": "waiting"}, headers=NO_STORE)
    forget_access(request)
    return web.json_response({"status": "ready", "controller": claim.controller, "key": claim.key},
                             headers=NO_STORE)
