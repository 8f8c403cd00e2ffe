"""The outbox: notifications queued with the case, claimed by workers, sent once.

Writing (:meth:`Outbox.enqueue`) happens inside the filing transaction, through the session that
``ReportRepository.file(..., extra=...)`` hands over. Everything else runs in short transactions
of its own.

Claiming is one statement on both back ends::

    UPDATE outbox SET state='sending', lease_token=:t, attempts=attempts+1, next_attempt_at=:lease_end, ...
     WHERE id IN (SELECT id FROM outbox
                   WHERE state IN ('queued','sending') AND next_attempt_at <= :now
                   ORDER BY next_attempt_at, id LIMIT :n
                   [FOR UPDATE SKIP LOCKED])          -- PostgreSQL: workers never wait for each other
    RETURNING ...

On SQLite the write transaction (``BEGIN IMMEDIATE``) already serialises claimers, so the
conditional UPDATE is the claim. A ``sending`` row whose lease ran out (its worker died) matches
again; the claim then sets ``sent_check`` (as it does for every row that was tried before), and the
next worker asks the transport whether the message already went out before sending it again.
Finishing a row (:meth:`Outbox.mark_sent`, :meth:`Outbox.mark_failed`) is conditional on the lease
token, so a worker that lost its lease cannot overwrite the new owner's outcome.

Claims and outcomes commit without waiting for the disk (``durable=False``: SQLite
``synchronous=NORMAL``, PostgreSQL ``synchronous_commit=off``; still atomic and in order). A worker
that dies loses nothing by it — its commits are in the database already; only a crash of the
database server itself can forget the last fraction of a second of them, and then a notification
is at worst offered again (and found in Sent Items where the transport can look), never lost. The
rows themselves are written durably, with the report.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Executable,
    Insert,
    Row,
    Table,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from addin_service.cases.origin_headers import normalise_address
from addin_service.cases.routing import MAILBOX_ROLES, People
from addin_service.db.database import Database
from addin_service.db.models import AuditRow, CaseRow
from addin_service.db.reports import CaseReserver, ChosenCase, message_id_key, senders_of_case, senders_of_cases
from addin_service.notify.backoff import Backoff
from addin_service.notify.compose import NewNotification, campaign_notice_key
from addin_service.notify.models import OUTBOX_STATES, PENDING_SQL, CampaignRow, OutboxRow

log = logging.getLogger("addin_service.notify.outbox")

# The hot paths (claim, mark sent/failed) use the table directly: a Core statement costs a third of
# an ORM bulk update per row, which is most of the outbox's own work when a backlog drains.
_OUTBOX = cast(Table, OutboxRow.__table__)
_PENDING = text(PENDING_SQL)

# Campaign reservation runs once per filed report: statements built once, like the repository's.
_CAMPAIGNS = cast(Table, CampaignRow.__table__)
_CASES = cast(Table, CaseRow.__table__)
_CAMPAIGN_CASE = (
    select(_CAMPAIGNS.c.case_id, _CASES.c.status)
    .select_from(_CAMPAIGNS.outerjoin(_CASES, _CASES.c.id == _CAMPAIGNS.c.case_id))
    .where(_CAMPAIGNS.c.campaign_key == bindparam("key"))
)
_RESERVE_CAMPAIGN: dict[str, Executable] = {
    "postgresql": postgresql.insert(_CAMPAIGNS)
    .on_conflict_do_nothing(index_elements=[_CAMPAIGNS.c.campaign_key])
    .returning(_CAMPAIGNS.c.case_id),
    "sqlite": sqlite.insert(_CAMPAIGNS)
    .on_conflict_do_nothing(index_elements=[_CAMPAIGNS.c.campaign_key])
    .returning(_CAMPAIGNS.c.case_id),
}
# The worker records each outcome as it goes, one statement per row: prebuilt, run on a Core
# connection (an ORM session costs more than the statement).
_LEASED_ROW = and_(
    _OUTBOX.c.id == bindparam("row_id"),
    _OUTBOX.c.lease_token == bindparam("token"),
    _OUTBOX.c.state == "sending",
)
_MARK_SENT = (
    update(_OUTBOX)
    .where(_LEASED_ROW)
    .values(
        state="sent",
        sent_at=bindparam("now"),
        updated_at=bindparam("now"),
        lease_token=None,
        last_error=bindparam("note"),
    )
    .returning(_OUTBOX.c.id)
)
_MARK_FAILED = (
    update(_OUTBOX)
    .where(_LEASED_ROW)
    .values(
        state=bindparam("state"),
        next_attempt_at=bindparam("next_attempt_at"),
        updated_at=bindparam("now"),
        lease_token=None,
        last_error=bindparam("error"),
    )
    .returning(_OUTBOX.c.id)
)
_QUEUED_KEYS = select(_OUTBOX.c.dedupe_key).where(_OUTBOX.c.dedupe_key.in_(bindparam("keys", expanding=True)))
_TAKE_OVER_CAMPAIGN = (
    update(_CAMPAIGNS)
    .where(_CAMPAIGNS.c.campaign_key == bindparam("b_key"), _CAMPAIGNS.c.case_id == bindparam("b_current"))
    .values(case_id=bindparam("b_case_id"), updated_at=bindparam("b_now"))
    .returning(_CAMPAIGNS.c.case_id)
)

MAX_ERROR_LENGTH = 500


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ClaimedNotification:
    """A row a worker holds the lease on. ``sent_check``: an earlier attempt may have sent it."""

    id: int
    case_id: str
    report_id: str | None
    role: str
    recipient: str
    message_id: str
    subject: str
    text: str = field(repr=False)
    html: str = field(repr=False)
    urgent: bool
    attach_message: bool
    attempts: int
    sent_check: bool
    lease_token: str = field(repr=False)
    created_at: datetime


@dataclass(frozen=True)
class OutboxEntry:
    """A row as ``outbox list`` and the API show it (no bodies)."""

    id: int
    case_id: str
    report_id: str | None
    role: str
    recipient: str
    state: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
    acknowledged_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class Acknowledgement:
    """The outcome of an "I have seen this" click."""

    outbox_id: int
    case_id: str
    role: str
    recipient: str
    acknowledged_at: datetime
    first_time: bool


@dataclass(frozen=True)
class DueEscalation:
    """A report whose manager notification nobody acknowledged in time."""

    report_id: str
    case_id: str
    first_role: str
    first_sent_at: datetime
    urgent: bool
    targets: tuple[str, ...]


def is_named_sender(connection: Connection, case_id: str, role: str, recipient: str) -> bool:
    """Whether ``recipient`` is a sender the case's reports named (``case_senders``), so must not be
    told about the case, shown it, or confirm it."""
    return _named(role, recipient, senders_of_case(connection, case_id))


def _named(role: str, recipient: str, senders: frozenset[str]) -> bool:
    """:func:`is_named_sender` against senders already read. The reporter's own receipt is never
    withheld: someone may report a message forged in their own name. Nor is a configured mailbox's
    (security, fallback, investigators): the case's senders include addresses merely written in a
    display name, and routing lets only a message's own sender address exclude those."""
    return role != "reporter" and role not in MAILBOX_ROLES and People({}).matches_any(recipient, senders)


