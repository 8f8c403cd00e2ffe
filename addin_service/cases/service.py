"""The reporting use case: capture → store → case → outbox, one unit of work.

A report is either fully filed (evidence sealed in the ledger, then the case, report, audit and
outbox rows committed together) or clearly not filed (an error, nothing recorded). Evidence is
sealed before the database commit: an orphaned package is harmless, a record without its evidence
is not.

Around the capture:

* the origin analysis of the transport headers (inside, outside, spoofed) goes into
  ``metadata.json`` and the case;
* the case is chosen before sealing (the package lives under the case id), in one short
  transaction: the campaign case when another reporter filed the same ``Message-ID`` (reserved
  atomically, so concurrent first reports of one message share one case — and every report is still
  filed as its own evidence), else the reporter's open case about the same sender, else a new case;
* the reporter's managers are looked up (directory → mapping file → fallback) outside any
  transaction (the directory is asked as soon as the report arrives, while the message is being
  captured), the routing policy decides who is told, and the rendered notifications are written
  to the outbox in the filing transaction. The answer lists roles and status, never addresses.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from addin_service import ids
from addin_service.auth.caller import Caller
from addin_service.cases.capture_tee import HeaderTee
from addin_service.cases.claim_keeper import ClaimKeeper
from addin_service.cases.origin import OriginAnalysis, analyze_origin
from addin_service.cases.origin_headers import normalise_address
from addin_service.cases.support import support_contacts
from addin_service.db.reports import (
    AlreadyFiled,
    HeldClaim,
    NewCase,
    NewReport,
    Report,
    ReportRepository,
    item_key,
    message_id_key,
)
from addin_service.errors import NotYourMailbox, ReportInProgress
from addin_service.evidence.facts import message_facts
from addin_service.evidence.ports import EvidenceStore, SealedPackage
from addin_service.mail.download import MIN_BYTES_PER_SECOND
from addin_service.mail.ports import CapturedItem, ItemRef, Mailbox, canonical_item_id
from addin_service.notify.filing import PreparedNotifications
from addin_service.notify.outbox import Outbox
from addin_service.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from addin_service.notify.bootstrap import Notifications

log = logging.getLogger("addin_service.cases")
METADATA_FORMAT = 1
CLAIM_ATTEMPTS = 3
CLAIM_MARGIN_SECONDS = 60.0


def claim_hold_seconds(settings: Settings) -> float:
    """How long a request may keep its claim on an item alive (see ``claim_keeper``): longer than
    its capture can possibly take (retries within the waiting budget, a last attempt that may start
    at its end and read the largest allowed message at the floor rate, a last read's timeout), so
    that a retry never captures the same item beside a request that is still capturing it."""
    largest_download = settings.max_message_bytes / MIN_BYTES_PER_SECOND
    return 2 * settings.exchange_max_wait + settings.ews_timeout + largest_download + CLAIM_MARGIN_SECONDS


@dataclass(frozen=True)
class ReportCommand:
    """What the reporter asked for, already validated by the API schema."""

    item_id: str
    id_format: str
    mailbox: str | None
    category: str
    note: str
    feels_unsafe: bool
    include_related: bool

    def fingerprint(self, mailbox: str) -> str:
        """Hash of the request as the service understood it; an Idempotency-Key binds to it."""
        canonical = {
            "item_id": canonical_item_id(self.item_id, self.id_format),
            "mailbox": mailbox,
            "category": self.category,
            "note": self.note,
            "feels_unsafe": self.feels_unsafe,
            "include_related": self.include_related,
        }
        blob = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class FiledReport:
    created: bool  # False when an earlier answer was replayed
    body: dict[str, Any]


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ReportFiler:
    """Files reports. One instance per app; safe to call from many threads."""

    def __init__(
        self,
        settings: Settings,
        repository: ReportRepository,
        evidence: EvidenceStore,
        mailbox: Mailbox,
        *,
        claim_wait_seconds: float = 30.0,
        notifications: Notifications | None = None,
        claims: ClaimKeeper | None = None,
    ) -> None:
        self._settings = settings
        self._repo = repository
        self._evidence = evidence
        self._mailbox = mailbox
        self._claim_wait = claim_wait_seconds
        self._claims = claims or ClaimKeeper(repository, max_hold_seconds=claim_hold_seconds(settings))
        self._notifications = notifications
        self._campaigns = notifications.outbox if notifications is not None else Outbox(repository.db)

    def file(
        self,
        caller: Caller,
        command: ReportCommand,
        idempotency_key: str | None,
        *,
        notify: bool = True,
        charge: Callable[[], None] | None = None,
    ) -> FiledReport:
        """File one report, or replay the first answer for a retry.

        ``notify=False`` files the evidence without telling anyone (no routing, no outbox rows, an
        empty ``notifications`` list, and the audit entry says so): for the reporter's related
        messages, whose case's people were told with the report that asked for them.

        ``charge`` (the rate limit) is called only by the request that is about to reach Exchange,
        once it holds the item's claim: never for a replay, nor for a retry that waits for the
        request filing the same report.

        :raises MessageNotFound, NotYourMailbox, MailboxUnavailable, MessageTooLarge,
            EvidenceStoreUnavailable, DatabaseUnavailable, IdempotencyKeyReused, ReportInProgress
        :raises RateLimited: from ``charge``; the claim is given up again.
        """
        mailbox, item_id, key, fingerprint = _identity(caller, command)
        for _ in range(CLAIM_ATTEMPTS):
            lookup = self._repo.lookup_or_claim(
                caller.upn, key, idempotency_key, fingerprint, lease_seconds=self._claims.lease_seconds
            )
            if lookup.existing is not None:
                return self._replay(caller, lookup.existing, idempotency_key, key, fingerprint)
            if lookup.token is not None:
                claim = HeldClaim(caller.upn, key, lookup.token)
                with self._claims.holding(claim):
                    if charge is not None:
                        try:
                            charge()
                        except BaseException:
                            self._claims.release(claim, idem_key=idempotency_key, fingerprint=fingerprint)
                            raise
                    return self._capture_and_file(
                        caller, command, mailbox, item_id, fingerprint, idempotency_key, claim, notify
                    )
            existing = self._repo.wait_for_report(caller.upn, key, timeout=self._claim_wait)
            if existing is not None:
                return self._replay(caller, existing, idempotency_key, key, fingerprint)
        raise ReportInProgress("A report for this message is being filed right now. Try again in a moment.", 2)

    def find_existing(self, caller: Caller, command: ReportCommand, idempotency_key: str | None) -> Report | None:
        """The report :meth:`file` would replay for this request, read without claiming anything;
        None when it would file a new one (or one is still being filed).

        :raises IdempotencyKeyReused: the key was used for a different request.
        :raises DatabaseUnavailable: the database cannot be reached.
        """
        _mailbox, _item_id, key, fingerprint = _identity(caller, command)
        existing = self._repo.lookup(caller.upn, key, idempotency_key, fingerprint).existing
        if existing is not None:
            _check_same_person(caller, existing)
        return existing

    def _replay(
        self, caller: Caller, existing: Report, idem_key: str | None, key: str, fingerprint: str
    ) -> FiledReport:
        _check_same_person(caller, existing)
        if idem_key:
            self._repo.remember_key(caller.upn, idem_key, fingerprint, key, existing.id)
        log.info("report replayed", extra={"event": "report.replayed", "report_id": existing.id})
        return FiledReport(created=False, body=json.loads(existing.response_json))

    def _capture_and_file(
        self,
        caller: Caller,
        command: ReportCommand,
        mailbox: str,
        item_id: str,
        fingerprint: str,
        idem_key: str | None,
        claim: HeldClaim,
        notify: bool = True,
    ) -> FiledReport:
        key = claim.item_key
        report_id = ids.new_report_id()
        started = time.perf_counter()
        pending = None
        prepared: PreparedNotifications | None = None
        if self._notifications is not None and notify:
            # The directory is asked while the message is captured, not after.
            self._notifications.planner.prefetch(caller.upn.lower())
        try:
            pending = self._evidence.open_package(report_id, self._settings.max_message_bytes)
            tee = HeaderTee(pending)
            ref = ItemRef(item_id=item_id, mailbox=mailbox, reporter=caller.upn, user_token=caller.token)
            captured = self._mailbox.capture(ref, tee)
            facts = message_facts(io.BytesIO(tee.header_block))
            origin = analyze_origin(
                captured.headers,
                self._settings.accepted_domains,
                trusted_authserv_ids=self._settings.trusted_authserv_ids,
            )
            sender = _sender_address(captured, facts)
            also_claimed = frozenset(a for a in (captured.from_address, captured.sender) if a)
            campaign = _campaign_id(captured.internet_message_id)
            case = self._choose_case(caller.upn, sender, command.feels_unsafe, campaign, origin)
            case_id = case if isinstance(case, str) else case.id
            # Every report keeps its claimed senders with the case, notified or not (rule 1 in routing).
            named = (*origin.claimed_senders, *origin.display_name_addresses, *also_claimed)
            claimed = {a for a in (normalise_address(x) for x in named) if a}
            if self._notifications is not None and notify:
                earlier = self._repo.case_senders(case_id) if isinstance(case, str) else frozenset()
                prepared = self._notifications.planner.prepare(
                    case_id=case_id,
                    report_id=report_id,
                    reporter=caller.upn.lower(),
                    category=command.category,
                    feels_unsafe=command.feels_unsafe,
                    origin=origin,
                    sender_address=sender,
                    also_claimed=also_claimed,
                    campaign_key=message_id_key(campaign) if campaign else None,
                    reported_at=datetime.now(UTC),
                    case_senders=earlier,
                )
                claimed.update(prepared.plan.senders)
                claimed.difference_update(earlier)
            metadata = self._metadata(caller, command, mailbox, report_id, case_id, captured, facts, origin)
            sealed = pending.seal(case_id, captured.headers, metadata)
            if prepared is not None:
                prepared.render(sealed)
        except BaseException:
            if pending is not None:
                pending.abort()
            self._claims.release(claim, idem_key=idem_key, fingerprint=fingerprint)
            raise

        body = self._response(sealed, mailbox, command, prepared)
        report = NewReport(
            id=report_id,
            reporter=caller.upn,
            reporter_oid=caller.object_id,
            mailbox=mailbox,
            item_id=item_id,
            item_key=key,
            change_key=captured.change_key,
            internet_message_id=captured.internet_message_id,
            category=command.category,
            note=command.note,
            feels_unsafe=command.feels_unsafe,
            include_related=command.include_related,
            message_sha256=sealed.message_sha256,
            message_size=sealed.message_size,
            manifest_sha256=sealed.manifest_sha256,
            ledger_sequence=sealed.ledger_sequence,
            adapter=captured.adapter,
            mime_source=captured.mime_source,
            response_json=json.dumps(body, sort_keys=True),
        )
        audit: dict[str, Any] = {
            "adapter": captured.adapter,
            "mailbox": mailbox,
            "size": sealed.message_size,
            "sha256": sealed.message_sha256,
            "ledger_sequence": sealed.ledger_sequence,
            "origin": {
                "verdict": origin.verdict,
                "spoofed": origin.spoofed,
                "authenticated": origin.authenticated,
                "reasons": list(origin.reasons),
            },
        }
        if campaign:
            audit["campaign"] = {"case_id": case_id, "message_id_key": message_id_key(campaign)}
        if prepared is not None:
            audit["routing"] = prepared.audit()
        elif not notify:
            audit["routing"] = {"notified": False, "why": "filed as a related message of an earlier report"}
        extra = self._filing_writer(prepared, case_id=case_id, report_id=report_id, body=body,
                                    joins_case=isinstance(case, str), senders=claimed)
        try:
            self._repo.file(
                report, case, claim_token=claim.token, idem_key=idem_key, fingerprint=fingerprint, audit=audit,
                extra=extra, senders=claimed,
            )
        except AlreadyFiled as already:
            self._claims.release(claim)  # the report exists: the claim has no more use
            return self._replay(caller, already.existing, idem_key, key, fingerprint)
        except BaseException:
            self._claims.release(claim, idem_key=idem_key, fingerprint=fingerprint)
            raise
        if self._notifications is not None:
            self._notifications.wake()
        log.info(
            "report filed",
            extra={
                "event": "report.filed",
                "report_id": report_id,
                "case_id": case_id,
                "size": sealed.message_size,
                "adapter": captured.adapter,
                "origin": origin.verdict,
                "notifications": len(body["notifications"]),
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return FiledReport(created=True, body=body)

    def _filing_writer(
        self,
        prepared: PreparedNotifications | None,
        *,
        case_id: str,
        report_id: str,
        body: dict[str, Any],
        joins_case: bool,
        senders: set[str],
    ) -> Callable[[Session], None] | None:
        """What the filing transaction writes besides the report: the notifications, and (joining a
        case, when notifications are on) the withdrawal of confirmations by anyone it names as a sender."""
        queue = prepared.writer(self._campaigns, case_id=case_id, report_id=report_id, body=body) if prepared else None
        if not (joins_case and senders and self._notifications is not None):
            return queue
        campaigns = self._campaigns

        def write(session: Session) -> None:
            if queue is not None:
                queue(session)
            campaigns.withdraw_named_acknowledgements(session, case_id=case_id, senders=senders)

        return write

    def _choose_case(
        self, reporter: str, sender: str | None, urgent: bool, campaign: str | None, origin: OriginAnalysis
    ) -> NewCase | str:
        """The campaign case of this Message-ID (reserved atomically; see the module docstring), else
        the reporter's open case about the same sender, else a new case — in one transaction.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        reserve = self._campaigns.campaign_reserver(campaign) if campaign else None
        chosen = self._repo.choose_case(reporter, sender, ids.new_case_id(), reserve)
        if chosen.exists:
            return chosen.id
        # A new case: ours, or a campaign case reserved by a report still being filed (whichever
        # commits first creates it; the repository has the other join it: same campaign key).
        return NewCase(
            id=chosen.id,
            reporter=reporter,
            sender_address=sender,
            origin=origin.verdict,
            urgent=urgent,
            campaign_message_id=campaign,
        )

    def _metadata(
        self,
        caller: Caller,
        command: ReportCommand,
        mailbox: str,
        report_id: str,
        case_id: str,
        captured: CapturedItem,
        facts: dict[str, Any],
        origin: OriginAnalysis,
    ) -> dict[str, Any]:
        return {
            "format": METADATA_FORMAT,
            "case_id": case_id,
            "report_id": report_id,
            "capture": {
                "reported_by": caller.upn,
                "reporter_object_id": caller.object_id,
                "captured_at": utc_now_iso(),
                "mailbox": mailbox,
                "item_id": captured.item_id,
                "change_key": captured.change_key,
                "internet_message_id": captured.internet_message_id,
                "received_at": captured.received_at,
                "exchange_size": captured.exchange_size,
                "adapter": captured.adapter,
                "server_version": captured.server_version,
                "mime_source": captured.mime_source,
                "exchange_from": captured.from_address,
                "exchange_sender": captured.sender,
            },
            "message": facts,
            "origin": origin.to_dict(),
            "classification": {
                "category": command.category,
                "note": command.note,
                "feels_unsafe": command.feels_unsafe,
                "include_related": command.include_related,
            },
        }

    def _response(
        self, sealed: SealedPackage, mailbox: str, command: ReportCommand, prepared: PreparedNotifications | None
    ) -> dict[str, Any]:
        return {
            "case_id": sealed.case_id,
            "report_id": sealed.report_id,
            "mailbox": mailbox,
            "sha256": sealed.message_sha256,
            "size": sealed.message_size,
            "created_at": utc_now_iso(),
            "category": command.category,
            "urgent": command.feels_unsafe,
            "notifications": prepared.response() if prepared is not None else [],
            "support": support_contacts(self._settings),
        }


def _campaign_id(internet_message_id: str | None) -> str | None:
    """The Message-ID that groups reports into a campaign, or None (absent or blank)."""
    value = (internet_message_id or "").strip()
    return value or None


def _check_same_person(caller: Caller, existing: Report) -> None:
    """A replay answers with the first report: only to the person who filed it. Reports are found by
    sign-in name, which Entra ID lets an organisation give to someone else later.

    :raises NotYourMailbox: the report was filed by another account with the same sign-in name.
    """
    if existing.reporter_oid is not None and existing.reporter_oid != caller.object_id:
        raise NotYourMailbox(
            "This message was reported from another account with your sign-in name. Nothing was filed."
        )


def _identity(caller: Caller, command: ReportCommand) -> tuple[str, str, str, str]:
    """What makes two requests the same report: the mailbox, the item's canonical id, their key,
    and the request's fingerprint (for a reused Idempotency-Key)."""
    mailbox = (command.mailbox or caller.upn).lower()
    item_id = canonical_item_id(command.item_id, command.id_format)
    return mailbox, item_id, item_key(mailbox, item_id), command.fingerprint(mailbox)


def item_key_of(caller: Caller, command: ReportCommand) -> str:
    """The key under which :meth:`ReportFiler.file` claims and finds this request's item."""
    return _identity(caller, command)[2]


def _sender_address(captured: CapturedItem, facts: dict[str, Any]) -> str | None:
    for candidate in (captured.from_address, captured.sender, facts.get("from_address")):
        if isinstance(candidate, str) and "@" in candidate:
            return candidate.strip().lower()
    return None
