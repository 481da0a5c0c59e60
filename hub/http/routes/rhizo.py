"""PUT /api/v1/resources: many sequence values in one request, in the hub's own dialect
(docs/rhizo-compat.md). rhizo-client's own requests (a form asking for text/plain) are
answered by rhizo's dialect, hub/http/rhizo/, before they reach this route.

Body: `values`, an object `{"/acme/pi/temp": 21.5, ...}` of absolute sequence paths, and
an optional `timestamp` (ISO 8601, for every value; the server's time without one).
Either JSON, or a form (rhizo's way) whose `values` field is that object as JSON text.
Needs write access to every sequence; all or nothing (one transaction). Each value is
stored exactly as `PUT /api/v1/resources/{path}` with `{"value", "timestamp"}` would.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from sqlalchemy.orm import Session

from hub import paths
from hub.errors import BadRequest
from hub.http import resource_ops as ops
from hub.http.auth import caller_of, require_level
from hub.http.deps import in_session, store_of
from hub.http.params import is_json, json_body
from hub.http.routes import API
from hub.storage.models import Level

routes = web.RouteTableDef()
MAX_VALUES = 1000
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _read(request: web.Request) -> tuple[Any, Any]:
    if is_json(request) or not request.body_exists:
        body = await json_body(request, "ValuesWrite")
        return body.get("values"), body.get("timestamp")
    if request.content_type not in FORM_TYPES:
        raise BadRequest("send JSON {\"values\": {...}, \"timestamp\": optional} or a form with a values field")
    try:
        form = await request.post()
    except (ValueError, HttpProcessingError) as e:  # no multipart boundary, broken part headers
        raise BadRequest(f"bad form body: {e}") from None
    raw, ts = form.get("values"), form.get("timestamp")
    if not isinstance(raw, str):
        raise BadRequest("form field values must be JSON text: {\"/org/folder/sequence\": value, ...}")
    try:
        values = json.loads(raw)
    except ValueError:
        raise BadRequest("form field values is not valid JSON") from None
    return values, ts if isinstance(ts, str) and ts else None


@routes.put(API + "/resources")
async def put_values(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    values, timestamp = await _read(request)
    if not isinstance(values, dict) or not values:
        raise BadRequest("values must be a non-empty object {\"/org/folder/sequence\": value, ...}")
    if len(values) > MAX_VALUES:
        raise BadRequest(f"{len(values)} values; at most {MAX_VALUES} per request")
    if timestamp is not None and not isinstance(timestamp, (str, int, float)) or isinstance(timestamp, bool):
        raise BadRequest("timestamp must be ISO 8601 text")
    items = [(paths.normalize(p), v) for p, v in values.items()]
    for folder in sorted({paths.split(p)[0] or p for p, _ in items}):
        await require_level(request, caller, folder, Level.WRITE)
    store = store_of(request)

    def work(s: Session) -> list[dict[str, Any]]:
        return [ops.write_value(s, store, p, v, timestamp) for p, v in items]

    out = await in_session(request, work)
    return web.json_response({"stored": sum(1 for r in out if r["stored"]), "values": out})
