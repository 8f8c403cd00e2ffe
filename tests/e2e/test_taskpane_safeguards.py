"""What the reporter adds is never silently dropped, and what the pane shows cannot be spoofed or cut off."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from addin_service.errors import MailboxUnavailable
from tests.e2e.harness import STALKING_ID, THREAT_ID, LiveService
from tests.e2e.outlook import DemoOutlook, TaskPane, report_keys_sent

pytestmark = pytest.mark.browser

REPORTS = "**/api/v1/reports"
PROBLEM = {"Content-Type": "application/problem+json"}


def _answer_first_report(page: Page, status: int, body: str, headers: dict[str, str]) -> None:
    """The first report request gets this answer without reaching the service; later ones reach it."""
    answered: list[int] = []

    def handle(route: Route) -> None:
        if answered:
            route.continue_()
            return
        answered.append(status)
        route.fulfill(status=status, headers=headers, body=body)

    page.route(REPORTS, handle)


def _problem(status: int, slug: str, **extra: Any) -> str:
    return json.dumps({"type": f"urn:report-harassment:problem:{slug}", "title": slug, "status": status,
                       "detail": slug, **extra})


def _with_support(page: Page, contacts: dict[str, dict[str, str]], case_id: str | None = None) -> None:
    """The pane-config and every report answer name these contacts (and this case number)."""

    def patch(route: Route) -> None:
        response = route.fetch()
        data = response.json()
        if isinstance(data, dict) and isinstance(data.get("support"), dict):
            data["support"].update(contacts)
        if isinstance(data, dict) and case_id and "case_id" in data:
            data["case_id"] = case_id
        route.fulfill(response=response, body=json.dumps(data))

    page.route("**/api/v1/pane-config", patch)
    page.route(REPORTS, patch)


def _report_then_reopen(outlook: DemoOutlook, subject: str) -> TaskPane:
    first = outlook.open_pane(subject)
    first.fill("Bullying")
    assert first.report()["status"] == 201
    outlook.page.get_by_role("button", name="Close the Report harassment pane").click()
    return outlook.open_pane(subject)


# ---- F1: "Try again" and "Sign in again" send the form as it is now ---------------------------


def test_try_again_after_exchange_was_busy_sends_what_was_added_since(outlook: DemoOutlook, live: LiveService) -> None:
    live.mailbox.failures.append(MailboxUnavailable("Exchange is throttling.", retry_after=5))
    pane = outlook.open_pane("You will regret this")
    pane.fill("Threat or violence", note="first version")
    assert pane.report()["status"] == 503

    pane.note.fill("first version. He also phoned me twice tonight.")
    pane.feels_unsafe.check()
    pane.try_again.click()

    expect(pane.ui.locator("#receipt-urgent")).to_be_visible()
    first, second = live.reports.calls
    assert second.status == 201
    assert second.body["note"] == "first version. He also phoned me twice tonight."
    assert second.body["feels_unsafe"] is True
    assert second.key != first.key


def test_sign_in_again_sends_what_was_added_since(outlook: DemoOutlook, live: LiveService) -> None:
    live.tokens.expire_next = 1
    pane = outlook.open_pane("Saw you at the station")
    pane.fill("Stalking")
    assert pane.report()["status"] == 401

    pane.feels_unsafe.check()
    pane.sign_in_again.click()

    expect(pane.receipt_heading).to_be_visible()
    assert [(c.status, c.body["feels_unsafe"]) for c in live.reports.calls] == [(401, False), (201, True)]


def test_a_key_refused_for_a_different_request_is_replaced_before_trying_again(
    outlook: DemoOutlook, live: LiveService, page: Page
) -> None:
    keys = report_keys_sent(page)
    _answer_first_report(page, 422, _problem(422, "idempotency-key-reused"), PROBLEM)
    pane = outlook.open_pane("Re: project review")
    pane.fill("Bullying")
    pane.report_button.click()

    expect(pane.error_heading).to_have_text("Please send your report again")
    expect(pane.ui.locator("#error-text")).to_have_text("Nothing was lost.")
    pane.try_again.click()

    expect(pane.receipt_heading).to_be_visible()
    assert len(keys) == 2
    assert keys[0] != keys[1]
    assert [(c.key, c.status) for c in live.reports.calls] == [(keys[1], 201)]


# ---- F2: reporting the same message again -------------------------------------------------------


def test_reporting_again_feeling_unsafe_puts_urgent_help_first_and_says_what_was_not_added(
    outlook: DemoOutlook,
) -> None:
    pane = _report_then_reopen(outlook, "Re: project review")
    pane.fill("Threat or violence", note="He is now waiting outside my office.")
    pane.feels_unsafe.check()

    assert pane.report()["status"] == 200

    expect(pane.ui.locator("#emergency-first")).to_be_visible()
    expect(pane.ui.locator("#help-first-list")).to_contain_text("24/7 technical support centre")
    expect(pane.ui.locator("#emergency-last")).to_be_hidden()
    expect(pane.ui.locator("#receipt-urgent")).to_be_hidden()
    not_added = pane.ui.locator("#receipt-not-added")
    expect(not_added).to_contain_text("What you added this time (your note and \u201cI feel unsafe\u201d)")
    expect(not_added).to_contain_text("was not added to the earlier report")
    expect(not_added).to_contain_text("contact the security team (Computer security incident response centre")


def test_reporting_again_with_nothing_new_says_only_that_it_is_the_same_case(outlook: DemoOutlook) -> None:
    pane = _report_then_reopen(outlook, "Re: project review")
    pane.fill("Bullying")

    assert pane.report()["status"] == 200

    expect(pane.ui.locator("#receipt-replayed")).to_be_visible()
    expect(pane.ui.locator("#receipt-not-added")).to_be_hidden()
    expect(pane.ui.locator("#emergency-first")).to_be_hidden()


# How the answer to a request the service filed can be lost on its way back, and what the pane says.
LOST_ANSWERS: dict[str, tuple[Callable[[Route], None], str]] = {
    "connection reset": (lambda route: route.abort("connectionreset"), "The reporting service could not be reached"),
    # A proxy in front of a long capture gives up first: the pane said "Nothing is lost", and
    # after Try again that the note was not added, which it was.
    "proxy 504": (
        lambda route: route.fulfill(status=504, headers={"Content-Type": "text/html"}, body="<html>Time-out</html>"),
        "We could not tell whether your report was filed",
    ),
}


@pytest.mark.parametrize("lost", LOST_ANSWERS)
def test_a_retry_answered_with_its_own_first_attempt_does_not_say_the_note_was_lost(
    outlook: DemoOutlook, page: Page, lost: str
) -> None:
    lose, heading = LOST_ANSWERS[lost]
    filed: list[int] = []

    def file_then_lose_the_answer(route: Route) -> None:
        if filed:
            route.continue_()
            return
        filed.append(route.fetch().status)
        lose(route)

    page.route(REPORTS, file_then_lose_the_answer)
    pane = outlook.open_pane("People like you")
    pane.fill("Hate or bias", note="Third one this month.")
    pane.report_button.click()
    expect(pane.error_heading).to_have_text(heading)

    pane.try_again.click()

    expect(pane.ui.locator("#receipt-replayed")).to_be_visible()
    assert filed == [201]
    expect(pane.ui.locator("#receipt-not-added")).to_be_hidden()


def test_reporting_again_asking_to_save_other_messages_says_it_was_not_done(outlook: DemoOutlook) -> None:
    pane = _report_then_reopen(outlook, "Re: project review")
    pane.fill("Bullying")
    pane.include_related.check()

    assert pane.report()["status"] == 200

    expect(pane.ui.locator("#receipt-not-added")).to_contain_text(
        "What you added this time (saving your other messages from this sender) was not added"
    )


def test_what_is_being_filed_cannot_change_on_screen_meanwhile(
    outlook: DemoOutlook, live: LiveService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A note added or a box ticked while the request was on its way was silently not in the report."""
    arrived, release = threading.Event(), threading.Event()
    capture = live.mailbox.capture

    def held(*args: Any) -> Any:
        arrived.set()
        release.wait(10)
        return capture(*args)

    monkeypatch.setattr(live.mailbox, "capture", held)
    try:
        pane = outlook.open_pane("You will regret this")
        pane.fill("Threat or violence", note="He followed me.")
        pane.report_button.click()
        assert arrived.wait(10)

        expect(pane.note).to_have_attribute("readonly", "")
        pane.ui.get_by_text("I feel unsafe", exact=True).click()
        expect(pane.feels_unsafe).not_to_be_checked()
    finally:
        release.set()

    expect(pane.receipt_heading).to_be_visible()
    expect(pane.note).not_to_have_attribute("readonly", "")
    assert live.reports.calls[-1].body["feels_unsafe"] is False


