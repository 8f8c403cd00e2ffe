"""Browser fixtures: one chromium for the session, a fresh service and browser context per test."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.e2e import chromium
from tests.e2e.harness import LiveService, live_service
from tests.e2e.outlook import DemoOutlook

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        try:
            launched = chromium.launch(playwright)
        except FileNotFoundError as missing:
            pytest.fail(str(missing))
        yield launched
        launched.close()


@pytest.fixture
def live() -> Iterator[LiveService]:
    # In memory where possible: these tests are about the browser, not about fsync.
    scratch = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=scratch, prefix="addin-e2e-") as data, live_service(Path(data)) as service:
        yield service


class PageProblems:
    """Content-Security-Policy violations and uncaught script errors seen by a page."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Trusted Type" in message.text:
            self.items.append(message.text)

    def page_error(self, error: Exception) -> None:
        self.items.append(f"uncaught: {error}")


@pytest.fixture
def page_problems() -> PageProblems:
    return PageProblems()


def _new_page(browser: Browser, live: LiveService, problems: PageProblems, width: int, height: int) -> Page:
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=live.url,
                                  locale="en-US", timezone_id="UTC")
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("console", problems.console)
    page.on("pageerror", problems.page_error)
    return page


@pytest.fixture
def page(browser: Browser, live: LiveService, page_problems: PageProblems) -> Iterator[Page]:
    """A desktop-sized page. The test fails if the page broke its CSP or threw."""
    created = _new_page(browser, live, page_problems, 1280, 900)
    yield created
    created.context.close()
    assert page_problems.items == [], page_problems.items


@pytest.fixture
def narrow_page(browser: Browser, live: LiveService, page_problems: PageProblems) -> Iterator[Page]:
    """A 320 px wide page, the narrowest a task pane must work at."""
    created = _new_page(browser, live, page_problems, 320, 720)
    yield created
    created.context.close()
    assert page_problems.items == [], page_problems.items


@pytest.fixture
def outlook(page: Page, live: LiveService) -> DemoOutlook:
    return DemoOutlook(page, live)


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `npm ci` at the repository root")
    return AXE.read_text(encoding="utf-8")