class Outbox:
    """The outbox table's operations. Thread-safe (every method uses its own session)."""

    def __init__(
        self, database: Database, *, clock: Callable[[], datetime] = _utcnow, mailboxes: Collection[str] = ()
    ) -> None:
        """``mailboxes``: the configured mailboxes (security, fallback), which a later report's naming
        never removes from an escalation (routing lets only a message's own sender address do that)."""
        self.db = database
        self._clock = clock
        self._mailboxes = frozenset(normalise_address(m) for m in mailboxes if m)

    # -- filing ------------------------------------------------------------------------------

    def enqueue(
        self, session: Session, *, case_id: str, report_id: str | None, notifications: Iterable[NewNotification]
    ) -> list[NewNotification]:
        """Insert rows in the caller's transaction; return those skipped because an identical
        notification is already queued (same dedupe key: a campaign's security copy, an escalation).

        Rows whose key names this report cannot collide and go in one multi-row INSERT (a collision
        would be a bug and fails the transaction); the others are inserted one by one with
        ``ON CONFLICT DO NOTHING`` so that the skipped ones are known.
        """
        now = self._clock()
        skipped: list[NewNotification] = []
        batch: list[dict[str, Any]] = []
        for item in notifications:
            values = _row_values(item, case_id, report_id, now)
            if not (item.campaign_once or item.role == "escalation"):
                batch.append(values)
                continue
            if batch:  # keep the plan's order (ids decide the sending order)
                session.execute(_OUTBOX.insert(), batch)
                batch = []
            inserted = session.execute(
                _insert_ignoring_conflict(session, values, ["dedupe_key"]).returning(_OUTBOX.c.id)
            ).first()
            if inserted is None:
                skipped.append(item)
        if batch:
            session.execute(_OUTBOX.insert(), batch)
        return skipped

    def campaign_told(
        self, campaign_key: str, case_id: str, recipients: Iterable[str], *, urgent: bool
    ) -> frozenset[str]:
        """Which of ``recipients`` already have this campaign's notice queued: an urgent one for an
        urgent report, either kind otherwise.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        keys: dict[str, str] = {}
        for recipient in dict.fromkeys(normalise_address(r) for r in recipients if r):
            for kind in (True,) if urgent else (True, False):
                keys[campaign_notice_key(campaign_key, case_id, recipient, urgent=kind)] = recipient
        if not keys:
            return frozenset()
        with self.db.connection(write=False) as connection:
            found = connection.execute(_QUEUED_KEYS, {"keys": list(keys)}).scalars()
            return frozenset(keys[key] for key in found)

    def reserve_campaign(self, internet_message_id: str, candidate_case_id: str) -> str:
        """The case that groups every report of this ``Message-ID``: the one reserved first, or
        ``candidate_case_id`` if this call is first (or the reserved case has been closed).

        In a short transaction of its own; filing uses :meth:`campaign_reserver` instead, which
        does the same inside ``ReportRepository.choose_case``'s transaction.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        with self.db.connection(durable=False) as connection:
            return self._reserve(connection, internet_message_id, ChosenCase(candidate_case_id, exists=False)).id

    def campaign_reserver(self, internet_message_id: str) -> CaseReserver:
        """The ``reserve`` of ``ReportRepository.choose_case`` for a report of this ``Message-ID``:
        the campaign's case wins over the candidate (the reporter's own case, or a new one)."""
        return CaseReserver(
            settled=lambda connection: self._settled(connection, internet_message_id),
            reserve=lambda connection, candidate: self._reserve(connection, internet_message_id, candidate),
        )

    def _settled(self, connection: Connection, internet_message_id: str) -> ChosenCase | None:
        """The campaign's case if it is reserved and open (or its first report is still being
        filed): exactly what :meth:`_reserve` would answer without writing, read without the write
        lock. None when :meth:`_reserve` has to decide."""
        key = message_id_key(internet_message_id.strip())
        return _joinable(connection.execute(_CAMPAIGN_CASE, {"key": key}).first())

    def _reserve(self, connection: Connection, internet_message_id: str, candidate: ChosenCase) -> ChosenCase:
        """Reserve the campaign's case in the caller's write transaction, *before* the evidence is
        sealed under the case id, so that concurrent first reports agree on one case (the key is the
        table's primary key; on PostgreSQL a concurrent insert of the same key waits for the first
        and then skips; on SQLite the write transaction already runs alone).

        The caller commits without waiting for the disk: a reservation lost in a crash was used by
        no committed report (the report's own durable commit comes later and is never ordered before
        this one), so nothing is lost.
        """
        value = internet_message_id.strip()
        key = message_id_key(value)
        known = connection.execute(_CAMPAIGN_CASE, {"key": key}).first()
        if known is None:
            now = self._clock()
            values = {
                "campaign_key": key,
                "message_id": value,
                "case_id": candidate.id,
                "created_at": now,
                "updated_at": now,
            }
            if connection.execute(_RESERVE_CAMPAIGN[connection.dialect.name], values).first() is not None:
                return candidate
            # PostgreSQL: a concurrent first report reserved it; the insert waited for its commit.
            known = connection.execute(_CAMPAIGN_CASE, {"key": key}).first()
            if known is None:  # pragma: no cover - rows are never deleted
                return candidate
        joinable = _joinable(known)
        if joinable is not None:
            return joinable
        taken = connection.execute(
            _TAKE_OVER_CAMPAIGN,
            {"b_key": key, "b_current": known.case_id, "b_case_id": candidate.id, "b_now": self._clock()},
        ).first()
        if taken is not None:
            return candidate
        again = connection.execute(_CAMPAIGN_CASE, {"key": key}).first()  # another report took it over first
        return ChosenCase(again.case_id, exists=again.status is not None) if again is not None else candidate

    # -- workers -----------------------------------------------------------------------------

    def claim(self, limit: int, lease_seconds: float) -> list[ClaimedNotification]:
        """Take up to ``limit`` due rows for ``lease_seconds`` (see the module docstring).

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        token = secrets.token_hex(16)
        with self.db.session(durable=False) as session:
            now = self._clock()
            due = (
                select(_OUTBOX.c.id)
                .where(_PENDING, _OUTBOX.c.next_attempt_at <= now)
                .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
                .limit(limit)
            )
            if session.get_bind().dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            rows = session.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id.in_(due.scalar_subquery()))
                .values(
                    state="sending",
                    lease_token=token,
                    attempts=_OUTBOX.c.attempts + 1,
                    sent_check=or_(_OUTBOX.c.sent_check, _OUTBOX.c.attempts > 0),
                    next_attempt_at=now + timedelta(seconds=lease_seconds),
                    updated_at=now,
                )
                .returning(
                    _OUTBOX.c.id,
                    _OUTBOX.c.case_id,
                    _OUTBOX.c.report_id,
                    _OUTBOX.c.role,
                    _OUTBOX.c.recipient,
                    _OUTBOX.c.message_id,
                    _OUTBOX.c.subject,
                    _OUTBOX.c.body_text,
                    _OUTBOX.c.body_html,
                    _OUTBOX.c.urgent,
                    _OUTBOX.c.attach_message,
                    _OUTBOX.c.attempts,
                    _OUTBOX.c.sent_check,
                    _OUTBOX.c.created_at,
                )
            ).all()
        claimed = [
            ClaimedNotification(
                id=r.id,
                case_id=r.case_id,
                report_id=r.report_id,
                role=r.role,
                recipient=r.recipient,
                message_id=r.message_id,
                subject=r.subject,
                text=r.body_text,
                html=r.body_html,
                urgent=bool(r.urgent),
                attach_message=bool(r.attach_message),
                attempts=r.attempts,
                sent_check=bool(r.sent_check),
                lease_token=token,
                created_at=r.created_at,
            )
            for r in rows
        ]
        claimed.sort(key=lambda c: c.id)
        return claimed

    def mark_sent(self, row: ClaimedNotification, note: str | None = None) -> bool:
        """Record a delivered notification. False when the lease had been lost (another worker
        owns the row now; it will find the message in Sent Items where the transport can tell).

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        with self.db.connection(durable=False) as connection:
            now = self._clock()
            done = connection.execute(
                _MARK_SENT, {"row_id": row.id, "token": row.lease_token, "now": now, "note": note}
            ).first()
        if done is None:
            log.warning("sent a notification whose lease was lost", extra={"outbox_id": row.id})
        return done is not None

    def mark_failed(
        self, row: ClaimedNotification, error: str, *, permanent: bool, backoff: Backoff, retry_after: float | None
    ) -> str | None:
        """Record a failed attempt: back to ``queued`` after a backoff, or ``dead`` when the failure
        is permanent or the attempts are used up. Returns the new state (None: lease lost).

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        dead = permanent or backoff.exhausted(row.attempts)
        with self.db.connection(durable=False) as connection:
            now = self._clock()
            retry_at = now + timedelta(seconds=backoff.delay(row.attempts, retry_after))
            state = "dead" if dead else "queued"
            done = connection.execute(
                _MARK_FAILED,
                {
                    "row_id": row.id,
                    "token": row.lease_token,
                    "now": now,
                    "state": state,
                    "next_attempt_at": now if dead else retry_at,
                    "error": error[:MAX_ERROR_LENGTH],
                },
            ).first()
        return state if done is not None else None

    def release(self, rows: Sequence[ClaimedNotification]) -> int:
        """Give rows back untried (a worker stopping, or a batch that outlived half its lease).

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        released = 0
        with self.db.session(durable=False) as session:
            now = self._clock()
            for row in rows:
                done = session.execute(
                    update(OutboxRow)
                    .where(
                        OutboxRow.id == row.id,
                        OutboxRow.lease_token == row.lease_token,
                        OutboxRow.state == "sending",
                    )
                    .values(
                        state="queued",
                        lease_token=None,
                        next_attempt_at=now,
                        updated_at=now,
                        attempts=OutboxRow.attempts - 1,
                        sent_check=row.sent_check,
                    )
                    .returning(OutboxRow.id)
                    .execution_options(synchronize_session=False)
                ).first()
                released += done is not None
        return released

    # -- acknowledgement and escalation --------------------------------------------------------

    def acknowledge(self, key: str) -> Acknowledgement | None:
        """Record "I have seen this" for the row with this dedupe key (once; a repeat returns the
        first time) with an audit entry. None when there is no such row, or when its recipient has
        since been named as a sender of the case.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        with self.db.session() as session:
            now = self._clock()
            target = session.execute(
                select(OutboxRow.case_id, OutboxRow.role, OutboxRow.recipient).where(OutboxRow.dedupe_key == key)
            ).first()
            if target is None or is_named_sender(session.connection(), target.case_id, target.role, target.recipient):
                # Named as a sender since they were told: their confirmation must not stop the escalation.
                return None
            row = session.execute(
                update(OutboxRow)
                .where(OutboxRow.dedupe_key == key, OutboxRow.acknowledged_at.is_(None))
                .values(acknowledged_at=now, updated_at=now)
                .returning(OutboxRow.id, OutboxRow.case_id, OutboxRow.report_id, OutboxRow.role, OutboxRow.recipient)
                .execution_options(synchronize_session=False)
            ).first()
            if row is not None:
                session.add(
                    AuditRow(
                        at=now,
                        actor=row.recipient,
                        action="notification.acknowledged",
                        case_id=row.case_id,
                        report_id=row.report_id,
                        details=json.dumps({"outbox_id": row.id, "role": row.role}, sort_keys=True),
                    )
                )
                return Acknowledgement(row.id, row.case_id, row.role, row.recipient, now, True)
            earlier = session.execute(
                select(
                    OutboxRow.id, OutboxRow.case_id, OutboxRow.role, OutboxRow.recipient, OutboxRow.acknowledged_at
                ).where(OutboxRow.dedupe_key == key)
            ).first()
        if earlier is None or earlier.acknowledged_at is None:
            return None
        return Acknowledgement(
            earlier.id, earlier.case_id, earlier.role, earlier.recipient, earlier.acknowledged_at, False
        )

    def withdraw_named_acknowledgements(self, session: Session, *, case_id: str, senders: Collection[str]) -> None:
        """In the caller's (filing) transaction: a confirmation of ``case_id``'s notifications given
        by someone this report names as a sender stops counting, so the escalation it held off goes
        ahead; an audit entry says whose and why. The ``notification.acknowledged`` entry stays."""
        if not senders:
            return
        named = frozenset(senders)
        acked = session.execute(
            select(OutboxRow.id, OutboxRow.report_id, OutboxRow.role, OutboxRow.recipient).where(
                OutboxRow.case_id == case_id,
                OutboxRow.acknowledged_at.is_not(None),
                OutboxRow.escalated_at.is_(None),
            )
        ).all()
        withdrawn = [row for row in acked if _named(row.role, row.recipient, named)]
        if not withdrawn:
            return
        now = self._clock()
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_([row.id for row in withdrawn]))
            .values(acknowledged_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        for row in withdrawn:
            session.add(
                AuditRow(
                    at=now,
                    actor="addin-service",
                    action="acknowledgement.withdrawn",
                    case_id=case_id,
                    report_id=row.report_id,
                    details=json.dumps(
                        {
                            "outbox_id": row.id,
                            "role": row.role,
                            "recipient": row.recipient,
                            "why": "A later report of the case names them as a sender: their confirmation no "
                            "longer stops the escalation.",
                        },
                        sort_keys=True,
                    ),
                )
            )

    def describe(self, key: str) -> tuple[str, datetime | None] | None:
        """(case id, acknowledged at) of the row with this dedupe key, or None (also when its
        recipient has since been named as a sender of the case: see :func:`is_named_sender`).

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        with self.db.session(write=False) as session:
            row = session.execute(
                select(OutboxRow.case_id, OutboxRow.role, OutboxRow.recipient, OutboxRow.acknowledged_at).where(
                    OutboxRow.dedupe_key == key
                )
            ).first()
            if row is None or is_named_sender(session.connection(), row.case_id, row.role, row.recipient):
                return None
        return row.case_id, row.acknowledged_at

    def withheld(self, rows: Sequence[ClaimedNotification]) -> frozenset[int]:
        """The ids of ``rows`` whose recipient has been named as a sender of its case since it was
        queued (:func:`is_named_sender`), in one query for a claimed batch.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        checked = [row for row in rows if row.role != "reporter"]
        if not checked:
            return frozenset()
        with self.db.connection(write=False) as connection:
            senders = senders_of_cases(connection, (row.case_id for row in checked))
        return frozenset(row.id for row in checked if _named(row.role, row.recipient, senders[row.case_id]))

    def due_escalations(self, after_seconds: float, limit: int = 100) -> list[DueEscalation]:
        """Reports whose manager notification went out (or died) ``after_seconds`` ago or more, that
        nobody acknowledged and that were not escalated yet.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        cutoff = self._clock() - timedelta(seconds=after_seconds)
        acked = aliased(OutboxRow)
        with self.db.session(write=False) as session:
            rows = session.execute(
                select(
                    OutboxRow.report_id,
                    OutboxRow.case_id,
                    OutboxRow.role,
                    OutboxRow.sent_at,
                    OutboxRow.updated_at,
                    OutboxRow.urgent,
                    OutboxRow.escalate_to,
                )
                .where(
                    OutboxRow.ack_required.is_(True),
                    OutboxRow.escalated_at.is_(None),
                    OutboxRow.report_id.is_not(None),
                    or_(
                        and_(OutboxRow.state == "sent", OutboxRow.sent_at <= cutoff),
                        and_(OutboxRow.state == "dead", OutboxRow.updated_at <= cutoff),
                    ),
                    ~exists().where(
                        acked.report_id == OutboxRow.report_id,
                        acked.acknowledged_at.is_not(None),
                    ),
                )
                .order_by(OutboxRow.id)
                .limit(limit)
            ).all()
            # Targets were chosen when the report was filed; a later report of the case may have
            # named one of them as a sender since.
            senders = senders_of_cases(session.connection(), (r.case_id for r in rows))
        by_report: dict[str, DueEscalation] = {}
        for r in rows:
            named = senders[r.case_id]
            targets = tuple(
                t
                for t in (r.escalate_to or "").split(",")
                if t and (t in self._mailboxes or not _named("escalation", t, named))
            )
            sent = r.sent_at or r.updated_at
            found = by_report.get(r.report_id)
            if found is None:
                by_report[r.report_id] = DueEscalation(r.report_id, r.case_id, r.role, sent, bool(r.urgent), targets)
            else:
                merged = tuple(dict.fromkeys((*found.targets, *targets)))
                by_report[r.report_id] = DueEscalation(
                    found.report_id, found.case_id, found.first_role, min(found.first_sent_at, sent),
                    found.urgent or bool(r.urgent), merged,
                )
        return list(by_report.values())

    def queue_escalation(self, due: DueEscalation, notifications: Sequence[NewNotification]) -> bool:
        """Mark the report escalated and queue ``notifications``, once: False when another worker
        escalated it first.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        with self.db.session() as session:
            now = self._clock()
            marked = session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.report_id == due.report_id,
                    OutboxRow.ack_required.is_(True),
                    OutboxRow.escalated_at.is_(None),
                )
                .values(escalated_at=now, updated_at=now)
                .returning(OutboxRow.id)
                .execution_options(synchronize_session=False)
            ).all()
            if not marked:
                return False
            skipped = self.enqueue(session, case_id=due.case_id, report_id=None, notifications=notifications)
            told = [n.recipient for n in notifications if n not in skipped]
            session.add(
                AuditRow(
                    at=now,
                    actor="addin-service",
                    action="case.escalated",
                    case_id=due.case_id,
                    report_id=due.report_id,
                    details=json.dumps(
                        {"told": told, "already_told": [n.recipient for n in skipped], "first_role": due.first_role},
                        sort_keys=True,
                    ),
                )
            )
        return True

    # -- operators ---------------------------------------------------------------------------

    def entries(self, state: str | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Rows newest first, optionally in one state.

        :raises ValueError: an unknown state.
        :raises DatabaseUnavailable: the database cannot be reached.
        """
        if state is not None and state not in OUTBOX_STATES:
            raise ValueError(f"state must be one of {', '.join(OUTBOX_STATES)}")
        query = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(limit)
        if state is not None:
            query = query.where(OutboxRow.state == state)
        with self.db.session(write=False) as session:
            return [_entry(row) for row in session.scalars(query)]

    def get(self, outbox_id: int) -> OutboxEntry | None:
        """:raises DatabaseUnavailable: the database cannot be reached."""
        with self.db.session(write=False) as session:
            row = session.get(OutboxRow, outbox_id)
            return _entry(row) if row is not None else None

    def retry(self, outbox_id: int | None = None, *, all_dead: bool = False) -> int:
        """Queue a dead (or waiting) row again now, with a fresh set of attempts; or every dead row.
        The next attempt first asks the transport whether an earlier one went out. Returns the
        number of rows queued; sent rows are never re-sent.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        if (outbox_id is None) == (not all_dead):
            raise ValueError("give an outbox id or all_dead=True, not both")
        condition: Any = OutboxRow.state == "dead" if all_dead else and_(
            OutboxRow.id == outbox_id, OutboxRow.state.in_(("dead", "queued"))
        )
        with self.db.session() as session:
            now = self._clock()
            done = session.execute(
                update(OutboxRow)
                .where(condition)
                .values(
                    state="queued",
                    attempts=0,
                    sent_check=or_(OutboxRow.sent_check, OutboxRow.attempts > 0),
                    next_attempt_at=now,
                    updated_at=now,
                    lease_token=None,
                )
                .returning(OutboxRow.id)
                .execution_options(synchronize_session=False)
            ).all()
        return len(done)

    def counts(self) -> dict[str, int]:
        """Rows per state (every state present, zero included).

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        with self.db.session(write=False) as session:
            found = dict(session.execute(select(OutboxRow.state, func.count()).group_by(OutboxRow.state)).all())
        return {state: int(found.get(state, 0)) for state in OUTBOX_STATES}

    def oldest_queued_at(self) -> datetime | None:
        """When the oldest still-unsent row was queued.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        with self.db.session(write=False) as session:
            value = session.scalar(
                select(func.min(OutboxRow.created_at)).where(OutboxRow.state.in_(("queued", "sending")))
            )
        if isinstance(value, str):  # pragma: no cover - SQLite aggregate returns text
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def _row_values(item: NewNotification, case_id: str, report_id: str | None, now: datetime) -> dict[str, Any]:
    return {
        "created_at": now,
        "updated_at": now,
        "case_id": case_id,
        "report_id": report_id,
        "role": item.role,
        "template": item.template,
        "recipient": item.recipient,
        "message_id": item.message_id,
        "dedupe_key": item.dedupe_key,
        "subject": item.subject,
        "body_text": item.text,
        "body_html": item.html,
        "urgent": item.urgent,
        "attach_message": item.attach_message,
        "ack_required": item.ack_required,
        "escalate_to": ",".join(item.escalate_to) or None,
        "state": "queued",
        "attempts": 0,
        "sent_check": False,
        "next_attempt_at": now,
    }


def _entry(row: OutboxRow) -> OutboxEntry:
    return OutboxEntry(
        id=row.id,
        case_id=row.case_id,
        report_id=row.report_id,
        role=row.role,
        recipient=row.recipient,
        state=row.state,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        sent_at=row.sent_at,
        acknowledged_at=row.acknowledged_at,
        last_error=row.last_error,
    )


def _insert_ignoring_conflict(session: Session, values: dict[str, Any], columns: list[str]) -> Insert:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(_OUTBOX).values(**values).on_conflict_do_nothing(index_elements=columns)
    return sqlite.insert(_OUTBOX).values(**values).on_conflict_do_nothing(index_elements=columns)


def _joinable(campaign: Row[Any, Any] | None) -> ChosenCase | None:
    """A reserved campaign's case when a report joins it as it is: open, or not yet opened because
    its first report is still being filed (status None)."""
    if campaign is None or campaign.status not in (None, "open"):
        return None
    return ChosenCase(campaign.case_id, exists=campaign.status is not None)
