"""/api/v1/messages: publish a message to a folder's topic through Mosquitto.

For scripts without MQTT: `{folder, type, parameters}` becomes the wire
payload `{"type": ..., "parameters": ...}` on topic `folder`, published by
the server's `hub-service` client after checking that the caller may write
the folder. An `update_sequence` sent this way is stored by the persister
like any other.
"""

from __future__ import annotations

from aiohttp import web

from hub.errors import BadRequest
from hub.http.auth import caller_of, require_level
from hub.http.deps import in_session, in_thread
from hub.http.params import field, json_body, path_field
from hub.http.publisher import encode_message
from hub.http.routes import API
from hub.http.typedefs import PUBLISHER, SETTINGS
from hub.storage import resources
from hub.storage.models import Level

routes = web.RouteTableDef()
MAX_TYPE_LENGTH = 40


@routes.post(API + "/messages")
async def publish(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    body = await json_body(request, "Message")
    folder = path_field(body, "folder", required=True)
    type_ = field(body, "type", str, required=True)
    parameters = field(body, "parameters", dict, default={})
    if not 1 <= len(type_) <= MAX_TYPE_LENGTH:
        raise BadRequest(f"type must be 1-{MAX_TYPE_LENGTH} characters")
    await require_level(request, caller, folder, Level.WRITE)
    await in_session(request, resources.get_folder, folder)
    payload = encode_message(type_, parameters, request.app[SETTINGS].MQTT_MAX_PAYLOAD)
    await in_thread(request, request.app[PUBLISHER].publish, folder, payload)
    return web.json_response({"topic": folder, "type": type_}, status=202)