# ---- F3: a pinned pane keeps an unsent report when the selection changes ------------------------


def _failed_report_then_select_another(outlook: DemoOutlook, live: LiveService) -> TaskPane:
    live.mailbox.failures.append(MailboxUnavailable("Exchange is down.", retry_after=5))
    pane = outlook.open_pane("You will regret this")
    pane.fill("Threat or violence", note="Three paragraphs about the last month.")
    assert pane.report()["status"] == 503
    outlook.select("Saw you at the station")
    return pane


def test_selecting_another_message_after_a_failure_keeps_the_unsent_report(
    outlook: DemoOutlook, live: LiveService
) -> None:
    pane = _failed_report_then_select_another(outlook, live)

    expect(pane.ui.locator("#form-item-changed")).to_contain_text(
        "You selected another message. This report is still for the message shown above, "
        "and it has not been filed yet."
    )
    expect(pane.ui.locator("#msg-subject")).to_have_text("You will regret this")
    expect(pane.note).to_have_value("Three paragraphs about the last month.")
    # Focus stays in Outlook, where the reporter just clicked.
    assert outlook.page.evaluate("document.activeElement.classList.contains('message-row')")
    pane.try_again.click()
    expect(pane.receipt_heading).to_be_visible()
    assert live.reports.calls[-1].body["item_id"] == THREAT_ID
    assert live.reports.calls[-1].status == 201
    # The reply would answer the selected message, not the reported one.
    expect(pane.ui.get_by_role("button", name="Open a reply with this text")).to_be_hidden()
    expect(pane.ui.locator("#item-changed")).to_be_visible()


