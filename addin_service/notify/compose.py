"""From a routing plan to notification emails: subject, plain text and HTML, ready to queue.

Rendering happens while a report is filed, so the outbox row holds exactly what each person is
sent (an answer to "what did we tell the supervisor?") and the worker only has to hand it over.
What the templates may show is decided here, not in the templates: no note, no message body, no
subject of the reported message, no attachment for managers. The security team's copy of the
message is attached at send time from the evidence store (``attach_message``).

Templates (``notify/templates``) are Jinja2 with autoescaping for ``*.html.j2``. The HTML is meant
for Outlook: tables, inline styles, no scripts, no remote images.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from addin_service.cases.origin import OriginAnalysis, verdict_words
from addin_service.cases.origin_headers import normalise_address
from addin_service.cases.routing import (
    MANAGER_ROLES,
    ROLE_ORDER,
    PlannedNotification,
    RoutingPlan,
    reporter_role_labels,
)
from addin_service.settings import Settings

DEFAULT_MESSAGE_ID_DOMAIN = "report-harassment.invalid"
URGENT_PREFIX = "[URGENT] "
TEMPLATES = (
    "supervisor",
    "skip-level",
    "security",
    "internal-affairs",
    "investigations",
    "fallback",
    "reporter",
    "escalation",
)
CATEGORY_LABELS = {
    "threat-or-violence": "Threat or violence",
    "sexual-harassment": "Sexual harassment",
    "stalking": "Stalking or unwanted contact",
    "hate-or-bias": "Hate or bias",
    "bullying": "Bullying or intimidation",
    "other": "Other harassment",
}
# Roles whose notification a person must acknowledge; unacknowledged ones are escalated.
ACK_ROLES = frozenset({"supervisor", "skip-level", "fallback"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]+")


def one_line(value: str, limit: int = 200) -> str:
    """``value`` with every control character (CR, LF, TAB, NUL, Unicode line breaks) turned into
    one space and trimmed to ``limit`` characters: safe for a header or a subject line."""
    flat = _CONTROL.sub(" ", value).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _on_its_line(value: Any) -> Any:
    """A template value with its control characters as spaces (markup our templates built is kept)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return _CONTROL.sub(" ", value)
    return value


def dedupe_key(*parts: str) -> str:
    """The outbox's uniqueness key: sha256 hex of the parts joined by NUL."""
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def campaign_notice_key(campaign_key: str, case_id: str, recipient: str, *, urgent: bool) -> str:
    """The dedupe key of a notice told once per campaign (the security team, the investigators): one
    per recipient, and one more when a reporter feels unsafe, so that report still arrives urgent."""
    return dedupe_key("campaign-notice", campaign_key, case_id, normalise_address(recipient), str(urgent))


def message_id_for(local_id: str, role: str, recipient: str, domain: str) -> str:
    """A deterministic ``Message-ID``: ``<report-id.role.hash@domain>``. The recipient is hashed so
    the id does not carry an address; the same (report, role, recipient) always gives the same id,
    which is what lets a worker ask the mail system whether a send it is unsure about went out."""
    digest = hashlib.sha256(recipient.strip().lower().encode("utf-8")).hexdigest()[:16]
    safe_local = re.sub(r"[^A-Za-z0-9-]", "-", local_id)
    safe_role = re.sub(r"[^a-z0-9-]", "-", role.lower())
    return f"<{safe_local}.{safe_role}.{digest}@{domain}>"


def message_id_domain(settings: Settings) -> str:
    """The notify_from domain, else ``report-harassment.invalid``."""
    if settings.notify_from and "@" in settings.notify_from:
        return settings.notify_from.rsplit("@", 1)[1].lower()
    return DEFAULT_MESSAGE_ID_DOMAIN


@dataclass(frozen=True)
class ReportFacts:
    """What the notifications may say about a report. Deliberately no note and no message content."""

    case_id: str
    report_id: str
    reporter: str
    reported_at: datetime
    category: str
    feels_unsafe: bool
    origin: OriginAnalysis
    sender_address: str | None
    reporter_name: str | None = None
    # Once the evidence is sealed: quoted to the investigating roles as a record, outside the
    # evidence store, of what was sealed (``evidence verify --expect`` checks the ledger entry).
    message_sha256: str | None = None
    ledger_entry: str | None = None


@dataclass(frozen=True)
class NewNotification:
    """A rendered notification, ready for an outbox row."""

    role: str
    template: str
    recipient: str
    subject: str
    text: str = field(repr=False)
    html: str = field(repr=False)
    urgent: bool
    attach_message: bool
    ack_required: bool
    message_id: str
    dedupe_key: str
    escalate_to: tuple[str, ...] = ()
    campaign_once: bool = False  # queued at most once per campaign and urgency (see campaign_notice_key)


