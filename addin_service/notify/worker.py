"""The outbox worker: claim due notifications, send them, record the outcome; escalate.

One :class:`OutboxWorker` is one loop. Run it in a thread of the web process (the embedded
default, :func:`addin_service.notify.cli.start_worker_thread`) or in ``addin-service worker``
processes, as many as wanted: claims never overlap (see :mod:`addin_service.notify.outbox`).

Per row: build the message (attaching the stored ``message.eml`` for the security team), ask the
transport ``already_sent`` first if an earlier attempt may have gone out, send, then mark it sent —
or failed, with backoff, or dead. A message the mail system refuses for its size (a reported
message over the mailbox's maximum send size, typically) goes again at once without the attached
copy, saying where the evidence is: the security team being told matters more than the copy.

A batch is claimed together; if working through it takes more than half the lease, the rest is
handed back untried rather than risk another worker taking rows this one is about to send.
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

from addin_service.errors import ServiceError
from addin_service.evidence.ports import EvidenceStore
from addin_service.notify.backoff import Backoff
from addin_service.notify.compose import Composer, NewNotification
from addin_service.notify.metrics import OutboxMetrics
from addin_service.notify.outbox import ClaimedNotification, DueEscalation, Outbox
from addin_service.notify.ports import Attachment, DeliveryFailed, OutgoingMessage, Sender

log = logging.getLogger("addin_service.notify.worker")
T = TypeVar("T")

EVIDENCE_FILE = "message.eml"
WITHHELD = "Withheld, not sent: a later report of this case names the recipient as a sender."
# How long to keep trying to record an outcome through a database blip (a failover, a pooler
# restart) before leaving the row to its lease: about 18 s. A sent message left unrecorded is sent
# again once the lease runs out, and over SMTP nothing can tell that it already arrived.
RECORD_RETRY_DELAYS = (0.1, 0.5, 2.0, 5.0, 10.0)


class _Recorder:
    """Writes a batch's outcomes one at a time on its own thread, so that recording message *n* (a
    database round trip) overlaps sending message *n+1*. At most one outcome is ever waiting: before
    a new one is handed over, the previous one must be written. A worker killed mid-batch therefore
    leaves at most two sent-but-unrecorded rows instead of one — sent again later over SMTP, found in
    Sent Items over EWS and Graph.
    """

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor
        self._pending: Future[None] | None = None

    def submit(self, outcome: Callable[[], None]) -> None:
        self.drain()
        self._pending = self._executor.submit(outcome)

    def drain(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker paces itself. ``escalate_after`` None: no escalation from this worker."""

    batch_size: int = 10
    lease_seconds: float = 300.0
    poll_interval: float = 0.5
    backoff: Backoff = field(default_factory=Backoff)
    escalate_after: float | None = None
    escalation_interval: float = 60.0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.lease_seconds <= 0 or self.poll_interval <= 0:
            raise ValueError("batch size, lease and poll interval must be positive")


