"""A progress bar on stderr for long admin commands (export, import).

On a terminal it redraws one line at most ten times a second; otherwise
(a log file, a pipe) it writes a line at every tenth of the way, so logs stay
short. `stream=None` keeps it silent.
"""

from __future__ import annotations

import time
from typing import IO

WIDTH = 30


class Progress:
    def __init__(self, label: str, total: int, stream: IO[str] | None) -> None:
        self.label, self.total, self.stream = label, max(0, total), stream
        self.n = 0
        self._tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._last_tenth = -1
        self._start = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.n += n
        if self.stream is None:
            return
        if self._tty:
            now = time.monotonic()
            if now - self._last_draw >= 0.1:
                self._last_draw = now
                self.stream.write("\r" + self._line())
                self.stream.flush()
        else:
            tenth = self.n * 10 // self.total if self.total else 10
            if tenth > self._last_tenth and tenth < 10:
                self._last_tenth = tenth
                self.stream.write(self._line() + "\n")

    def done(self) -> None:
        if self.stream is None:
            return
        rate = self.n / max(1e-9, time.monotonic() - self._start)
        end = f" in {time.monotonic() - self._start:.1f} s ({rate:,.0f}/s)"
        self.stream.write(("\r" if self._tty else "") + self._line(final=True) + end + "\n")
        self.stream.flush()

    def _line(self, final: bool = False) -> str:
        frac = 1.0 if final or not self.total else min(1.0, self.n / self.total)
        filled = int(frac * WIDTH)
        return (f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {frac:4.0%} "
                f"{self.n:,}/{self.total:,} revisions")
