"""Every way filing can fail, as the reporter sees it, and that retrying never files twice."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from addin_service.errors import MailboxUnavailable
from addin_service.ratelimit import SlidingWindowLimiter
from tests.e2e.harness import SHARED_MAILBOX, USER, LiveService
from tests.e2e.outlook import DemoOutlook, report_keys_sent

pytestmark = pytest.mark.browser


def test_exchange_busy_try_again_resends_the_same_idempotency_key(outlook: DemoOutlook, live: LiveService) -> None:
    live.mailbox.failures.append(MailboxUnavailable("Exchange is throttling.", retry_after=20))
    pane = outlook.open_pane("You will regret this")
    pane.fill("Threat or violence", note="Third message this week.")

    first = pane.report()

    assert first["status"] == 503
    expect(pane.error_heading).to_have_text("Exchange is busy right now")
    expect(pane.error_heading).to_be_focused()
    expect(pane.ui.locator("#error-next")).to_have_text("Try again in about 20 seconds.")
    with outlook.page.expect_response(lambda r: r.url.endswith("/api/v1/reports")) as second:
        pane.try_again.click()
    assert second.value.status == 201
    expect(pane.case_number).to_have_text(second.value.json()["case_id"])

    # The server saw one key on both attempts, and replays the filed report for it.
    calls = live.reports.calls
    assert [c.status for c in calls] == [503, 201]
    assert calls[0].key == calls[1].key
    assert calls[0].body == calls[1].body
    replay = live.api("POST", "/api/v1/reports", json=calls[0].body, headers={"Idempotency-Key": calls[0].key})
    assert replay.status_code == 200
    assert replay.json()["report_id"] == second.value.json()["report_id"]


def test_offline_reporter_is_told_to_check_the_connection_and_try_again(
    outlook: DemoOutlook, live: LiveService, page: Page
) -> None:
    pane = outlook.open_pane("Re: project review")
    pane.fill("Bullying")
    page.context.set_offline(True)

    pane.report_button.click()

    expect(pane.error_heading).to_have_text("You seem to be offline")
    expect(pane.error_heading).to_be_focused()
    assert live.reports.calls == []
    page.context.set_offline(False)
    pane.try_again.click()
    expect(pane.receipt_heading).to_be_focused()
    assert [c.status for c in live.reports.calls] == [201]


def test_connection_lost_while_sending_try_again_reuses_the_idempotency_key(
    outlook: DemoOutlook, live: LiveService, page: Page
) -> None:
    keys = report_keys_sent(page)
    pane = outlook.open_pane("Re: project review")
    pane.fill("Bullying")
    page.route("**/api/v1/reports", lambda route: route.abort("internetdisconnected"))

    pane.report_button.click()

    expect(pane.error_heading).to_have_text("The reporting service could not be reached")
    page.unroute("**/api/v1/reports")
    pane.try_again.click()
    expect(pane.receipt_heading).to_be_focused()
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert [(c.key, c.status) for c in live.reports.calls] == [(keys[0], 201)]


def test_signed_out_reporter_signs_in_again_and_the_same_report_is_sent(
    outlook: DemoOutlook, live: LiveService
) -> None:
    live.tokens.expire_next = 1
    pane = outlook.open_pane("Saw you at the station")
    pane.fill("Stalking")

    assert pane.report()["status"] == 401

    expect(pane.error_heading).to_have_text("Please sign in again")
    expect(pane.try_again).to_be_hidden()
    pane.sign_in_again.click()
    expect(pane.receipt_heading).to_be_visible()
    calls = live.reports.calls
    assert [c.status for c in calls] == [401, 201]
    assert calls[0].key == calls[1].key


def test_shared_mailbox_the_reporter_cannot_read_is_refused_plainly(outlook: DemoOutlook, live: LiveService) -> None:
    pane = outlook.open_pane("Re: your complaint")
    pane.fill("Threat or violence")

    answer = pane.report()

    assert answer["status"] == 403
    assert live.reports.calls[0].body["mailbox"] == SHARED_MAILBOX
    expect(pane.error_heading).to_have_text("You cannot report from this mailbox")
    expect(pane.ui.locator("#error-next")).to_contain_text("+1 800 555 0122")
    expect(pane.ui.locator("#report-form")).to_be_hidden()
    expect(pane.try_again).to_be_hidden()
    expect(pane.ui.locator("#error-ref")).to_have_text(f"Reference: {answer['body']['request_id']}")


def test_message_no_longer_in_exchange_says_where_to_look(outlook: DemoOutlook) -> None:
    pane = outlook.open_pane("Last warning")
    pane.fill("Threat or violence")

    assert pane.report()["status"] == 404

    expect(pane.error_heading).to_have_text("This message is no longer there")
    expect(pane.ui.locator("#error-next")).to_contain_text("Deleted Items")
    expect(pane.try_again).to_be_hidden()


def test_message_too_large_asks_to_keep_it_and_call_security(outlook: DemoOutlook) -> None:
    pane = outlook.open_pane("Photos")
    pane.fill("Sexual harassment")

    assert pane.report()["status"] == 413

    expect(pane.error_heading).to_have_text("This message is too large to file here")
    expect(pane.ui.locator("#error-text")).to_contain_text("do not delete it")
    expect(pane.try_again).to_be_hidden()


def test_rate_limited_reporter_is_asked_to_wait_then_try_again(outlook: DemoOutlook, live: LiveService) -> None:
    exhausted = SlidingWindowLimiter(1, 600)
    exhausted.hit(USER)
    live.container.rate_limiter = exhausted
    pane = outlook.open_pane("People like you")
    pane.fill("Hate or bias")

    assert pane.report()["status"] == 429

    expect(pane.error_heading).to_have_text("Please wait a moment")
    expect(pane.ui.locator("#error-next")).to_have_text("Try again in about 10 minutes.")
    live.container.rate_limiter = SlidingWindowLimiter(10, 600)
    pane.try_again.click()
    expect(pane.receipt_heading).to_be_visible()
    assert [c.status for c in live.reports.calls] == [429, 201]
    assert live.reports.calls[0].key == live.reports.calls[1].key


def test_choosing_no_category_is_caught_before_anything_is_sent(outlook: DemoOutlook, live: LiveService) -> None:
    pane = outlook.open_pane("You will regret this")

    pane.report_button.click()

    expect(pane.ui.locator("#category-error")).to_have_text("Choose what this message is about.")
    expect(pane.category("Threat or violence")).to_be_focused()
    expect(pane.ui.locator("#category-group")).to_have_attribute("aria-invalid", "true")
    assert live.reports.calls == []


def test_changing_the_report_after_a_failure_sends_it_under_a_new_key(outlook: DemoOutlook, live: LiveService) -> None:
    live.mailbox.failures.append(MailboxUnavailable("Exchange is down.", retry_after=5))
    pane = outlook.open_pane("You will regret this")
    pane.fill("Threat or violence")
    assert pane.report()["status"] == 503

    pane.note.fill("Adding that he also called me.")
    assert pane.report()["status"] == 201

    first, second = live.reports.calls
    assert first.key != second.key
    assert second.body["note"] == "Adding that he also called me."
