"""Reading query parameters and request bodies, with errors that say what to send."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from aiohttp import web

from hub.errors import BadRequest, NotFound, UnsupportedMediaType
from hub.storage import values

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def user_id_param(request: web.Request) -> int:
    """The `{user_id}` of the route: a positive integer, else 404 (no such user)."""
    raw = request.match_info["user_id"]
    if not raw.isdigit() or not 0 < int(raw) < 2**31:
        raise NotFound(f"no user {raw!r}")
    return int(raw)


def int_param(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        v = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name} must be an integer from {lo} to {hi}") from None
    if not lo <= v <= hi:
        raise BadRequest(f"query parameter {name} must be from {lo} to {hi}, got {v}")
    return v


def bool_param(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise BadRequest(f"query parameter {name} must be true or false")


def choice_param(request: web.Request, name: str, choices: tuple[str, ...], default: str) -> str:
    raw = request.query.get(name, default)
    if raw not in choices:
        raise BadRequest(f"query parameter {name} must be one of {', '.join(choices)}")
    return raw


def time_param(request: web.Request, name: str) -> int | None:
    """ISO 8601 (naive = UTC) or epoch seconds -> microseconds."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        num = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(num) or abs(num) > 1e11:
            raise BadRequest(f"query parameter {name}: epoch seconds out of range")
        return int(num * 1_000_000)
    text = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        return values.to_us(datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        raise BadRequest(f"query parameter {name} must be ISO 8601 (2024-05-01T12:00:00Z) "
                         "or epoch seconds") from None


def is_json(request: web.Request) -> bool:
    return request.content_type in ("application/json", "text/json") or request.content_type.endswith("+json")


async def json_body(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object (the body size limit applies while reading)."""
    if not request.body_exists:
        if required:
            raise BadRequest("send a JSON object as the request body")
        return {}
    if not is_json(request):
        raise UnsupportedMediaType(f"send Content-Type: application/json, not {request.content_type!r}")
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = False,
          default: Any = None) -> Any:
    """One field of a JSON body, type-checked (bool is not an int here)."""
    if name not in body or body[name] is None:
        if required:
            raise BadRequest(f"field {name!r} is required")
        return default
    v = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(v, bool) and bool not in kinds or not isinstance(v, kinds):
        names = " or ".join("number" if k in (int, float) else k.__name__ for k in kinds)
        raise BadRequest(f"field {name!r} must be {names}")
    if isinstance(v, float) and not math.isfinite(v):
        raise BadRequest(f"field {name!r} must be finite")
    return v
