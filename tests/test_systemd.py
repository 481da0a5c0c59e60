"""The systemd units in systemd/: `systemd-analyze verify` finds nothing to say, the
hardening holds (`systemd-analyze security --offline`), and the sysusers/tmpfiles
files create the `hub` user and folders (applied to a temporary root).

The units name the install prefix /opt/hub; verify checks that ExecStart exists, so
the tests render them with this checkout in place of /opt/hub.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.broker_auth.stats import stats_path
from hub.settings import ROOT, Settings

SYSTEMD = ROOT / "systemd"
PREFIX = "/opt/hub"
HUB_UNITS = ["hub-http.service", "hub-http@.service", "hub-persister@.service", "hub-notifier.service",
             "hub-broker-auth.service"]
INSTANCES = {"hub-http.service": "hub-http.service", "hub-http@.service": "hub-http@8081.service",
             "hub-persister@.service": "hub-persister@1.service", "hub-notifier.service": "hub-notifier.service",
             "hub-broker-auth.service": "hub-broker-auth.service"}
COMPONENTS = {"hub-http.service": "--http", "hub-http@.service": "--http",
              "hub-persister@.service": "--persister", "hub-notifier.service": "--notifier",
              "hub-broker-auth.service": "--broker-auth"}
DROP_IN = "mosquitto.service.d/hub.conf"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze is missing: apt-get install systemd")


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) lines, in order (systemd allows repeated keys)."""
    out: dict[str, list[tuple[str, str]]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out.setdefault(section, [])
            continue
        key, _, value = line.partition("=")
        out[section].append((key.strip(), value.strip()))
    return out


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def env(unit: dict[str, list[tuple[str, str]]]) -> dict[str, str]:
    pairs = " ".join(values(unit, "Service", "Environment")).split()
    return dict(p.split("=", 1) for p in pairs)


@pytest.fixture(scope="module")
def unit_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The units and the drop-in with /opt/hub replaced by this checkout."""
    d = tmp_path_factory.mktemp("units")
    for name in [*HUB_UNITS, "hub.target", DROP_IN]:
        text = (SYSTEMD / name).read_text()
        if name != "hub.target":
            assert PREFIX in text, f"{name} no longer names {PREFIX}: update this test"
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text.replace(PREFIX, str(ROOT)))
    yield d


def analyze(unit_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """systemd-analyze with our units first on the unit path, then the system's (for mosquitto.service)."""
    return subprocess.run(["systemd-analyze", *args], cwd=unit_dir, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "SYSTEMD_UNIT_PATH": f"{unit_dir}:",
                               "SYSTEMD_LOG_COLOR": "0", "LANG": "C.UTF-8"})


def test_units_verify_without_a_word(unit_dir: Path) -> None:
    r = analyze(unit_dir, "verify", "--man=no", *INSTANCES.values(), "hub.target", "mosquitto.service")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr


def test_verify_catches_mistakes(unit_dir: Path, tmp_path: Path) -> None:
    """The check above can fail: a misspelt key is reported."""
    bad = (unit_dir / "hub-http.service").read_text().replace("PrivateTmp=", "PrivateTemp=")
    (tmp_path / "hub-http.service").write_text(bad)
    r = analyze(tmp_path, "verify", "--man=no", "hub-http.service")
    assert "Unknown key 'PrivateTemp'" in r.stderr


def exposure(unit_dir: Path, unit: str) -> float:
    r = analyze(unit_dir, "security", "--offline=yes", "--no-pager", unit)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    return float(m.group(1))


def test_hardening_exposure(unit_dir: Path, tmp_path: Path) -> None:
    for unit in INSTANCES.values():
        assert exposure(unit_dir, unit) <= 2.5, unit
    with_drop_in = exposure(unit_dir, "mosquitto.service")
    without = exposure(tmp_path, "mosquitto.service")  # Debian's unit alone
    assert with_drop_in <= 5.0 < without


