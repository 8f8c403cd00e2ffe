"""The newcomer's demo, end to end: the demo runner's EWS mailbox and sign-in, the real pane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, expect

from addin_service.demo.runner import DemoHandle, start_demo
from tests.e2e.outlook import TaskPane
from tests.fakes.stack import serving as served

pytestmark = pytest.mark.browser


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[DemoHandle, str]]:
    handle = start_demo(tmp_path / "demo")
    try:
        with served(handle.app) as url:
            yield handle, url
    finally:
        handle.stop()


def test_newcomer_reports_a_sample_message_through_exchange_and_gets_a_case_number(
    browser: Browser, demo: tuple[DemoHandle, str]
) -> None:
    handle, url = demo
    backend = handle.app.extensions["addin_demo"]
    context = browser.new_context(base_url=url, locale="en-US", timezone_id="UTC")
    try:
        page = context.new_page()
        page.goto("/demo")
        page.locator(".message-row", has_text="You were warned").click()
        page.get_by_role("button", name="Report harassment").click()
        pane = TaskPane(page)
        pane.wait_until_interactive()
        expect(pane.ui.locator("#msg-subject")).to_have_text("You were warned")
        pane.fill("Threat or violence", note="He knows where I park.")
        pane.feels_unsafe.check()

        answer = pane.report()

        assert answer["status"] == 201
        expect(pane.receipt_heading).to_be_focused()
        expect(pane.case_number).to_have_text(answer["body"]["case_id"])
    finally:
        context.close()
    token = backend.token_for(backend.user)
    filed = requests.get(f"{url}/api/v1/reports/{answer['body']['report_id']}",
                         headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert filed.status_code == 200
    assert filed.json()["case_id"] == answer["body"]["case_id"]
    assert filed.json()["urgent"] is True
