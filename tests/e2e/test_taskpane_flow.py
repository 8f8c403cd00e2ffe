"""Reporting a message from the demo Outlook page, in a real browser, against the running service."""

from __future__ import annotations

import base64
import hashlib

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import BULLYING_ID, HATE_ID, STALKING_ID, THREAT_ID, LiveService
from tests.e2e.outlook import DemoOutlook

pytestmark = pytest.mark.browser


def test_reporting_a_message_shows_the_case_number_the_service_returned(
    outlook: DemoOutlook, live: LiveService
) -> None:
    pane = outlook.open_pane("You will regret this")
    # Open to interactive, in ms from the pane's navigation start (typically ~150).
    assert 0 < pane.mark("pane-start") < pane.mark("pane-interactive") < 2000
    expect(pane.ui.locator("#msg-from-name")).to_have_text("Jordan Miles")
    expect(pane.ui.locator("#msg-from-address")).to_have_text("<jordan.miles@fabrikam.example>")
    expect(pane.ui.locator("#msg-subject")).to_have_text("You will regret this")
    expect(pane.ui.locator("#msg-date")).to_have_text("Nov 24, 2026, 8:12 AM")

    pane.fill("Threat or violence", note="He waited by my car on Monday.")
    answer = pane.report()

    assert answer["status"] == 201
    expect(pane.receipt_heading).to_be_focused()
    expect(pane.case_number).to_have_text(answer["body"]["case_id"])
    filed = live.api("GET", f"/api/v1/reports/{answer['body']['report_id']}")
    assert filed.status_code == 200
    assert filed.json()["case_id"] == answer["body"]["case_id"]
    assert filed.json()["category"] == "threat-or-violence"
    assert live.reports.calls[0].body == {
        "item_id": THREAT_ID,
        "id_format": "ews",
        "category": "threat-or-violence",
        "note": "He waited by my car on Monday.",
        "feels_unsafe": False,
        "include_related": False,
    }


def test_receipt_says_who_was_told_what_happens_next_and_where_to_get_help(outlook: DemoOutlook) -> None:
    pane = outlook.open_pane("Re: project review")
    pane.fill("Bullying")
    pane.report()

    told = pane.ui.locator("#told-list")
    expect(told).to_contain_text("Your supervisor")
    guidance = pane.ui.locator("#guidance-list li")
    expect(guidance.first).to_contain_text("reply once")
    help_list = pane.ui.locator("#help-list")
    expect(help_list).to_contain_text("Employee Assistance Program")
    expect(help_list.get_by_role("link", name="+1 800 555 0100")).to_have_attribute("href", "tel:+18005550100")
    expect(help_list.get_by_role("link", name="eap.contoso.com")).to_have_attribute("href", "https://eap.contoso.com/")
    expect(help_list).to_contain_text("24/7 technical support centre")
    expect(pane.ui.locator("#emergency-last")).to_have_text("If you are in immediate danger, call 911 now.")


def test_feeling_unsafe_marks_the_report_urgent_and_puts_24_7_help_first(
    outlook: DemoOutlook, live: LiveService
) -> None:
    pane = outlook.open_pane("Saw you at the station")
    pane.fill("Stalking")
    pane.feels_unsafe.check()
    pane.include_related.check()
    answer = pane.report()

    assert answer["body"]["urgent"] is True
    assert live.reports.calls[0].body["feels_unsafe"] is True
    assert live.reports.calls[0].body["include_related"] is True
    expect(pane.ui.locator("#receipt-urgent")).to_be_visible()
    expect(pane.ui.locator("#emergency-first")).to_have_text("If you are in immediate danger, call 911 now.")
    expect(pane.ui.locator("#help-first-list")).to_contain_text("24/7 technical support centre")
    expect(pane.ui.locator("#emergency-last")).to_be_hidden()