class OutboxWorker:
    """Sends what the outbox holds. ``wake`` (optional) is set by the filer after a commit, so an
    in-process worker picks new rows up at once instead of at the next poll."""

    def __init__(
        self,
        outbox: Outbox,
        sender: Sender,
        evidence: EvidenceStore,
        *,
        from_address: str,
        composer: Composer | None = None,
        config: WorkerConfig | None = None,
        metrics: OutboxMetrics | None = None,
        wake: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._outbox = outbox
        self._sender = sender
        self._evidence = evidence
        self._from = from_address
        self._composer = composer
        self.config = config or WorkerConfig()
        self._metrics = metrics
        self._wake = wake or threading.Event()
        self._clock = clock
        self._sleep = sleep
        self._next_escalation = 0.0
        self._recorder: _Recorder | None = None

    # -- loop --------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set. Database outages are waited out; nothing ends the loop but
        ``stop`` (rows a failed batch held come back when their lease runs out)."""
        log.info("outbox worker started", extra={"event": "worker.started", "transport": self._sender.name})
        while not stop.is_set():
            try:
                self.escalate_if_due()
                done = self.run_once(stop)
            except ServiceError as exc:
                log.warning("outbox worker waiting: %s", type(exc).__name__, extra={"event": "worker.waiting"})
                stop.wait(min(5.0, self.config.poll_interval * 10))
                continue
            except Exception as exc:  # noqa: BLE001 - a bug must not end the loop; leases make it safe
                log.error(
                    "outbox worker error; carrying on", extra={"event": "worker.error", "error": type(exc).__name__}
                )
                stop.wait(min(5.0, self.config.poll_interval * 10))
                continue
            if done == 0:
                self._wake.wait(self.config.poll_interval)
                self._wake.clear()
        log.info("outbox worker stopped", extra={"event": "worker.stopped"})

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Claim one batch and work through it; the number of rows handled.

        :raises DatabaseUnavailable: the claim itself failed.
        """
        started = self._clock()
        batch = self._outbox.claim(self.config.batch_size, self.config.lease_seconds)
        if not batch:
            return 0
        try:
            withheld = self._outbox.withheld(batch)
        except ServiceError:
            self._outbox.release(batch)
            raise
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-recorder") as recorder:
            self._recorder = _Recorder(recorder)
            try:
                for index, row in enumerate(batch):
                    out_of_time = self._clock() - started > self.config.lease_seconds / 2
                    if out_of_time or (stop is not None and stop.is_set()):
                        self._recorder.drain()
                        self._outbox.release(batch[index:])
                        return index
                    self._deliver(row, withheld=row.id in withheld)
            finally:
                self._recorder.drain()
                self._recorder = None
        return len(batch)

    def wake(self) -> None:
        """Look for new rows now (called after a report is filed in this process)."""
        self._wake.set()

    # -- one row -----------------------------------------------------------------------------

    def _deliver(self, row: ClaimedNotification, withheld: bool = False) -> None:
        if withheld:
            # Queued before a later report of the case named the recipient as a sender. Given up,
            # not sent; a retry is checked again.
            self._failed(row, DeliveryFailed(WITHHELD, permanent=True))
            return
        try:
            message = self._message(row)
        except FileNotFoundError:
            self._failed(row, DeliveryFailed("The evidence file to attach is missing.", permanent=True))
            return
        except (OSError, ServiceError) as exc:
            self._failed(row, DeliveryFailed(f"The evidence file could not be read ({type(exc).__name__})."))
            return
        try:
            if row.sent_check and self._sender.already_sent(message):
                log.info("uncertain send found already sent", extra={"event": "outbox.found_sent", "outbox_id": row.id})
                if self._metrics:
                    self._metrics.found_sent.inc()
                self._sent(row, "An earlier attempt had sent it (found in Sent Items).")
                return
            note = self._send(row, message)
        except DeliveryFailed as exc:
            self._failed(row, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a transport bug must not stop the worker
            log.error("transport failed unexpectedly", extra={"event": "outbox.bug", "error": type(exc).__name__})
            self._failed(row, DeliveryFailed(f"Sending failed unexpectedly ({type(exc).__name__})."))
            return
        self._sent(row, note)

    def _send(self, row: ClaimedNotification, message: OutgoingMessage) -> str | None:
        """Send ``message``; if the mail system refuses it for its size and it carries the reported
        message, send it again without that copy. Returns the note to record with the outcome.

        :raises DeliveryFailed: as the sender's ``send``.
        """
        try:
            self._sender.send(message)
            return None
        except DeliveryFailed as exc:
            if not (exc.too_large and message.attachments):
                raise
            refusal = exc.detail
        log.warning(
            "the mail system refused a notification for its size; sending it without the attached message",
            extra={"event": "outbox.sent_without_copy", "outbox_id": row.id, "case_id": row.case_id},
        )
        self._sender.send(without_copy(message, row.case_id, row.report_id))
        return f"Sent without the attached message, which was refused for its size: {refusal}"

    def _message(self, row: ClaimedNotification) -> OutgoingMessage:
        attachments: tuple[Attachment, ...] = ()
        if row.attach_message and row.report_id:
            data = self._evidence.read_file(row.case_id, row.report_id, EVIDENCE_FILE)
            attachments = (Attachment(f"reported-message-{row.report_id}.eml", "message/rfc822", data),)
        return OutgoingMessage(
            message_id=row.message_id,
            from_address=self._from,
            to=(row.recipient,),
            subject=row.subject,
            text=row.text,
            html=row.html,
            urgent=row.urgent,
            attachments=attachments,
        )

    def _sent(self, row: ClaimedNotification, note: str | None) -> None:
        self._record(lambda: self._record_sent(row, note))

    def _failed(self, row: ClaimedNotification, failure: DeliveryFailed) -> None:
        self._record(lambda: self._record_failed(row, failure))

    def _record(self, outcome: Callable[[], None]) -> None:
        """Record an outcome; within a batch, while the next message is being sent (see _Recorder)."""
        if self._recorder is None:
            outcome()
        else:
            self._recorder.submit(outcome)

    def _retrying(self, record: Callable[[], T]) -> T:
        """``record()``, tried again through a short database outage.

        :raises ServiceError: still failing after the last of ``RECORD_RETRY_DELAYS``.
        """
        for delay in RECORD_RETRY_DELAYS:
            try:
                return record()
            except ServiceError as exc:
                log.warning(
                    "could not record an outcome; trying again in %.1f s",
                    delay,
                    extra={"event": "outbox.record_retry", "error": type(exc).__name__},
                )
                self._sleep(delay)
        return record()

    def _record_sent(self, row: ClaimedNotification, note: str | None) -> None:
        try:
            self._retrying(lambda: self._outbox.mark_sent(row, note))
        except ServiceError:
            log.error("sent, but could not record it; the lease will expire", extra={"outbox_id": row.id})
            return
        if self._metrics:
            self._metrics.sent.labels(role=row.role).inc()
            self._metrics.delivery_seconds.observe(max(0.0, (datetime.now(UTC) - row.created_at).total_seconds()))

    def _record_failed(self, row: ClaimedNotification, failure: DeliveryFailed) -> None:
        try:
            state = self._retrying(
                lambda: self._outbox.mark_failed(
                    row,
                    failure.detail,
                    permanent=failure.permanent,
                    backoff=self.config.backoff,
                    retry_after=failure.retry_after,
                )
            )
        except ServiceError:
            log.error("could not record a failed attempt; the lease will expire", extra={"outbox_id": row.id})
            return
        if self._metrics:
            self._metrics.failed.labels(kind="permanent" if failure.permanent else "transient").inc()
            if state == "dead":
                self._metrics.dead.labels(role=row.role).inc()
        level = logging.ERROR if state == "dead" else logging.WARNING
        log.log(
            level,
            "notification %s",
            "given up" if state == "dead" else "will be retried",
            extra={
                "event": "outbox.dead" if state == "dead" else "outbox.retry",
                "outbox_id": row.id,
                "case_id": row.case_id,
                "role": row.role,
                "attempts": row.attempts,
                "error": failure.detail,
            },
        )

    # -- escalation --------------------------------------------------------------------------

    def escalate_if_due(self) -> int:
        """Every ``escalation_interval``: queue escalations for unacknowledged manager notifications.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        after = self.config.escalate_after
        if after is None or self._composer is None or self._clock() < self._next_escalation:
            return 0
        self._next_escalation = self._clock() + self.config.escalation_interval
        return self.escalate(after)

    def escalate(self, after_seconds: float) -> int:
        """Escalate every due report now; the number escalated.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        if self._composer is None:
            return 0
        count = 0
        for due in self._outbox.due_escalations(after_seconds):
            notifications = self._escalation_messages(due, after_seconds)
            if self._outbox.queue_escalation(due, notifications):
                count += 1
                log.warning(
                    "report escalated: not acknowledged in time",
                    extra={"event": "case.escalated", "case_id": due.case_id, "report_id": due.report_id},
                )
                if self._metrics:
                    self._metrics.escalations.inc()
        if count:
            self.wake()
        return count

    def _escalation_messages(self, due: DueEscalation, after_seconds: float) -> list[NewNotification]:
        assert self._composer is not None
        return [
            self._composer.escalation(
                case_id=due.case_id,
                recipient=target,
                first_role=due.first_role,
                first_sent_at=due.first_sent_at,
                urgent=due.urgent,
                hours=after_seconds / 3600,
            )
            for target in due.targets
        ]


def without_copy(message: OutgoingMessage, case_id: str, report_id: str | None) -> OutgoingMessage:
    """``message`` without its attachments, opening with where the reported message is kept. The body
    was written for the message with its copy, so the note says that it overrides what follows."""
    size = sum(len(a.data) for a in message.attachments)
    where = f"case {case_id}" + (f", report {report_id}" if report_id else "")
    note = (
        f"The reported message ({size / 1_048_576:.1f} MB) is not attached after all: the mail system refused "
        "this email with it for its size, so it was sent without it (where this email says that the message "
        f"is attached, it is not). It is sealed in the evidence store as {where}; an administrator can export "
        f"it with: addin-service evidence export {case_id} -o {case_id}.zip"
    )
    body_open = re.search(r"<body\b[^>]*>", message.html, re.IGNORECASE)
    at = body_open.end() if body_open else 0
    paragraph = f'<p style="font-weight:bold">{html.escape(note)}</p>'
    return replace(
        message,
        attachments=(),
        text=f"{note}\n\n{message.text}",
        html=message.html[:at] + paragraph + message.html[at:] if message.html else "",
    )
