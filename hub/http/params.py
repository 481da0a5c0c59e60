"""Reading query parameters and request bodies, with errors that say what to send."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

from aiohttp import web

from hub import paths
from hub.errors import BadRequest, NotFound, Unprocessable, UnsupportedMediaType
from hub.storage import values

INT32 = 2**31 - 1
SEGMENT = re.compile(paths.SEGMENT_PATTERN)
AFTER_PATTERN = f"^({paths.SEGMENT_PATTERN[1:-1]})?$"  # a child name, or empty for none
AFTER = re.compile(AFTER_PATTERN)
# A time in a query: epoch seconds, or ISO 8601 (a date, or date and time; UTC without an offset).
# A text that has this shape but names no real time (2024-02-30) is a 422, not a 400.
TIME_PATTERN = (r"^(-?[0-9]{1,11}(\.[0-9]{1,6})?|[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
                r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
                r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?)$")
_TIME = re.compile(TIME_PATTERN)


def whole(v: Any) -> Any:
    """A float with no fraction as the int it is (JSON Schema counts 5.0 as an integer)."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


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
        try:
            v = whole(float(raw))
        except (ValueError, TypeError):
            raise BadRequest(f"query parameter {name} must be an integer from {lo} to {hi}") from None
        if not isinstance(v, int):
            raise BadRequest(f"query parameter {name} must be an integer from {lo} to {hi}") from None
    if not lo <= v <= hi:
        raise BadRequest(f"query parameter {name} must be from {lo} to {hi}, got {v}")
    return v


def bool_param(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw.lower() == "true":
        return True
    if raw.lower() == "false":
        return False
    raise BadRequest(f"query parameter {name} must be true or false")


def choice_param(request: web.Request, name: str, choices: tuple[str, ...], default: str) -> str:
    raw = request.query.get(name, default)
    if raw not in choices:
        raise BadRequest(f"query parameter {name} must be one of {', '.join(choices)}")
    return raw


def time_param(request: web.Request, name: str) -> int | None:
    """ISO 8601 (naive = UTC) or epoch seconds (TIME_PATTERN) -> microseconds; empty is none."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not _TIME.fullmatch(raw):
        raise BadRequest(f"query parameter {name} must be ISO 8601 (2024-05-01T12:00:00Z) or epoch seconds")
    if raw[0] in "-0123456789" and "-" not in raw[1:]:
        return int(float(raw) * 1_000_000)
    text = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        return values.to_us(datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        raise Unprocessable(f"query parameter {name}: {raw} is not a real date and time") from None


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
    _check_text(body)
    return body


def _check_text(body: Any) -> None:
    """422 for text no database stores: a NUL character or a lone surrogate (JSON allows both)."""
    pending = [body]
    while pending:
        v = pending.pop()
        if isinstance(v, dict):
            pending.extend(v.keys())
            pending.extend(v.values())
        elif isinstance(v, list):
            pending.extend(v)
        elif isinstance(v, str) and ("\x00" in v or not v.isascii() and not _utf8(v)):
            raise Unprocessable("text in the request body must be Unicode without NUL characters")


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = False,
          default: Any = None, nullable: bool = False) -> Any:
    """One field of a JSON body, type-checked (bool is not an int here). An explicit
    null is refused unless the field is `nullable` (then it counts as absent)."""
    if name not in body or body[name] is None and nullable:
        if required:
            raise BadRequest(f"field {name!r} is required")
        return default
    v = body[name]
    if v is None:
        raise BadRequest(f"field {name!r} must not be null: leave it out instead")
    kinds = kind if isinstance(kind, tuple) else (kind,)
    v = whole(v) if int in kinds and float not in kinds else v
    if isinstance(v, bool) and bool not in kinds or not isinstance(v, kinds):
        names = " or ".join("number" if k in (int, float) else k.__name__ for k in kinds)
        raise BadRequest(f"field {name!r} must be {names}")
    if isinstance(v, float) and not math.isfinite(v):
        raise BadRequest(f"field {name!r} must be finite")
    return v


def text_field(body: dict[str, Any], name: str, *, max_length: int, required: bool = False,
               default: str | None = None, pattern: re.Pattern[str] | None = None) -> Any:
    """A string field of at most `max_length` characters (matching `pattern`, if given)."""
    v = field(body, name, str, required=required, default=default)
    if v is None or v is default:
        return v
    if len(v) > max_length:
        raise BadRequest(f"field {name!r}: at most {max_length} characters")
    if pattern is not None and not pattern.fullmatch(v):
        raise BadRequest(f"field {name!r} must match {pattern.pattern}")
    return v


def int_field(body: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    """An optional integer field from `lo` to `hi`."""
    v = field(body, name, int)
    if v is not None and not lo <= v <= hi:
        raise BadRequest(f"field {name!r} must be from {lo} to {hi}")
    return v


def path_field(body: dict[str, Any], name: str, *, required: bool = False) -> Any:
    """A resource path field (a leading slash is dropped), or None when absent."""
    v = field(body, name, str, required=required)
    return None if v is None else paths.normalize(v)
