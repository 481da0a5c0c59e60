"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

Playwright never downloads a browser here: it launches the system Chromium with
`executable_path`. `launch_chromium()` yields a Browser; `watch_page(page)` records the
page's console errors and uncaught exceptions so a test can assert there were none.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"


def find_chromium() -> Path | None:
    if CHROMIUM.is_file():
        return CHROMIUM
    other = shutil.which("chromium")
    return Path(other) if other else None


def require_chromium() -> None:
    """Skip the test without Chromium, loudly; fail instead under CI, where it must be there."""
    import os

    import pytest

    if find_chromium() is None:
        message = "Chromium is not installed (/usr/bin/chromium): run `make system-packages`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """A headless Chromium Browser (playwright.sync_api.Browser); closed after."""
    from playwright.sync_api import sync_playwright

    exe = find_chromium()
    if exe is None:
        raise RuntimeError("Chromium is not installed: run `make system-packages` (Debian package chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(exe), args=CHROMIUM_ARGS, headless=True,
                                     timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageLog:
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)  # texts of errors a test provokes on purpose

    def unexpected(self) -> list[str]:
        """Errors whose text contains none of `allowed`."""
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


def watch_page(page: Any, log: PageLog | None = None) -> PageLog:
    """Record the page's console errors and uncaught exceptions into `log` (or a new one)."""
    log = PageLog() if log is None else log

    def on_console(msg: Any) -> None:
        text = f"{msg.type}: {msg.text}"
        log.console.append(text)
        if msg.type == "error":
            log.errors.append(text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: log.errors.append(f"pageerror: {exc}"))
    return log


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page PNG under test-artifacts/ (git-ignored); return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def publish_and_watch(page: Any, publish: Any, values: list[float], timeout_ms: float) -> tuple[
        dict[str, float], dict[str, float]]:
    """Publish `values` one at a time with `publish(value)`, waiting for the open sequence
    page to change its latest value after each. Returns (when each was published, when
    the page first showed it), epoch milliseconds keyed by the value's text."""
    page.evaluate("""() => {
        window.__seen = [];
        new MutationObserver(() => window.__seen.push([
            document.querySelector('#latest-value').textContent, performance.timeOrigin + performance.now()]))
          .observe(document.querySelector('#latest-value'), {childList: true, characterData: true, subtree: true});
    }""")
    sent: dict[str, float] = {}
    for i, value in enumerate(values):
        sent[str(value)] = time.time() * 1000
        publish(value)
        page.wait_for_function(f"window.__seen.length >= {i + 1}", timeout=timeout_ms)
    shown: dict[str, float] = {}
    for text, at in page.evaluate("window.__seen"):
        shown.setdefault(text.split()[0], at)  # one change can fire the observer twice: the first
    return sent, shown
