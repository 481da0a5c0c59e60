"""A Python client generated from the served OpenAPI document (openapi-python-client)
builds without warnings and works: log in, create a folder and a sequence, write a
value and read it back, through the generated functions and models only."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fixtures.http import PASSWORD, RunningHttp, seed_people

PACKAGE = "hub_api_client"


@pytest.fixture
def generated_client(tmp_path: Path, http_server_factory: Any) -> Iterator[tuple[Any, RunningHttp]]:
    server = http_server_factory()
    doc = tmp_path / "openapi.json"
    doc.write_bytes(requests.get(server.api("/openapi.json"), timeout=30).content)
    config = tmp_path / "generator.yaml"
    config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    out = subprocess.run(
        [str(Path(sys.executable).parent / "openapi-python-client"), "generate", "--path", str(doc),
         "--meta", "none", "--output-path", str(tmp_path / PACKAGE), "--config", str(config)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    assert "Warning" not in report and "Unable" not in report, report  # every operation and model made
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE), server
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _call(module: str, **kw: Any) -> Any:
    """`sync_detailed` of a generated operation module (hub_api_client.api.<tag>.<operation>)."""
    return importlib.import_module(f"{PACKAGE}.api.{module}").sync_detailed(**kw)


def test_generated_client_round_trip(generated_client: tuple[Any, RunningHttp]) -> None:
    package, server = generated_client
    models = importlib.import_module(f"{PACKAGE}.models")
    people = seed_people(server.settings)
    with package.Client(base_url=server.url, raise_on_unexpected_status=True) as anonymous:
        login = _call("auth.login", client=anonymous,
                      body=models.Login(email=people.emails["writer"], password=PASSWORD))
        cookies = dict(anonymous.get_httpx_client().cookies)
    assert login.status_code == 200 and isinstance(login.parsed, models.LoginResult)
    assert login.parsed.user.email == people.emails["writer"] and "hub_session" in cookies
    with package.Client(base_url=server.url, cookies=cookies, headers={"X-CSRF-Token": login.parsed.csrf_token},
                        raise_on_unexpected_status=True) as client:
        round_trip(models, client)


def round_trip(models: Any, client: Any) -> None:
    folder = _call("resources.create_resource", client=client, path="acme/site/lab",
                   body=models.NewResource(type_=models.NewResourceType.FOLDER))
    assert folder.status_code == 201 and folder.parsed.path == "acme/site/lab"
    seq = _call("resources.create_resource", client=client, path="acme/site/lab/temperature",
                body=models.NewResource(type_=models.NewResourceType.SEQUENCE, data_type=models.DataType.NUMERIC,
                                        units="degC", decimal_places=1))
    assert seq.status_code == 201 and seq.parsed.type_ == models.ResourceType.SEQUENCE
    written = _call("resources.put_resource", client=client, path="acme/site/lab/temperature",
                    body=models.SequenceWrite(value=21.54, timestamp="2026-05-01T12:00:00Z"))
    assert written.status_code == 200 and isinstance(written.parsed, models.WriteResult)
    assert written.parsed.stored is True

    read = _call("resources.get_resource", client=client, path="acme/site/lab/temperature")
    assert read.status_code == 200 and read.headers["X-Access"] == "write"
    assert read.parsed.value == 21.54 and read.parsed.sequence.units == "degC"
    history = _call("resources.get_history", client=client, path="acme/site/lab/temperature")
    assert [(v.timestamp.isoformat(), v.value) for v in history.parsed.values] == [("2026-05-01T12:00:00+00:00", 21.54)]

    # a request the document refuses is refused the same way by the hub
    bad = _call("resources.create_resource", client=client, path="acme/site/lab/x",
                body=models.NewResource(type_=models.NewResourceType.SEQUENCE, units="u" * 41))
    assert bad.status_code == 400 and bad.parsed.error.code == "bad_request"
