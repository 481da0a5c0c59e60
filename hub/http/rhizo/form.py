"""rhizo's request values: what Flask's `request.values` was to rhizo-server.

rhizo-client sends every parameter as a form body (`application/x-www-form-urlencoded`),
on GET and DELETE too, so the body is read for every method; query-string values come
first (as in rhizo-server). Flags are true when present and non-empty (`meta=0` is true,
as it was there). Bad values raise BadRequest, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict

from hub.errors import BadRequest

_VALUES: web.RequestKey[MultiDict[str]] = web.RequestKey("rhizo_values")


async def values(request: web.Request) -> MultiDict[str]:
    """Query parameters, then the form body's fields (read once per request)."""
    if _VALUES in request:
        return request[_VALUES]
    out: MultiDict[str] = MultiDict(request.query)
    if request.body_exists:
        raw = await request.read()
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise BadRequest("the form body is not UTF-8 text") from None
        try:
            out.extend(parse_qsl(text, keep_blank_values=True, strict_parsing=False,
                                 max_num_fields=10_000))
        except ValueError as e:
            raise BadRequest(f"the form body is not a valid form: {e}") from None
    request[_VALUES] = out
    return out


def flag(v: MultiDict[str], name: str) -> bool:
    return bool(v.get(name, ""))


def text(v: MultiDict[str], name: str, *, required: bool = False) -> str | None:
    got = v.get(name)
    if got is None and required:
        raise BadRequest(f"form field {name!r} is required")
    return got


def integer(v: MultiDict[str], name: str, *, required: bool = False, lo: int = -2**31,
            hi: int = 2**31) -> int | None:
    raw = v.get(name, "")
    if raw == "":
        if required:
            raise BadRequest(f"form field {name!r} is required (an integer)")
        return None
    try:
        n = int(raw)
    except ValueError:
        raise BadRequest(f"form field {name!r} must be an integer, got {raw[:40]!r}") from None
    if not lo <= n <= hi:
        raise BadRequest(f"form field {name!r} must be from {lo} to {hi}")
    return n


def json_object(v: MultiDict[str], name: str) -> dict[str, Any] | None:
    """A field holding JSON text of an object (`system_attributes`, `status`, ...)."""
    raw = v.get(name)
    if raw is None:
        return None
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest(f"form field {name!r} must be JSON text of an object") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"form field {name!r} must be a JSON object, got {type(obj).__name__}")
    return obj


def user_attributes(v: MultiDict[str], reserved: tuple[str, ...]) -> dict[str, Any] | None:
    """`user_attributes`: a JSON object whose keys are not the hub's own attributes."""
    got = json_object(v, "user_attributes")
    taken = sorted(set(got or {}) & set(reserved))
    if taken:
        raise BadRequest(f"user_attributes may not set {', '.join(taken)}: the hub keeps those itself")
    return got


def b64(v: MultiDict[str], name: str) -> bytes | None:
    """A base64 field (`data`): rhizo-client sends file contents and values this way."""
    raw = v.get(name)
    if raw is None:
        return None
    try:
        return base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"form field {name!r} is not valid base64") from None
