"""schemathesis against the OpenAPI document, with a bounded number of
examples per operation: no 5xx, every response matches its schema, invalid
input is refused with a 4xx. Runs as a system admin (everything reachable).

Not checked: that every schema-valid request succeeds (`positive_data_acceptance`):
many valid-looking requests break a rule a schema cannot say (a path that
does not exist, a file where a folder is needed) and rightly get a 4xx."""

from __future__ import annotations

from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

from hub.settings import load
from tests.fixtures.http import People, RunningHttp, seed_people, start_http_server
from tests.support import free_port, write_settings_file

MAX_EXAMPLES = 8


@pytest.fixture(scope="module")
def schema_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHttp, People]]:
    root = tmp_path_factory.mktemp("http-schema")
    path = write_settings_file(root / "config.py", {
        "DATA_DIR": str(root / "data"), "SECRET_KEY": "q" * 48, "PASSWORD_HASH_ROUNDS": 4,
        "HTTP_PORT": free_port(), "MQTT_PORT": free_port(), "MAX_REQUEST_BYTES": 65536})
    with start_http_server(load(path, env={}), path) as srv:
        yield srv, seed_people(srv.settings)


def test_api_matches_document(schema_server: tuple[RunningHttp, People]) -> None:
    srv, people = schema_server
    headers = people.auth("admin")
    api = schemathesis.openapi.from_url(srv.api("/openapi.json"))
    failures: list[str] = []
    ran = 0
    for result in api.get_all_operations():
        op = result.ok()
        if op.path == "/api/v1/messages":
            continue  # needs the broker: tests/test_http_broker.py

        @hypothesis.given(case=op.as_strategy())
        @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck), phases=[
                                 hypothesis.Phase.explicit, hypothesis.Phase.generate])
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, timeout=30, excluded_checks=[positive_data_acceptance])

        try:
            run()
        except Exception as e:  # collect every operation's failure, then report them all
            failures.append(f"{op.method.upper()} {op.path}: {str(e)[:1500]}")
        ran += 1
    assert ran >= 25
    assert not failures, "\n\n".join(failures)
