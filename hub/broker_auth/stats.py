"""The plugin's counters, and the JSON file they are written to for the HTTP /health
and /metrics.

The plugin's background thread writes `DATA_DIR/mosquitto/hub_auth_stats.json` every
`WRITE_INTERVAL` seconds (atomically: temp file + rename); `read_stats` is what other
processes call. Counters only grow while the broker runs; they restart at 0 with it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hub.settings import Settings

FILENAME = "hub_auth_stats.json"
WRITE_INTERVAL = 2.0


@dataclass(slots=True)  # incremented on every ACL check: slots make that cheaper
class Counters:
    connects_allowed: int = 0
    connects_refused: int = 0
    acl_allowed: int = 0
    acl_denied: int = 0
    kicks: int = 0
    reloads: int = 0  # whole snapshots loaded
    patches: int = 0  # snapshots patched with changed keys / ended sessions only
    reload_errors: int = 0
    syncs: int = 0  # SYNC_TOPIC requests (policy.py) from the HTTP server


def stats_path(settings: Settings) -> Path:
    return settings.data_path / "mosquitto" / FILENAME


def write_stats(path: Path, counters: Counters, **extra: Any) -> None:
    data = {**asdict(counters), **extra, "pid": os.getpid(), "written_at": time.time()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    os.replace(tmp, path)


def read_stats(settings: Settings) -> dict[str, Any] | None:
    """The broker plugin's latest counters plus `age_s` (seconds since written), or None
    when the broker has not written any (not running, or not started with the plugin).
    An `age_s` well above `WRITE_INTERVAL` means the broker is stuck or gone."""
    try:
        data = json.loads(stats_path(settings).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    data["age_s"] = max(0.0, time.time() - float(data.get("written_at", 0)))
    return data
