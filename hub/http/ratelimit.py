"""Rate limits shared by every HTTP worker, counted in the database
(`hub.storage.rate_events`).

- Log-in: failed log-ins per account and per client address in a sliding window; past
  the limit the next attempt gets 429 with Retry-After, whether the password is right
  or not (so guessing cannot go on). A success clears the account's count.
- `take`: one event of a kind per key (a PIN request per address), 429 past the limit.

The functions take a session: call them off the event loop (`in_session`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from hub.errors import RateLimited
from hub.storage import rate_events as events
from hub.storage.models import utcnow

WINDOW_SECONDS = 300.0
MAX_PER_ACCOUNT = 5
MAX_PER_ADDRESS = 20


def _refuse(count: int, oldest: datetime, limit: int, window: float, now: datetime, what: str) -> None:
    if count >= limit:
        retry = max(1.0, window - (now - oldest).total_seconds())
        raise RateLimited(f"too many {what}: try again in {int(retry) + 1} s", retry_after=retry)


def take(s: Session, kind: str, value: str, limit: int, window: float, what: str,
         now: datetime | None = None) -> None:
    """Count one `kind` event for `value`; RateLimited (and not counted) past `limit`
    events in `window` seconds. `what` names them in the message ("new PINs from your address")."""
    now = now or utcnow()
    k = events.key(kind, value)
    count, oldest = events.recent(s, [k], events.window_start(now, window)).get(k, (0, now))
    _refuse(count, oldest, limit, window, now, what)
    events.record(s, [k], now)


class LoginLimiter:
    def __init__(self, window: float = WINDOW_SECONDS, per_account: int = MAX_PER_ACCOUNT,
                 per_address: int = MAX_PER_ADDRESS) -> None:
        self.window, self.per_account, self.per_address = window, per_account, per_address

    def check(self, s: Session, account: str, address: str, now: datetime | None = None) -> None:
        now = now or utcnow()
        limits = ((events.key("account", account), self.per_account, "failed logins for this account"),
                  (events.key("address", address), self.per_address, "failed logins for your address"))
        found = events.recent(s, [k for k, _, _ in limits], events.window_start(now, self.window))
        for k, limit, what in limits:
            count, oldest = found.get(k, (0, now))
            _refuse(count, oldest, limit, self.window, now, what)

    def failure(self, s: Session, account: str, address: str, now: datetime | None = None) -> None:
        events.record(s, [events.key("account", account), events.key("address", address)], now or utcnow())

    def success(self, s: Session, account: str) -> None:
        events.clear(s, events.key("account", account))