@pytest.mark.parametrize("name", HUB_UNITS)
def test_hub_units_run_as_hub_hardened(name: str) -> None:
    unit = parse_unit((SYSTEMD / name).read_text())
    svc = dict(unit["Service"])
    assert svc["User"] == svc["Group"] == "hub"
    assert svc["NoNewPrivileges"] == "yes" and svc["ProtectSystem"] == "strict" and svc["PrivateTmp"] == "yes"
    assert values(unit, "Service", "ReadWritePaths") == ["/var/lib/hub"]
    assert svc["Restart"] == "on-failure"
    after = " ".join(values(unit, "Unit", "After")).split()
    assert {"network-online.target", "postgresql.service"} <= set(after)
    assert "network-online.target" in " ".join(values(unit, "Unit", "Wants")).split()
    assert env(unit)["HUB_SETTINGS"] == "/etc/hub/config.py"
    assert svc["ExecStart"] == f"{PREFIX}/.venv/bin/python {PREFIX}/run.py {COMPONENTS[name]}"
    if name == "hub-persister@.service":  # each instance keeps its own MQTT session
        assert "%i" in env(unit)["HUB_PERSISTER_CLIENT_ID"]
    if name == "hub-notifier.service":
        assert env(unit)["HUB_NOTIFY_CLIENT_ID"].startswith("hub-notifier-")
    if name == "hub-http@.service":
        assert env(unit)["HUB_HTTP_PORT"] == "%i"
    assert set(f.name for f in Settings.__dataclass_fields__.values()) >= {
        k.removeprefix("HUB_") for k in env(unit) if k.startswith("HUB_") and k != "HUB_SETTINGS"}


def test_mosquitto_drop_in_embeds_debians_python() -> None:
    unit = parse_unit((SYSTEMD / DROP_IN).read_text())
    e = env(unit)
    assert e["PYTHONHOME"] == "/usr" and e["HUB_SETTINGS"] == "/etc/hub/config.py"
    pythonpath = e["PYTHONPATH"].split(":")
    assert pythonpath[0] == PREFIX
    site = next(p for p in pythonpath if p.endswith("site-packages"))
    # The venv is made with Debian's python3, whose version names its site-packages.
    debian = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('python%d.%d' % sys.version_info[:2])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert site == f"{PREFIX}/.venv/lib/{debian}/site-packages"
    svc = dict(unit["Service"])
    assert svc["NoNewPrivileges"] == "yes" and svc["ProtectSystem"] == "strict" and svc["Restart"] == "on-failure"
    writable = " ".join(values(unit, "Service", "ReadWritePaths")).split()
    # The plugin writes its counters next to DATA_DIR=/var/lib/hub: the drop-in must allow it.
    plugin_stats = stats_path(Settings(DATA_DIR="/var/lib/hub", SECRET_KEY="x" * 32)).parent
    assert str(plugin_stats) in writable and "/var/lib/mosquitto" in writable
    assert "postgresql.service" in " ".join(values(unit, "Unit", "After")).split()


@pytest.mark.skipif(os.geteuid() != 0, reason="systemd-tmpfiles --root chowns: needs root")
def test_sysusers_and_tmpfiles_create_user_and_folders(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("passwd", "group"):
        lines = [ln for ln in Path(f"/etc/{name}").read_text().splitlines()
                 if ln.split(":")[0] in ("root", "mosquitto")]
        assert any(ln.startswith("mosquitto:") for ln in lines), "Debian's mosquitto package is not installed"
        (etc / name).write_text("\n".join(lines) + "\n")
    for name in ("shadow", "gshadow"):
        (etc / name).write_text("")
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(SYSTEMD / "sysusers.d/hub.conf")],
                   check=True, capture_output=True, timeout=30)
    passwd = {ln.split(":")[0]: ln.split(":") for ln in (etc / "passwd").read_text().splitlines()}
    group = {ln.split(":")[0]: ln.split(":") for ln in (etc / "group").read_text().splitlines()}
    assert passwd["hub"][5] == "/var/lib/hub" and passwd["hub"][6] == "/usr/sbin/nologin"
    assert int(passwd["hub"][2]) < 1000  # a system user
    assert "mosquitto" in group["hub"][3].split(",")
    subprocess.run(["systemd-tmpfiles", "--create", f"--root={tmp_path}", str(SYSTEMD / "tmpfiles.d/hub.conf")],
                   check=True, capture_output=True, timeout=30)
    hub_uid, hub_gid = int(passwd["hub"][2]), int(group["hub"][2])
    for path, mode, uid in [("etc/hub", 0o750, 0), ("var/lib/hub", 0o750, hub_uid),
                            ("var/lib/hub/mosquitto", 0o2770, int(passwd["mosquitto"][2]))]:
        st = (tmp_path / path).stat()
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, uid, hub_gid), path
