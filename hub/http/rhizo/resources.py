"""rhizo's resource API: `/api/v1/resources[/<path>]` with form values
(docs/rhizo-compat.md). Answers are rhizo-server's: `{"status": "ok", "id": N}` with
200 for writes, raw content for reads unless `meta`, JSON listings for folders."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from multidict import MultiDict

from hub import paths
from hub.errors import BadRequest, Forbidden
from hub.http.auth import forget_access
from hub.http.brokersync import settle_created
from hub.http.deps import in_session, store_of
from hub.http.rhizo import form, reads, shapes, writes
from hub.http.rhizo.access import caller, subject
from hub.http.rhizo.dialect import route
from hub.storage import values

MAX_VALUES = 1000
SEQUENCE_FIELDS = ("data_type", "decimal_places", "max_history", "min_storage_interval", "units")


def _answer(out: Any) -> web.Response:
    if isinstance(out, reads.Raw):
        return web.Response(body=out.data, content_type=out.content_type)
    return web.json_response(out)


def _time(v: MultiDict[str], *names: str) -> int | None:
    for name in names:
        raw = v.get(name, "")
        if raw:
            try:
                return values.parse_timestamp(raw)
            except Exception:
                raise BadRequest(f"form field {name!r} is not a time: send ISO 8601, e.g. "
                                 "2024-05-01T12:00:00.000000Z") from None
    return None


def _noting_folders(fn: Any) -> Any:
    """`fn(s, ...)` answering (its result, whether it created a folder)."""
    def work(s: Any, *args: Any, **kw: Any) -> tuple[Any, bool]:
        return fn(s, *args, **kw), bool(s.info.get(writes.FOLDERS_MADE))
    return work


def _path(tail: str) -> str:
    return paths.normalize(tail)


@route(r"/resources/(.+)", "GET")
async def get_resource(request: web.Request, tail: str) -> web.StreamResponse:
    v = await form.values(request)
    who = await subject(request)
    opts = reads.ReadOptions(
        meta=form.flag(v, "meta"), recursive=form.flag(v, "recursive"),
        type_number=shapes.type_number(v["type"]) if v.get("type") else None,
        name_filter=v.get("filter") or None, count=form.integer(v, "count", lo=1, hi=2**31) or 1,
        start_us=_time(v, "start_timestamp"), end_us=_time(v, "end_timestamp"),
        revision=form.integer(v, "rev", lo=1, hi=2**62), download=form.flag(v, "download"))
    store = store_of(request)

    def work(s: Any) -> Any:
        path = reads.self_path(s, who) if tail == "self" else _path(tail)
        return reads.read(s, store, who, path, opts)

    return _answer(await in_session(request, work))


@route(r"/resources", "GET")
async def list_of_type(request: web.Request, tail: str) -> web.StreamResponse:
    """Every resource of one type (`type=12`: the controllers), for system admins."""
    v = await form.values(request)
    if not (await subject(request)).is_admin:
        raise Forbidden("listing resources by type is for system admins")
    number = form.integer(v, "type", required=True)
    if number not in shapes.TYPES_BY_NUMBER:
        raise BadRequest(f"unknown resource type {number}")
    include_path = bool(v.get("folder_info") or v.get("folderInfo"))
    return _answer(await in_session(request, reads.of_type, number, include_path))


def _sequence_fields(v: MultiDict[str], base: dict[str, Any] | None) -> writes.SequenceFields:
    """Sequence attributes from form fields, over those of a `system_attributes` object."""
    merged: dict[str, Any] = dict(base or {})
    for name in SEQUENCE_FIELDS:
        if v.get(name, "") != "":
            merged[name] = v[name]
    out = writes.SequenceFields()
    for name in ("data_type", "decimal_places", "max_history", "min_storage_interval"):
        if name not in merged:
            continue
        raw = merged.pop(name)
        try:
            n = int(raw) if not isinstance(raw, bool) else None
        except (TypeError, ValueError):
            n = None
        if n is None or not -2**31 < n < 2**31:
            raise BadRequest(f"{name} must be an integer, got {str(raw)[:40]!r}")
        if name == "min_storage_interval":
            out.extra[name] = n
        else:
            setattr(out, name, n)
    if "units" in merged:
        units = merged.pop("units")
        if not isinstance(units, str):
            raise BadRequest("units must be text")
        out.units = units
    out.extra.update(merged)
    return out


@route(r"/resources", "POST")
async def create_resource(request: web.Request, tail: str) -> web.StreamResponse:
    v = await form.values(request)
    parent = v.get("path") or v.get("parent") or ""
    if not parent.startswith("/"):
        raise BadRequest("form field path must be the parent folder's path, with a leading '/'")
    parent = paths.normalize(parent)
    name = form.text(v, "name", required=True) or ""
    number = form.integer(v, "type", required=True)
    assert number is not None
    user_attributes = form.user_attributes(v, shapes.RESERVED_KEYS)
    seq = _sequence_fields(v, form.json_object(v, "system_attributes"))
    data = form.b64(v, "data")
    if data is None:
        data = form.b64(v, "contents")
    created = _time(v, "creation_timestamp", "creationTimestamp")
    who = await subject(request)
    out, made = await in_session(request, _noting_folders(writes.create), store_of(request), who, parent, name,
                                 number, data=data, seq=seq, user_attributes=user_attributes, created_us=created)
    forget_access(request)
    if made:
        await settle_created(request)  # a topic the broker accepts before we answer
    return web.json_response(out)


@route(r"/resources/(.+)", "POST")
async def post_file(request: web.Request, tail: str) -> web.StreamResponse:
    """rhizo's older way to write a file: create it (with its folders) or add a revision."""
    v = await form.values(request)
    data = form.b64(v, "contents") if "contents" in v else form.b64(v, "data")
    who = await subject(request)
    out, made = await in_session(request, _noting_folders(writes.post_file), store_of(request), who, _path(tail),
                                 data or b"")
    forget_access(request)
    if made:
        await settle_created(request)
    return web.json_response(out)


