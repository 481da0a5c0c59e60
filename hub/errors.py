"""One exception hierarchy for every layer.

Each error carries an HTTP status and a stable machine code; the HTTP server
renders any `HubError` as `{"error": {"code": ..., "message": ...}}`, the
persister logs and counts it, the CLI prints its message and exits non-zero.
"""

from __future__ import annotations


class HubError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(HubError):
    status = 400
    code = "bad_request"


class BadPath(BadRequest):
    code = "bad_path"


class BadValue(HubError):
    """A value that does not fit its sequence (type, min/max, size)."""

    status = 422
    code = "bad_value"


class Unprocessable(HubError):
    """Well-formed (the OpenAPI document allows it) but refused by a rule the document
    cannot state: a weak password, a date that does not exist."""

    status = 422
    code = "unprocessable"


class Unauthenticated(HubError):
    status = 401
    code = "unauthenticated"


class Forbidden(HubError):
    status = 403
    code = "forbidden"


class NotFound(HubError):
    status = 404
    code = "not_found"


class Conflict(HubError):
    status = 409
    code = "conflict"


class TooLarge(HubError):
    status = 413
    code = "too_large"


class UnsupportedMediaType(HubError):
    status = 415
    code = "unsupported_media_type"


class RateLimited(HubError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float = 60.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(HubError):
    """A dependency (database, bulk storage, broker) cannot be reached."""

    status = 503
    code = "unavailable"


class SettingsError(HubError):
    code = "bad_settings"
