"""Extensions loaded through the settings as a user would: the example threshold_alerts
from EXTENSIONS (importable) and from AUTOLOAD_EXTENSIONS (a copy in an extensions folder,
with its autoload-config.py), answering its route with the hub's authentication and
access rule; and broken extensions stopping the hub at start-up, named, with status 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests

from hub.errors import SettingsError
from hub.extensions import loader
from hub.settings import ROOT, load
from tests.fixtures.http import RunningHttp, seed_people
from tests.support import clean_env, free_port, write_settings_file

EXAMPLE = ROOT / "examples" / "extensions" / "threshold_alerts"
PACKAGE = "examples.extensions.threshold_alerts"
RULE = {"sequence": "acme/site/pi-01/temperature", "min": 5, "max": 30, "to": ["grower@example.com"]}
HIDDEN = {"sequence": "acme/elsewhere/humidity", "max": 90, "to": "grower@example.com"}


def _rules(server: RunningHttp, headers: dict[str, str]) -> requests.Response:
    return requests.get(f"{server.url}/ext/threshold_alerts/rules", headers=headers, timeout=10)


def _answers_with_the_access_rule(server: RunningHttp) -> None:
    people = seed_people(server.settings)
    server.sync()
    r = _rules(server, {})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    r = _rules(server, {"Authorization": "Bearer not-a-key"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    # member may read acme/site only: the other rule is not shown; the org admin sees both
    assert _rules(server, people.auth("member")).json() == {"rules": [{**RULE, "min": 5.0, "max": 30.0}]}
    assert len(_rules(server, people.auth("orgadmin")).json()["rules"]) == 2
    assert _rules(server, people.auth("outsider")).json() == {"rules": []}


def test_loaded_from_extensions_answers_its_route_with_auth(http_server_factory: Any) -> None:
    server = http_server_factory(EXTENSIONS=[PACKAGE], THRESHOLD_ALERTS_RULES=[RULE, HIDDEN])
    _answers_with_the_access_rule(server)
    index = requests.get(f"{server.url}/ext/index.json", timeout=10).json()
    assert index == {"extensions": [{
        "name": "threshold_alerts", "prefix": "/ext/threshold_alerts/", "openapi": "/ext/threshold_alerts/openapi.json",
        "panels": [{"title": "Threshold alerts", "url": "/ext/threshold_alerts/static/index.html"}]}]}
    doc = requests.get(f"{server.url}/ext/threshold_alerts/openapi.json", timeout=10).json()
    from openapi_spec_validator import validate

    validate(doc)
    assert doc["paths"]["/ext/threshold_alerts/rules"]["get"]["summary"].startswith("The threshold rules")
    page = requests.get(f"{server.url}/ext/threshold_alerts/static/index.html", timeout=10)
    assert page.status_code == 200 and "panel.js" in page.text
    # the hub's own API is unchanged, and an unknown extension path is a plain 404
    assert requests.get(f"{server.url}/ext/nothing/rules", timeout=10).status_code == 404


def test_autoloaded_from_the_extensions_folder_with_its_autoload_config(
        tmp_path: Path, http_server_factory: Any) -> None:
    folder = tmp_path / "extensions"
    shutil.copytree(EXAMPLE, folder / "threshold_alerts", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "threshold_alerts" / "autoload-config.py").write_text(
        f"THRESHOLD_ALERTS_RULES = [{RULE!r}, {HIDDEN!r}]\n")
    (folder / ".hidden").mkdir()  # not an extension
    server = http_server_factory(AUTOLOAD_EXTENSIONS=True, EXTENSIONS_DIR=str(folder))
    ext = loader.of(server.settings).named("threshold_alerts")
    assert ext.folder == folder / "threshold_alerts" and len(ext.settings["THRESHOLD_ALERTS_RULES"]) == 2
    _answers_with_the_access_rule(server)


def test_settings_file_and_environment_win_over_autoload_config(tmp_path: Path) -> None:
    folder = tmp_path / "extensions"
    shutil.copytree(EXAMPLE, folder / "threshold_alerts", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "threshold_alerts" / "autoload-config.py").write_text(f"THRESHOLD_ALERTS_RULES = [{HIDDEN!r}]\n")
    path = write_settings_file(tmp_path / "c.py", {"SECRET_KEY": "k" * 40, "AUTOLOAD_EXTENSIONS": True,
                                                   "EXTENSIONS_DIR": str(folder)})
    autoloaded = loader.load(load(path, env={}))
    assert autoloaded.named("threshold_alerts").settings["THRESHOLD_ALERTS_RULES"] == [HIDDEN]
    env = {"HUB_THRESHOLD_ALERTS_RULES": "[{sequence: acme/x/t, max: 1, to: a@example.com}]"}
    from_env = loader.load(load(path, env=env))
    assert from_env.named("threshold_alerts").settings["THRESHOLD_ALERTS_RULES"][0]["sequence"] == "acme/x/t"


def test_without_extensions_unknown_names_are_still_refused(tmp_path: Path) -> None:
    path = write_settings_file(tmp_path / "c.py", {"SECRET_KEY": "k" * 40, "THRESHOLD_ALERTS_RULES": []})
    with pytest.raises(SettingsError, match="unknown setting THRESHOLD_ALERTS_RULES"):
        load(path, env={})


GOOD_HOOK = "from hub.extensions import hookimpl\n"
BROKEN = {
    "syntax": ("def oops(:\n", "SyntaxError"),
    "import": ("import no_such_module_anywhere\n", "ModuleNotFoundError"),
    "raises": ("raise RuntimeError('no sensor table')\n", "no sensor table"),
    "signature": (GOOD_HOOK + "@hookimpl\ndef hub_routes(ext, app):\n    return None\n", "app"),
    "unknown_hook": (GOOD_HOOK + "@hookimpl\ndef hub_rouets(ext):\n    return None\n", "hub_rouets"),
    "bad_setting_name": (GOOD_HOOK + "from hub.extensions import Setting\n@hookimpl\ndef hub_settings():\n"
                         "    return [Setting('RULES', [], 'help')]\n", "must be upper case and start with BROKEN_"),
    "check_refuses": ("", "must be a dict"),  # written by _broken: the example's rules, refused
}


def _broken(tmp_path: Path, kind: str, **extra: Any) -> Path:
    folder = tmp_path / "extensions" / "broken"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(textwrap.dedent(BROKEN[kind][0]))
    if kind == "check_refuses":  # the example's hooks, under another name, with bad rules
        (folder / "__init__.py").write_text(
            f"from {PACKAGE} import rules\nfrom hub.extensions import Setting, hookimpl\n"
            "@hookimpl\ndef hub_settings():\n    return [Setting('BROKEN_RULES', [], 'rules')]\n"
            "@hookimpl\ndef hub_check(ext):\n    rules.parse(ext.settings['BROKEN_RULES'])\n")
        extra["BROKEN_RULES"] = ["not a rule"]
    return write_settings_file(tmp_path / "config.py", {
        "SECRET_KEY": "k" * 40, "DATA_DIR": str(tmp_path / "data"), "EXTENSIONS": ["broken"],
        "EXTENSIONS_DIR": str(tmp_path / "extensions"), "MQTT_PORT": free_port(), "MQTT_WS_PORT": free_port(),
        "HTTP_PORT": free_port(), **extra})


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_extension_is_refused_by_name(tmp_path: Path, kind: str) -> None:
    path = _broken(tmp_path, kind)
    with pytest.raises(SettingsError, match=r"extension broken") as e:
        loader.load(load(path, env={}))
    assert BROKEN[kind][1] in e.value.message


def test_unknown_setting_with_extensions_loaded_is_refused(tmp_path: Path) -> None:
    path = write_settings_file(tmp_path / "c.py", {"SECRET_KEY": "k" * 40, "EXTENSIONS": [PACKAGE],
                                                   "THRESHOLD_ALERTS_RULEZ": []})
    with pytest.raises(SettingsError, match="unknown setting THRESHOLD_ALERTS_RULEZ"):
        loader.load(load(path, env={}))


@pytest.mark.parametrize("kind", ["syntax", "signature"])
def test_broken_extension_stops_the_hub_before_anything_starts(tmp_path: Path, kind: str) -> None:
    path = _broken(tmp_path, kind)
    r = subprocess.run([sys.executable, str(ROOT / "run.py")], cwd=ROOT, env=clean_env(path),
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stderr
    assert "error: extension broken failed to load" in r.stderr and BROKEN[kind][1] in r.stderr
    assert not (tmp_path / "data").exists()  # no database, no broker config: nothing half-started


def test_extension_commands_in_run_py(tmp_path: Path) -> None:
    path = write_settings_file(tmp_path / "c.py", {"SECRET_KEY": "k" * 40, "EXTENSIONS": [PACKAGE],
                                                   "THRESHOLD_ALERTS_RULES": [RULE]})
    listed = subprocess.run([sys.executable, str(ROOT / "run.py"), "--ext"], cwd=ROOT, env=clean_env(path),
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "threshold-alerts-check" in listed.stdout
    ran = subprocess.run([sys.executable, str(ROOT / "run.py"), "--ext", "threshold-alerts-check"], cwd=ROOT,
                         env=clean_env(path), capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout.strip() == "acme/site/pi-01/temperature [5, 30] -> grower@example.com"
    unknown = subprocess.run([sys.executable, str(ROOT / "run.py"), "--ext", "nope"], cwd=ROOT,
                             env=clean_env(path), capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "no extension command 'nope'" in unknown.stderr


def test_a_folder_extension_route_with_a_path_parameter_is_documented(
        tmp_path: Path, http_server_factory: Any) -> None:
    folder = tmp_path / "extensions" / "echo"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(textwrap.dedent('''
        from aiohttp import web
        from hub.errors import BadRequest
        from hub.extensions import hookimpl

        @hookimpl
        def hub_routes(ext):
            routes = web.RouteTableDef()

            @routes.get("/items/{item:[a-z]+}")
            async def item(request):
                """One item, by name."""
                if request.match_info["item"] == "bad":
                    raise BadRequest("no bad items")
                return web.json_response({"item": request.match_info["item"]})
            return routes
        '''))
    server = http_server_factory(EXTENSIONS=["echo"], EXTENSIONS_DIR=str(tmp_path / "extensions"))
    assert requests.get(f"{server.url}/ext/echo/items/abc", timeout=10).json() == {"item": "abc"}
    bad = requests.get(f"{server.url}/ext/echo/items/bad", timeout=10)
    assert bad.status_code == 400 and bad.json()["error"] == {"code": "bad_request", "message": "no bad items"}
    doc = requests.get(f"{server.url}/ext/echo/openapi.json", timeout=10).json()
    from openapi_spec_validator import validate

    validate(doc)
    op = doc["paths"]["/ext/echo/items/{item}"]["get"]
    assert op["summary"] == "One item, by name." and op["parameters"][0]["name"] == "item"
