"""The app factory's call site: each extension's routes under `/ext/<name>/`, its static
folder at `/ext/<name>/static/`, its own OpenAPI document at `/ext/<name>/openapi.json`,
and `/ext/index.json` (what the console reads: the extensions and their panels)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from hub.extensions.api import Extension, Panel
from hub.extensions.loader import ExtensionError, Extensions
from hub.extensions.web import EXTENSION

METHODS = ("get", "post", "put", "patch", "delete")
PARAM = re.compile(r"\{([^{}]+)\}")  # aiohttp's {name} or {name:regex}


def setup(app: web.Application, extensions: Extensions) -> None:
    app[EXTENSION] = {e.name: e for e in extensions}
    index: list[dict[str, Any]] = []
    for ext in extensions:
        ops = _routes(app, extensions, ext)
        static = _static(app, extensions, ext)
        panels = _panels(extensions, ext, static)
        if ops:
            doc = _document(ext, ops)
            app.router.add_get(ext.prefix + "/openapi.json", _json(doc), name=f"ext_{ext.name}_openapi")
        index.append({"name": ext.name, "prefix": ext.prefix + "/",
                      "openapi": ext.prefix + "/openapi.json" if ops else None,
                      "panels": [{"title": p.title, "url": f"{ext.prefix}/static/{p.page}"} for p in panels]})
    app.router.add_get("/ext/index.json", _json({"extensions": index}), name="ext_index")


def _json(body: dict[str, Any]) -> Any:
    async def handler(_request: web.Request) -> web.Response:
        return web.json_response(body, headers={"Cache-Control": "no-cache"})
    return handler


def _routes(app: web.Application, extensions: Extensions, ext: Extension) -> list[tuple[str, str, str]]:
    table = extensions.call("hub_routes", ext)
    if table is None:
        return []
    if not isinstance(table, web.RouteTableDef):
        raise ExtensionError(f"extension {ext.name}: hub_routes must return an aiohttp web.RouteTableDef")
    ops = []
    for route in table:
        if not isinstance(route, web.RouteDef):
            raise ExtensionError(f"extension {ext.name}: hub_routes may hold routes only (use hub_static "
                                 "for files)")
        if not route.path.startswith("/") or route.path.startswith("/static"):
            raise ExtensionError(f"extension {ext.name}: route path {route.path!r} must start with '/' "
                                 "and not with /static (its files' place)")
        app.router.add_route(route.method, ext.prefix + route.path, route.handler, **route.kwargs)
        doc = inspect.getdoc(route.handler) or ""
        ops.append((route.method.lower(), route.path, doc))
    return ops


def _static(app: web.Application, extensions: Extensions, ext: Extension) -> Path | None:
    folder = extensions.call("hub_static", ext)
    if folder is None:
        return None
    path = Path(folder)
    if not path.is_absolute() and ext.folder is not None:
        path = ext.folder / path
    if not path.is_dir():
        raise ExtensionError(f"extension {ext.name}: its static folder {path} is not a folder")
    app.router.add_static(ext.prefix + "/static/", path, name=f"ext_{ext.name}_static")
    return path


def _panels(extensions: Extensions, ext: Extension, static: Path | None) -> list[Panel]:
    panels = extensions.call("hub_console_panels", ext) or []
    for p in panels:
        if not isinstance(p, Panel):
            raise ExtensionError(f"extension {ext.name}: hub_console_panels must return Panel objects")
        if static is None or not (static / p.page).is_file():
            raise ExtensionError(f"extension {ext.name}: its panel {p.title!r} names {p.page}, which is not "
                                 "in its static folder (hub_static)")
    return list(panels)


def _document(ext: Extension, ops: list[tuple[str, str, str]]) -> dict[str, Any]:
    """An OpenAPI 3.1 document of the extension's routes: each operation's summary and
    description from its handler's docstring."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, doc in ops:
        if method not in METHODS:
            continue
        summary, _, rest = doc.partition("\n")
        names = [m.split(":", 1)[0] for m in PARAM.findall(path)]
        template = PARAM.sub(lambda m: "{" + m.group(1).split(":", 1)[0] + "}", path)
        words = re.sub(r"[^A-Za-z0-9]+", "_", template).strip("_") or "root"
        op: dict[str, Any] = {"operationId": f"{ext.name}_{method}_{words}",
                              "summary": summary or f"{method.upper()} {path}",
                              "responses": {"default": {"description": "JSON; errors in the hub's error shape"}}}
        if rest.strip():
            op["description"] = rest.strip()
        if names:
            op["parameters"] = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                                for n in names]
        paths.setdefault(ext.prefix + template, {})[method] = op
    return {"openapi": "3.1.0", "info": {"title": f"hub extension {ext.name}",
                                         "version": str(getattr(ext.module, "__version__", "0"))},
            "paths": paths}