AckLink = Callable[[str], str]  # dedupe_key → absolute URL of the acknowledgement page
CaseLink = Callable[[str, str], str]  # (case_id, dedupe_key) → absolute URL of the case page


class Composer:
    """Renders notifications with the package's templates and the service's contacts."""

    def __init__(
        self, settings: Settings, ack_link: AckLink | None = None, case_link: CaseLink | None = None
    ) -> None:
        self._settings = settings
        self._ack_link = ack_link
        self._case_link = case_link
        self._domain = message_id_domain(settings)
        self._env = Environment(
            loader=PackageLoader("addin_service.notify", "templates"),
            autoescape=select_autoescape(
                enabled_extensions=("html.j2",),
                disabled_extensions=("txt.j2", "subject.j2"),
                default_for_string=True,
                default=True,
            ),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            # Packaged templates never change while the service runs: without this, every render of
            # a template that extends or includes another stats the files to see if they changed.
            auto_reload=False,
            # A display name or subject with a line break would start a line of its own in the text
            # part ("Bcc: …" under the facts): every value prints on the line it is placed on.
            finalize=_on_its_line,
        )

    # -- filing ------------------------------------------------------------------------------

    def for_plan(
        self,
        plan: RoutingPlan,
        facts: ReportFacts,
        *,
        campaign_key: str | None,
        chain: Sequence[str],
        names: Mapping[str, str],
        escalation_extra: Sequence[str] = (),
        is_sender: Callable[[str], bool] = lambda _address: False,
    ) -> list[NewNotification]:
        """One rendered notification per planned one.

        ``chain`` is the cleaned management chain; the escalation target of a manager notification is
        the next person up who is not the claimed sender (``is_sender``), plus ``escalation_extra``
        (the mailbox routing put in the security team's place, ``RoutingPlan.security_stand_in``).
        With ``campaign_key``, notices the plan marks ``once_per_campaign`` are queued once per
        campaign (:func:`campaign_notice_key`).
        """
        rendered = []
        for planned in plan.notifications:
            ack = planned.role in ACK_ROLES
            escalate: tuple[str, ...] = ()
            if ack:
                escalate = tuple(
                    dict.fromkeys(
                        a
                        for a in (*_above(chain, planned.to, is_sender)[:1], *escalation_extra)
                        if a and normalise_address(a) != planned.to
                    )
                )
            once = planned.once_per_campaign and campaign_key is not None
            key = (
                campaign_notice_key(campaign_key or "", facts.case_id, planned.to, urgent=planned.urgent)
                if once
                else dedupe_key("report", facts.report_id, planned.role, planned.to)
            )
            context = self._context(planned.role, facts, plan, planned, names.get(planned.to))
            if ack and self._ack_link is not None:
                context["ack_url"] = self._ack_link(key)
            context["case_url"] = self._case_url(facts.case_id, key)
            rendered.append(
                self._render(
                    template=planned.role,
                    role=planned.role,
                    recipient=planned.to,
                    urgent=planned.urgent,
                    attach_message=planned.attach_message,
                    ack_required=ack,
                    message_id=message_id_for(facts.report_id, planned.role, planned.to, self._domain),
                    key=key,
                    escalate_to=escalate,
                    context=context,
                    campaign_once=once,
                )
            )
        return rendered

    # -- escalation --------------------------------------------------------------------------

    def escalation(
        self,
        *,
        case_id: str,
        recipient: str,
        first_role: str,
        first_sent_at: datetime,
        urgent: bool,
        hours: float,
    ) -> NewNotification:
        """The notice to the next level (and the security team) that nobody acknowledged a case.

        Once per case and recipient, and once more when urgent: in a campaign case each reporter's
        managers are escalated on their own, and a later reporter who feels unsafe must still reach
        someone an earlier, calmer escalation already told.
        """
        role = "escalation-urgent" if urgent else "escalation"
        key = dedupe_key(role, case_id, normalise_address(recipient))
        context = self._base_context(case_id, urgent)
        context.update(
            first_role=first_role,
            first_sent_at=_when(first_sent_at),
            hours=_hours(hours),
            ack_url=self._ack_link(key) if self._ack_link is not None else None,
            case_url=self._case_url(case_id, key),
        )
        return self._render(
            template="escalation",
            role="escalation",
            recipient=normalise_address(recipient),
            urgent=urgent,
            attach_message=False,
            ack_required=False,
            message_id=message_id_for(case_id, role, recipient, self._domain),
            key=key,
            escalate_to=(),
            context=context,
        )

    # -- rendering ---------------------------------------------------------------------------

    def _render(
        self,
        *,
        template: str,
        role: str,
        recipient: str,
        urgent: bool,
        attach_message: bool,
        ack_required: bool,
        message_id: str,
        key: str,
        escalate_to: tuple[str, ...],
        context: dict[str, Any],
        campaign_once: bool = False,
    ) -> NewNotification:
        context.setdefault("ack_url", None)
        context["urgent"] = urgent
        context["role"] = role
        subject = self._env.get_template(f"{template}.subject.j2").render(context)
        subject = one_line((URGENT_PREFIX if urgent else "") + subject)
        text = self._env.get_template(f"{template}.txt.j2").render(context)
        html = self._env.get_template(f"{template}.html.j2").render(context, subject=subject)
        return NewNotification(
            role=role,
            template=template,
            recipient=recipient,
            subject=subject,
            text=text,
            html=html,
            urgent=urgent,
            attach_message=attach_message,
            ack_required=ack_required,
            message_id=message_id,
            dedupe_key=key,
            escalate_to=escalate_to,
            campaign_once=campaign_once,
        )

    def _case_url(self, case_id: str, key: str) -> str | None:
        """This notification's own signed link to the case page (``notify/case_page.py``)."""
        return self._case_link(case_id, key) if self._case_link is not None else None

    def _base_context(self, case_id: str, urgent: bool) -> dict[str, Any]:
        s = self._settings
        return {
            "case_id": case_id,
            "case_url": None,  # per notification: see _case_url
            "urgent": urgent,
            "contacts": {
                "eap_name": s.eap_name,
                "eap_phone": s.eap_phone,
                "eap_url": s.eap_url,
                "support_phone": s.support_phone,
                "incident_response_phone": s.incident_response_phone,
                "emergency_number": s.emergency_number,
            },
            "internal_affairs_name": s.internal_affairs_name,
            "investigations_name": s.investigations_name,
        }

    def _context(
        self,
        role: str,
        facts: ReportFacts,
        plan: RoutingPlan,
        planned: PlannedNotification,
        recipient_name: str | None,
    ) -> dict[str, Any]:
        origin = facts.origin
        context = self._base_context(facts.case_id, planned.urgent)
        context.update(
            report_id=facts.report_id,
            reporter=facts.reporter,
            reporter_name=facts.reporter_name or facts.reporter,
            recipient_name=recipient_name,
            reported_at=_when(facts.reported_at),
            category=CATEGORY_LABELS.get(facts.category, facts.category),
            feels_unsafe=facts.feels_unsafe,
            verdict=origin.verdict,
            verdict_text=verdict_words(origin.verdict),
            internal=origin.is_internal,
            spoofed=origin.spoofed,
            authenticated=origin.authenticated,
            sender=facts.sender_address or origin.from_address or "",
            reason=planned.reason,
            conflict_note=plan.conflict_note if role != "reporter" else None,
            conflict=plan.conflict_of_interest,
            attach_message=planned.attach_message,
            origin_reasons=list(origin.reasons) if role == "security" else [],
            message_sha256=facts.message_sha256,
            ledger_entry=facts.ledger_entry,
            told=_told_labels(plan, self._settings) if role == "reporter" else [],
            # The fallback mailbox stands in for a manager when no manager is told, else for the
            # security team (none configured, or the sender is in it).
            for_manager=not any(n.role in MANAGER_ROLES for n in plan.notifications),
        )
        return context


