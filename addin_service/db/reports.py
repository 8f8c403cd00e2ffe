"""The repository that files reports: idempotent, safe under concurrent retries, one transaction.

The filing use case drives it like this (see ``tests/integration/test_db_concurrency.py``)::

    found = repo.lookup_or_claim(reporter, key, idem_key, fingerprint)  # 422 if the key was reused
    if found.existing: return found.existing.response_json       # replay the first answer
    if found.token is None:                                      # someone else is filing it
        report = repo.wait_for_report(reporter, key, timeout)    # 503 "in progress" on timeout
        if report: return report.response_json
        ...start again (the other attempt gave up)...
    try: capture, repo.choose_case(...), seal the evidence under that case
    except: repo.release(reporter, key, found.token); raise
    try: repo.file(new_report, case, claim_token=found.token, ...)
    except AlreadyFiled as first: return first.existing.response_json

That is three transactions per filed report: the lookup and the claim (not durable), the choice of
the case (not durable; it reserves a campaign's case), and the filing itself (durable). They run
SQLAlchemy Core statements built once, at import, so that each execution is a compiled-cache hit;
an ORM session or statement would cost more than the database work on this path.

Return types are small frozen dataclasses (:class:`Report`, :class:`Case`, :class:`AuditEntry`),
never ORM rows: they outlive the session, cannot lazy-load, and a note never shows in a ``repr``.
Addresses (reporter, mailbox, sender) are stored lower-cased.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Boolean, Connection, Executable, Row, Table, bindparam, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from addin_service.db.database import Database
from addin_service.db.models import (
    AuditRow,
    CaseRow,
    CaseSenderRow,
    IdempotencyKeyRow,
    ItemClaimRow,
    ReportRow,
)
from addin_service.errors import IdempotencyKeyReused, InvalidRequest, ReportInProgress

MAX_IDEMPOTENCY_KEY_LENGTH = 255
DEFAULT_LEASE_SECONDS = 120.0
POLL_INTERVAL_SECONDS = 0.075
IN_PROGRESS_RETRY_AFTER = 2

# Keys that must never reach the audit log, at any depth: it is read by more people than the
# evidence, and its details are free-form.
FORBIDDEN_AUDIT_KEYS = frozenset(
    {
        "note",
        "body",
        "mime",
        "message",
        "token",
        "user_token",
        "access_token",
        "authorization",
        "password",
        "secret",
        "client_secret",
        "subject",
    }
)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def item_key(mailbox: str, item_id: str) -> str:
    """The index key of one Exchange item: sha256 hex of ``"mailbox\\0item_id"``.

    ``item_id`` must be the canonical (EWS-format) id, so that the EWS and REST ids of one item
    give one key; the mailbox address is compared case-insensitively.
    """
    return hashlib.sha256(f"{mailbox.lower()}\0{item_id}".encode()).hexdigest()


def message_id_key(internet_message_id: str) -> str:
    """The index key of a ``Message-ID``: sha256 hex of the value with outer whitespace removed.

    Message-IDs are the sender's choice and may be arbitrarily long, so they are never indexed
    directly; lookups go through this key and then compare the full value.
    """
    return hashlib.sha256(internet_message_id.strip().encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class NewCase:
    """A case to open together with its first report. ``id`` comes from ``ids.new_case_id()``."""

    id: str
    reporter: str
    sender_address: str | None = None
    origin: str | None = None  # 'internal' | 'external' | 'spoofed-internal'
    urgent: bool = False
    campaign_message_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Case:
    id: str
    created_at: datetime
    updated_at: datetime
    status: str
    reporter: str
    sender_address: str | None
    origin: str | None
    urgent: bool
    campaign_message_id: str | None


@dataclass(frozen=True, kw_only=True)
class NewReport:
    """Everything known about a report once its evidence package is sealed.

    ``response_json`` is the exact 201 body, stored so that a retry is answered byte for byte.
    """

    id: str
    reporter: str
    mailbox: str
    item_id: str
    item_key: str
    change_key: str | None
    internet_message_id: str | None
    category: str
    note: str | None = field(repr=False)
    feels_unsafe: bool
    include_related: bool
    message_sha256: str
    message_size: int
    manifest_sha256: str
    ledger_sequence: int
    adapter: str
    mime_source: str
    response_json: str = field(repr=False)
    # The reporter's Entra object id: ``reporter`` (a sign-in name) can be given to someone else later.
    reporter_oid: str | None = None


@dataclass(frozen=True, kw_only=True)
class Report:
    """A filed report as stored."""

    id: str
    case_id: str
    created_at: datetime
    reporter: str
    mailbox: str
    item_id: str
    item_key: str
    change_key: str | None
    internet_message_id: str | None
    category: str
    note: str | None = field(repr=False)
    feels_unsafe: bool
    include_related: bool
    message_sha256: str
    message_size: int
    manifest_sha256: str
    ledger_sequence: int
    adapter: str
    mime_source: str
    response_json: str = field(repr=False)
    # The reporter's Entra object id: ``reporter`` (a sign-in name) can be given to someone else later.
    reporter_oid: str | None = None


@dataclass(frozen=True)
class HeldClaim:
    """A claim on a reporter's item, as its holder knows it."""

    reporter: str
    item_key: str
    token: str


