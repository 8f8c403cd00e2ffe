"""What each person reads: the rendered notifications, per role, in text and HTML."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from addin_service.cases.origin import analyze_origin
from addin_service.cases.routing import RoutingContext, plan_notifications
from addin_service.notify.compose import TEMPLATES, Composer, NewNotification, ReportFacts, message_id_for
from addin_service.notify.filing import mailboxes
from tests.fakes.notify_settings import notify_settings as settings

REPORTER = "alex@contoso.com"
SUPERVISOR = "morgan@contoso.com"
SKIP_LEVEL = "sam@contoso.com"
CASE = "HR-2026-7K3M9Q2X"
REPORT = "R-0123456789ABCDEF"
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


# The sending side's own hop: below it, nothing our mail system wrote can be.
SENDER_HOP = ("Received", "from [198.51.100.4] by mx.example.net; Tue, 25 Nov 2026 08:59:58 +0000")


def external_headers(display: str = "D. Mercer") -> list[tuple[str, str]]:
    return [
        ("Received", "from mx.example.net (192.0.2.7) by mail.contoso.com; Tue, 25 Nov 2026 09:00:00 +0000"),
        ("Authentication-Results", "mail.contoso.com; spf=fail smtp.mailfrom=example.net; dmarc=fail"),
        SENDER_HOP,
        ("From", f'"{display}" <dmercer@example.net>'),
        ("To", REPORTER),
        ("Subject", "THE SUBJECT OF THE REPORTED MESSAGE"),
    ]


def internal_headers(sender: str) -> list[tuple[str, str]]:
    return [
        ("X-MS-Exchange-Organization-AuthAs", "Internal"),
        ("From", f"Someone <{sender}>"),
        ("To", REPORTER),
        ("Subject", "THE SUBJECT OF THE REPORTED MESSAGE"),
    ]


def render(
    headers: list[tuple[str, str]] | None = None,
    *,
    feels_unsafe: bool = False,
    chain: tuple[str, ...] = (SUPERVISOR, SKIP_LEVEL),
    names: dict[str, str] | None = None,
    sender: str | None = None,
    **env: str,
) -> dict[str, NewNotification]:
    s = settings(**env)
    origin = analyze_origin(headers or external_headers(), s.accepted_domains)
    plan = plan_notifications(
        RoutingContext(
            reporter=REPORTER,
            supervisor_chain=chain,
            supervisor_source="directory",
            origin=origin,
            mailboxes=mailboxes(s),
            feels_unsafe=feels_unsafe,
        )
    )
    facts = ReportFacts(
        case_id=CASE,
        report_id=REPORT,
        reporter=REPORTER,
        reported_at=datetime(2026, 11, 25, 9, 30, tzinfo=UTC),
        category="threat-or-violence",
        feels_unsafe=feels_unsafe,
        origin=origin,
        sender_address=origin.from_address,
        reporter_name="Alex Wilber",
    )
    composer = Composer(
        s,
        lambda key: f"https://reports.contoso.com/ack/token-for-{key[:8]}",
        lambda case_id, key: f"https://reports.contoso.com/cases/{case_id}?access=token-for-{key[:8]}",
    )
    rendered = composer.for_plan(
        plan, facts, campaign_key=None, chain=chain, names=names or {SUPERVISOR: "Morgan Lee"},
        escalation_extra=[s.security_mailbox or ""],
        is_sender=lambda address: address == sender,
    )
    return {n.role: n for n in rendered}


def test_the_supervisor_reads_the_case_the_reporter_and_what_to_do_next() -> None:
    supervisor = render()["supervisor"]

    for body in (supervisor.text, supervisor.html):
        assert CASE in body
        assert "Alex Wilber" in body
        assert "Dear Morgan Lee" in body
        assert "Talk with Alex Wilber soon, in private" in body
        assert "24/7 technical support centre" in body
        assert "incident response centre" in body
        assert "Office of Investigations" in body
        assert "Employee Assistance Program" in body
        assert "https://reports.contoso.com/cases/" + CASE in body
    assert supervisor.subject == f"A member of your team reported harassment (case {CASE})"
    assert not supervisor.attach_message


def test_a_supervisor_never_reads_the_reported_message_subject_or_content() -> None:
    supervisor = render()["supervisor"]

    for body in (supervisor.text, supervisor.html, supervisor.subject):
        assert "THE SUBJECT OF THE REPORTED MESSAGE" not in body


def test_outside_internal_and_spoofed_senders_are_told_apart() -> None:
    outside = render()["supervisor"].text
    inside = render(internal_headers("riley@contoso.com"))["supervisor"].text
    spoofed = render(
        [("Authentication-Results", "mail.contoso.com; dmarc=fail header.from=contoso.com"),
         SENDER_HOP,
         ("From", "riley@contoso.com")]
    )["supervisor"].text

    assert "outside the organisation" in outside and "NO - the message may be forged" in outside
    assert "inside the organisation" in inside and "Internal Affairs" in inside
    assert "yes, our mail system verified the sender" in inside
    assert "made to look as if it came from inside (spoofed)" in spoofed


def test_values_are_escaped_in_html_and_kept_as_text_in_plain_text() -> None:
    notifications = render(names={SUPERVISOR: HOSTILE})

    html = notifications["supervisor"].html
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE in notifications["supervisor"].text


def test_a_line_break_in_a_name_never_starts_a_line_of_its_own_in_the_text_part() -> None:
    """An escalation audit: a directory display name with CR/LF printed "Bcc: leak@evil.example"
    as a line of its own under the facts of the plain-text part."""
    notifications = render(names={SUPERVISOR: "Morgan Lee\r\nBcc: leak@evil.example\u2028To: x@evil.example"})

    text = notifications["supervisor"].text
    assert "Morgan Lee Bcc: leak@evil.example To: x@evil.example" in text
    assert not [line for line in text.splitlines() if line.startswith(("Bcc:", "To:"))]


@pytest.mark.parametrize("role", ["reporter", "supervisor", "investigations", "security"])
def test_html_has_no_scripts_and_no_remote_images(role: str) -> None:
    html = render(feels_unsafe=True)[role].html

    assert "<script" not in html.lower()
    assert not re.search(r"<img\b", html, re.IGNORECASE)
    assert "url(" not in html
    assert html.startswith("<!DOCTYPE html>")


def test_every_template_exists_in_three_parts() -> None:
    folder = Path(__file__).resolve().parents[2] / "addin_service" / "notify" / "templates"

    for name in TEMPLATES:
        for part in ("subject", "txt", "html"):
            assert (folder / f"{name}.{part}.j2").is_file(), f"{name}.{part}.j2"


def test_feeling_unsafe_makes_every_message_urgent_with_the_24_7_numbers_first() -> None:
    notifications = render(feels_unsafe=True)

    for n in notifications.values():
        assert n.urgent
        assert n.subject.startswith("[URGENT] ")
        for body in (n.text, n.html):
            first_phone = body.index("+1 555 0199")
            steps = "What you can do now" if n.role == "reporter" else "What to do next"
            assert first_phone < body.index(steps), n.role
            if n.role != "reporter":
                assert first_phone < body.index("Reported by"), n.role
            assert "call emergency services" in body[: first_phone + 300]


def test_the_reporter_gets_the_guidance() -> None:
    receipt = render()["reporter"]

    for body in (receipt.text, receipt.html):
        assert "reply once, civilly, that you want no further contact" in body
        assert "do not reply again" in body
        assert "Keep everything" in body
        assert "+1 555 0100" in body  # the Employee Assistance Program
        assert "+1 555 0199" in body  # 24/7
        assert "If you are in immediate danger, call emergency services now: 911" in body
        assert CASE in body
    assert "/ack/" not in receipt.text


def test_a_reporter_who_feels_unsafe_is_told_not_to_wait() -> None:
    receipt = render(feels_unsafe=True)["reporter"]

    assert "You do not have to wait for anyone" in receipt.text
    assert receipt.text.index("+1 555 0199") < receipt.text.index("Your case number")


def test_the_skip_level_manager_reads_why_the_supervisor_was_not_told() -> None:
    notifications = render(internal_headers(SUPERVISOR))

    assert "supervisor" not in notifications
    skip = notifications["skip-level"]
    assert skip.recipient == SKIP_LEVEL
    for body in (skip.text, skip.html):
        assert "You are told instead of their" in body
        assert f"supervisor ({SUPERVISOR}) appears to be the sender of the reported message" in body
        assert body.replace("&#39;", "'").count("The sender's identity was authenticated") == 1


def test_the_security_team_reads_how_the_origin_was_decided_and_gets_the_message() -> None:
    security = render()["security"]

    assert security.attach_message
    assert "How the origin was decided" in security.text
    assert "attached exactly as Exchange returned it" in security.text


def test_without_the_attachment_the_security_team_is_told_how_to_export() -> None:
    security = render(ADDIN_SECURITY_ATTACH_MESSAGE="false")["security"]

    assert not security.attach_message
    assert f"addin-service evidence export {CASE}" in security.text


def test_managers_get_an_acknowledgement_link_and_an_escalation_target() -> None:
    notifications = render()

    supervisor = notifications["supervisor"]
    assert supervisor.ack_required
    assert "https://reports.contoso.com/ack/token-for-" in supervisor.text
    assert supervisor.escalate_to == (SKIP_LEVEL, "security@contoso.com")
    assert not notifications["security"].ack_required
    assert "/ack/" not in notifications["security"].text


def test_the_escalation_never_targets_the_claimed_sender() -> None:
    chain = (SUPERVISOR, SKIP_LEVEL, "ceo@contoso.com")
    notifications = render(internal_headers(SKIP_LEVEL), chain=chain, sender=SKIP_LEVEL)

    assert notifications["supervisor"].escalate_to == ("ceo@contoso.com", "security@contoso.com")


def test_the_message_id_is_deterministic_and_carries_no_address() -> None:
    first = message_id_for(REPORT, "supervisor", "Morgan@Contoso.com", "contoso.com")

    assert first == message_id_for(REPORT, "supervisor", "morgan@contoso.com", "contoso.com")
    assert first != message_id_for(REPORT, "security", "morgan@contoso.com", "contoso.com")
    assert re.fullmatch(r"<R-0123456789ABCDEF\.supervisor\.[0-9a-f]{16}@contoso\.com>", first)
    assert "morgan" not in first


def test_the_escalation_names_the_case_and_how_long_it_waited() -> None:
    composer = Composer(settings(), lambda key: "https://reports.contoso.com/ack/x")
    escalation = composer.escalation(
        case_id=CASE,
        recipient=SKIP_LEVEL,
        first_role="supervisor",
        first_sent_at=datetime(2026, 11, 25, 9, 30, tzinfo=UTC),
        urgent=False,
        hours=24,
    )

    assert escalation.subject == f"Not yet acknowledged: harassment report {CASE}"
    assert "sent to the reporter's supervisor on 2026-11-25 09:30 UTC" in escalation.text
    assert "within 24 hours" in escalation.text


@pytest.mark.parametrize(("hours", "said"), [(0.5, "within 30 minutes"), (1 / 60, "within 1 minute"),
                                             (5 / 3600, "within 5 seconds"), (72, "within 3 days")])
def test_the_escalation_says_how_long_it_waited_in_the_right_unit(hours: float, said: str) -> None:
    composer = Composer(settings(), lambda key: "https://reports.contoso.com/ack/x")
    escalation = composer.escalation(
        case_id=CASE, recipient=SKIP_LEVEL, first_role="supervisor",
        first_sent_at=datetime(2026, 11, 25, 9, 30, tzinfo=UTC), urgent=False, hours=hours,
    )

    assert said in escalation.text


def test_an_urgent_escalation_is_not_taken_for_an_earlier_calm_one_of_the_same_case() -> None:
    """In a campaign case each reporter's report escalates on its own; the security team told once
    that nobody confirmed must still hear, urgently, about a later reporter who feels unsafe."""
    composer = Composer(settings(), lambda key: "https://reports.contoso.com/ack/x")

    def escalate(urgent: bool) -> NewNotification:
        return composer.escalation(
            case_id=CASE,
            recipient="security@contoso.com",
            first_role="supervisor",
            first_sent_at=datetime(2026, 11, 25, 9, 30, tzinfo=UTC),
            urgent=urgent,
            hours=24,
        )

    calm, calm_again, urgent = escalate(False), escalate(False), escalate(True)

    assert calm.dedupe_key == calm_again.dedupe_key  # told once per case...
    assert urgent.dedupe_key != calm.dedupe_key  # ...and once more when urgent
    assert urgent.message_id != calm.message_id  # or the Sent Items check would take it as sent
    assert urgent.urgent and urgent.subject.startswith("[URGENT]")


def test_the_fallback_mailbox_is_told_what_it_stands_in_for() -> None:
    for_manager = render(chain=())["fallback"]
    for_security = render(ADDIN_SECURITY_MAILBOX="")["fallback"]

    assert "no supervisor to tell" in for_manager.subject
    assert "Fix the reporter's manager" in for_manager.text and "Fix the reporter's manager" in for_manager.html
    assert "in the security team's place" in for_security.subject
    assert "supervisor" not in for_security.subject
    assert "Fix the reporter's manager" not in for_security.text + for_security.html
