"""The reporter's receipt says who was told, by role, from the actual routing plan: never a name or
an address other than the reporter's own, and never a supervisor who was not told."""

from __future__ import annotations

import html as html_lib
import re
from datetime import UTC, datetime

from addin_service.cases.origin import analyze_origin
from addin_service.cases.routing import (
    PlannedNotification,
    Role,
    RoutingContext,
    RoutingPlan,
    plan_notifications,
)
from addin_service.notify.compose import Composer, NewNotification, ReportFacts
from addin_service.notify.filing import mailboxes
from tests.fakes.notify_settings import FALLBACK, SECURITY
from tests.fakes.notify_settings import INTERNAL_AFFAIRS as IA
from tests.fakes.notify_settings import INVESTIGATIONS as OI
from tests.fakes.notify_settings import notify_settings as settings

REPORTER = "alex@contoso.com"
SUPERVISOR = "morgan@contoso.com"
SKIP_LEVEL = "sam@contoso.com"
CASE = "HR-2026-7K3M9Q2X"
SECURITY_LABEL = "The security team (network administrator and incident response)"
SKIP_LEVEL_LABEL = "The next manager up (instead of your supervisor)"
FALLBACK_LABEL = "The team that handles these reports"
_ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def external_headers() -> list[tuple[str, str]]:
    return [
        ("Authentication-Results", "mail.contoso.com; spf=fail smtp.mailfrom=example.net; dmarc=fail"),
        ("From", '"D. Mercer" <dmercer@example.net>'),
        ("To", REPORTER),
    ]


def internal_headers(sender: str) -> list[tuple[str, str]]:
    return [
        ("X-MS-Exchange-Organization-AuthAs", "Internal"),
        ("From", f"Someone <{sender}>"),
        ("To", REPORTER),
    ]


def told(role: Role, to: str, also_as: tuple[Role, ...] = ()) -> PlannedNotification:
    return PlannedNotification(role, to, "why", urgent=False, attach_message=False, also_as=also_as)


def plan_of(*notifications: PlannedNotification, already_told: tuple[Role, ...] = ()) -> RoutingPlan:
    return RoutingPlan(
        notifications=(*notifications, told("reporter", REPORTER)),
        decisions=(),
        conflict_of_interest=False,
        sender_authenticated=None,
        already_told=already_told,
    )


def receipt(plan: RoutingPlan, headers: list[tuple[str, str]] | None = None, **env: str) -> NewNotification:
    s = settings(**env)
    origin = analyze_origin(headers or external_headers(), s.accepted_domains)
    facts = ReportFacts(
        case_id=CASE,
        report_id="R-0123456789ABCDEF",
        reporter=REPORTER,
        reported_at=datetime(2026, 11, 25, 9, 30, tzinfo=UTC),
        category="bullying",
        feels_unsafe=False,
        origin=origin,
        sender_address=origin.from_address,
    )
    rendered = Composer(s).for_plan(plan, facts, campaign_key=None, chain=(), names={})
    return next(n for n in rendered if n.role == "reporter")


def routed_receipt(chain: tuple[str, ...], headers: list[tuple[str, str]], **env: str) -> NewNotification:
    """The receipt for a plan made by the real routing policy."""
    s = settings(**env)
    plan = plan_notifications(
        RoutingContext(
            reporter=REPORTER,
            supervisor_chain=chain,
            supervisor_source="directory" if chain else "fallback",
            origin=analyze_origin(headers, s.accepted_domains),
            mailboxes=mailboxes(s),
        )
    )
    return receipt(plan, headers, **env)


def told_in_text(n: NewNotification) -> list[str]:
    lines = n.text.split("Who has been told about your report:\n", 1)[1].splitlines()
    return [line[2:] for line in lines[: next(i for i, line in enumerate(lines) if not line.startswith("- "))]]


def told_in_html(n: NewNotification) -> list[str]:
    block = n.html.split("Who has been told about your report</p>", 1)[1].split("</ul>", 1)[0]
    return [html_lib.unescape(item) for item in re.findall(r"<li[^>]*>(.*?)</li>", block)]


def told_list(n: NewNotification) -> list[str]:
    in_text = told_in_text(n)
    assert told_in_html(n) == in_text
    return in_text


