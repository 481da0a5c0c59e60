"""Reading query parameters and request bodies, with errors that say what to send."""

from __future__ import annotations

import calendar
import json
import math
import re
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from aiohttp import web

from hub import paths
from hub.errors import BadRequest, NotFound, Unprocessable, UnsupportedMediaType

INT32 = 2**31 - 1
SEGMENT = re.compile(paths.SEGMENT_PATTERN)
AFTER_PATTERN = f"^({paths.SEGMENT_PATTERN[1:-1]})?$"  # a child name, or empty for none
AFTER = re.compile(AFTER_PATTERN)
# A time in a query: epoch seconds (or empty: none), an RFC 3339 date-time or an RFC 3339
# date (midnight UTC): the document's `format: date-time` / `format: date`, as JSON Schema's
# format checks read them (t and z in either case, any number of fraction digits, an offset;
# no leap second, no year 0, no 2024-02-30). Anything else is a 400.
EPOCH_PATTERN = r"^(|-?[0-9]{1,11}(\.[0-9]{1,6})?)$"
_EPOCH = re.compile(EPOCH_PATTERN)
_DATE_TIME = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])-([0-9]{2})[Tt]([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])"
                        r"(\.[0-9]+)?([Zz]|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))", re.ASCII)
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
_EPOCH_DT = datetime(1970, 1, 1)
US = timedelta(microseconds=1)


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
    """Epoch seconds, an RFC 3339 date-time or date -> microseconds since 1970 (UTC); empty is none."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if _EPOCH.fullmatch(raw):
        return int(float(raw) * 1_000_000)
    us = rfc3339_us(raw)
    if us is None:
        raise BadRequest(f"query parameter {name} must be an RFC 3339 date-time (2024-05-01T12:00:00Z), "
                         f"a date (2024-05-01) or epoch seconds; {raw!r} is none of these (or no real day)")
    return us


def rfc3339_us(text: str, *, dates: bool = True) -> int | None:
    """An RFC 3339 date-time or (with `dates`) full-date as microseconds since 1970 (UTC), or
    None when it is neither or names no real day. Years 1-9999 and any offset, without overflow."""
    if m := _DATE_TIME.fullmatch(text):
        y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
        frac, zone, sign, oh, om = m.groups()[6:]
        offset = 0 if zone in ("Z", "z") else (1 if sign == "+" else -1) * (int(oh) * 60 + int(om))
    elif dates and (m := _DATE.fullmatch(text)):
        y, mo, d, h, mi, sec, frac, offset = int(m[1]), int(m[2]), int(m[3]), 0, 0, 0, None, 0
    else:
        return None
    if y == 0 or not 1 <= mo <= 12 or not 1 <= d <= calendar.monthrange(y, mo)[1]:
        return None
    local = (datetime(y, mo, d, h, mi, sec) - _EPOCH_DT) // US + (int((frac[1:] + "00000")[:6]) if frac else 0)
    return local - offset * 60_000_000


def is_json(request: web.Request) -> bool:
    return request.content_type in ("application/json", "text/json") or request.content_type.endswith("+json")


async def json_body(request: web.Request, schema: str, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object (the body size limit applies while reading), with no field
    the document's `schema` (a component of hub/http/openapi_schemas.py) does not know."""
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
    known_fields(body, {"$ref": f"#/components/schemas/{schema}"})
    _check_text(body)
    return body


@cache
def _components() -> dict[str, Any]:
    from hub.http import openapi_accounts  # (they import this module's patterns)
    from hub.http.openapi_schemas import schemas

    return {**schemas(1), **openapi_accounts.schemas(1)}


def known_fields(value: Any, schema: dict[str, Any], where: str = "") -> None:
    """400 naming the first field, at any depth, of an object whose schema lists its fields
    and says `additionalProperties: false` (free-form objects, such as attributes, take any),
    or a text that is not the `format: date-time` its schema says."""
    while "$ref" in schema:
        schema = _components()[schema["$ref"].rsplit("/", 1)[-1]]
    if schema.get("format") == "date-time" and isinstance(value, str) \
            and (len(value) > schema.get("maxLength", len(value)) or rfc3339_us(value, dates=False) is None):
        raise BadRequest(f"field {where[:-1]!r} must be an RFC 3339 date-time (2024-05-01T12:00:00Z), "
                         f"not {value[:60]!r}")
    props = schema.get("properties")
    if isinstance(value, dict) and props is not None:
        if schema.get("additionalProperties") is False:
            for name in value:
                if name not in props:
                    raise BadRequest(f"unknown field {where + name!r}: the fields here are "
                                     f"{', '.join(where + p for p in props)}")
        for name, sub in props.items():
            if name in value:
                known_fields(value[name], sub, f"{where}{name}.")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            known_fields(item, schema["items"], f"{where[:-1]}[{i}]." if where else f"[{i}].")


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
