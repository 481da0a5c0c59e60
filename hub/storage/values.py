"""Sequence values: checking against the sequence, encoding into a row.

One place for the rules the persister and the HTTP API share.
A value is stored in exactly one of: `num` (numeric), `text` (text, JSON as
compact text) or `data` (image bytes). Large ones move to bulk storage.
A number is stored exactly as sent (the nearest float to its text): a sequence's
`decimal_places` is how the console shows it, never a rounding of what is kept.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.errors import BadValue
from hub.storage.models import DataType, Sequence

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_FUTURE_SECONDS = 300  # a timestamp further ahead than this is refused


@dataclass
class Encoded:
    num: float | None = None
    text: str | None = None
    data: bytes | None = None

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        if self.text is not None:
            return len(self.text.encode())
        return 8


def encode(seq: Sequence, value: Any) -> Encoded:
    """Check `value` against the sequence and encode it, or raise BadValue."""
    kind = seq.data_type
    if kind == DataType.NUMERIC.value:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise BadValue(f"numeric sequence needs a number, got {type(value).__name__}")
        try:
            num = float(value)
        except (ValueError, OverflowError):
            raise BadValue(f"numeric sequence needs a number, got {value!r:.40}") from None
        if not math.isfinite(num):
            raise BadValue("numeric value must be finite")
        if seq.min_value is not None and num < seq.min_value:
            raise BadValue(f"value {num} is below the minimum {seq.min_value}")
        if seq.max_value is not None and num > seq.max_value:
            raise BadValue(f"value {num} is above the maximum {seq.max_value}")
        return Encoded(num=num)  # as sent: `decimal_places` is for display only
    if kind == DataType.TEXT.value:
        if not isinstance(value, str):
            raise BadValue(f"text sequence needs a string, got {type(value).__name__}")
        if "\x00" in value:  # PostgreSQL stores no NUL in text; the HTTP API refuses it too
            raise BadValue("text value must not contain NUL characters")
        return Encoded(text=value)
    if kind == DataType.JSON.value:
        try:
            return Encoded(text=json.dumps(value, separators=(",", ":"), allow_nan=False))
        except (TypeError, ValueError) as e:
            raise BadValue(f"value is not JSON-serialisable: {e}") from None
    if kind == DataType.IMAGE.value:
        if isinstance(value, (bytes, bytearray)):
            return Encoded(data=bytes(value))
        if not isinstance(value, str):
            raise BadValue("image sequence needs base64 text or bytes")
        try:
            return Encoded(data=base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            raise BadValue("image value is not valid base64") from None
    raise BadValue(f"unknown data type {kind!r}")


def decode(data_type: str, num: float | None, text: str | None, data: bytes | None) -> Any:
    """The API form of a stored value (images as base64 text)."""
    if data_type == DataType.NUMERIC.value:
        return num
    if data_type == DataType.JSON.value:
        return json.loads(text) if text is not None else None
    if data_type == DataType.IMAGE.value:
        return base64.b64encode(data).decode() if data is not None else None
    return text


def guess_type(value: Any) -> str:
    """The data type a new sequence gets from its first value."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return DataType.NUMERIC.value
    if isinstance(value, str):
        return DataType.TEXT.value
    return DataType.JSON.value


def to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def iso(us: int) -> str:
    return from_us(us).isoformat().replace("+00:00", "Z")


def now_us() -> int:
    return to_us(datetime.now(UTC))


def parse_timestamp(value: Any, *, now: int | None = None) -> int:
    """ISO 8601 text (or epoch seconds) -> microseconds; refuses the far future."""
    now = now_us() if now is None else now
    if isinstance(value, bool):
        raise BadValue("timestamp must be ISO 8601 text")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise BadValue("timestamp must be finite")
        us = int(value * 1_000_000)
    elif isinstance(value, str) and len(value) <= 40:
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            us = to_us(datetime.fromisoformat(text))
        except ValueError:
            raise BadValue(f"timestamp {value!r} is not ISO 8601") from None
    else:
        raise BadValue("timestamp must be ISO 8601 text")
    if us > now + MAX_FUTURE_SECONDS * 1_000_000:
        raise BadValue(f"timestamp {value!r} is more than {MAX_FUTURE_SECONDS} s in the future")
    if us < 0:
        raise BadValue(f"timestamp {value!r} is before 1970")
    return us
