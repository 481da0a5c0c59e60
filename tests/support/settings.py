"""Settings files and clean environments for hub processes under test."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hub.settings import ENV_PREFIX, Settings

# Every environment variable `hub.settings.load` reads (NAME and HUB_NAME), plus HUB_SETTINGS.
SETTING_ENV_NAMES: frozenset[str] = frozenset(
    [f.name for f in dataclasses.fields(Settings)]
    + [ENV_PREFIX + f.name for f in dataclasses.fields(Settings)]
    + [ENV_PREFIX + "SETTINGS"]
)


def write_settings_file(path: Path, values: Mapping[str, Any]) -> Path:
    """Write `NAME = repr(value)` lines: a settings file `hub.settings.load` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
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
