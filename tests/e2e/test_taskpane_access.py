"""The pane works by keyboard alone, passes axe-core, fits 320 px, and respects user settings."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Frame, Page, expect

from tests.e2e.harness import LiveService
from tests.e2e.outlook import DemoOutlook, TaskPane

pytestmark = pytest.mark.browser

SERIOUS = {"serious", "critical"}


def _tab_to(page: Page, frame: Frame | None, element_id: str, *, backwards: bool = False, limit: int = 25) -> None:
    """Press Tab (or Shift+Tab) until the element with this id has focus; fail if it never does."""
    where = frame or page.main_frame
    for _ in range(limit):
        if where.evaluate("document.hasFocus() && document.activeElement && document.activeElement.id") == element_id:
            return
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
    raise AssertionError(f"#{element_id} never received focus by keyboard")


def _tab_to_row(page: Page, subject: str, limit: int = 25) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        text = page.evaluate("(el => el.classList.contains('message-row') && el.innerText)(document.activeElement)")
        if text and subject in text:
            return
    raise AssertionError(f"the message row {subject!r} never received focus by keyboard")


def _violations(frame: Frame, axe_source: str, **options: Any) -> list[dict[str, Any]]:
    if not frame.evaluate("typeof window.axe !== 'undefined'"):
        frame.evaluate(axe_source)
    results: list[dict[str, Any]] = frame.evaluate(
        """async (options) => {
            const result = await axe.run(document, Object.assign({resultTypes: ['violations']}, options));
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))
            }));
        }""",
        options,
    )
    return [v for v in results if v["impact"] in SERIOUS]


def test_keyboard_alone_reaches_a_filed_report(page: Page, live: LiveService) -> None:
    outlook = DemoOutlook(page, live)
    outlook.goto()

    _tab_to_row(page, "You will regret this")
    page.keyboard.press("Enter")
    expect(page.locator("#reading-subject")).to_have_text("You will regret this")
    _tab_to(page, None, "report-button", backwards=True)
    page.keyboard.press("Enter")

    pane = TaskPane(page)
    pane.wait_until_interactive()
    page.keyboard.press("Tab")
    assert pane.focused_id() == "category-threat-or-violence"
    page.keyboard.press("ArrowDown")
    assert pane.focused_id() == "category-sexual-harassment"
    page.keyboard.press("ArrowUp")
    expect(pane.category("Threat or violence")).to_be_checked()
    page.keyboard.press("Tab")
    assert pane.focused_id() == "note"
    page.keyboard.type("Sent at 2 am.")
    page.keyboard.press("Tab")
    assert pane.focused_id() == "feels-unsafe"
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    assert pane.focused_id() == "include-related"
    page.keyboard.press("Tab")
    assert pane.focused_id() == "submit"
    page.keyboard.press("Enter")

    expect(pane.receipt_heading).to_be_focused()
    assert live.reports.calls[0].body["note"] == "Sent at 2 am."
    assert live.reports.calls[0].body["feels_unsafe"] is True
    page.keyboard.press("Tab")
    assert pane.frame.evaluate("document.activeElement.tagName") in {"A", "BUTTON"}


def test_demo_page_form_receipt_and_error_have_no_serious_axe_violations(
    outlook: DemoOutlook, live: LiveService, axe_source: str
) -> None:
    pane = outlook.open_pane("You will regret this")
    assert _violations(outlook.page.main_frame, axe_source, iframes=False) == []
    assert _violations(pane.frame, axe_source) == []
    outlook.page.emulate_media(color_scheme="dark")
    assert _violations(pane.frame, axe_source) == []
    outlook.page.emulate_media(color_scheme="light")

    pane.fill("Threat or violence")
    pane.feels_unsafe.check()
    pane.report()
    expect(pane.receipt_heading).to_be_visible()
    assert _violations(pane.frame, axe_source) == []
    outlook.page.emulate_media(color_scheme="dark")
    assert _violations(pane.frame, axe_source) == []

    outlook.page.get_by_role("button", name="Close the Report harassment pane").click()
    error_pane = outlook.open_pane("Last warning")
    error_pane.fill("Threat or violence")
    error_pane.report()
    expect(error_pane.error_heading).to_be_visible()
    assert _violations(error_pane.frame, axe_source) == []


def _png_width(path: Path) -> int:
    with path.open("rb") as png:
        header = png.read(24)
    return int(struct.unpack(">I", header[16:20])[0])


def _no_horizontal_scroll(frame: Frame) -> bool:
    return bool(frame.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"))


def test_pane_fits_320_px_without_horizontal_scrolling(narrow_page: Page, live: LiveService, tmp_path: Path) -> None:
    outlook = DemoOutlook(narrow_page, live)
    pane = outlook.open_pane("Re: your complaint")
    assert _no_horizontal_scroll(pane.frame)
    shot = tmp_path / "pane-form-320.png"
    narrow_page.locator("#taskpane-frame").screenshot(path=str(shot))
    assert _png_width(shot) == 320

    outlook.select("You will regret this")
    pane.fill("Threat or violence", note="x" * 300)
    pane.report()
    expect(pane.receipt_heading).to_be_visible()
    assert _no_horizontal_scroll(pane.frame)
    assert _no_horizontal_scroll(narrow_page.main_frame)


def test_dark_mode_and_reduced_motion_are_respected(outlook: DemoOutlook) -> None:
    outlook.page.emulate_media(color_scheme="dark", reduced_motion="reduce")
    pane = outlook.open_pane("You will regret this")

    background = pane.frame.evaluate("getComputedStyle(document.body).backgroundColor")
    animation = pane.frame.evaluate("getComputedStyle(document.querySelector('.spinner')).animationName")
    assert background == "rgb(28, 31, 35)"
    assert animation == "none"
    outlook.page.emulate_media(color_scheme="light", reduced_motion="no-preference")
    assert pane.frame.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    assert pane.frame.evaluate("getComputedStyle(document.querySelector('.spinner')).animationName") == "spin"


def test_pane_is_served_with_a_strict_content_security_policy(page: Page, live: LiveService) -> None:
    response = page.goto("/taskpane.html")
    assert response is not None
    policy = response.headers["content-security-policy"]

    assert "script-src 'self';" in policy
    assert "style-src 'self';" in policy
    assert "frame-ancestors 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    expect(page.get_by_role("heading", name="This pane cannot start")).to_be_visible()
    expect(page.locator("#unavailable-text")).to_have_text("Open this pane from a message in Outlook.")
