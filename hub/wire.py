"""The MQTT message wire format: parse and validate, and build.

A payload is a UTF-8 JSON object `{"type": "<= 40 chars", "parameters": {...}}`.
The topic is the folder the message is about (`acme/greenhouse/pi-01`).

`update_sequence` (stored by the persister) takes one of three parameter shapes:

- one value:  `{"sequence": "temp", "value": 21.5, "timestamp": "2024-05-01T12:00:00.5Z"}`
- many values of one sequence:
  `{"sequence": "temp", "values": [{"value": 21.5, "timestamp": ...}, ...]}`
- many sequences: `{"updates": [{"sequence": "temp", "value": 21.5, "timestamp": ...}, ...]}`

`sequence` is a name or a path relative to the topic's folder, or an absolute
path (leading `/`) that must still be inside that folder: a message can never
write outside its own folder. `timestamp` is optional (the persister's receive
time when absent), ISO 8601 text or epoch seconds; it is checked (format, not in
the far future) where it is converted, `hub.storage.values.parse_timestamp`.
Updates without a timestamp cannot be recognised when Mosquitto redelivers
them, so clients that need exactly-once send one (`hub.controller` always does).

The rhizo-server forms are read too (docs/rhizo-compat.md), so existing rhizo
controllers work unchanged; `parse` turns each into its native twin:

- `{"<type>": {parameters}}` (no "type" key) -> `Message(<type>, parameters)`;
- `{"update": {"$t": "<ISO>Z", "<sequence>": value, ...}}` -> `update_sequence` with
  `updates` (every value gets `$t`, or no timestamp without one);
- the text line `s,<sequence>,<ISO>Z,<value>` -> `update_sequence` of that one value
  (the value stays text: a numeric sequence converts it, as rhizo did);
- `d,<sequence>,<ISO>Z,<value>` -> `display_value`: subscribers see it, nothing stores it.

Stdlib only (plus `hub.paths` / `hub.errors`): the controller client imports it.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub import paths
from hub.errors import BadPath, BadRequest, TooLarge

UPDATE_SEQUENCE = "update_sequence"
DISPLAY_VALUE = "display_value"  # rhizo's `d,` line: shown live, never stored
RHIZO_UPDATE = "update"
RHIZO_TIME = "$t"
MAX_TYPE_LENGTH = 40
MAX_UPDATES = 10_000  # updates in one message, over all shapes
MAX_TIMESTAMP_LENGTH = 40
DEFAULT_MAX_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class Message:
    type: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Update:
    """One value for one sequence. `path` is canonical and inside the topic's
    folder; `timestamp` is as sent (None, ISO text or epoch seconds)."""

    path: str
    value: Any
    timestamp: str | int | float | None = None


# -- parsing --------------------------------------------------------------------

def parse(payload: bytes | bytearray | str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Message:
    """The message in `payload`, or BadRequest / TooLarge saying what is wrong."""
    if len(payload) > max_bytes:
        raise TooLarge(f"message of {len(payload)} bytes is over the limit of {max_bytes}")
    try:
        text = payload.decode() if isinstance(payload, (bytes, bytearray)) else payload
        if text[:2] in ("s,", "d,"):
            return _rhizo_line(text)
        obj = json.loads(text)
    except UnicodeDecodeError:
        raise BadRequest("message is not UTF-8 text") from None
    except (ValueError, RecursionError):
        raise BadRequest("message is not JSON: send {\"type\": ..., \"parameters\": {...}}") from None
    if isinstance(obj, dict) and "type" not in obj and len(obj) == 1 and "parameters" not in obj:
        return _rhizo_object(obj)
    if not isinstance(obj, dict):
        raise BadRequest("message is not a JSON object: send {\"type\": ..., \"parameters\": {...}}")
    kind = obj.get("type")
    if not isinstance(kind, str) or not kind:
        raise BadRequest("message has no \"type\" (a non-empty string)")
    if len(kind) > MAX_TYPE_LENGTH:
        raise BadRequest(f"message type is longer than {MAX_TYPE_LENGTH} characters")
    params = obj.get("parameters", {})
    if not isinstance(params, dict):
        raise BadRequest("message \"parameters\" must be a JSON object")
    return Message(kind, params)


def _rhizo_object(obj: dict[str, Any]) -> Message:
    """`{"<type>": {parameters}}`; `update` becomes `update_sequence`."""
    ((kind, params),) = obj.items()
    if not kind or len(kind) > MAX_TYPE_LENGTH:
        raise BadRequest(f"message type must be 1-{MAX_TYPE_LENGTH} characters")
    if not isinstance(params, dict):
        raise BadRequest(f"message {{\"{kind[:40]}\": ...}} must hold a JSON object of parameters")
    if kind != RHIZO_UPDATE:
        return Message(kind, params)
    stamp = params.get(RHIZO_TIME)
    items = [{"sequence": name, "value": value} if stamp is None else
             {"sequence": name, "value": value, "timestamp": stamp}
             for name, value in params.items() if name != RHIZO_TIME]
    if not items:
        raise BadRequest("\"update\" message has no values: send {\"update\": {\"$t\": ..., \"<sequence>\": value}}")
    return Message(UPDATE_SEQUENCE, {"updates": items})


def _rhizo_line(text: str) -> Message:
    """`s,<sequence>,<ISO time>,<value>` (store) or `d,...` (display only)."""
    parts = text.split(",", 3)
    if len(parts) != 4 or not parts[1]:
        raise BadRequest(f"text message must be '{text[0]},<sequence>,<ISO time>Z,<value>'")
    _, sequence, stamp, value = parts
    params: dict[str, Any] = {"sequence": sequence, "value": value}
    if stamp:
        params["timestamp"] = stamp
    return Message(UPDATE_SEQUENCE if text[0] == "s" else DISPLAY_VALUE, params)


@functools.lru_cache(maxsize=4096)  # pure; a persister sees the same topics over and over
def folder_of_topic(topic: str) -> str:
    """The canonical folder path a topic names, or BadPath."""
    if not isinstance(topic, str) or any(c in topic for c in "+#$"):
        raise BadPath(f"topic {topic!r} is not a folder path")
    if topic.startswith("/"):
        raise BadPath(f"topic {topic!r} starts with '/': topics are folder paths without one")
    return paths.normalize(topic)


def resolve(folder: str, sequence: Any) -> str:
    """The canonical path of `sequence` (name, relative or absolute path),
    which must lie below `folder` (canonical)."""
    if not isinstance(sequence, str) or not sequence:
        raise BadRequest("\"sequence\" must be a non-empty string (a name or a path)")
    return _resolve(folder, sequence)


@functools.lru_cache(maxsize=16384)
def _resolve(folder: str, sequence: str) -> str:
    full = paths.join(folder, sequence)
    if full == folder:
        raise BadPath(f"sequence {sequence!r} names the message's folder itself, not a sequence in it")
    if not paths.is_within(full, folder):
        raise BadPath(f"sequence {sequence!r} is outside the message's folder {folder}: "
                      "a message may only update sequences under its own topic")
    return full


def _timestamp(params: Mapping[str, Any]) -> str | int | float | None:
    ts = params.get("timestamp")
    if ts is None:
        return None
    if isinstance(ts, bool) or not isinstance(ts, (str, int, float)):
        raise BadRequest("\"timestamp\" must be ISO 8601 text (or epoch seconds)")
    if isinstance(ts, str) and len(ts) > MAX_TIMESTAMP_LENGTH:
        raise BadRequest(f"\"timestamp\" is longer than {MAX_TIMESTAMP_LENGTH} characters")
    if isinstance(ts, float) and not math.isfinite(ts):
        raise BadRequest("\"timestamp\" must be finite")
    return ts


def _one(folder: str, item: Any, where: str) -> Update:
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be an object with \"sequence\" and \"value\"")
    if "value" not in item:
        raise BadRequest(f"{where} has no \"value\"")
    return Update(resolve(folder, item.get("sequence")), item["value"], _timestamp(item))


def updates(folder: str, params: Mapping[str, Any]) -> list[Update]:
    """The updates an `update_sequence` message on `folder` (canonical) asks
    for; BadRequest / BadPath on the first problem (a message is all or nothing)."""
    shapes = [k for k in ("value", "values", "updates") if k in params]
    if len(shapes) != 1:
        raise BadRequest("update_sequence needs exactly one of \"value\" (with \"sequence\"), "
                         "\"values\" (with \"sequence\") or \"updates\"")
    shape = shapes[0]
    if shape == "value":
        return [_one(folder, params, "update_sequence")]
    items = params[shape]
    if not isinstance(items, list) or not items:
        raise BadRequest(f"\"{shape}\" must be a non-empty list")
    if len(items) > MAX_UPDATES:
        raise BadRequest(f"\"{shape}\" has {len(items)} items; at most {MAX_UPDATES} per message")
    if shape == "updates":
        return [_one(folder, item, f"updates[{i}]") for i, item in enumerate(items)]
    path = resolve(folder, params.get("sequence"))
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "value" not in item:
            raise BadRequest(f"values[{i}] must be an object with \"value\" (and \"timestamp\")")
        out.append(Update(path, item["value"], _timestamp(item)))
    return out


# -- building -------------------------------------------------------------------

def build(type: str, parameters: Mapping[str, Any] | None = None) -> bytes:
    """The payload for a message (checked like `parse` would)."""
    if not isinstance(type, str) or not type or len(type) > MAX_TYPE_LENGTH:
        raise BadRequest(f"message type must be 1-{MAX_TYPE_LENGTH} characters")
    try:
        return json.dumps({"type": type, "parameters": dict(parameters or {})},
                          separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        raise BadRequest(f"parameters are not JSON-serialisable: {e}") from None


def format_timestamp(when: datetime | float | int | None = None) -> str:
    """ISO 8601 UTC with microseconds (`2024-05-01T12:00:00.123456Z`); `when`
    is a datetime, epoch seconds, or None for now."""
    if when is None:
        when = datetime.now(UTC)
    elif not isinstance(when, datetime):
        when = datetime.fromtimestamp(when, UTC)
    elif when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_timestamp_us(us: int) -> str:
    """ISO 8601 for integer microseconds since the epoch, exact."""
    seconds, micro = divmod(us, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{micro:06d}Z"


_quote = json.encoder.encode_basestring_ascii  # what json.dumps does to a str


def update_message(sequence: str, value: Any, timestamp: str | None = None) -> bytes:
    # the common case (a name, a number, a timestamp) without building dicts: the
    # same bytes json.dumps makes, about 4x faster (controllers send many)
    if type(sequence) is str and type(timestamp) is str and (
            type(value) is int or (type(value) is float and math.isfinite(value))):
        return (f'{{"type":"{UPDATE_SEQUENCE}","parameters":{{"sequence":{_quote(sequence)},'
                f'"value":{value!r},"timestamp":{_quote(timestamp)}}}}}').encode()
    params: dict[str, Any] = {"sequence": sequence, "value": value}
    if timestamp is not None:
        params["timestamp"] = timestamp
    return build(UPDATE_SEQUENCE, params)


def values_message(sequence: str, values: Iterable[tuple[Any, str | None]]) -> bytes:
    """Many `(value, timestamp)` of one sequence in one message."""
    items = [{"value": v} if ts is None else {"value": v, "timestamp": ts} for v, ts in values]
    return build(UPDATE_SEQUENCE, {"sequence": sequence, "values": items})


def batch_message(items: Iterable[tuple[str, Any, str | None]]) -> bytes:
    """Many `(sequence, value, timestamp)` in one message."""
    out = [{"sequence": s, "value": v} if ts is None else {"sequence": s, "value": v, "timestamp": ts}
           for s, v, ts in items]
    return build(UPDATE_SEQUENCE, {"updates": out})
