"""Page objects: the demo Outlook page and the task pane inside it, driven as a person would."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Frame, FrameLocator, Locator, Page, Request

from tests.e2e.harness import LiveService


class TaskPane:
    """The real task pane, in the demo page's iframe."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.ui: FrameLocator = page.frame_locator("#taskpane-frame")

    @property
    def frame(self) -> Frame:
        handle = self.page.locator("#taskpane-frame").element_handle()
        assert handle is not None
        frame = handle.content_frame()
        assert frame is not None
        return frame

    def wait_until_interactive(self) -> None:
        self.ui.locator("#report-form").wait_for(state="visible")
        assert self.frame.evaluate("performance.getEntriesByName('pane-interactive').length") == 1

    def category(self, label: str) -> Locator:
        return self.ui.get_by_role("radio", name=label, exact=True)

    @property
    def note(self) -> Locator:
        return self.ui.get_by_label("Anything you want to add")

    @property
    def feels_unsafe(self) -> Locator:
        return self.ui.get_by_role("checkbox", name="I feel unsafe")

    @property
    def include_related(self) -> Locator:
        return self.ui.get_by_role("checkbox", name="Also save my other messages from this sender")

    @property
    def report_button(self) -> Locator:
        return self.ui.get_by_role("button", name="Report", exact=True)

    @property
    def receipt_heading(self) -> Locator:
        return self.ui.get_by_role("heading", name="Your report is filed")

    @property
    def case_number(self) -> Locator:
        return self.ui.locator("#case-id")

    @property
    def error_heading(self) -> Locator:
        return self.ui.locator("#error-heading")

    @property
    def try_again(self) -> Locator:
        return self.ui.get_by_role("button", name="Try again")

    @property
    def sign_in_again(self) -> Locator:
        return self.ui.get_by_role("button", name="Sign in again")

    def fill(self, category: str = "Threat or violence", note: str = "") -> None:
        self.category(category).check()
        if note:
            self.note.fill(note)

    def report(self) -> dict[str, Any]:
        """Press Report and return the service's JSON answer, whatever its status."""
        with self.page.expect_response(lambda r: r.url.endswith("/api/v1/reports")) as answer:
            self.report_button.click()
        response = answer.value
        self.wait_until_settled()
        return {"status": response.status, "body": response.json()}

    def wait_until_settled(self) -> None:
        """Until the pane has shown the answer to the last request (it is no longer busy)."""
        self.frame.wait_for_function("document.getElementById('submit').getAttribute('aria-disabled') !== 'true'")

    def focused_id(self) -> str:
        return str(self.frame.evaluate("document.activeElement ? document.activeElement.id : ''"))

    def mark(self, name: str) -> float:
        return float(self.frame.evaluate(f"performance.getEntriesByName('{name}')[0].startTime"))


class DemoOutlook:
    """The demo's Outlook look-alike at /demo."""

    def __init__(self, page: Page, live: LiveService) -> None:
        self.page = page
        self.live = live
        self.pane = TaskPane(page)

    def goto(self, client: str = "web") -> None:
        self.page.goto(f"/demo?client={client}")
        self.page.locator(".message-row").first.wait_for()

    def message_row(self, subject: str) -> Locator:
        return self.page.locator(".message-row", has_text=subject)

    def select(self, subject: str) -> None:
        self.message_row(subject).click()
        assert self.page.locator("#reading-subject").text_content() == subject

    @property
    def report_harassment(self) -> Locator:
        return self.page.get_by_role("button", name="Report harassment")

    def open_pane(self, subject: str, client: str = "web") -> TaskPane:
        """Open /demo, select the message, click the ribbon button; return the ready pane."""
        self.goto(client)
        self.select(subject)
        self.report_harassment.click()
        self.pane.wait_until_interactive()
        return self.pane


def report_keys_sent(page: Page) -> list[str]:
    """Idempotency-Key of every report request the browser made, including ones that never arrived."""
    keys: list[str] = []

    def record(request: Request) -> None:
        if request.url.endswith("/api/v1/reports") and request.method == "POST":
            keys.append(request.headers["idempotency-key"])

    page.on("request", record)
    return keys