@dataclass(frozen=True)
class Lookup:
    """The answer of :meth:`ReportRepository.lookup` and :meth:`~ReportRepository.lookup_or_claim`:
    the first report, if there is one; else, from the latter, the claim's token if it is ours
    (None: another request is filing the item, wait for it)."""

    existing: Report | None
    token: str | None = None


@dataclass(frozen=True)
class ChosenCase:
    """The case a report goes into: ``exists`` is False when its filing transaction opens it."""

    id: str
    exists: bool


@dataclass(frozen=True)
class CaseReserver:
    """How a campaign has the last word on the case a report goes into (see ``choose_case``).

    ``settled`` reads, in a read-only transaction, the case the report must go into when nothing
    needs writing to know it (None otherwise); ``reserve``, given the case the report would go
    into, returns the case it must go into, in the case-choice write transaction, as
    ``file(extra=...)`` runs in the filing one.
    """

    settled: Callable[[Connection], ChosenCase | None]
    reserve: Callable[[Connection, ChosenCase], ChosenCase]


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    case_id: str | None
    report_id: str | None
    details: dict[str, Any]


class AlreadyFiled(Exception):  # noqa: N818 - names the situation, like the service's errors
    """The item was filed by another request while this one was capturing it.

    Not an error for the reporter: answer with ``existing`` (the first report). Nothing of this
    attempt was written to the database; its sealed package is an orphan, which is harmless.
    """

    def __init__(self, existing: Report) -> None:
        super().__init__(f"item already filed as report {existing.id}")
        self.existing = existing


class _ReportExists(Exception):
    """Internal: the report insert hit UNIQUE(reporter, item_key); roll back and find it."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


# -- statements -------------------------------------------------------------------------------
# Built once: executing the same statement object hits SQLAlchemy's compiled cache at once (its
# cache key is memoised), where a statement built per call is constructed and keyed every time.
# Values are bound at execution; INSERTs take their columns from the parameters given.
# ``INSERT ... ON CONFLICT`` on PostgreSQL (READ COMMITTED) waits for a concurrent transaction that
# holds a conflicting row, then skips (or updates) — which is what makes claims, report inserts and
# campaign reservations race-free there; on SQLite the write transaction already runs alone.

_AnyRow = Row[*tuple[Any, ...]]
_CASES = cast(Table, CaseRow.__table__)
_REPORTS = cast(Table, ReportRow.__table__)
_KEYS = cast(Table, IdempotencyKeyRow.__table__)
_CLAIMS = cast(Table, ItemClaimRow.__table__)
_AUDIT = cast(Table, AuditRow.__table__)
_SENDERS = cast(Table, CaseSenderRow.__table__)


def _for_each_dialect(build: Callable[[Any], Executable]) -> dict[str, Executable]:
    """One statement per back end, from ``build(insert)`` with that back end's ``insert``."""
    return {"postgresql": build(postgresql.insert), "sqlite": build(sqlite.insert)}


def _claim_item(insert: Any) -> Executable:
    """Insert the claim, or take over an expired one: one atomic statement, so that of many racing
    callers exactly one gets the token (PostgreSQL locks the conflicting row and re-checks the
    condition on its newest version; SQLite runs writers one at a time)."""
    stmt = insert(_CLAIMS)
    upsert: Executable = stmt.on_conflict_do_update(
        index_elements=[_CLAIMS.c.reporter, _CLAIMS.c.item_key],
        set_={
            "token": stmt.excluded.token,
            "claimed_at": stmt.excluded.claimed_at,
            "expires_at": stmt.excluded.expires_at,
        },
        where=_CLAIMS.c.expires_at <= stmt.excluded.claimed_at,
    ).returning(_CLAIMS.c.token)
    return upsert


