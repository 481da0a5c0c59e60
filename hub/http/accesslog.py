"""The access log and the request id.

Every request gets an id: the proxy's `X-Request-Id` when it sent a sane one
(nginx: `proxy_set_header X-Request-Id $request_id;`), else a new one. It is
returned as `X-Request-Id` on every response, errors included, so a user's
report and the server's log line meet.

With HTTP_ACCESS_LOG on (the default), aiohttp's access-log hook writes one line
per request to the `hub.http.access` logger at INFO, in the common log format
followed by the request id and the time taken:

    203.0.113.9 - - [01/Dec/2026:15:20:00 +0000] "GET /api/v1/pins/4711?pin_code=REDACTED HTTP/1.1" 200 57 \
9f1c...e2 3.1ms

Credentials never reach it: the request line's query values whose names look like
secrets are replaced, and no header (Authorization, Cookie) is logged.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from hub.settings import Settings

HEADER = "X-Request-Id"
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")
# a query parameter whose name contains one of these has its value replaced in the log
_SECRET_NAMES = ("pass", "token", "key", "secret", "code", "auth", "sig", "session", "csrf", "cookie",
                 "credential")
REDACTED = "REDACTED"
logger = logging.getLogger("hub.http.access")


def request_id(request: web.BaseRequest) -> str:
    """This request's id: the proxy's when it is 8-64 characters of [A-Za-z0-9._:-],
    else a new one (kept on the request, so it is the same all along)."""
    rid = request.get(REQUEST_ID)
    if rid is None:
        given = request.headers.get(HEADER, "")
        rid = request[REQUEST_ID] = given if _VALID_ID.fullmatch(given) else secrets.token_hex(16)
    return rid


async def _on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[HEADER] = request_id(request)


def setup(app: web.Application) -> None:
    """Every response, streamed or not, error or not, carries X-Request-Id."""
    app.on_response_prepare.append(_on_response_prepare)


def redact(path_qs: str) -> str:
    """The path and query with the values of secret-looking parameters replaced."""
    path, sep, query = path_qs.partition("?")
    if not sep:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    return path + "?" + "&".join(
        f"{quote(k, safe='')}={REDACTED if any(w in k.lower() for w in _SECRET_NAMES) else quote(v, safe='')}"
        for k, v in pairs)


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access-log hook, writing the hub's line (see the module doc)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_taken: float) -> None:
        from hub.http.routes.auth import client_address

        rid = response.headers.get(HEADER) or request.get(REQUEST_ID) or "-"
        line = f"{request.method} {redact(request.raw_path)} HTTP/{request.version.major}.{request.version.minor}"
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(time.time() - time_taken))
        size = response.body_length
        self.logger.info('%s - - [%s] "%s" %d %s %s %.1fms', client_address(request), stamp,
                         _printable(line), response.status, size if size else "-", rid, 1000 * time_taken)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def _printable(text: str) -> str:
    """No control characters or quotes from the request line in the log."""
    return "".join(c if c.isprintable() and c != '"' else f"\\x{ord(c):02x}" for c in text)


def runner_options(settings: Settings) -> dict[str, Any]:
    """The access-log arguments of `web.run_app` / `web.AppRunner` for these settings."""
    if not settings.HTTP_ACCESS_LOG:
        return {"access_log": None}
    return {"access_log": logger, "access_log_class": AccessLogger}
