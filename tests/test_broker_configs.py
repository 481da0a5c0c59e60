"""The broker config the hub writes for itself (mosquitto/hub.conf.template, `make run`
and the tests) and the one production installs (sample_settings/mosquitto.conf, which
tests/test_deploy.py runs for real) carry the same options where a promise of the hub
rests on them: a production broker that lacked one would lose values the tests never do.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "mosquitto" / "hub.conf.template"
SAMPLE = ROOT / "sample_settings" / "mosquitto.conf"

# option -> what is lost without it
PROMISES = {
    "upgrade_outgoing_qos": "QoS 0 values (rhizo-client) across a persister restart",
    "max_queued_messages": "updates queued past Mosquitto's default of 1000 while a persister is away",
    "max_queued_bytes": "the bound on one persister's queue",
    "persistence": "queued QoS 1 messages across a broker restart",
    "allow_anonymous": "the rule that every client names a key",
}


def options(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        words = line.split("#", 1)[0].split(None, 1)
        if len(words) == 2 and words[0] in PROMISES:
            found[words[0]] = words[1].strip()
    return found


@pytest.mark.parametrize("option", sorted(PROMISES))
def test_production_config_keeps_each_promise_of_the_development_one(option: str) -> None:
    template, sample = options(TEMPLATE), options(SAMPLE)
    assert option in template, f"{TEMPLATE.name} lacks {option}"
    assert option in sample, f"{SAMPLE} lacks {option}: {PROMISES[option]}"
    if not template[option].startswith("${"):  # a value the hub fills in at start-up
        assert sample[option] == template[option], (option, sample[option], template[option])


def test_upgrade_outgoing_qos_is_on_in_both() -> None:
    assert options(TEMPLATE)["upgrade_outgoing_qos"] == options(SAMPLE)["upgrade_outgoing_qos"] == "true"
