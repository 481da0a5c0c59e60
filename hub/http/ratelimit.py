"""Login rate limit, per account and per client address, in memory.

Failed logins are counted in a sliding window; past the limit the next
attempt gets 429 with Retry-After, whether the password is right or not (so
guessing cannot continue). A success clears the account's count. Each HTTP
worker counts on its own: with N workers an attacker gets at most N times
the limit, still far too few guesses for a real password.
"""

from __future__ import annotations

import time
from collections import deque

from hub.errors import RateLimited

WINDOW_SECONDS = 300.0
MAX_PER_ACCOUNT = 5
MAX_PER_ADDRESS = 20
_MAX_TRACKED = 100_000


class LoginLimiter:
    def __init__(self, window: float = WINDOW_SECONDS, per_account: int = MAX_PER_ACCOUNT,
                 per_address: int = MAX_PER_ADDRESS) -> None:
        self.window, self.per_account, self.per_address = window, per_account, per_address
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def check(self, account: str, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key, limit, what in ((f"a:{account}", self.per_account, "this account"),
                                 (f"ip:{address}", self.per_address, "your address")):
            q = self._recent(key, now)
            if len(q) >= limit:
                retry = q[0] + self.window - now
                raise RateLimited(f"too many failed logins for {what}: try again in {int(retry) + 1} s",
                                  retry_after=retry)

    def failure(self, account: str, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self._fails) > _MAX_TRACKED:
            self._fails.clear()  # memory bound under a flood; limits restart
        for key in (f"a:{account}", f"ip:{address}"):
            self._fails.setdefault(key, deque()).append(now)

    def success(self, account: str) -> None:
        self._fails.pop(f"a:{account}", None)
