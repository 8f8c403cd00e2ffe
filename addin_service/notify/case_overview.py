"""What the case page shows: a case's state and who has been told, without anything confidential.

Read-only queries for :mod:`addin_service.notify.case_page`. The overview never holds a message, a
note, an address or a subject: only the case's own facts, how many reports it holds, and per role
how many notifications went out, arrived and were confirmed. A campaign case can hold a thousand
reports, so the roles are counted in the database, not listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select

from addin_service.db.database import Database
from addin_service.db.models import CaseRow, ReportRow
from addin_service.notify.models import OutboxRow
from addin_service.notify.outbox import is_named_sender


@dataclass(frozen=True)
class RoleProgress:
    """The notifications of one role in a case, counted."""

    role: str
    told: int
    delivered: int
    failed: int
    confirmed: int
    confirmation_expected: int


@dataclass(frozen=True)
class CaseOverview:
    case_id: str
    status: str
    opened_at: datetime
    updated_at: datetime
    urgent: bool
    origin: str | None
    reports: int
    latest_report_at: datetime | None
    roles: tuple[RoleProgress, ...]


@dataclass(frozen=True)
class NotificationStatus:
    """The notification a case link was sent in: whose view of the case this is."""

    case_id: str
    role: str
    state: str
    sent_at: datetime | None
    acknowledged_at: datetime | None
    ack_required: bool
    named_as_sender: bool = False  # the recipient is a sender of the case (the reporter's receipt excepted)


def notification_status(database: Database, dedupe_key: str) -> NotificationStatus | None:
    """The notification with this dedupe key, or None.

    :raises DatabaseUnavailable: the database cannot be reached.
    """
    with database.connection(write=False) as connection:
        row = connection.execute(
            select(
                OutboxRow.case_id,
                OutboxRow.role,
                OutboxRow.recipient,
                OutboxRow.state,
                OutboxRow.sent_at,
                OutboxRow.acknowledged_at,
                OutboxRow.ack_required,
            ).where(OutboxRow.dedupe_key == dedupe_key)
        ).first()
        if row is None:
            return None
        named = is_named_sender(connection, row.case_id, row.role, row.recipient)
    return NotificationStatus(
        row.case_id,
        row.role,
        row.state,
        row.sent_at,
        row.acknowledged_at,
        row.ack_required,
        named_as_sender=named,
    )


def case_overview(database: Database, case_id: str) -> CaseOverview | None:
    """The case's state and its notifications counted by role, or None if there is no such case.

    :raises DatabaseUnavailable: the database cannot be reached.
    """
    with database.connection(write=False) as connection:
        found = connection.execute(
            select(CaseRow.status, CaseRow.created_at, CaseRow.updated_at, CaseRow.urgent, CaseRow.origin).where(
                CaseRow.id == case_id
            )
        ).first()
        if found is None:
            return None
        reports = connection.execute(
            select(func.count(), func.max(ReportRow.created_at)).where(ReportRow.case_id == case_id)
        ).one()
        roles = connection.execute(
            select(
                OutboxRow.role,
                func.count(),
                func.sum(case((OutboxRow.state == "sent", 1), else_=0)),
                func.sum(case((OutboxRow.state == "dead", 1), else_=0)),
                func.count(OutboxRow.acknowledged_at),
                func.sum(case((OutboxRow.ack_required, 1), else_=0)),
            )
            .where(OutboxRow.case_id == case_id)
            .group_by(OutboxRow.role)
            .order_by(func.min(OutboxRow.id))
        ).all()
    return CaseOverview(
        case_id=case_id,
        status=found.status,
        opened_at=found.created_at,
        updated_at=found.updated_at,
        urgent=found.urgent,
        origin=found.origin,
        reports=int(reports[0]),
        latest_report_at=reports[1],
        roles=tuple(
            RoleProgress(role, int(told), int(sent or 0), int(dead or 0), int(acked), int(expected or 0))
            for role, told, sent, dead, acked, expected in roles
        ),
    )