def test_report_the_selected_message_instead_keeps_what_was_written(outlook: DemoOutlook, live: LiveService) -> None:
    """The button cleared the note: three paragraphs written at a bad moment, gone with one click."""
    pane = _failed_report_then_select_another(outlook, live)
    pane.feels_unsafe.check()

    pane.ui.get_by_role("button", name="Report the selected message instead").click()

    expect(pane.ui.locator("#msg-subject")).to_have_text("Saw you at the station")
    expect(pane.note).to_have_value("Three paragraphs about the last month.")
    expect(pane.category("Threat or violence")).to_be_checked()
    expect(pane.feels_unsafe).to_be_checked()
    expect(pane.error_heading).to_be_hidden()
    expect(pane.ui.locator("#form-item-changed")).to_be_hidden()
    expect(pane.ui.locator("#message-heading")).to_be_focused()
    pane.fill("Stalking")
    assert pane.report()["status"] == 201
    assert live.reports.calls[-1].body["item_id"] == STALKING_ID
    assert live.reports.calls[-1].body["note"] == "Three paragraphs about the last month."
    assert live.reports.calls[-1].body["feels_unsafe"] is True


def test_a_message_opened_where_it_was_moved_keeps_the_note_written_for_it(outlook: DemoOutlook) -> None:
    """"This message is no longer there" says to open it in its new folder and report it from there."""
    pane = outlook.open_pane("Last warning")
    pane.fill("Threat or violence", note="Sent at 3 a.m. again.")
    pane.feels_unsafe.check()
    assert pane.report()["status"] == 404

    outlook.select("You will regret this")

    expect(pane.ui.locator("#msg-subject")).to_have_text("You will regret this")
    expect(pane.note).to_have_value("Sent at 3 a.m. again.")
    expect(pane.feels_unsafe).to_be_checked()
    expect(pane.category("Threat or violence")).to_be_checked()


