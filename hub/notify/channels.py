"""The two ways out: SMTP (standard library) and a Twilio-compatible HTTP API.

Both block (the notifier calls them from its worker threads) and raise
`DeliveryFailed` with a message fit for logs: never a password or token.
"""

from __future__ import annotations

import base64
import json
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from hub.errors import HubError
from hub.settings import Settings

TIMEOUT = 30.0
TLS_MODES = ("starttls", "ssl", "none")


class DeliveryFailed(HubError):
    status = 502
    code = "delivery_failed"


class ChannelOff(HubError):
    """The channel is not configured: the request is refused, not retried."""

    status = 503
    code = "channel_off"


def email_from(settings: Settings) -> str:
    return settings.SMTP_FROM or settings.SMTP_USER


def check_email(settings: Settings) -> None:
    if not settings.SMTP_HOST:
        raise ChannelOff("email is off: set SMTP_HOST (and SMTP_FROM) to send email")
    if not email_from(settings):
        raise ChannelOff("set SMTP_FROM (or SMTP_USER): the hub's emails need a From address")
    if settings.SMTP_TLS not in TLS_MODES:
        raise ChannelOff(f"SMTP_TLS must be one of {', '.join(TLS_MODES)}, not {settings.SMTP_TLS!r}")


def send_email(settings: Settings, to: list[str], subject: str, body: str, *, folder: str = "") -> None:
    check_email(settings)
    msg = EmailMessage()
    msg["From"] = email_from(settings)
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="hub.invalid")
    if folder:
        msg["X-Hub-Folder"] = folder
    msg.set_content(body or "")
    where = f"{settings.SMTP_HOST}:{settings.SMTP_PORT}"
    try:
        if settings.SMTP_TLS == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.SMTP_HOST, settings.SMTP_PORT, timeout=TIMEOUT,
                                                  context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(settings.SMTP_HOST, settings.SMTP_PORT, timeout=TIMEOUT)
        with smtp:
            if settings.SMTP_TLS == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if settings.SMTP_USER:
                smtp.login(settings.SMTP_USER, settings.SMTP_PASSWORD)
            refused = smtp.send_message(msg, from_addr=email_from(settings), to_addrs=to)
    except smtplib.SMTPAuthenticationError as e:
        raise DeliveryFailed(f"SMTP server {where} refused the login of {settings.SMTP_USER!r} "
                             f"({e.smtp_code}): check SMTP_USER / SMTP_PASSWORD") from None
    except smtplib.SMTPRecipientsRefused as e:
        raise DeliveryFailed(f"SMTP server {where} refused every recipient: {', '.join(e.recipients)}") from None
    except (smtplib.SMTPException, OSError, ssl.SSLError) as e:
        raise DeliveryFailed(f"SMTP server {where}: {type(e).__name__}: {e}"[:400]) from None
    if refused:
        raise DeliveryFailed(f"SMTP server {where} refused {', '.join(refused)} (the others were sent)")


def check_sms(settings: Settings) -> None:
    if not settings.SMS_URL:
        raise ChannelOff("text messages are off: set SMS_URL, SMS_ACCOUNT, SMS_TOKEN and SMS_FROM")
    if urllib.parse.urlsplit(settings.SMS_URL).scheme not in ("http", "https"):
        raise ChannelOff("SMS_URL must be an http:// or https:// URL")
    if not settings.SMS_FROM:
        raise ChannelOff("set SMS_FROM: text messages need a sender number")


def send_text(settings: Settings, to: str, message: str) -> None:
    """One text message, as Twilio's Messages API takes it: a form POST of To, From and
    Body with HTTP Basic auth (account, token); any 2xx is success."""
    check_sms(settings)
    url = settings.SMS_URL.replace("{account}", urllib.parse.quote(settings.SMS_ACCOUNT, safe=""))
    creds = base64.b64encode(f"{settings.SMS_ACCOUNT}:{settings.SMS_TOKEN}".encode()).decode()
    form = urllib.parse.urlencode({"To": to, "From": settings.SMS_FROM, "Body": message}).encode()
    req = urllib.request.Request(
        url, method="POST", data=form,
        headers={"Authorization": f"Basic {creds}", "Content-Type": "application/x-www-form-urlencoded",
                 "Accept": "application/json", "User-Agent": "hub-notifier"})
    host = urllib.parse.urlsplit(url).netloc
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310 (scheme checked above)
            resp.read(65536)
    except urllib.error.HTTPError as e:
        raise DeliveryFailed(f"SMS provider {host} answered {e.code}: {_provider_message(e)}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DeliveryFailed(f"SMS provider {host} unreachable: {getattr(e, 'reason', e)}") from None


def _provider_message(e: urllib.error.HTTPError) -> str:
    try:
        raw = e.read(4096).decode("utf-8", "replace")
    except OSError:
        return e.reason or ""
    try:
        data = json.loads(raw)
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return data["message"][:200]
    except ValueError:
        pass
    return raw[:200]
