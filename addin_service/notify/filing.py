"""The notification part of filing a report: who is told, what they read, and the outbox rows.

``ReportFiler`` calls :meth:`NotificationPlanner.prepare` after the capture and before the database
transaction (the directory is asked here, never inside a transaction), and
:meth:`PreparedNotifications.render` once the evidence is sealed (the investigating roles are told
its ledger entry), then passes :meth:`PreparedNotifications.writer` as the repository's ``extra`` so
the rows commit with the report. What the reporter's API answer may say (roles and status, never
addresses) and what the audit log records (every routing decision, never a note or a body) are both
built here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from addin_service.cases.origin import OriginAnalysis
from addin_service.cases.origin_headers import domain_of, in_domains, normalise_address
from addin_service.cases.routing import People, RoutingContext, RoutingMailboxes, RoutingPlan, plan_notifications
from addin_service.db.models import AuditRow, ReportRow
from addin_service.evidence.ports import SealedPackage
from addin_service.notify.compose import Composer, NewNotification, ReportFacts
from addin_service.notify.outbox import Outbox
from addin_service.notify.supervisors import SupervisorResolution, SupervisorResolver
from addin_service.settings import Settings

log = logging.getLogger("addin_service.notify.filing")


def mailboxes(settings: Settings) -> RoutingMailboxes:
    """The routing policy's view of the ``ADDIN_*_MAILBOX`` settings."""
    return RoutingMailboxes(
        security=settings.security_mailbox,
        fallback=settings.fallback_mailbox,
        internal_affairs=settings.internal_affairs_mailbox,
        internal_affairs_name=settings.internal_affairs_name,
        investigations=settings.investigations_mailbox,
        investigations_name=settings.investigations_name,
        security_attach_message=settings.security_attach_message,
    )


def _worth_asking_first(
    origin: OriginAnalysis, also_claimed: frozenset[str], accepted: tuple[str, ...]
) -> list[str]:
    """The claimed senders in the order the directory is asked about them (it is asked about only the
    first few): addresses in our accepted domains first, where a mailbox's aliases live, so that
    outside addresses put first cannot use up the lookups; within each, Exchange's own sender, then
    the From and Sender addresses, then addresses written in display names."""
    ordered = [
        a
        for a in dict.fromkeys(
            normalise_address(x)
            for x in (*sorted(also_claimed), *origin.claimed_senders, *origin.display_name_addresses)
        )
        if a
    ]
    return sorted(ordered, key=lambda a: in_domains(domain_of(a), accepted) is None)


@dataclass
class PreparedNotifications:
    """The plan for one report; once :meth:`render` has quoted the sealed evidence, its rendered
    notifications, ready to be written."""

    plan: RoutingPlan
    resolution: SupervisorResolution
    campaign_key: str | None
    _compose: Callable[[SealedPackage], list[NewNotification]] = field(repr=False)
    notifications: list[NewNotification] = field(default_factory=list)
    skipped: list[NewNotification] = field(default_factory=list)

    def render(self, sealed: SealedPackage) -> None:
        """Render every notification, quoting the evidence as sealed."""
        self.notifications = self._compose(sealed)

    def response(self) -> list[dict[str, Any]]:
        """What the reporter's API answer lists: roles and status, no addresses."""
        skipped = {n.dedupe_key for n in self.skipped}
        return [
            {"role": n.role, "status": "queued", "urgent": n.urgent}
            for n in self.notifications
            if n.dedupe_key not in skipped
        ]

    def audit(self) -> dict[str, Any]:
        """The routing decisions for the audit entry (addresses included; no note, no body)."""
        plan = self.plan.to_dict()
        return {
            "supervisor_source": self.resolution.source,
            "directory_available": self.resolution.directory_available,
            "directory_decisions": list(self.resolution.decisions),
            "decisions": plan["decisions"],
            "conflict_of_interest": plan["conflict_of_interest"],
            "sender_authenticated": plan["sender_authenticated"],
            "queued": [{"role": n.role, "to": n.recipient, "urgent": n.urgent} for n in self.notifications],
        }

    def writer(
        self, outbox: Outbox, *, case_id: str, report_id: str, body: dict[str, Any]
    ) -> Callable[[Session], None]:
        """The ``extra`` for ``ReportRepository.file``: insert the rows; if a concurrent report of
        the same campaign queued a once-per-campaign notice first (the security team's, the
        investigators'), drop ours from the stored answer and say so in the audit log — all in the
        filing transaction."""

        def write(session: Session) -> None:
            self.skipped = outbox.enqueue(session, case_id=case_id, report_id=report_id,
                                          notifications=self.notifications)
            if not self.skipped:
                return
            body["notifications"] = self.response()
            session.execute(
                update(ReportRow)
                .where(ReportRow.id == report_id)
                .values(response_json=json.dumps(body, sort_keys=True))
                .execution_options(synchronize_session=False)
            )
            session.add(
                AuditRow(
                    at=datetime.now(UTC),
                    actor="addin-service",
                    action="routing.adjusted",
                    case_id=case_id,
                    report_id=report_id,
                    details=json.dumps(
                        {
                            "decision": "A report of the same message filed at the same moment already queued "
                            "this campaign's notice for these recipients; it is not queued twice.",
                            "not_queued": [{"role": n.role, "to": n.recipient} for n in self.skipped],
                        },
                        sort_keys=True,
                    ),
                )
            )

        return write


