"""/api/v1/mqtt-token: a short-lived MQTT token for a logged-in user.

The browser connects to Mosquitto over websockets with the returned
`username` and the token as password; the broker plugin checks the token
(`hub.credentials.verify_token`) and then the user's permissions.
"""

from __future__ import annotations

import time

from aiohttp import web

from hub import credentials
from hub.http.auth import caller_of, require_user
from hub.http.deps import in_session
from hub.http.routes import API
from hub.http.typedefs import SETTINGS
from hub.settings import Settings
from hub.storage import accounts

routes = web.RouteTableDef()
_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


def websocket_url(settings: Settings, request: web.Request) -> str:
    """MQTT_WS_URL when set; else the host the browser reached us by, on MQTT_WS_PORT."""
    if settings.MQTT_WS_URL:
        return settings.MQTT_WS_URL
    if settings.HTTP_HOST in _WILDCARD_HOSTS:
        host = request.url.raw_host or "127.0.0.1"
        scheme = "wss" if request.secure else "ws"
        return f"{scheme}://{host}:{settings.MQTT_WS_PORT}{settings.mqtt_ws_path}"
    return settings.mqtt_ws_url


@routes.post(API + "/mqtt-token")
async def mqtt_token(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    user_id = require_user(caller)
    settings = request.app[SETTINGS]
    now = time.time()
    # tied to the session asking (if any): logging out ends the live connections made with it
    session = caller.session.nonce if caller.session is not None else ""
    if caller.session is not None and session:  # a password reset or change ends its connections
        await in_session(request, accounts.note_token_session, session, user_id, caller.session.expires)
    token = credentials.issue_token(settings.SECRET_KEY, user_id, settings.MQTT_TOKEN_TTL, now=now, session=session)
    return web.json_response({
        "token": token, "username": f"user-{user_id}", "url": websocket_url(settings, request),
        "expires_at": int(now + settings.MQTT_TOKEN_TTL), "ttl": settings.MQTT_TOKEN_TTL,
        "mqtt_version": settings.mqtt_version})
