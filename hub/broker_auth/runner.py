"""Run Mosquitto with the hub's plugin: build the plugin if needed, write the live
config from `mosquitto/hub.conf.template`, and exec the broker with the environment the
embedded Python needs.

Files, under DATA_DIR/mosquitto/: `mosquitto.conf` (the config), `env` (PYTHONHOME and
PYTHONPATH, for a systemd `EnvironmentFile=`), the persistence file, the plugin's stats.
Both listeners (MQTT, websockets) bind MQTT_HOST, the address the hub's own processes use;
put nginx (TLS, websocket upgrade) in front, or set MQTT_HOST to 0.0.0.0 to listen everywhere.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from string import Template

from hub import settings as settings_mod
from hub.errors import SettingsError
from hub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATE = ROOT / "mosquitto" / "hub.conf.template"
BUILD_DIR = ROOT / "build"
PLUGIN = BUILD_DIR / "hub_auth.so"
BUILD_SOURCES = (Path(__file__).with_name("build.py"),)
PACKET_OVERHEAD = 1024  # topic, properties and headers on top of MQTT_MAX_PAYLOAD


def config_dir(settings: Settings) -> Path:
    return settings.data_path / "mosquitto"


def python_env() -> dict[str, str]:
    """What the interpreter embedded in Mosquitto needs to find the stdlib and the venv."""
    paths = [str(ROOT), sysconfig.get_paths()["purelib"]]
    if sysconfig.get_paths()["platlib"] not in paths:
        paths.append(sysconfig.get_paths()["platlib"])
    return {"PYTHONHOME": sys.base_prefix, "PYTHONPATH": os.pathsep.join(paths), "PYTHONNOUSERSITE": "1"}


def ensure_plugin() -> Path:
    """Build `build/hub_auth.so` when missing or older than its build script. Safe when
    several processes try at once (a lock, then an atomic rename)."""
    def fresh() -> bool:
        return PLUGIN.exists() and all(PLUGIN.stat().st_mtime >= p.stat().st_mtime for p in BUILD_SOURCES)

    if fresh():
        return PLUGIN
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with open(BUILD_DIR / ".plugin.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if fresh():
            return PLUGIN
        tmp = Path(tempfile.mkdtemp(prefix="plugin-", dir=BUILD_DIR))
        try:
            r = subprocess.run([sys.executable, "-m", "hub.broker_auth.build", str(tmp)], cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise SettingsError(f"cannot build the broker plugin (needs a C compiler and "
                                    f"mosquitto-dev; try `make plugin`):\n{r.stdout}{r.stderr}")
            os.replace(tmp / PLUGIN.name, PLUGIN)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return PLUGIN


def render(settings: Settings, settings_file: Path, *, plugin: Path = PLUGIN,
           log_dest: str = "stderr", persistence: bool = True) -> str:
    d = config_dir(settings)
    env_file = d / "env"
    return Template(TEMPLATE.read_text()).substitute(
        user=getpass.getuser(), port=settings.MQTT_PORT, ws_port=settings.MQTT_WS_PORT,
        bind=settings.MQTT_HOST, max_packet_size=settings.MQTT_MAX_PAYLOAD + PACKET_OVERHEAD,
        persistence="true" if persistence else "false", persistence_dir=d, log_dest=log_dest,
        plugin=plugin, settings_file=settings_file.resolve(), env_file=env_file)


def write_config(settings: Settings, settings_file: Path | None = None, **render_kw: object) -> Path:
    """Write DATA_DIR/mosquitto/mosquitto.conf and its `env` file; return the config's path."""
    settings_file = settings_file or settings_mod.settings_path()
    if not settings_file.is_file():
        raise SettingsError(f"the broker plugin reads the settings file, and {settings_file} does not "
                            "exist: run `run.py --init-db` once, or point HUB_SETTINGS at one")
    d = config_dir(settings)
    d.mkdir(parents=True, exist_ok=True)
    env = "".join(f"{k}={v}\n" for k, v in python_env().items())
    (d / "env").write_text(env)
    conf = d / "mosquitto.conf"
    conf.write_text(render(settings, settings_file, **render_kw))  # type: ignore[arg-type]
    return conf


def broker_command(settings: Settings, conf: Path) -> list[str]:
    exe = shutil.which(settings.MOSQUITTO_BIN) or shutil.which(settings.MOSQUITTO_BIN, path="/usr/sbin:/sbin")
    if exe is None:
        raise SettingsError(f"Mosquitto not found (MOSQUITTO_BIN={settings.MOSQUITTO_BIN!r}): "
                            "install Debian's mosquitto package (`make setup`) or set MOSQUITTO_BIN")
    return [exe, "-c", str(conf)]


def broker_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(python_env())
    return env


def exec_broker(settings: Settings) -> int:
    """Replace this process with Mosquitto (what `run.py --broker` does)."""
    ensure_plugin()
    conf = write_config(settings)
    cmd = broker_command(settings, conf)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, broker_env())
    return 1  # not reached
