"""The HTTP server (aiohttp): `main(settings)` runs it until SIGTERM/Ctrl-C.

`run.py --http` calls `main` through `hub.supervisor`; the app itself comes
from `hub.http.app.init_app`.
"""

from __future__ import annotations

import logging

from hub.settings import Settings

log = logging.getLogger("hub.http")


def main(settings: Settings) -> int:
    from aiohttp import web

    from hub.http.accesslog import runner_options
    from hub.http.app import init_app

    web.run_app(init_app(settings), host=settings.HTTP_HOST, port=settings.HTTP_PORT,
                **runner_options(settings),
                print=lambda *a: log.info("HTTP API on http://%s:%s/api/v1/ (docs at /api/v1/docs)",
                                          settings.HTTP_HOST, settings.HTTP_PORT))
    return 0
