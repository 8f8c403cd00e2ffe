"""One report request, from the validated command to the answer: a replay or a new report, the rate
limit charged only for the request that reaches Exchange, and "also save my other messages" filed so
that every retry gets the first answer.

* A replay of a filed report is answered from the database and never charged (DESIGN: the same
  request "returns the first report"), so a client retrying after a timeout is not refused; nor
  is a retry that arrives while the first request is still filing (it waits for that report).
* The related messages are filed after the report is committed, so a retry can see the report
  before its ``related`` is stored. The request that files them holds a lease (a claim in the
  repository under a key no Exchange item has) from before its report can be seen until their
  outcome is stored; a retry waits for the lease and answers the stored body. If the first request
  died in between, the retry files them itself.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from addin_service.auth.caller import Caller
from addin_service.cases.related import RelatedFiler
from addin_service.cases.service import FiledReport, ReportCommand, ReportFiler, item_key_of
from addin_service.db.reports import Report, ReportRepository
from addin_service.errors import ReportInProgress

# How long the request that files related messages holds their lease: longer than filing 50 of them
# takes, so a retry never files them alongside it; a process that dies frees them after this long.
RELATED_LEASE_SECONDS = 600.0
# How long a retry waits for that request to finish before answering 503 (Retry-After) instead.
RELATED_WAIT_SECONDS = 30.0


class ReportSubmissions:
    """Answers report requests: :meth:`submit`. Thread-safe (all state is in the repository)."""

    def __init__(self, filer: ReportFiler, related: RelatedFiler, repository: ReportRepository) -> None:
        self._filer = filer
        self._related = related
        self._repo = repository

    def submit(
        self, caller: Caller, command: ReportCommand, idempotency_key: str | None, *, charge: Callable[[], None]
    ) -> FiledReport:
        """File the report (or replay the first answer); ``charge`` is called only by the request
        that goes on to reach Exchange (see :meth:`ReportFiler.file`): never for a replay, nor for
        a retry that arrives while the first request is still filing.

        :raises RateLimited: from ``charge``.
        :raises IdempotencyKeyReused: the key was used for a different request (nothing charged).
        :raises ReportInProgress: the same report, or its related messages, are still being filed.
        :raises MessageNotFound, NotYourMailbox, MailboxUnavailable, MessageTooLarge,
            EvidenceStoreUnavailable, DatabaseUnavailable: as :meth:`ReportFiler.file`.
        """
        # Only a request for related messages must know before filing whether it replays (to take
        # their lease first); for the others, file() finds out in its own claim transaction.
        first = self._filer.find_existing(caller, command, idempotency_key) if command.include_related else None
        lease = _RelatedLease(self._repo, caller.upn, item_key_of(caller, command))
        try:
            if command.include_related and (first is None or _related_pending(first)):
                lease.acquire()  # before the report can be seen: a retry then waits for its related messages
            filed = self._filer.file(caller, command, idempotency_key, charge=charge)
            body = filed.body
            if filed.created and command.include_related:  # the lease is held: first was None
                body = self._file_related(caller, command, body)
            elif not filed.created and "related" not in body:
                body = self._finish_replay(caller, body, first, lease)
        finally:
            lease.release()
        return FiledReport(created=filed.created, body=body)

    def _file_related(self, caller: Caller, command: ReportCommand, body: dict[str, Any]) -> dict[str, Any]:
        """File the other messages from the sender and store the answer that says so, so that every
        replay is answered with this body. The caller holds the lease."""
        body = {**body, "related": self._related.file_related(caller, command, body).to_dict()}
        self._repo.update_response(body["report_id"], json.dumps(body, sort_keys=True))
        return body

    def _finish_replay(
        self, caller: Caller, body: dict[str, Any], first: Report | None, lease: _RelatedLease
    ) -> dict[str, Any]:
        """A replayed body without ``related``: as it is, unless the first request asked for related
        messages. Then wait for the request filing them (it holds the lease) and answer the body it
        stored; if it died before storing one, file them under the lease and answer that.

        :raises ReportInProgress: the related messages are still being filed (503, Retry-After).
        :raises DatabaseUnavailable: the database cannot be reached.
        """
        report = first if first is not None and first.id == body["report_id"] else None
        if report is None:
            report = self._repo.get_report(body["report_id"])
        if report is None or not report.include_related:
            return body
        lease.acquire()
        report = self._repo.get_report(body["report_id"])  # again, now that nobody else is filing them
        if report is None:  # pragma: no cover - reports are never deleted
            return body
        stored: dict[str, Any] = json.loads(report.response_json)
        if "related" in stored:
            return stored
        command = ReportCommand(
            item_id=report.item_id,  # canonical: the EWS form
            id_format="ews",
            mailbox=report.mailbox,
            category=report.category,
            note="",
            feels_unsafe=report.feels_unsafe,
            include_related=True,
        )
        return self._file_related(caller, command, stored)


def _related_pending(report: Report) -> bool:
    """The report asked for its sender's other messages and its stored answer does not say yet."""
    return report.include_related and "related" not in json.loads(report.response_json)


class _RelatedLease:
    """Who may file a report's related messages (see the module docstring)."""

    def __init__(self, repository: ReportRepository, reporter: str, item: str) -> None:
        self._repo = repository
        self._reporter = reporter
        self._key = hashlib.sha256(f"related\0{item}".encode()).hexdigest()
        self._token: str | None = None

    def acquire(self) -> None:
        """Take the lease, waiting while another request holds it (until released or expired).

        :raises ReportInProgress: still held by another request after the wait (503, Retry-After).
        :raises DatabaseUnavailable: the database cannot be reached.
        """
        # Bounded by time, not by rounds: retries arriving together each take the lease in turn,
        # briefly, so a waiter may lose several rounds without anyone being stuck.
        deadline = time.monotonic() + RELATED_WAIT_SECONDS
        while self._token is None:
            self._token = self._repo.claim(self._reporter, self._key, RELATED_LEASE_SECONDS)
            if self._token is not None:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReportInProgress("This report is being filed right now. Try again in a moment.", 2)
            # Returns once the holder released the lease or it expired; raises ReportInProgress when
            # ``remaining`` runs out first.
            self._repo.wait_for_report(self._reporter, self._key, timeout=remaining)

    def release(self) -> None:
        """Give the lease up; nothing if not held. :raises DatabaseUnavailable: (it then expires)."""
        if self._token is not None:
            token, self._token = self._token, None
            self._repo.release(self._reporter, self._key, token)
