"""`run.py --broker`: the generated config and environment, and the broker it starts."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hub.broker_auth import runner
from hub.errors import SettingsError
from hub.storage.db import migrate
from tests.support import clean_env, free_port
from tests.support.broker import mqtt_client


def test_config_and_env_files(settings_factory: Callable[..., Any]) -> None:
    settings, path = settings_factory(MQTT_PORT=12345, MQTT_WS_PORT=12346, MQTT_MAX_PAYLOAD=2048)
    conf = runner.write_config(settings, path)
    lines = conf.read_text().splitlines()
    for expected in ("allow_anonymous false", "listener 12345 127.0.0.1", "listener 12346 127.0.0.1",
                     "protocol websockets", f"max_packet_size {2048 + runner.PACKET_OVERHEAD}",
                     "persistence true", f"plugin {runner.PLUGIN}", f"plugin_opt_settings {path.resolve()}"):
        assert expected in lines, expected
    env = dict(line.split("=", 1) for line in (conf.parent / "env").read_text().splitlines())
    assert env["PYTHONHOME"] == sys.base_prefix
    assert str(runner.ROOT) in env["PYTHONPATH"].split(":")
    with pytest.raises(SettingsError, match="does not exist: run `run.py --init-db`"):
        runner.write_config(settings, path.with_name("nope.py"))


def test_run_py_broker_serves_with_the_plugin(settings_factory: Callable[..., Any], tmp_path: Path) -> None:
    settings, path = settings_factory(MQTT_PORT=free_port(), MQTT_WS_PORT=free_port(),
                                      DATABASE_URL=f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(settings.database_url)
    log = tmp_path / "broker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(runner.ROOT / "run.py"), "--broker"],
                                env=clean_env(path), stdout=out, stderr=subprocess.STDOUT)
    try:
        class Target:  # what mqtt_client needs of a broker
            host, port, ws_port = settings.MQTT_HOST, settings.MQTT_PORT, settings.MQTT_WS_PORT

            @staticmethod
            def log_tail() -> str:
                return log.read_text(errors="replace")

        deadline = time.monotonic() + 30
        while "hub-auth: ready" not in log.read_text(errors="replace") or "running" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        c = mqtt_client(Target, "not-a-key")  # type: ignore[arg-type]
        assert not c.connected.is_set()
        c = mqtt_client(Target, None, username=None, transport="websockets")  # type: ignore[arg-type]
        assert not c.connected.is_set()
        assert "refused connection" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(10)