class NotificationPlanner:
    """Resolves the chain, applies the routing policy and renders, for one report."""

    def __init__(self, settings: Settings, outbox: Outbox, resolver: SupervisorResolver, composer: Composer) -> None:
        self._settings = settings
        self._outbox = outbox
        self._resolver = resolver
        self._composer = composer
        self._mailboxes = mailboxes(settings)
        self._security_team = frozenset(settings.security_team)
        self._security_ids = tuple(a for a in (settings.security_mailbox, *settings.security_team) if a)
        told_once = (settings.security_mailbox, settings.internal_affairs_mailbox, settings.investigations_mailbox)
        self._campaign_recipients = tuple(a for a in told_once if a)

    def prefetch(self, reporter: str) -> None:
        """Start looking up the reporter's managers in the background (see ``supervisors``)."""
        self._resolver.prefetch(reporter)

    def close(self) -> None:
        """Stop background lookups."""
        self._resolver.close()

    def prepare(
        self,
        *,
        case_id: str,
        report_id: str,
        reporter: str,
        category: str,
        feels_unsafe: bool,
        origin: OriginAnalysis,
        sender_address: str | None,
        also_claimed: frozenset[str],
        campaign_key: str | None,
        reported_at: datetime,
        case_senders: frozenset[str] = frozenset(),
    ) -> PreparedNotifications:
        """Plan, ready to render once the evidence is sealed (:meth:`PreparedNotifications.render`).
        Never raises for a directory problem (it falls back and says why). ``case_senders``: the
        senders the case's earlier reports named (``ReportRepository.case_senders``).

        :raises DatabaseUnavailable: the campaign lookup could not be made.
        """
        claimed = (*origin.claimed_senders, *origin.display_name_addresses, *also_claimed)
        ask_first = _worth_asking_first(origin, also_claimed, self._settings.accepted_domains)
        resolution = self._resolver.resolve(reporter, ask_first, watched=self._security_ids)
        told = (
            self._outbox.campaign_told(campaign_key, case_id, self._campaign_recipients, urgent=feels_unsafe)
            if campaign_key
            else frozenset()
        )
        context = RoutingContext(
            reporter=reporter,
            supervisor_chain=resolution.chain,
            supervisor_source=resolution.source,
            origin=origin,
            mailboxes=self._mailboxes,
            feels_unsafe=feels_unsafe,
            campaign=bool(campaign_key),
            campaign_told=told,
            aliases=resolution.aliases,
            security_team=self._security_team,
            also_claimed=also_claimed,
            case_senders=case_senders,
            not_looked_up=tuple(
                a for a in resolution.not_looked_up if in_domains(domain_of(a), self._settings.accepted_domains)
            ),
        )
        plan = plan_notifications(context)
        people = People(resolution.aliases)
        claimed_addresses = [a for a in (normalise_address(c) for c in (*claimed, *case_senders)) if a]

        def is_sender(address: str) -> bool:
            """The routing policy's own test (who is who by alias), for the managers to escalate to."""
            return people.matches_any(address, claimed_addresses)

        extra = [plan.security_stand_in] if plan.security_stand_in else []
        facts = ReportFacts(
            case_id=case_id,
            report_id=report_id,
            reporter=reporter,
            reported_at=reported_at,
            category=category,
            feels_unsafe=feels_unsafe,
            origin=origin,
            sender_address=sender_address,
            reporter_name=resolution.names.get(normalise_address(reporter)),
        )

        def compose(sealed: SealedPackage) -> list[NewNotification]:
            return self._composer.for_plan(
                plan,
                replace(facts, message_sha256=sealed.message_sha256, ledger_entry=sealed.ledger_entry),
                campaign_key=campaign_key,
                chain=resolution.chain,
                names=resolution.names,
                escalation_extra=extra,
                is_sender=is_sender,
            )

        return PreparedNotifications(plan, resolution, campaign_key, compose)