def test_reply_button_opens_outlooks_reply_form_with_the_civil_text(outlook: DemoOutlook, live: LiveService) -> None:
    reply_text = live.api("GET", "/api/v1/pane-config").json()["reply_text"]
    pane = outlook.open_pane("People like you")
    pane.fill("Hate or bias")
    pane.report()

    pane.ui.get_by_role("button", name="Open a reply with this text").click()

    dialog = outlook.page.get_by_role("dialog", name="Reply")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#reply-to")).to_have_text("rstone@mail.example")
    expect(dialog.get_by_label("Message")).to_have_value(reply_text)
    assert live.reports.calls[0].body["item_id"] == HATE_ID


def test_outlook_mobile_rest_ids_are_sent_in_ews_form(outlook: DemoOutlook, live: LiveService) -> None:
    pane = outlook.open_pane("Re: project review", client="ios")
    pane.fill("Bullying")
    answer = pane.report()

    assert answer["status"] == 201
    assert live.reports.calls[0].body["item_id"] == BULLYING_ID
    assert live.reports.calls[0].body["id_format"] == "ews"


def test_a_pinned_pane_with_nothing_typed_follows_the_selected_message(outlook: DemoOutlook, live: LiveService) -> None:
    pane = outlook.open_pane("You will regret this")
    pane.fill("Threat or violence")

    outlook.select("Saw you at the station")

    expect(pane.ui.locator("#msg-subject")).to_have_text("Saw you at the station")
    expect(pane.category("Threat or violence")).not_to_be_checked()
    pane.fill("Stalking")
    pane.report()
    assert live.reports.calls[0].body["item_id"] == STALKING_ID


def test_reporting_the_same_message_again_shows_the_same_case(outlook: DemoOutlook) -> None:
    first = outlook.open_pane("You will regret this")
    first.fill("Threat or violence")
    case_id = first.report()["body"]["case_id"]

    outlook.page.get_by_role("button", name="Close the Report harassment pane").click()
    again = outlook.open_pane("You will regret this")
    again.fill("Threat or violence")
    answer = again.report()

    assert answer["status"] == 200
    expect(again.case_number).to_have_text(case_id)
    expect(again.ui.locator("#receipt-replayed")).to_be_visible()


FAKE_MSAL = """
window.naaCalls = [];
window.msal = {
  createNestablePublicClientApplication: function (config) {
    window.naaCalls.push(["create", config.auth.clientId, config.auth.authority]);
    return Promise.resolve({
      acquireTokenSilent: function (request) {
        window.naaCalls.push(["silent"].concat(request.scopes));
        return Promise.reject(new Error("interaction_required"));
      },
      acquireTokenPopup: function (request) {
        window.naaCalls.push(["popup"].concat(request.scopes));
        return fetch("/demo/api/token", {
          method: "POST", headers: {"Content-Type": "application/json"}, body: '{"upn": "alex@contoso.com"}'
        }).then(function (r) { return r.json(); }).then(function (b) { return {accessToken: b.access_token}; });
      }
    });
  }
};
"""


def test_where_nested_app_auth_is_supported_the_token_comes_from_msal(
    outlook: DemoOutlook, live: LiveService
) -> None:
    # The demo serves no MSAL, so this test stands in for it at MSAL's boundary: the pane-config
    # names a bundle, and the bundle is a fake that records how the pane uses it.
    integrity = "sha384-" + base64.b64encode(hashlib.sha384(FAKE_MSAL.encode()).digest()).decode()
    config = live.api("GET", "/api/v1/pane-config").json()
    config["msal"] = {"url": "/static/vendor/msal-browser.min.js?v=test", "integrity": integrity}
    page = outlook.page
    page.route("**/api/v1/pane-config", lambda route: route.fulfill(json=config))
    page.route("**/static/vendor/msal-browser.min.js*",
               lambda route: route.fulfill(body=FAKE_MSAL, content_type="text/javascript"))
    token_requests: list[str] = []
    page.on("request", lambda r: token_requests.append(r.url) if r.url.endswith("/demo/api/token") else None)

    pane = outlook.open_pane("You will regret this", client="windows")
    pane.fill("Threat or violence")
    answer = pane.report()

    assert answer["status"] == 201
    assert pane.frame.evaluate("window.naaCalls") == [
        ["create", config["client_id"], config["authority"]],
        ["silent", config["api_scope"]],
        ["popup", config["api_scope"]],
    ]
    assert len(token_requests) == 1
