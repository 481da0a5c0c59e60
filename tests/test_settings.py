"""Settings: defaults, file, environment (YAML), unknown names, the generated secret, the sample."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hub.errors import SettingsError
from hub.settings import ROOT, Settings, load
from hub.settings_sample import render

SECRET = "s" * 40


def test_defaults_and_derived_values(tmp_path: Path) -> None:
    s = load(tmp_path / "none.py", env={"SECRET_KEY": SECRET})
    assert s.BULK_THRESHOLD == 16384 and s.MQTT_PORT == 1883
    assert s.database_url == f"sqlite:///{ROOT / 'data' / 'hub.db'}"
    assert s.bulk_storage_url.startswith("file://") and s.bulk_storage_url.endswith("/data/bulk")


def test_file_then_env_with_yaml_values_and_prefix_wins(tmp_path: Path) -> None:
    f = tmp_path / "config.py"
    f.write_text(f"SECRET_KEY = {SECRET!r}\nHTTP_PORT = 9000\nBULK_THRESHOLD = 10\n")
    s = load(f, env={"HUB_BULK_THRESHOLD": "65536", "HUB_DEBUG": "true",
                     "HUB_ALLOWED_ORIGINS": "[a, b]", "HTTP_PORT": "9100", "HUB_HTTP_PORT": "9200",
                     "HUB_DATABASE_URL": "'postgresql+psycopg://u@h/db'"})
    assert s.BULK_THRESHOLD == 65536 and s.DEBUG is True
    assert s.ALLOWED_ORIGINS == ["a", "b"]
    assert s.HTTP_PORT == 9200
    assert s.DATABASE_URL == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize("content, env, needle", [
    ("HTTP_PORTT = 1\n", {}, "unknown setting HTTP_PORTT"),
    ("HTTP_PORT = 'x'\n", {}, "HTTP_PORT must be int"),
    ("", {"HUB_DEBUG": "[unclosed"}, "HUB_DEBUG is not valid YAML"),
    ("", {"HUB_MQTT_PORT": "true"}, "MQTT_PORT must be int"),
    ("SECRET_KEY = 'short'\n", {}, "at least 32"),
    ("this is not python\n", {}, "cannot read settings file"),
    ("COMPACT_AFTER_SECONDS = 30\n", {}, "COMPACT_AFTER_SECONDS must be 0 .* or from 60"),
    ("", {"HUB_COMPACT_AFTER_SECONDS": "-1"}, "COMPACT_AFTER_SECONDS must be 0"),
    ("", {"HUB_COMPACT_AFTER_SECONDS": "a day"}, "COMPACT_AFTER_SECONDS must be int"),
])
def test_bad_settings_say_what_is_wrong(tmp_path: Path, content: str, env: dict[str, str], needle: str) -> None:
    f = tmp_path / "config.py"
    f.write_text(content)
    with pytest.raises(SettingsError, match=needle):
        load(f, env={"SECRET_KEY": SECRET, **env} if "SECRET_KEY" not in content else env)


def test_secret_generated_once_into_private_file(tmp_path: Path) -> None:
    f = tmp_path / "settings" / "config.py"
    first = load(f, env={})
    assert len(first.SECRET_KEY) >= 32
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert load(f, env={}).SECRET_KEY == first.SECRET_KEY
    with pytest.raises(SettingsError, match="SECRET_KEY is not set"):
        load(tmp_path / "other.py", env={}, generate_secret=False)


def test_sample_lists_every_setting_and_is_current(tmp_path: Path) -> None:
    sample = (ROOT / "sample_settings" / "config.py").read_text()
    assert sample == render(), "regenerate: .venv/bin/python -m hub.settings_sample > sample_settings/config.py"
    for name, _default, _help in Settings.help_rows():
        assert f"# {name} = " in sample
    # uncommenting every default line gives a file that loads to the defaults
    defaults = sample.split("# --- a production example")[0]
    body = "\n".join(line[2:] for line in defaults.splitlines()
                     if line.startswith("# ") and " = " in line and line[2:3].isupper() and "..." not in line)
    f = tmp_path / "uncommented.py"
    f.write_text(body + f"\nSECRET_KEY = {SECRET!r}\n")
    assert load(f, env={}) == load(tmp_path / "none.py", env={"SECRET_KEY": SECRET})
