"""Login rate limit, per account and per client address, shared by every HTTP worker.

Failed logins are counted in a sliding window in the database
(`hub.storage.login_failures`); past the limit the next attempt gets 429 with
Retry-After, whether the password is right or not (so guessing cannot go on).
A success clears the account's count. The methods take a session: call them
off the event loop (the login route does, next to bcrypt).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from hub.errors import RateLimited
from hub.storage import login_failures as fails
from hub.storage.models import utcnow

WINDOW_SECONDS = 300.0
MAX_PER_ACCOUNT = 5
MAX_PER_ADDRESS = 20


class LoginLimiter:
    def __init__(self, window: float = WINDOW_SECONDS, per_account: int = MAX_PER_ACCOUNT,
                 per_address: int = MAX_PER_ADDRESS) -> None:
        self.window, self.per_account, self.per_address = window, per_account, per_address

    def check(self, s: Session, account: str, address: str, now: datetime | None = None) -> None:
        now = now or utcnow()
        limits = ((fails.key("account", account), self.per_account, "this account"),
                  (fails.key("address", address), self.per_address, "your address"))
        found = fails.recent(s, [k for k, _, _ in limits], fails.window_start(now, self.window))
        for k, limit, what in limits:
            count, oldest = found.get(k, (0, now))
            if count >= limit:
                retry = max(1.0, self.window - (now - oldest).total_seconds())
                raise RateLimited(f"too many failed logins for {what}: try again in {int(retry) + 1} s",
                                  retry_after=retry)

    def failure(self, s: Session, account: str, address: str, now: datetime | None = None) -> None:
        now = now or utcnow()
        fails.record(s, [fails.key("account", account), fails.key("address", address)], now,
                     fails.window_start(now, self.window))

    def success(self, s: Session, account: str) -> None:
        fails.clear(s, fails.key("account", account))
