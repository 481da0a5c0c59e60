"""/api/v1/resources/{path}: read, create, update, rename/move, delete; and
/api/v1/revisions/{path}: a file's or sequence's revisions.

Access: read needs READ on the path; create needs WRITE on the parent folder
(ADMIN for a controller folder); update, move and delete need WRITE (ADMIN
for controller folders); a move also needs WRITE on the new parent.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hub import paths
from hub.errors import BadRequest, Conflict, Unprocessable
from hub.http import resource_ops as ops
from hub.http.auth import caller_of, forget_access, level_of, require_level
from hub.http.deps import in_session, store_of
from hub.http.freshread import read_fresh
from hub.http.params import AFTER, bool_param, choice_param, field, int_param, is_json, json_body, time_param
from hub.http.routes import API
from hub.http.routes.history import history_of
from hub.http.typedefs import READ_CACHE
from hub.http.uploads import read_upload
from hub.storage import resources as res_store
from hub.storage.models import Level, ResourceType

routes = web.RouteTableDef()
PATH = API + "/resources/{path:.+}"
CONTROLLER = ResourceType.CONTROLLER.value
CHUNK = 256 * 1024
NEW_TYPES = ("folder", "controller", "file", "sequence")
ACCESS_HEADER = "X-Access"  # read, write or admin: what the caller may do here (the console hides the rest)


def _path(request: web.Request) -> str:
    return paths.normalize(request.match_info["path"])


@routes.get(API + "/resources")
async def list_top(request: web.Request) -> web.Response:
    """Where the caller can start browsing: the organization folders it can read,
    then the topmost folders it holds a grant on inside other organizations."""
    from hub.http.routes.organizations import visible_organizations

    caller = await caller_of(request)
    orgs = await visible_organizations(request, caller)
    out = []
    for org in orgs:
        if await level_of(request, caller, org["name"]) >= Level.READ:
            out.append({"path": org["name"], "name": org["name"], "type": "organization"})
    tops = [o["path"] for o in out]
    for path, kind in await in_session(request, _roots_with_types, caller.subject):
        if not any(paths.is_within(path, top) for top in tops):
            out.append({"path": path, "name": path.rsplit("/", 1)[-1], "type": kind})
    return web.json_response({"children": out})


def _roots_with_types(s: Any, subject: Any) -> list[tuple[str, str]]:
    from hub.storage.permissions import granted_roots

    return [(p, res_store.get(s, p).type) for p in granted_roots(s, subject)]


@routes.get(PATH)
async def get_resource(request: web.Request) -> web.StreamResponse:
    caller = await caller_of(request)
    path = _path(request)
    if path.endswith("/history") and await in_session(request, res_store.find, path) is None:
        return await history_of(request, path.removesuffix("/history"))
    have = await require_level(request, caller, path, Level.READ)
    store = store_of(request)
    revision = int_param(request, "revision", None, 1, 2**62)
    if revision is not None:
        kind = await in_session(request, ops.resource_type, path)
        if kind == ops.FILE:
            return await _stream(request, await in_session(request, ops.file_content, store, path, revision))
        if kind != ops.SEQUENCE:
            raise Conflict("revision= applies to files and sequences only")
        return web.json_response(await in_session(request, ops.sequence_value_at, store, path, revision))
    limit = int_param(request, "limit", 100, 1, 1000) or 100
    after = request.query.get("after") or None
    if after is not None and not AFTER.fullmatch(after):
        raise BadRequest("query parameter after must be a child's name (the `next` of the last page)")
    meta = bool_param(request, "meta")
    cache = request.app[READ_CACHE]
    key = (path, str(limit), after or "", "meta" if meta else "")
    body = cache.get(key)
    if body is None:
        found = await read_fresh(request, path, limit=limit, after=after, meta=meta)
        if isinstance(found, ops.FileContent):
            return await _stream(request, found)
        body = json.dumps(found).encode()
        cache.put(key, body)
    # the body is shared by every reader (cached); the caller's own level rides in a header
    return web.Response(body=body, content_type="application/json", headers={ACCESS_HEADER: have.name.lower()})


async def _stream(request: web.Request, content: ops.FileContent) -> web.StreamResponse:
    resp = web.StreamResponse(headers={
        "Content-Type": content.content_type, "X-Revision": str(content.revision_id),
        "Last-Modified-Timestamp": content.timestamp, "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox"})
    resp.content_length = len(content.data)
    await resp.prepare(request)
    view = memoryview(content.data)
    for i in range(0, len(view), CHUNK):
        await resp.write(view[i:i + CHUNK])
    await resp.write_eof()
    return resp


async def _need(request: web.Request, path: str, *, controller: bool) -> None:
    caller = await caller_of(request)
    await require_level(request, caller, path, Level.ADMIN if controller else Level.WRITE)


@routes.post(PATH)
async def create_resource(request: web.Request) -> web.Response:
    """JSON `{type, ...}` creates a folder, controller, sequence or (with
    `content`) file; any other body (raw or multipart) creates a file."""
    caller = await caller_of(request)
    path = _path(request)
    parent, _ = paths.split(path)
    if parent is None:
        raise Conflict("top-level folders are organizations: POST /api/v1/organizations")
    store = store_of(request)
    content: tuple[bytes, str] | None = None
    body: dict[str, Any] = {}
    spec: res_store.SequenceSpec | None = None
    forced = choice_param(request, "type", ("file", ""), "")
    if request.body_exists and is_json(request) and not forced:
        body = await json_body(request, "NewResource")
        type_ = field(body, "type", str, required=True)
        if type_ not in NEW_TYPES:
            raise BadRequest(f"type must be one of {', '.join(NEW_TYPES)}")
        text = field(body, "content", str, default="")
        ctype = field(body, "content_type", str, default="text/plain; charset=utf-8")
        if body.get("timestamp") is not None and not isinstance(body["timestamp"], (str, int, float)) \
                or isinstance(body.get("timestamp"), bool):
            raise BadRequest("field 'timestamp' must be ISO 8601 text or epoch seconds")
        spec = ops.spec_from(body)  # checked for every type; used by sequences
        if type_ == ops.FILE:
            content = (text.encode(), ctype)
    else:
        type_ = ops.FILE
    level = Level.ADMIN if type_ == CONTROLLER else Level.WRITE
    await require_level(request, caller, parent, level)
    await in_session(request, ops.ensure_absent, path)  # before reading a large upload
    if type_ == ops.FILE and content is None:
        content = await read_upload(request)
    spec = spec if type_ == ops.SEQUENCE else None
    attributes = field(body, "attributes", dict)
    out = await in_session(request, ops.create, store, path, type_, attributes=attributes, spec=spec,
                           content=content, value=body.get("value"), timestamp=body.get("timestamp"))
    if type_ in res_store.FOLDER_TYPES:
        forget_access(request)
    return web.json_response(out, status=201, headers={"Location": f"{API}/resources/{out['path']}"})


@routes.put(PATH)
async def put_resource(request: web.Request) -> web.Response:
    """A file: new content (a new revision). A sequence: `{value, timestamp?}`."""
    caller = await caller_of(request)
    path = _path(request)
    await require_level(request, caller, path, Level.WRITE)
    store = store_of(request)
    kind = await in_session(request, ops.resource_type, path)
    if kind == ops.FILE:
        data, ctype = await read_upload(request)
        return web.json_response(await in_session(request, ops.replace_file, store, path, data, ctype))
    if kind == ops.SEQUENCE:
        if not request.body_exists:
            raise Unprocessable("a sequence takes {\"value\": ..., \"timestamp\": optional ISO 8601}")
        body = await json_body(request, "SequenceWrite")
        if "value" not in body:
            raise BadRequest("send {\"value\": ..., \"timestamp\": optional ISO 8601}")
        return web.json_response(await in_session(request, ops.write_value, store, path, body["value"],
                                                  body.get("timestamp")))
    raise Conflict(f"{path} is a {kind}: PUT sets a file's content or a sequence's value; "
                     "use PATCH for attributes")


@routes.patch(PATH)
async def patch_resource(request: web.Request) -> web.Response:
    """`{path?: new path, attributes?: {...}, <sequence fields>?}`."""
    caller = await caller_of(request)
    path = _path(request)
    body = await json_body(request, "ResourcePatch")
    await require_level(request, caller, path, Level.WRITE)
    kind = await in_session(request, ops.resource_type, path)
    new_path = field(body, "path", str)
    if new_path is not None:
        new_path = paths.normalize(new_path)
        parent, _ = paths.split(new_path)
        await _need(request, path, controller=kind == CONTROLLER)
        if parent is not None:
            await require_level(request, caller, parent, Level.ADMIN if kind == CONTROLLER else Level.WRITE)
    spec = {k: body[k] for k in ops.SPEC_FIELDS if k in body}
    out = await in_session(request, ops.update, store_of(request), path, new_path=new_path,
                           attributes=field(body, "attributes", dict), spec=spec)
    if new_path is not None:
        forget_access(request)
    return web.json_response(out)


@routes.delete(PATH)
async def delete_resource(request: web.Request) -> web.Response:
    """Soft delete; a folder with children needs `recursive=true`."""
    path = _path(request)
    caller = await caller_of(request)
    await require_level(request, caller, path, Level.WRITE)
    kind = await in_session(request, ops.resource_type, path)
    if kind == CONTROLLER:
        await _need(request, path, controller=True)
    n = await in_session(request, ops.delete, path, bool_param(request, "recursive"))
    forget_access(request)
    return web.json_response({"path": path, "deleted": n})


@routes.get(API + "/revisions/{path:.+}")
async def list_revisions(request: web.Request) -> web.Response:
    """A file's or sequence's revisions, newest first; page with `before`."""
    caller = await caller_of(request)
    path = _path(request)
    await require_level(request, caller, path, Level.READ)
    limit = int_param(request, "limit", 100, 1, 1000) or 100
    before = time_param(request, "before")
    return web.json_response(await in_session(request, ops.list_revisions, path, limit=limit, before=before))