# ---- F4: bidi controls cannot reorder what the pane shows ---------------------------------------

FIRST_AND_LAST_CHARACTER_X = """(id) => {
    const text = document.getElementById(id).firstChild;
    const x = (i) => { const r = document.createRange(); r.setStart(text, i); r.setEnd(text, i + 1);
                       return r.getBoundingClientRect().left; };
    return [x(0), x(text.length - 1)];
}"""


def test_a_right_to_left_override_in_the_senders_name_cannot_reverse_the_address(
    outlook: DemoOutlook, live: LiveService
) -> None:
    live.demo.seeded[0] = replace(live.demo.seeded[0], from_name="IT Service Desk \u202e",
                                  from_address="moc.osotnoc@evil.example")
    pane = outlook.open_pane(live.demo.seeded[0].subject)

    expect(pane.ui.locator("#msg-from-address")).to_have_text("<moc.osotnoc@evil.example>")
    first_x, last_x = pane.frame.evaluate(FIRST_AND_LAST_CHARACTER_X, "msg-from-address")
    assert first_x < last_x
    expect(pane.note).to_have_attribute("dir", "auto")


# ---- F5, F9: phone numbers ----------------------------------------------------------------------

ODD_PHONES = {
    "eap": {"name": "Employee Assistance Program", "phone": "+44 (0)20 7946 0000", "url": "https://eap.contoso.com/"},
    "support_24x7": {"name": "24/7 technical support centre", "phone": "+1 555 0199 (demo, 24/7)", "url": ""},
    "incident_response": {"name": "Incident response", "phone": "(555) 123-4567 ext. 89", "url": ""},
}


def test_phone_links_dial_only_the_number_the_text_starts_with(outlook: DemoOutlook, page: Page) -> None:
    _with_support(page, ODD_PHONES)
    pane = outlook.open_pane("Re: project review")
    pane.fill("Bullying")
    pane.report()

    links = pane.frame.evaluate(
        "Array.from(document.querySelectorAll('#receipt a[href^=\"tel:\"]:not([hidden] *)'))"
        ".map(a => [a.textContent, a.getAttribute('href')])"
    )
    assert links == [
        ["+44 (0)20 7946 0000", "tel:+442079460000"],
        ["+1 555 0199", "tel:+15550199"],
        ["(555) 123-4567", "tel:5551234567"],
        ["911", "tel:911"],
    ]
    expect(pane.ui.locator("#help-list")).to_contain_text("+1 555 0199 (demo, 24/7)")


LINE_BREAKS_AFTER = """(id) => {
    const text = document.getElementById(id).firstChild;
    const top = (i) => { const r = document.createRange(); r.setStart(text, i); r.setEnd(text, i + 1);
                         return r.getBoundingClientRect().top; };
    const before = [];
    for (let i = 1; i < text.length; i++) if (top(i) > top(i - 1) + 1) before.push(text.data[i - 1]);
    return before;
}"""


def test_at_200_percent_zoom_contacts_wrap_and_the_case_number_breaks_only_at_hyphens(
    outlook: DemoOutlook, page: Page
) -> None:
    # The case number the audit saw broken as "HR-2026-HNKNYJ8 / J": numbers are random.
    _with_support(page, ODD_PHONES, case_id="HR-2026-HNKNYJ8J")
    pane = outlook.open_pane("Re: project review")
    # A 350 px pane at 200% zoom lays out 175 CSS pixels wide.
    page.evaluate("""() => {
        const aside = document.getElementById('taskpane');
        aside.style.width = aside.style.minWidth = '175px';
        aside.style.flex = 'none';
    }""")
    pane.fill("Bullying")
    pane.feels_unsafe.check()
    pane.report()
    expect(pane.receipt_heading).to_be_visible()

    assert pane.frame.evaluate("document.documentElement.clientWidth") <= 175
    assert pane.frame.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    expect(pane.case_number).to_have_text("HR-2026-HNKNYJ8J")
    assert set(pane.frame.evaluate(LINE_BREAKS_AFTER, "case-id")) <= {"-"}


# ---- F6: the note's limit -----------------------------------------------------------------------


