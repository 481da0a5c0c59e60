"""The hook that serves the web console at `/`.

The console's files live in `hub/http/static/` (owned by the console); when
that folder has an `index.html`, `/` serves it and the rest of the folder is
served under `/static/`. Without it, `/` points to the API docs.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"


def setup(app: web.Application, static_dir: Path = STATIC) -> None:
    index = static_dir / "index.html"

    async def root(request: web.Request) -> web.StreamResponse:
        if index.is_file():
            return web.FileResponse(index, headers={"Cache-Control": "no-cache"})
        raise web.HTTPFound("/api/v1/docs")

    app.router.add_get("/", root, name="console")
    if static_dir.is_dir():
        app.router.add_static("/static/", static_dir, name="console_static", append_version=True)
