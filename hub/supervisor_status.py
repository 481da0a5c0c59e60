"""What `run.py`'s supervisor (hub/supervisor.py) says of its child processes, for /health.

The supervisor writes `DATA_DIR/supervisor.json` (atomically: temp file + rename) whenever
a part exits or starts, and every `WRITE_INTERVAL` seconds besides; the HTTP server, one of
its children on the same settings, reads it. No file, or a stale one (the supervisor is
gone, or the hub runs under systemd, which reports on its units itself): no check.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from hub.settings import Settings

FILENAME = "supervisor.json"
WRITE_INTERVAL = 2.0
STALE_AFTER = 10.0


def status_path(settings: Settings) -> Path:
    return settings.data_path / FILENAME


def write_status(path: Path, parts: dict[str, dict[str, Any]]) -> None:
    data = {"pid": os.getpid(), "written_at": time.time(), "parts": parts}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    os.replace(tmp, path)


def read_status(settings: Settings) -> dict[str, Any] | None:
    """The supervisor's latest report with `age_s`, or None (none, unreadable or stale)."""
    try:
        data = json.loads(status_path(settings).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("parts"), dict):
        return None
    data["age_s"] = max(0.0, time.time() - float(data.get("written_at", 0)))
    return data if data["age_s"] <= STALE_AFTER else None


def check(status: dict[str, Any]) -> dict[str, Any]:
    """/health's `processes` check: ok while every part runs; names restarts and waits."""
    down, notes = [], []
    for name, part in status["parts"].items():
        if not part.get("running"):
            down.append(f"{name} exited ({exit_text(part.get('last_exit'))}), restarting")
        if part.get("restarts"):
            notes.append(f"{name} restarted {part['restarts']}x (last exit: {exit_text(part.get('last_exit'))})")
    running = [name for name, part in status["parts"].items() if part.get("running")]
    detail = "; ".join(down + ([f"{', '.join(running)} running under run.py"] if running else []) + notes)
    return {"ok": not down, "detail": detail}


def exit_text(rc: object) -> str:
    if isinstance(rc, int) and rc < 0:
        return f"killed by signal {-rc}"
    return f"status {rc}"