def test_a_note_pasted_past_the_limit_says_what_was_left_out(outlook: DemoOutlook) -> None:
    pane = outlook.open_pane("You will regret this")
    pane.note.focus()

    outlook.page.keyboard.insert_text("He wrote again. " * 300)

    assert len(pane.note.input_value()) == 4000
    expect(pane.ui.locator("#note-limit")).to_have_text(
        "Your note is at the 4,000-character limit; anything longer was not added."
    )


# ---- F7, F8: what screen readers hear and where focus goes --------------------------------------


def test_screen_readers_hear_the_explanation_with_the_error_and_the_case_number_with_the_receipt(
    outlook: DemoOutlook, live: LiveService
) -> None:
    live.mailbox.failures.append(MailboxUnavailable("Exchange is down.", retry_after=5))
    pane = outlook.open_pane("You will regret this")
    pane.fill("Threat or violence")
    pane.report()

    expect(pane.error_heading).to_have_accessible_description(
        "The message could not be saved yet. Nothing is lost. Try again in about 5 seconds."
    )
    pane.try_again.click()
    expect(pane.receipt_heading).to_be_focused()
    case_id = pane.case_number.inner_text()
    expect(pane.receipt_heading).to_have_accessible_description(f"Case number {case_id}")


def test_try_again_after_the_pane_could_not_start_puts_focus_on_the_form(outlook: DemoOutlook, page: Page) -> None:
    failed: list[int] = []

    def fail_once(route: Route) -> None:
        if failed:
            route.continue_()
            return
        failed.append(503)
        route.fulfill(status=503, body="busy", headers={"Content-Type": "text/plain"})

    page.route("**/api/v1/pane-config", fail_once)
    outlook.goto()
    outlook.select("You will regret this")
    outlook.report_harassment.click()
    expect(outlook.pane.ui.get_by_role("heading", name="This pane cannot start")).to_be_focused()

    outlook.pane.try_again.click()

    expect(outlook.pane.ui.locator("#message-heading")).to_be_focused()


def test_report_the_selected_message_after_a_receipt_puts_focus_on_the_form(outlook: DemoOutlook) -> None:
    pane = outlook.open_pane("You will regret this")
    pane.fill("Threat or violence")
    pane.report()
    outlook.select("Saw you at the station")

    pane.ui.get_by_role("button", name="Report the selected message", exact=True).click()

    expect(pane.ui.locator("#msg-subject")).to_have_text("Saw you at the station")
    expect(pane.ui.locator("#message-heading")).to_be_focused()


# ---- F10, F11: plain words ----------------------------------------------------------------------


def test_a_server_error_without_a_reference_does_not_ask_to_quote_one(outlook: DemoOutlook, page: Page) -> None:
    _answer_first_report(page, 500, "Internal Server Error", {"Content-Type": "text/plain"})
    pane = outlook.open_pane("You will regret this")
    pane.fill("Threat or violence")
    pane.report_button.click()

    expect(pane.error_heading).to_have_text("Something went wrong")
    expect(pane.ui.locator("#error-next")).to_have_text(
        "Please try again. If it keeps happening, contact your IT help desk."
    )
    expect(pane.ui.locator("#error-ref")).to_be_hidden()


def test_a_busy_answer_without_a_problem_body_waits_as_long_as_its_retry_after_header_says(
    outlook: DemoOutlook, page: Page
) -> None:
    _answer_first_report(page, 503, "<html><body>Service Unavailable</body></html>",
                         {"Content-Type": "text/html", "Retry-After": "120"})
    pane = outlook.open_pane("You will regret this")
    pane.fill("Threat or violence")
    pane.report_button.click()

    expect(pane.error_heading).to_have_text("The reporting service is busy right now")
    expect(pane.ui.locator("#error-next")).to_have_text("Try again in about 2 minutes.")


def test_the_unsafe_hint_says_ticking_it_marks_the_report_urgent(outlook: DemoOutlook) -> None:
    pane = outlook.open_pane("You will regret this")

    expect(pane.ui.locator("#unsafe-hint")).to_have_text(
        "If you tick this, your report is marked urgent. If you are in immediate danger, call 911 now."
    )