_REPORT_COLUMNS = [_REPORTS.c[f.name] for f in fields(Report)]
_REPORT_FOR_ITEM = select(*_REPORT_COLUMNS).where(
    _REPORTS.c.reporter == bindparam("reporter"), _REPORTS.c.item_key == bindparam("item_key")
)
_REPORT_BY_ID = select(*_REPORT_COLUMNS).where(_REPORTS.c.id == bindparam("report_id"))
_STORED_KEY = select(_KEYS.c.fingerprint, _KEYS.c.item_key, _KEYS.c.report_id).where(
    _KEYS.c.reporter == bindparam("reporter"), _KEYS.c.key == bindparam("key")
)
_BIND_KEY = (
    update(_KEYS)
    .where(_KEYS.c.reporter == bindparam("b_reporter"), _KEYS.c.key == bindparam("b_key"), _KEYS.c.report_id.is_(None))
    .values(report_id=bindparam("b_report_id"))
)
_UNRESERVE_KEY = delete(_KEYS).where(
    _KEYS.c.reporter == bindparam("reporter"),
    _KEYS.c.key == bindparam("key"),
    _KEYS.c.fingerprint == bindparam("fingerprint"),
    _KEYS.c.item_key == bindparam("item_key"),
    _KEYS.c.report_id.is_(None),
)
_CLAIM_ITEM = _for_each_dialect(_claim_item)
_CLAIM_EXPIRY = select(_CLAIMS.c.expires_at).where(
    _CLAIMS.c.reporter == bindparam("reporter"), _CLAIMS.c.item_key == bindparam("item_key")
)
_RELEASE_CLAIM = delete(_CLAIMS).where(
    _CLAIMS.c.reporter == bindparam("reporter"),
    _CLAIMS.c.item_key == bindparam("item_key"),
    _CLAIMS.c.token == bindparam("token"),
)
_RENEW_CLAIM = (
    update(_CLAIMS)
    .where(
        _CLAIMS.c.reporter == bindparam("b_reporter"),
        _CLAIMS.c.item_key == bindparam("b_item_key"),
        _CLAIMS.c.token == bindparam("b_token"),
    )
    .values(expires_at=bindparam("b_expires_at"))
)
_OWN_OPEN_CASE = (
    select(_CASES.c.id)
    .where(
        _CASES.c.reporter == bindparam("reporter"),
        _CASES.c.sender_address == bindparam("sender"),
        _CASES.c.status == "open",
    )
    .order_by(_CASES.c.updated_at.desc(), _CASES.c.id)
    .limit(1)
)
_OPEN_CASE = _for_each_dialect(
    lambda insert: insert(_CASES).on_conflict_do_nothing(index_elements=[_CASES.c.id]).returning(_CASES.c.id)
)
_CASE_OWNER = select(_CASES.c.reporter, _CASES.c.campaign_key).where(_CASES.c.id == bindparam("case_id"))
_TOUCH_CASE = (
    update(_CASES)
    .where(_CASES.c.id == bindparam("b_case_id"))
    .values(updated_at=bindparam("b_now"), urgent=or_(_CASES.c.urgent, bindparam("b_urgent", type_=Boolean())))
)
_INSERT_REPORT = _for_each_dialect(
    lambda insert: insert(_REPORTS)
    .on_conflict_do_nothing(index_elements=[_REPORTS.c.reporter, _REPORTS.c.item_key])
    .returning(_REPORTS.c.id)
)
_INSERT_KEY = _for_each_dialect(
    lambda insert: insert(_KEYS)
    .on_conflict_do_nothing(index_elements=[_KEYS.c.reporter, _KEYS.c.key])
    .returning(_KEYS.c.key)
)
_INSERT_AUDIT = _AUDIT.insert()
_INSERT_SENDER = _for_each_dialect(
    lambda insert: insert(_SENDERS).on_conflict_do_nothing(index_elements=[_SENDERS.c.case_id, _SENDERS.c.address])
)
_SENDERS_OF_CASES = select(_SENDERS.c.case_id, _SENDERS.c.address).where(
    _SENDERS.c.case_id.in_(bindparam("case_ids", expanding=True))
)


def senders_of_cases(connection: Connection, case_ids: Iterable[str]) -> dict[str, frozenset[str]]:
    """For each case, the addresses its reports name as the sender, and the people routing matched
    to them (see :meth:`ReportRepository.file`): never to be told about the case or shown it. One
    query; a case with none maps to an empty set."""
    wanted = set(case_ids)
    found: dict[str, set[str]] = {case_id: set() for case_id in wanted}
    if wanted:
        for case_id, address in connection.execute(_SENDERS_OF_CASES, {"case_ids": sorted(wanted)}):
            found[case_id].add(address)
    return {case_id: frozenset(addresses) for case_id, addresses in found.items()}


def senders_of_case(connection: Connection, case_id: str) -> frozenset[str]:
    """:func:`senders_of_cases` for one case."""
    return senders_of_cases(connection, (case_id,))[case_id]


