"""Settings files and clean environments for hub processes under test."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hub.settings import ENV_PREFIX, Settings
from tests.support.ports import free_port

# Every environment variable `hub.settings.load` reads (NAME and HUB_NAME), plus HUB_SETTINGS.
SETTING_ENV_NAMES: frozenset[str] = frozenset(
    [f.name for f in dataclasses.fields(Settings)]
    + [ENV_PREFIX + f.name for f in dataclasses.fields(Settings)]
    + [ENV_PREFIX + "SETTINGS"]
)


# The ports a hub process listens on: a test that names none gets free ones, never the
# defaults, which another test (on another pytest-xdist worker) may be listening on.
LISTEN_PORTS = ("HTTP_PORT", "MQTT_PORT", "MQTT_WS_PORT")


def write_settings_file(path: Path, values: Mapping[str, Any]) -> Path:
    """Write `NAME = repr(value)` lines: a settings file `hub.settings.load` reads (with
    free ports for those of LISTEN_PORTS that `values` does not name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {**{name: free_port() for name in LISTEN_PORTS if name not in values}, **values}
    lines = ["# written by the tests"] + [f"{name} = {value!r}" for name, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def clean_env(settings_path: Path | None = None, **extra: str) -> dict[str, str]:
    """os.environ without any setting variable, plus HUB_SETTINGS and `extra`: for subprocesses."""
    env = {k: v for k, v in os.environ.items() if k not in SETTING_ENV_NAMES}
    if settings_path is not None:
        env[ENV_PREFIX + "SETTINGS"] = str(settings_path)
    env.update(extra)
    return env
