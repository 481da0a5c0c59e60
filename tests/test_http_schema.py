"""schemathesis against the served OpenAPI document: every phase (examples,
coverage, fuzzing, stateful) and every check, on SQLite and PostgreSQL, must
report no failure.

The CLI runs as a subprocess against the real server (in this process, on a
free port) seeded with an organization, its people and a controller, and
authenticates with a system admin's API key, so every operation is reachable;
the document's links carry what one operation creates to the next. The hub
itself keeps that admin usable: it refuses to revoke the key a request is
made with and a system admin's removing their own admin (both 409).

One setting is not a default: `positive_data_acceptance` also expects 422. The
document says what is well formed (request bodies name every field; times are
`format: date-time` or `date`, so 2024-02-30 is a 400); 422 is the hub's answer
for a request it allows that breaks a rule no schema can state (a value outside
a sequence's limits, a weak password: the list is in docs/architecture.md),
always with a message saying which.

Budget (about 25 s of CPU per database): examples and coverage run in full
(coverage is deterministic, about 1500 cases); fuzzing FUZZ_EXAMPLES cases per
operation; stateful up to STATEFUL_EXAMPLES scenarios of at most STATEFUL_STEPS
steps. The seed is fixed, so a run is repeatable (`schemathesis run --seed`).
A heavier run on demand: HUB_SCHEMATHESIS_EXAMPLES=N (fuzzing cases per operation, and
stateful scenarios when over 100) and HUB_SCHEMATHESIS_SEED=N, e.g.
`HUB_SCHEMATHESIS_EXAMPLES=80 make test PYTEST_ARGS=tests/test_http_schema.py`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.settings import load
from tests.fixtures.http import People, RunningHttp, seed_people, start_http_server
from tests.support import free_port, write_settings_file

_HEAVY = int(os.environ.get("HUB_SCHEMATHESIS_EXAMPLES", "0") or 0)
FUZZ_EXAMPLES = _HEAVY or 10
STATEFUL_EXAMPLES = max(_HEAVY, 100)
STATEFUL_STEPS = 10
SEED = int(os.environ.get("HUB_SCHEMATHESIS_SEED", "") or 20260501)
# the broker-backed publish has its own tests (tests/test_http_broker.py): no broker runs here
EXCLUDED = ("/api/v1/messages",)

CONFIG = f"""
seed = {SEED}
workers = 1
request-timeout = 30
continue-on-failure = true

[generation]
no-shrink = true

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]

[phases.fuzzing.generation]
max-examples = {FUZZ_EXAMPLES}

[phases.stateful]
max-steps = {STATEFUL_STEPS}

[phases.stateful.generation]
max-examples = {STATEFUL_EXAMPLES}
"""


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"),
                        pytest.param("postgresql", id="pg", marks=pytest.mark.pg)])
def schema_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[RunningHttp, People]]:
    url = (f"sqlite:///{tmp_path / 'hub.db'}" if request.param == "sqlite"
           else str(request.getfixturevalue("pg_database_url")))
    path = write_settings_file(tmp_path / "config.py", {
        "DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": url, "SECRET_KEY": "q" * 48,
        "PASSWORD_HASH_ROUNDS": 4, "HTTP_PORT": free_port(), "MQTT_PORT": free_port(),
        "MAX_REQUEST_BYTES": 65536, "PIN_CREATE_PER_HOUR": 100_000})
    with start_http_server(load(path, env={}), path) as srv:
        yield srv, seed_people(srv.settings)


def run_schemathesis(srv: RunningHttp, key: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    excluded = [arg for path in EXCLUDED for arg in ("--exclude-path", path)]
    return subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run",
         srv.api("/openapi.json"), "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful",
         "-H", f"Authorization: Bearer {key}", *excluded],
        cwd=workdir, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_api_matches_document(schema_server: tuple[RunningHttp, People], tmp_path: Path) -> None:
    srv, people = schema_server
    out = run_schemathesis(srv, people.keys["admin"], tmp_path)
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-20000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):  # each ran (none skipped) and passed
        assert re.search(rf"✅ +{phase} \(in ", report), f"{phase} did not run and pass:\n{report[-5000:]}"
    scenarios = re.search(r"Scenarios: +(\d+)", report)
    links = re.search(r"API Links: +(\d+) covered", report)
    assert scenarios and int(scenarios[1]) >= 10, report[-5000:]
    assert links and int(links[1]) >= 15, report[-5000:]  # the links carry created things onwards