class ReportRepository:
    """Reads and writes cases, reports, idempotency keys, claims and audit entries.

    ``clock`` and ``sleep`` are injectable so tests can expire leases without waiting.
    """

    def __init__(
        self,
        database: Database,
        *,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval: float = POLL_INTERVAL_SECONDS,
    ) -> None:
        self.db = database
        self._clock = clock
        self._sleep = sleep
        self._poll_interval = poll_interval

    # -- filing flow -------------------------------------------------------------------------

    def lookup(self, reporter: str, item_key: str, idem_key: str | None, fingerprint: str | None) -> Lookup:
        """Find the first report for this request, in one short read transaction; claim nothing.

        :raises IdempotencyKeyReused: ``idem_key`` was stored for a different request (another
            fingerprint or another item).
        :raises InvalidRequest: ``idem_key`` is longer than 255 characters.
        :raises ValueError: ``item_key`` is not a sha256 hex key, or a key comes without fingerprint.
        :raises DatabaseUnavailable: the database cannot be reached.
        """
        reporter = reporter.lower()
        _check_item_key(item_key)
        _check_idempotency(idem_key, fingerprint)
        with self.db.connection(write=False) as connection:
            if idem_key is not None:
                _check_stored_key(connection, reporter, idem_key, fingerprint, item_key)
            return Lookup(_report_for_item(connection, reporter, item_key))

    def lookup_or_claim(
        self,
        reporter: str,
        item_key: str,
        idem_key: str | None,
        fingerprint: str | None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> Lookup:
        """:meth:`lookup` and :meth:`claim` in one (non-durable) write transaction: the first
        report if there is one, else this request's claim token, else neither (another request is
        filing the item: :meth:`wait_for_report` is the next step).

        A new ``idem_key`` is stored in the same transaction, bound to this request but not yet to
        a report, so that a concurrent request reusing it for something else is refused before it
        reaches Exchange — never after its evidence was sealed. :meth:`release` frees it again
        when the request files nothing.

        :raises IdempotencyKeyReused: ``idem_key`` was stored for a different request.
        :raises InvalidRequest: ``idem_key`` is longer than 255 characters.
        :raises ValueError: a malformed key, a key without fingerprint, or a lease that is not positive.
        :raises DatabaseUnavailable: the database cannot be reached.
        """
        reporter = reporter.lower()
        _check_item_key(item_key)
        _check_idempotency(idem_key, fingerprint)
        _check_lease(lease_seconds)
        with self.db.connection(durable=False) as connection:
            if idem_key is not None and fingerprint is not None:  # both, or neither: checked above
                if _check_stored_key(connection, reporter, idem_key, fingerprint, item_key):
                    existing = _report_for_item(connection, reporter, item_key)  # a retry of a filed request
                    if existing is not None:
                        return Lookup(existing)
                else:
                    _save_idempotency_key(connection, reporter, idem_key, fingerprint, item_key, None, self._clock())
            return self._claim(connection, reporter, item_key, lease_seconds)

    def claim(self, reporter: str, item_key: str, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> str | None:
        """Mark this reporter's item as being filed; return the claim's token, or None.

        None means "do not capture": another live claim exists, or the report was filed already —
        either way :meth:`wait_for_report` is the next step. An expired claim is taken over
        atomically, so of many racing callers exactly one gets a token.

        :raises ValueError: ``item_key`` is not a sha256 hex key, or the lease is not positive.
        :raises DatabaseUnavailable: the database cannot be reached.
        """
        reporter = reporter.lower()
        _check_item_key(item_key)
        _check_lease(lease_seconds)
        with self.db.connection(durable=False) as connection:
            return self._claim(connection, reporter, item_key, lease_seconds).token

    def _claim(self, connection: Connection, reporter: str, item_key: str, lease_seconds: float) -> Lookup:
        """Claim the item in the caller's transaction, unless it is claimed or filed already."""
        now = self._clock()
        values = {
            "reporter": reporter,
            "item_key": item_key,
            "token": secrets.token_hex(16),
            "claimed_at": now,
            "expires_at": now + timedelta(seconds=lease_seconds),
        }
        token = connection.execute(_CLAIM_ITEM[connection.dialect.name], values).scalar()
        if token is None:
            return Lookup(None)  # a live claim: never spin inside a transaction
        # Checked after the claim is ours: the claim's insert waited for any transaction that was
        # filing this item (it deletes the claim row), so that report is visible now.
        existing = _report_for_item(connection, reporter, item_key)
        if existing is not None:
            connection.rollback()  # filed already: leave no claim behind
            return Lookup(existing)
        return Lookup(None, token)

    def wait_for_report(self, reporter: str, item_key: str, timeout: float) -> Report | None:
        """Poll until the report exists (return it) or the claim is gone or expired (None).

        None means the other attempt gave up: call :meth:`lookup_or_claim` again.

        :raises ReportInProgress: still being filed after ``timeout`` seconds (Retry-After 2).
        :raises DatabaseUnavailable: the database cannot be reached.
        """
        reporter = reporter.lower()
        _check_item_key(item_key)
        deadline = time.monotonic() + timeout
        while True:
            with self.db.connection(write=False) as connection:
                # Claim first, then report: under READ COMMITTED each statement sees the latest
                # commit, and filing deletes the claim and inserts the report in one commit — in
                # the other order a commit between the two reads would look like "gave up".
                params = {"reporter": reporter, "item_key": item_key}
                expires_at = connection.execute(_CLAIM_EXPIRY, params).scalar()
                report = _report_for_item(connection, reporter, item_key)
                if report is not None:
                    return report
                if expires_at is None or expires_at <= self._clock():
                    return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReportInProgress(
                    "This message is being filed by another request right now. Please try again in a moment.",
                    retry_after=IN_PROGRESS_RETRY_AFTER,
                )
            self._sleep(min(self._poll_interval, remaining))

    def choose_case(
        self, reporter: str, sender: str | None, new_case_id: str, reserve: CaseReserver | None = None
    ) -> ChosenCase:
        """The case for a report about to be sealed, chosen in one transaction: the reporter's most
        recently updated open case about this sender, else a new case ``new_case_id``; then, if
        given, ``reserve`` (the campaign reservation) has the last word in the same transaction.

        An unknown sender (None) matches nothing: unrelated messages must not be merged. The
        transaction writes only through ``reserve`` (not durably, see ``notify/outbox.py``), and is
        not needed when ``reserve.settled`` already knows the answer.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        new = ChosenCase(new_case_id, exists=False)
        if not sender and reserve is None:
            return new
        if reserve is not None:
            # Most reports of a campaign join its open case: a read says so, and leaves SQLite's
            # single write lock to the reports that need it.
            with self.db.connection(write=False) as connection:
                settled = reserve.settled(connection)
            if settled is not None:
                return settled
        # A write transaction from the start when ``reserve`` may write: on SQLite a deferred one
        # that reads and then writes fails at once if another writer committed in between.
        with self.db.connection(write=reserve is not None, durable=False) as connection:
            own = None
            if sender:
                params = {"reporter": reporter.lower(), "sender": sender.lower()}
                own = connection.execute(_OWN_OPEN_CASE, params).scalar()
            candidate = ChosenCase(own, exists=True) if own is not None else new
            return reserve.reserve(connection, candidate) if reserve is not None else candidate

    def file(
        self,
        report: NewReport,
        case: NewCase | str,
        *,
        claim_token: str | None,
        idem_key: str | None,
        fingerprint: str | None,
        audit: Mapping[str, Any],
        extra: Callable[[Session], None] | None = None,
        senders: Collection[str] = (),
    ) -> None:
        """Record a sealed report in ONE transaction: the case, the report, the idempotency key,
        a ``report.filed`` audit entry with ``audit`` as details, whatever ``extra`` adds (the
        outbox), the case's new ``senders`` (normalised addresses: see :func:`senders_of_case`),
        and the release of the claim if ``claim_token`` still holds it.

        ``case`` is a ``NewCase`` to open — or to join, if a concurrent report of the same
        campaign (or by the same reporter) opened that id first — or the id of an existing case.
        Either way the case's ``updated_at`` moves and it becomes urgent if this reporter feels
        unsafe.

        :raises AlreadyFiled: the reporter's item was filed meanwhile; nothing was written.
        :raises IdempotencyKeyReused: ``idem_key`` is stored for a different request.
        :raises LookupError: ``case`` is an id and no such case exists.
        :raises RuntimeError: a ``NewCase`` id collides with an unrelated case; nothing was written.
        :raises ValueError: a malformed key, or forbidden keys (a note, a token...) in ``audit``.
        :raises ReportInProgress: the conflicting report is not visible yet; retry shortly.
        :raises DatabaseUnavailable: the database cannot be reached; nothing was committed,
            unless the connection dropped during COMMIT — a retry then finds the report.
        """
        reporter = report.reporter.lower()
        _check_item_key(report.item_key)
        _check_idempotency(idem_key, fingerprint)
        details = _audit_json(audit)
        try:
            # A session only because ``extra`` takes one; the repository's own statements go
            # straight to its connection.
            with self.db.session() as session:
                connection = session.connection()
                now = self._clock()
                case_id, touch_urgent = _save_case(connection, case, report, now)
                inserted = connection.execute(
                    _INSERT_REPORT[connection.dialect.name], _report_values(report, case_id, now)
                ).first()
                if inserted is None:
                    raise _ReportExists
                if idem_key is not None and fingerprint is not None:  # both, or neither: checked above
                    _save_idempotency_key(connection, reporter, idem_key, fingerprint, report.item_key, report.id, now)
                connection.execute(
                    _INSERT_AUDIT,
                    {
                        "at": now,
                        "actor": reporter,
                        "action": "report.filed",
                        "case_id": case_id,
                        "report_id": report.id,
                        "details": details,
                    },
                )
                if extra is not None:
                    extra(session)
                if claim_token is not None:
                    connection.execute(
                        _RELEASE_CLAIM, {"reporter": reporter, "item_key": report.item_key, "token": claim_token}
                    )
                if senders:
                    connection.execute(
                        _INSERT_SENDER[connection.dialect.name],
                        [{"case_id": case_id, "address": address} for address in sorted(set(senders))],
                    )
                if touch_urgent is not None:
                    _touch_case(connection, case_id, touch_urgent, now)
        except _ReportExists:
            with self.db.connection(write=False) as connection:
                first = _report_for_item(connection, reporter, report.item_key)
            if first is None:  # pragma: no cover - the conflicting row was committed before we saw it
                raise ReportInProgress(
                    "This message is being filed right now. Please try again.", retry_after=IN_PROGRESS_RETRY_AFTER
                ) from None
            raise AlreadyFiled(first) from None

    def remember_key(self, reporter: str, idem_key: str, fingerprint: str, item_key: str, report_id: str) -> None:
        """Bind a new ``Idempotency-Key`` to a report that was replayed rather than filed, so
        that reusing the key later for a different request is refused too.

        :raises IdempotencyKeyReused: the key is already bound to a different request.
        :raises InvalidRequest: the key is longer than 255 characters.
        :raises ValueError: ``item_key`` is not a sha256 hex key.
        :raises DatabaseUnavailable: the database cannot be reached.
        """
        reporter = reporter.lower()
        _check_item_key(item_key)
        _check_idempotency(idem_key, fingerprint)
        with self.db.connection() as connection:
            _save_idempotency_key(connection, reporter, idem_key, fingerprint, item_key, report_id, self._clock())

    def release(
        self, reporter: str, item_key: str, token: str, *, idem_key: str | None = None, fingerprint: str | None = None
    ) -> None:
        """Give up a claim after a failed capture, so a retry need not wait for the lease; with
        ``idem_key``, also the key's reservation for this request if no report was bound to it, so
        that a request that filed nothing leaves its key free (as if it had never been sent).

        Does nothing if the claim was taken over meanwhile (the key then belongs to the request
        that took it over).

        :raises DatabaseUnavailable: the database cannot be reached (the lease then expires).
        """
        reporter = reporter.lower()
        with self.db.connection(durable=False) as connection:
            params = {"reporter": reporter, "item_key": item_key, "token": token}
            released = connection.execute(_RELEASE_CLAIM, params).rowcount
            if released and idem_key is not None and fingerprint is not None:
                connection.execute(
                    _UNRESERVE_KEY,
                    {"reporter": reporter, "key": idem_key, "fingerprint": fingerprint, "item_key": item_key},
                )

    def renew(self, claims: Iterable[HeldClaim], lease_seconds: float) -> int:
        """Extend claims this process still holds to ``lease_seconds`` from now, in one
        transaction; return how many were still held (a claim taken over after it expired is left
        to its new holder).

        :raises ValueError: the lease is not positive.
        :raises DatabaseUnavailable: the database cannot be reached.
        """
        _check_lease(lease_seconds)
        expires_at = self._clock() + timedelta(seconds=lease_seconds)
        claims = list(claims)
        if not claims:
            return 0
        renewed = 0
        with self.db.connection(durable=False) as connection:
            for claim in claims:  # one by one: an executemany's rowcount is not reliable on every driver
                params = {
                    "b_reporter": claim.reporter.lower(),
                    "b_item_key": claim.item_key,
                    "b_token": claim.token,
                    "b_expires_at": expires_at,
                }
                renewed += connection.execute(_RENEW_CLAIM, params).rowcount
        return renewed

    # -- reads ------------------------------------------------------------------------------

    def recorded_packages(self) -> dict[tuple[str, str], str]:
        """Every filed report's (case id, report id) and the sha256 of its sealed manifest: what
        ``evidence verify`` compares the ledger with.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        query = select(_REPORTS.c.case_id, _REPORTS.c.id, _REPORTS.c.manifest_sha256)
        with self.db.connection(write=False) as connection:
            return {(row.case_id, row.id): row.manifest_sha256 for row in connection.execute(query)}

    def case_senders(self, case_id: str) -> frozenset[str]:
        """:func:`senders_of_case`. :raises DatabaseUnavailable: the database cannot be reached."""
        with self.db.connection(write=False) as connection:
            return senders_of_case(connection, case_id)

    def get_report(self, report_id: str) -> Report | None:
        """:raises DatabaseUnavailable: the database cannot be reached."""
        with self.db.connection(write=False) as connection:
            row = connection.execute(_REPORT_BY_ID, {"report_id": report_id}).first()
            return _report(row) if row is not None else None

    def list_reports(self, case_id: str) -> list[Report]:
        """The case's reports, oldest first. :raises DatabaseUnavailable: as above."""
        query = select(*_REPORT_COLUMNS).where(_REPORTS.c.case_id == case_id).order_by(
            _REPORTS.c.created_at, _REPORTS.c.id
        )
        with self.db.connection(write=False) as connection:
            return [_report(row) for row in connection.execute(query)]

    def find_reports_by_message_id(self, internet_message_id: str) -> list[Report]:
        """Every report of a message with this ``Message-ID`` (there may be several, from
        several reporters, or different messages that share a forged id), oldest first.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        value = internet_message_id.strip()
        query = (
            select(*_REPORT_COLUMNS)
            .where(_REPORTS.c.message_id_key == message_id_key(value), _REPORTS.c.internet_message_id == value)
            .order_by(_REPORTS.c.created_at, _REPORTS.c.id)
        )
        with self.db.connection(write=False) as connection:
            return [_report(row) for row in connection.execute(query)]

    def update_response(self, report_id: str, response_json: str) -> None:
        """Replace the stored answer of a report (e.g. to add what happened to related messages),
        so that a retry is answered with what the reporter was shown.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        with self.db.session() as session:
            session.execute(
                update(ReportRow)
                .where(ReportRow.id == report_id)
                .values(response_json=response_json)
                .execution_options(synchronize_session=False)
            )

    def get_case(self, case_id: str) -> Case | None:
        """:raises DatabaseUnavailable: the database cannot be reached."""
        with self.db.session(write=False) as session:
            row = session.get(CaseRow, case_id)
            return _case(row) if row is not None else None

    def find_open_case(self, reporter: str, sender_address: str | None) -> Case | None:
        """The reporter's most recently updated open case about this sender, if any.

        An unknown sender (None) matches nothing: unrelated messages must not be merged.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        if not sender_address:
            return None
        with self.db.session(write=False) as session:
            row = session.scalars(
                select(CaseRow)
                .where(
                    CaseRow.reporter == reporter.lower(),
                    CaseRow.sender_address == sender_address.lower(),
                    CaseRow.status == "open",
                )
                .order_by(CaseRow.updated_at.desc(), CaseRow.id)
                .limit(1)
            ).first()
            return _case(row) if row is not None else None

    def find_campaign_case(self, internet_message_id: str | None) -> Case | None:
        """The oldest open case opened for this ``Message-ID`` (the same message reported by
        several people), if any. Grouping only: every report is still filed on its own.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        if not internet_message_id or not internet_message_id.strip():
            return None
        value = internet_message_id.strip()
        with self.db.session(write=False) as session:
            row = session.scalars(
                select(CaseRow)
                .where(
                    CaseRow.campaign_key == message_id_key(value),
                    CaseRow.campaign_message_id == value,
                    CaseRow.status == "open",
                )
                .order_by(CaseRow.created_at, CaseRow.id)
                .limit(1)
            ).first()
            return _case(row) if row is not None else None

    # -- audit ------------------------------------------------------------------------------

    def record_audit(
        self,
        action: str,
        *,
        actor: str,
        case_id: str | None = None,
        report_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one audit entry in its own transaction (e.g. ``report.replayed``, ``report.failed``).

        :raises ValueError: ``details`` holds a forbidden key (note, body, token...) or is not JSON.
        :raises DatabaseUnavailable: the database cannot be reached.
        """
        text = _audit_json(details or {})
        with self.db.session() as session:
            session.add(
                AuditRow(
                    at=self._clock(),
                    actor=actor.lower(),
                    action=action,
                    case_id=case_id,
                    report_id=report_id,
                    details=text,
                )
            )

    def list_audit(self, *, case_id: str | None = None, report_id: str | None = None) -> list[AuditEntry]:
        """Audit entries, oldest first, filtered by case and/or report.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        query = select(AuditRow).order_by(AuditRow.id)
        if case_id is not None:
            query = query.where(AuditRow.case_id == case_id)
        if report_id is not None:
            query = query.where(AuditRow.report_id == report_id)
        with self.db.session(write=False) as session:
            return [
                AuditEntry(
                    id=row.id,
                    at=row.at,
                    actor=row.actor,
                    action=row.action,
                    case_id=row.case_id,
                    report_id=row.report_id,
                    details=json.loads(row.details),
                )
                for row in session.scalars(query)
            ]


# -- helpers -------------------------------------------------------------------------------


def _check_item_key(key: str) -> None:
    if not _HEX64.fullmatch(key):
        raise ValueError("item_key must be the 64-character sha256 hex from item_key()")


def _check_idempotency(idem_key: str | None, fingerprint: str | None) -> None:
    if idem_key is None:
        return
    if len(idem_key) > MAX_IDEMPOTENCY_KEY_LENGTH or not idem_key:
        raise InvalidRequest(
            "The Idempotency-Key header is not valid.",
            {"Idempotency-Key": [f"Must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters."]},
        )
    if not fingerprint:
        raise ValueError("an idempotency key needs the request's fingerprint")


def _check_lease(lease_seconds: float) -> None:
    if lease_seconds <= 0:
        raise ValueError("lease_seconds must be positive")


def _check_same_request(stored: _AnyRow, fingerprint: str | None, key: str) -> None:
    if stored.fingerprint != fingerprint or stored.item_key != key:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different report. Send a new key for a new report."
        )


def _check_stored_key(
    connection: Connection, reporter: str, idem_key: str, fingerprint: str | None, key: str
) -> bool:
    """Whether the key is stored, bound to this request's report.

    :raises IdempotencyKeyReused: the key is stored for another fingerprint or item.
    """
    stored = connection.execute(_STORED_KEY, {"reporter": reporter, "key": idem_key}).first()
    if stored is None:
        return False
    _check_same_request(stored, fingerprint, key)
    return stored.report_id is not None


def _report_for_item(connection: Connection, reporter: str, key: str) -> Report | None:
    row = connection.execute(_REPORT_FOR_ITEM, {"reporter": reporter, "item_key": key}).first()
    return _report(row) if row is not None else None


def _save_case(
    connection: Connection, case: NewCase | str, report: NewReport, now: datetime
) -> tuple[str, bool | None]:
    """Create the case (or, if a case with this id was created meanwhile, join it), or check that
    the existing one is there. Returns the case id and, when the case existed, whether it must
    become urgent — for :func:`_touch_case`, which the caller runs last (see there).

    A ``NewCase`` whose id already exists is joined only when it is the same campaign or the same
    reporter's case — that is two reports racing to open one agreed case (a campaign reserved by
    id before sealing). Anything else would be a random id collision, and joining a stranger's
    case would show one person's report to another's investigators.

    :raises LookupError: ``case`` is an id and no such case exists.
    :raises RuntimeError: a ``NewCase`` id collides with an unrelated case.
    """
    if not isinstance(case, NewCase):
        if connection.execute(_CASE_OWNER, {"case_id": case}).first() is None:
            raise LookupError(f"no case {case}")
        return case, report.feels_unsafe
    campaign = case.campaign_message_id.strip() if case.campaign_message_id else None
    campaign_key = message_id_key(campaign) if campaign else None
    values = {
        "id": case.id,
        "created_at": now,
        "updated_at": now,
        "status": "open",
        "reporter": case.reporter.lower(),
        "sender_address": case.sender_address.lower() if case.sender_address else None,
        "origin": case.origin,
        "urgent": case.urgent or report.feels_unsafe,
        "campaign_message_id": campaign,
        "campaign_key": campaign_key,
    }
    if connection.execute(_OPEN_CASE[connection.dialect.name], values).first() is not None:
        return case.id, None
    existing = connection.execute(_CASE_OWNER, {"case_id": case.id}).first()
    if existing is None:  # pragma: no cover - the conflicting row is committed; cases are never deleted
        raise LookupError(f"no case {case.id}")
    same_campaign = campaign_key is not None and existing.campaign_key == campaign_key
    if not same_campaign and existing.reporter != values["reporter"]:
        raise RuntimeError(f"case id {case.id} is already used by an unrelated case")
    return case.id, case.urgent or report.feels_unsafe


def _touch_case(connection: Connection, case_id: str, urgent: bool, now: datetime) -> None:
    """Move the case's ``updated_at``; mark it urgent if asked (never the reverse).

    The filing transaction runs this as its last statement: the update locks the case's row until
    the commit, and a campaign case gets a report from every recipient at once, so holding that
    lock any longer would file them one after another.
    """
    connection.execute(_TOUCH_CASE, {"b_case_id": case_id, "b_now": now, "b_urgent": urgent})


def _report_values(report: NewReport, case_id: str, now: datetime) -> dict[str, Any]:
    mid = report.internet_message_id.strip() if report.internet_message_id else None
    return {
        "id": report.id,
        "case_id": case_id,
        "created_at": now,
        "reporter": report.reporter.lower(),
        "mailbox": report.mailbox.lower(),
        "item_id": report.item_id,
        "item_key": report.item_key,
        "change_key": report.change_key,
        "internet_message_id": mid,
        "message_id_key": message_id_key(mid) if mid else None,
        "category": report.category,
        "note": report.note,
        "feels_unsafe": report.feels_unsafe,
        "include_related": report.include_related,
        "message_sha256": report.message_sha256,
        "message_size": report.message_size,
        "manifest_sha256": report.manifest_sha256,
        "ledger_sequence": report.ledger_sequence,
        "reporter_oid": report.reporter_oid.lower() if report.reporter_oid else None,
        "adapter": report.adapter,
        "mime_source": report.mime_source,
        "response_json": report.response_json,
    }


def _save_idempotency_key(
    connection: Connection,
    reporter: str,
    idem_key: str,
    fingerprint: str,
    key: str,
    report_id: str | None,
    now: datetime,
) -> None:
    """Insert the key, bound to ``report_id`` (None: reserved for this request, not yet bound);
    a concurrent insert of the same key for the same request is fine.

    :raises IdempotencyKeyReused: the key is stored for another fingerprint or item.
    """
    values = {
        "reporter": reporter,
        "key": idem_key,
        "fingerprint": fingerprint,
        "item_key": key,
        "report_id": report_id,
        "created_at": now,
    }
    if connection.execute(_INSERT_KEY[connection.dialect.name], values).first() is not None:
        return
    stored = connection.execute(_STORED_KEY, {"reporter": reporter, "key": idem_key}).one()
    _check_same_request(stored, fingerprint, key)
    if stored.report_id is None and report_id is not None:
        connection.execute(_BIND_KEY, {"b_reporter": reporter, "b_key": idem_key, "b_report_id": report_id})


def _audit_json(details: Mapping[str, Any]) -> str:
    """Serialise audit details, refusing any key that could carry a note, body or secret.

    :raises ValueError: a forbidden key, or a value JSON cannot represent.
    """
    bad = sorted(_forbidden_keys(details))
    if bad:
        raise ValueError(f"audit details must not contain {', '.join(bad)}")
    try:
        return json.dumps(dict(details), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit details must be plain JSON: {exc}") from None


def _forbidden_keys(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if str(key).lower() in FORBIDDEN_AUDIT_KEYS:
                found.add(str(key))
            found |= _forbidden_keys(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            found |= _forbidden_keys(inner)
    return found


def _report(row: _AnyRow) -> Report:
    """A report from a row of ``_REPORT_COLUMNS``."""
    return Report(**row._asdict())


def _case(row: CaseRow) -> Case:
    return Case(
        id=row.id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        status=row.status,
        reporter=row.reporter,
        sender_address=row.sender_address,
        origin=row.origin,
        urgent=row.urgent,
        campaign_message_id=row.campaign_message_id,
    )


__all__ = [
    "AlreadyFiled",
    "AuditEntry",
    "Case",
    "CaseReserver",
    "ChosenCase",
    "Lookup",
    "NewCase",
    "NewReport",
    "Report",
    "ReportRepository",
    "item_key",
    "message_id_key",
]
