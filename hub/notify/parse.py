"""What a `send_email` / `send_text_message` message asks for, checked.

Native parameters: `{"to": "a@x.org" | [...], "subject": ..., "body": ...}` and
`{"to": "+1555..." | [...], "message": ...}`. The rhizo names are read too:
`emailAddresses` / `email_addresses`, `phoneNumbers` / `phone_numbers` (comma-separated
text or a list). `send_sms` is rhizo's other name for `send_text_message`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.errors import BadRequest
from hub.storage.controllers import split_recipients
from hub.storage.outgoing import normalize_phone
from hub.storage.users import normalize_email

SEND_EMAIL = "send_email"
SEND_TEXT = "send_text_message"
SEND_SMS = "send_sms"  # rhizo's alias
MAX_RECIPIENTS = 10
MAX_SUBJECT = 200
MAX_BODY = 100_000
MAX_TEXT = 1600  # a long SMS: 10 segments


@dataclass(frozen=True)
class EmailRequest:
    to: list[str]
    subject: str
    body: str


@dataclass(frozen=True)
class TextRequest:
    to: list[str]
    message: str


def _recipients(params: Mapping[str, Any], names: tuple[str, ...], what: str) -> list[str]:
    raw = next((params[n] for n in names if params.get(n) is not None), None)
    if raw is None:
        raise BadRequest(f"no recipients: send \"{names[0]}\" with {what}")
    if not isinstance(raw, (str, list)):
        raise BadRequest(f"\"{names[0]}\" must be text (comma-separated) or a list of {what}")
    out = split_recipients(raw)
    if not out:
        raise BadRequest(f"no recipients: send \"{names[0]}\" with {what}")
    if len(out) > MAX_RECIPIENTS:
        raise BadRequest(f"{len(out)} recipients; at most {MAX_RECIPIENTS} per message")
    return out


def _text(params: Mapping[str, Any], names: tuple[str, ...], limit: int, required: bool) -> str:
    v = next((params[n] for n in names if params.get(n) is not None), None)
    if v is None:
        if required:
            raise BadRequest(f"\"{names[0]}\" is required")
        return ""
    if not isinstance(v, str):
        raise BadRequest(f"\"{names[0]}\" must be text")
    if len(v) > limit:
        raise BadRequest(f"\"{names[0]}\" is longer than {limit} characters")
    return v


def email_request(params: Mapping[str, Any]) -> EmailRequest:
    to = [normalize_email(a) for a in _recipients(
        params, ("to", "emailAddresses", "email_addresses"), "email addresses")]
    subject = " ".join(_text(params, ("subject",), MAX_SUBJECT, True).split())  # no header injection
    if not subject:
        raise BadRequest("\"subject\" must not be empty")
    return EmailRequest(to, subject, _text(params, ("body",), MAX_BODY, False))


def text_request(params: Mapping[str, Any]) -> TextRequest:
    to = []
    for n in _recipients(params, ("to", "phoneNumbers", "phone_numbers"), "phone numbers"):
        p = normalize_phone(n)
        if p is None:
            raise BadRequest(f"{n!r} is not a phone number: use E.164, e.g. +15551234567")
        to.append(p)
    message = _text(params, ("message", "body"), MAX_TEXT, True)
    if not message.strip():
        raise BadRequest("\"message\" must not be empty")
    return TextRequest(to, message)
