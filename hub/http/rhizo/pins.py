"""rhizo's PIN flow and its POST /api/v1/messages, on the hub's PINs and publisher.

- `POST /pins`: `{"status": "ok", "pin": 482913, "pin_code": "..."}`: the PIN is six
  digits 2-9, so it is an integer for rhizo-client and a valid hub PIN (a user may attach
  it with either dialect). Limited per address like the hub's own.
- `GET /pins/<pin>` (`pin_code` in the form): `{"status": "ok"}` while waiting, then once
  `{"status": "ok", "controller_path": "/acme/pi", "secret_key": "hk_..."}`; an unknown PIN
  or a wrong pin code is 404 (wrong codes still count towards PIN_MAX_ATTEMPTS).
- `PUT /pins/<pin>` (`controller` = an existing controller folder, a user with write access).
- `POST /messages` (`folder_path`, `type`, `parameters` JSON): published to the folder's
  topic through the broker; 404 for a missing folder, 403 without write access or a key.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from hub import paths
from hub.errors import BadRequest, Forbidden, NotFound
from hub.http import ratelimit
from hub.http.deps import in_session, in_thread
from hub.http.publisher import encode_message
from hub.http.rhizo import form
from hub.http.rhizo.access import caller
from hub.http.rhizo.dialect import route
from hub.http.rhizo.reads import loaded, need, rhizo_path
from hub.http.routes.auth import client_address
from hub.http.routes.pins import NO_STORE, POLLS_PER_MINUTE, _window
from hub.http.typedefs import PUBLISHER, SETTINGS
from hub.storage import controllers, pins, resources
from hub.storage.models import Level, ResourceType

MAX_TYPE_LENGTH = 40


@route(r"/pins", "POST")
async def create_pin(request: web.Request, tail: str) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    address = client_address(request)

    def work(s: Session) -> dict[str, Any]:
        ratelimit.take(s, "pin-create", address, max(1, settings.PIN_CREATE_PER_HOUR), 3600.0,
                       "new PINs from your address")
        row, code = pins.create(s, ttl_s=settings.PIN_TTL_SECONDS, alphabet=pins.DIGITS)
        return {"status": "ok", "pin": int(row.pin), "pin_code": code}

    return web.json_response(await in_session(request, work), headers=NO_STORE)


@route(r"/pins/([^/]+)", "GET")
async def claim_pin(request: web.Request, tail: str) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    _window(request, "poll", POLLS_PER_MINUTE, 60.0).hit(client_address(request), "PIN requests")
    code = (await form.values(request)).get("pin_code") or ""
    if not code:
        raise BadRequest("send pin_code (the one you got with the PIN)")
    claim = await in_session(request, pins.claim, tail, code, max_attempts=settings.PIN_MAX_ATTEMPTS)
    o = pins.Outcome
    if claim.outcome in (o.UNKNOWN, o.DEAD, o.WRONG_CODE):
        raise NotFound("no such PIN with this pin code (or it expired): ask for a new one")
    if claim.outcome == o.READY:
        assert claim.controller is not None
        return web.json_response({"status": "ok", "controller_path": rhizo_path(claim.controller),
                                  "secret_key": claim.key}, headers=NO_STORE)
    return web.json_response({"status": "ok"}, headers=NO_STORE)


@route(r"/pins/([^/]+)", "PUT")
async def attach_pin(request: web.Request, tail: str) -> web.StreamResponse:
    who = await caller(request)
    if who is None or who.user_id is None:
        raise Forbidden("a PIN is entered by a user: log in, or send a user's key")
    user_id = who.user_id
    raw = (await form.values(request)).get("controller") or ""
    if not raw:
        raise BadRequest("send controller: the path of the controller folder, e.g. /acme/site/pi-01")
    path = paths.normalize(raw)

    def work(s: Session) -> dict[str, Any]:
        r = resources.find(s, path)
        if r is None or r.type != ResourceType.CONTROLLER.value:
            raise BadRequest(f"{rhizo_path(path)} is not a controller folder")
        need(s, who.subject, path, Level.WRITE)
        pins.attach(s, tail, path, user_id=user_id)
        controllers.ensure_status_folder(s, path)
        return {"status": "ok"}

    return web.json_response(await in_session(request, work))


@route(r"/messages", "POST")
async def send_message(request: web.Request, tail: str) -> web.StreamResponse:
    v = await form.values(request)
    folder = v.get("folder_path") or v.get("folderPath") or ""
    if not folder.startswith("/"):
        raise BadRequest("send folder_path: the folder's path with a leading '/'")
    path = paths.normalize(folder)
    type_ = v.get("type") or ""
    if not 1 <= len(type_) <= MAX_TYPE_LENGTH:
        raise BadRequest(f"type must be 1-{MAX_TYPE_LENGTH} characters")
    parameters = form.json_object(v, "parameters") or {}
    who = await caller(request)
    subject = who.subject if who is not None else None

    def check(s: Session) -> None:
        r = loaded(s, path, subject)[0]
        if r.type not in resources.FOLDER_TYPES:
            raise BadRequest(f"{rhizo_path(path)} is a {r.type}: messages go to folders")
        if subject is None or who is None or who.via != "key":
            raise Forbidden("send a key (Basic auth, the key as the password) to send messages")
        need(s, subject, path, Level.WRITE)

    await in_session(request, check)
    payload = encode_message(type_, parameters, request.app[SETTINGS].MQTT_MAX_PAYLOAD)
    await in_thread(request, request.app[PUBLISHER].publish, path, payload)
    return web.json_response({"status": "ok"})
