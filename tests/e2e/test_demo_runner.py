"""The newcomer's demo, end to end: the demo runner's Exchange and sign-in, the real pane.

Run twice: through the EWS double (``make demo``) and through the Graph double
(``addin-service demo --exchange graph``: msal on behalf of the reporter, Entra double over TLS).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, expect

from addin_service.demo.ews_seed import DEMO_SUPERVISOR, DEMO_USER
from addin_service.demo.runner import DemoHandle, start_demo
from addin_service.notify.cli import start_worker_thread
from tests.e2e.outlook import TaskPane
from tests.fakes.stack import serving as served

pytestmark = pytest.mark.browser

SECURITY = "security@contoso.com"


@pytest.fixture(params=["ews", "graph"])
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[DemoHandle, str]]:
    handle = start_demo(tmp_path / "demo", exchange=request.param)
    stop_worker = start_worker_thread(handle.app.extensions["addin"])
    try:
        with served(handle.app) as url:
            yield handle, url
    finally:
        stop_worker()
        handle.stop()


def served_mime(handle: DemoHandle, item_id: str) -> bytes:
    """The message as the demo Exchange serves it: Graph's ``$value``, or what the EWS double holds."""
    if handle.graph is None:
        assert handle.ews is not None
        return handle.ews.item(item_id).mime
    assert handle.ca_trust is not None
    with handle.graph.state.lock:
        message = next(m for m in handle.graph.state.messages.values() if m.ews_id == item_id)
    token = handle.graph.issue_token(user=DEMO_USER, scopes=["Mail.Read"])
    answer = requests.get(
        f"{handle.graph.graph_url}/users/{DEMO_USER}/messages/{message.rest_id}/$value",
        headers={"Authorization": f"Bearer {token}"},
        verify=str(handle.ca_trust.bundle_path),
        timeout=30,
    )
    assert answer.status_code == 200
    return answer.content


def test_newcomer_reports_a_sample_message_through_exchange_and_gets_a_case_number(
    browser: Browser, demo: tuple[DemoHandle, str]
) -> None:
    handle, url = demo
    backend = handle.app.extensions["addin_demo"]
    context = browser.new_context(base_url=url, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(10_000)
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
        case_id = answer["body"]["case_id"]
        expect(pane.case_number).to_have_text(case_id)

        # The notifications went out through the demo Exchange; "Mail the service sent" shows them.
        page.goto("/demo/mail")
        rows = page.locator(".sent-mail-list tbody tr")
        for recipient in (DEMO_SUPERVISOR, SECURITY):
            row = rows.filter(has_text=recipient)
            for _ in range(50):  # the worker sends a moment after the report: reload until it has
                if row.count():
                    break
                page.wait_for_timeout(200)
                page.reload()
            expect(row).to_contain_text(case_id)
        expect(rows.filter(has_text=SECURITY)).to_contain_text("Attached: reported-message-")
    finally:
        context.close()

    token = backend.token_for(backend.user)
    filed = requests.get(f"{url}/api/v1/reports/{answer['body']['report_id']}",
                         headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert filed.status_code == 200
    assert filed.json()["case_id"] == case_id
    assert filed.json()["urgent"] is True
    item_id = next(m.item_id for m in backend.messages() if m.subject == "You were warned")
    evidence = handle.settings.evidence_path
    assert evidence is not None
    eml = (Path(evidence) / case_id / answer["body"]["report_id"] / "message.eml").read_bytes()
    assert eml == served_mime(handle, item_id)
    if handle.graph is not None:  # real msal: the reporter's sign-in exchanged on their behalf
        assert [g.subject for g in handle.issuer.grants if g.grant_type == "on_behalf_of"] == [DEMO_USER]
