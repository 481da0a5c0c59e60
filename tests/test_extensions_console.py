"""The example extension in the console, in Chromium: the top bar links to its panel,
which shows the rules the signed-in user may read (through the hub's session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.http import PASSWORD
from tests.support.browser import PageLog, launch_chromium, require_chromium, screenshot, watch_page
from tests.support.console_stack import HubStack, ensure_console_built, hub_stack

pytestmark = pytest.mark.slow
RULES = [{"sequence": "acme/site/pi-01/temperature", "min": 5, "max": 30, "to": ["grower@example.com"]},
         {"sequence": "acme/elsewhere/humidity", "max": 90, "to": ["grower@example.com"]}]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubStack]:
    require_chromium()
    ensure_console_built()
    with hub_stack(tmp_path, EXTENSIONS=["examples.extensions.threshold_alerts"],
                   THRESHOLD_ALERTS_RULES=RULES) as stack:
        yield stack


def test_the_console_links_to_the_extension_panel(hub: HubStack) -> None:
    log = PageLog(allowed=["status of 401"])  # the console's /me before logging in
    with launch_chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(10_000)
        page: Any = context.new_page()
        watch_page(page, log)
        page.goto(f"{hub.url}/#/")
        page.wait_for_selector("#login-form")
        page.fill("input[name=email]", hub.people.emails["member"])
        page.fill("input[name=password]", PASSWORD)
        page.click("#login-submit")
        page.wait_for_selector("#whoami")
        link = page.locator("nav.main-nav a.ext-panel")
        assert link.text_content() == "Threshold alerts"
        link.click()
        page.wait_for_url(f"{hub.url}/ext/threshold_alerts/static/index.html")
        page.wait_for_selector("#rules:not([hidden])")
        rows = page.locator("#rules tbody tr").all_inner_texts()
        # the member reads acme/site only: the other rule is not shown
        assert [r.split("\t") for r in rows] == [["acme/site/pi-01/temperature", "5", "30", "grower@example.com"]]
        assert page.text_content("#state") == "1 rule(s) on sequences you may read."
        screenshot(page, "extension-panel")
        context.close()
    assert not log.unexpected(), log.errors