def test_a_supervisor_and_security_plan_names_the_supervisor_and_the_security_team() -> None:
    n = receipt(plan_of(told("supervisor", SUPERVISOR), told("security", SECURITY)))

    assert told_list(n) == ["Your supervisor", SECURITY_LABEL]


def test_the_list_follows_role_order_whatever_order_the_plan_has() -> None:
    n = receipt(plan_of(told("security", SECURITY), told("investigations", OI), told("supervisor", SUPERVISOR)))

    assert told_list(n) == ["Your supervisor", "Office of Investigations", SECURITY_LABEL]


def test_a_fallback_only_plan_never_says_the_supervisor_was_told() -> None:
    n = receipt(plan_of(told("fallback", FALLBACK)))

    assert told_list(n) == [FALLBACK_LABEL]
    for body in (n.text, n.html):
        assert "supervisor" not in body.lower()


def test_with_no_supervisor_found_the_receipt_names_the_fallback_team_not_a_supervisor() -> None:
    n = routed_receipt((), external_headers())

    assert told_list(n) == [
        "Office of Investigations",
        SECURITY_LABEL,
        FALLBACK_LABEL,
    ]
    assert "Your supervisor" not in n.text and "Your supervisor" not in n.html


def test_when_the_supervisor_is_the_sender_the_receipt_names_the_next_manager_up_instead() -> None:
    n = routed_receipt((SUPERVISOR, SKIP_LEVEL), internal_headers(SUPERVISOR))

    assert told_list(n) == [SKIP_LEVEL_LABEL, "Internal Affairs", SECURITY_LABEL]
    assert "Your supervisor" not in told_list(n)


def test_investigators_are_named_as_configured() -> None:
    n = receipt(
        plan_of(told("internal-affairs", IA), told("investigations", OI)),
        ADDIN_INTERNAL_AFFAIRS_NAME="Professional Standards <Unit>",
        ADDIN_INVESTIGATIONS_NAME="Fraud & Threats Office",
    )

    assert told_list(n) == ["Professional Standards <Unit>", "Fraud & Threats Office"]
    assert "Professional Standards &lt;Unit&gt;" in n.html and "<Unit>" not in n.html
    assert "Fraud &amp; Threats Office" in n.html


def test_roles_merged_into_one_notification_are_each_listed_once() -> None:
    n = receipt(
        plan_of(
            told("supervisor", SUPERVISOR),
            told("internal-affairs", IA, also_as=("security", "fallback")),
            told("fallback", FALLBACK, also_as=("security",)),
        )
    )

    assert told_list(n) == [
        "Your supervisor",
        "Internal Affairs",
        SECURITY_LABEL,
        FALLBACK_LABEL,
    ]


def test_roles_an_earlier_report_of_the_campaign_told_are_listed_without_mentioning_it() -> None:
    n = receipt(plan_of(told("supervisor", SUPERVISOR), already_told=("security",)))

    told_now = receipt(plan_of(told("supervisor", SUPERVISOR), told("security", SECURITY)))

    assert told_list(n) == ["Your supervisor", SECURITY_LABEL]
    # Word for word what a reporter reads when the security team was told for this very report.
    assert (n.text, n.html) == (told_now.text, told_now.html)


def test_nobody_told_says_so_and_points_to_help_with_the_case_number() -> None:
    n = receipt(plan_of())

    for body in (n.text, n.html):
        assert "Who has been told" not in body
        assert "Nobody else could be told about your report automatically" in body
        assert "Your case is still filed" in body
        assert "Where to get help" in body and "+1 555 0100" in body and "+1 555 0199" in body
        assert CASE in body
        assert "supervisor" not in body.lower() and "security team" not in body.lower()


def test_the_receipt_holds_no_address_but_the_reporters() -> None:
    n = routed_receipt((SUPERVISOR, SKIP_LEVEL), internal_headers(SUPERVISOR))

    for body in (n.text, n.html, n.subject):
        assert set(_ADDRESS.findall(body)) <= {REPORTER}
        for other in (SUPERVISOR, SKIP_LEVEL, SECURITY, FALLBACK, IA, OI):
            assert other not in body