@route(r"/resources/(.+)", "PUT")
async def put_resource(request: web.Request, tail: str) -> web.StreamResponse:
    v = await form.values(request)
    system_attributes = form.json_object(v, "system_attributes")
    u = writes.Update(
        name=paths.check_segment(v["name"]) if "name" in v else None,
        parent=v.get("parent") or None,
        user_attributes=form.user_attributes(v, shapes.RESERVED_KEYS),
        system_attributes=system_attributes,
        status=form.json_object(v, "status"),
        seq=_sequence_fields(v, system_attributes),
        data=form.b64(v, "contents") if "contents" in v else form.b64(v, "data"))
    who = await subject(request)
    out = await in_session(request, writes.update, store_of(request), who, _path(tail), u)
    if u.name is not None or u.parent is not None:
        forget_access(request)
    return web.json_response(out)


@route(r"/resources/(.+)", "DELETE")
async def delete_resource(request: web.Request, tail: str) -> web.StreamResponse:
    v = await form.values(request)
    who = await subject(request)
    out = await in_session(request, writes.delete, who, _path(tail), form.flag(v, "data_only"))
    forget_access(request)
    return web.json_response(out)


@route(r"/resources", "PUT")
async def put_values(request: web.Request, tail: str) -> web.StreamResponse:
    """Many sequence values: `values` = JSON `{"/org/pi/temp": "21.5", ...}`, `timestamp`."""
    v = await form.values(request)
    raw = form.json_object(v, "values")
    if not raw:
        raise BadRequest("form field values must be a JSON object {\"/org/folder/sequence\": value, ...}")
    if len(raw) > MAX_VALUES:
        raise BadRequest(f"{len(raw)} values; at most {MAX_VALUES} per request")
    items = []
    for p, value in raw.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        items.append((paths.normalize(p), value))
    who = (await caller(request))
    if who is None:
        raise Forbidden("send a key (Basic auth, the key as the password)")
    out = await in_session(request, writes.put_values, store_of(request), who.subject, items,
                           v.get("timestamp") or None)
    return web.json_response(out)
