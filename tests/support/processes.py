"""Child processes the tests start: stopping them, and waiting for what they log.

A fixture waits for what the hub reports, never for a sleep: `wait_log` watches a
process's log (from `offset`, the log's size when this run of it started) for the line
that says it is ready, e.g. `PERSISTER_READY`, which the persister logs on the broker's
SUBACK for its shared subscription (hub/persister/intake.py).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

PERSISTER_READY = "subscribed to $share/"
NOTIFIER_READY = "notifier subscribed to "


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, wait `timeout`, then SIGKILL; nothing if it already ended."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def log_size(path: Path) -> int:
    """Where the next run of a process appends to its log: pass it to `wait_log` as `offset`."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_since(path: Path, offset: int = 0) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def wait_log(path: Path, text: str, timeout: float, offset: int = 0,
             proc: subprocess.Popen[bytes] | None = None) -> bool:
    """True once `text` is in the log after `offset`; False after `timeout`, or at once if
    `proc` has ended without logging it."""
    deadline = time.monotonic() + timeout
    while True:
        if text in log_since(path, offset):
            return True
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            return text in log_since(path, offset)
        time.sleep(0.05)
