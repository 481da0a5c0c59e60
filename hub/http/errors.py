"""The one error middleware: every failure becomes
`{"error": {"code": ..., "message": ...}}` with the right status.

- `hub.errors.HubError`: its own status and code (429 adds Retry-After);
- aiohttp's HTTP exceptions (unknown route, wrong method, body too large):
  their status, a stable code;
- anything else: 500 `internal_error`, logged with its traceback, never
  shown to the client.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from aiohttp import web

from hub.errors import HubError, RateLimited

log = logging.getLogger("hub.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "bad_value",
    429: "rate_limited",
}

_HTTP_MESSAGES = {
    404: "no such API route: see /api/v1/openapi.json for the routes",
    405: "this route does not take that method: see /api/v1/openapi.json",
    413: "request body too large (the limit is MAX_REQUEST_BYTES)",
}


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HubError as e:
        headers = None
        if isinstance(e, RateLimited):
            headers = {"Retry-After": str(max(1, math.ceil(e.retry_after)))}
        if e.status >= 500:
            log.warning("%s %s: %s (%s)", request.method, request.path, e.code, e.message)
        return error_response(e.status, e.code, e.message, headers)
    except web.HTTPException as e:
        if e.status < 400:
            raise  # redirects and the like pass through
        code = _HTTP_CODES.get(e.status, "http_error")
        message = _HTTP_MESSAGES.get(e.status) or e.reason
        headers = {k: v for k, v in e.headers.items() if k in ("Allow", "Retry-After")}
        return error_response(e.status, code, message, headers)
    except Exception:
        from hub.http.accesslog import request_id

        log.exception("unhandled error on %s %s (request %s)", request.method, request.path, request_id(request))
        return error_response(500, "internal_error",
                              "internal server error: it was logged; try again, or tell the operator")
