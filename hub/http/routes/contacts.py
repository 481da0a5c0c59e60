"""/api/v1/users/{user_id}/phone: the number text messages and watchdog alerts go to.

Readable and settable by the user themself and by system admins. Stored in E.164
form (`+15551234567`); `{"phone": null}` clears it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from hub.errors import Forbidden
from hub.http.auth import Caller, caller_of, require_user
from hub.http.deps import in_session
from hub.http.params import field, json_body, user_id_param
from hub.http.routes import API
from hub.storage import outgoing, users
from hub.storage.models import User

routes = web.RouteTableDef()
PHONE = API + "/users/{user_id}/phone"


def _own(s: Session, caller: Caller, user_id: int) -> User:
    if not caller.is_admin and caller.user_id != user_id:
        raise Forbidden("only the user themself or a system admin may see or change a phone number")
    return users.get_user(s, user_id)


@routes.get(PHONE)
async def get_phone(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    require_user(caller)
    user_id = user_id_param(request)

    def work(s: Session) -> dict[str, Any]:
        return {"user_id": user_id, "phone": _own(s, caller, user_id).phone}

    return web.json_response(await in_session(request, work))


@routes.put(PHONE)
async def set_phone(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    require_user(caller)
    user_id = user_id_param(request)
    body = await json_body(request, "PhoneSet")
    phone = field(body, "phone", str, nullable=True)

    def work(s: Session) -> dict[str, Any]:
        u = _own(s, caller, user_id)
        outgoing.set_phone(s, u, phone)
        return {"user_id": user_id, "phone": u.phone}

    return web.json_response(await in_session(request, work))