def _told_labels(plan: RoutingPlan, settings: Settings) -> list[str]:
    """Who was told about the report, by role, as the reporter's receipt says it: in ROLE_ORDER,
    once each, never an address or a name. Roles merged into one notification (``also_as``) and
    roles an earlier report of the campaign told (``already_told``) count as told; the reporter is
    not listed."""
    told = {role for n in plan.notifications for role in (n.role, *n.also_as)}
    told.update(plan.already_told)
    told.discard("reporter")
    labels = reporter_role_labels(settings.internal_affairs_name, settings.investigations_name)
    return [labels[role] for role in ROLE_ORDER if role in told]


def _above(chain: Sequence[str], told: str, is_sender: Callable[[str], bool]) -> list[str]:
    """The managers above ``told`` in ``chain`` who are not the claimed sender (empty if ``told`` is
    not in the chain, e.g. a fallback mailbox)."""
    normal = [normalise_address(a) for a in chain]
    if told not in normal:
        return []
    return [a for a in normal[normal.index(told) + 1 :] if a and not is_sender(a)]


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _hours(hours: float) -> str:
    if hours >= 48 and hours % 24 == 0:
        return f"{int(hours // 24)} days"
    if hours >= 1:
        return f"{hours:g} hour" + ("" if hours == 1 else "s")
    minutes = round(hours * 60)
    if minutes >= 1:
        return f"{minutes} minute" + ("" if minutes == 1 else "s")
    seconds = max(1, round(hours * 3600))
    return f"{seconds} second" + ("" if seconds == 1 else "s")
