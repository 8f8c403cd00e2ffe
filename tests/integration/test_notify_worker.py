"""The worker loop with a recording sender: sends, retries, gives up, checks before resending."""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest
from sqlalchemy.orm import Session

from addin_service.db import Database, ReportRepository
from addin_service.errors import DatabaseUnavailable
from addin_service.notify.backoff import Backoff
from addin_service.notify.compose import NewNotification, dedupe_key
from addin_service.notify.metrics import register_outbox_metrics
from addin_service.notify.outbox import ClaimedNotification, Outbox
from addin_service.notify.ports import DeliveryFailed, OutgoingMessage
from addin_service.notify.smtp import SmtpSender
from addin_service.notify.worker import RECORD_RETRY_DELAYS, OutboxWorker, WorkerConfig
from addin_service.observability.metrics import Metrics
from tests.fakes.db import make_case, make_report
from tests.fakes.evidence import InMemoryEvidenceStore, file_report
from tests.fakes.smtp import SmtpServer

FROM = "report-harassment@contoso.com"


@dataclass
class RecordingSender:
    """A Sender that keeps what it sent and fails as told."""

    name: str = "recording"
    sent: list[OutgoingMessage] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    in_sent_items: set[str] = field(default_factory=set)
    checked: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, message: OutgoingMessage) -> None:
        with self.lock:
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append(message)

    def already_sent(self, message: OutgoingMessage) -> bool:
        self.checked.append(message.message_id)
        return message.message_id in self.in_sent_items


def notification(to: str, role: str = "supervisor", attach: bool = False) -> NewNotification:
    return NewNotification(
        role=role, template=role, recipient=to, subject=f"About {to}", text="t", html="<p>h</p>", urgent=False,
        attach_message=attach, ack_required=False, message_id=f"<{abs(hash(to))}.{role}@contoso.com>",
        dedupe_key=dedupe_key(role, to),
    )


def queue(outbox: Outbox, *notifications: NewNotification, case_id: str | None = None,
          report_id: str | None = None) -> tuple[str, str]:
    item = f"AAMk{secrets.token_hex(6)}="
    report = make_report(id=report_id, item_id=item) if report_id else make_report(item_id=item)
    case = make_case(id=case_id) if case_id else make_case()

    def write(session: Session) -> None:
        outbox.enqueue(session, case_id=case.id, report_id=report.id, notifications=notifications)

    ReportRepository(outbox.db).file(report, case, claim_token=None, idem_key=None, fingerprint=None, audit={},
                                     extra=write)
    return case.id, report.id


@pytest.fixture
def outbox(any_database: Database) -> Outbox:
    return Outbox(any_database)


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def evidence() -> InMemoryEvidenceStore:
    return InMemoryEvidenceStore()


def worker(outbox: Outbox, sender: RecordingSender, evidence: InMemoryEvidenceStore, **config: object) -> OutboxWorker:
    settings = WorkerConfig(**{"backoff": Backoff(base_seconds=0.01, max_seconds=0.01, max_attempts=3), **config})
    return OutboxWorker(outbox, sender, evidence, from_address=FROM, config=settings)  # type: ignore[arg-type]


def test_the_worker_sends_what_is_queued_and_records_it(
    outbox: Outbox, sender: RecordingSender, evidence: InMemoryEvidenceStore
) -> None:
    queue(outbox, notification("a@contoso.com"), notification("b@contoso.com"))

    assert worker(outbox, sender, evidence).run_once() == 2

    assert [m.to for m in sender.sent] == [("a@contoso.com",), ("b@contoso.com",)]
    assert all(m.from_address == FROM for m in sender.sent)
    assert outbox.counts()["sent"] == 2
    assert sender.checked == []  # first attempts are not checked


def test_the_security_copy_carries_the_stored_message(
    outbox: Outbox, sender: RecordingSender, evidence: InMemoryEvidenceStore
) -> None:
    sealed = file_report(evidence, b"From: x@example.net\r\n\r\nthe evidence\r\n")
    queue(outbox, notification("security@contoso.com", "security", attach=True),
          case_id=sealed.case_id, report_id=sealed.report_id)

    worker(outbox, sender, evidence).run_once()

    [attachment] = sender.sent[0].attachments
    assert attachment.content_type == "message/rfc822"
    assert attachment.data == b"From: x@example.net\r\n\r\nthe evidence\r\n"


def test_a_copy_too_large_to_send_is_left_out_and_the_security_team_is_still_told(
    outbox: Outbox, sender: RecordingSender, evidence: InMemoryEvidenceStore
) -> None:
    """A reported message over the mailbox's maximum send size made the security notification dead:
    the security team was never told of the case."""
    stored = b"From: x@example.net\r\n\r\n" + b"v" * 3_000_000
    sealed = file_report(evidence, stored)
    html_body = '<html><body style="margin:0"><p>h &amp; more</p></body></html>'
    queue(outbox, replace(notification("security@contoso.com", "security", attach=True), html=html_body),
          case_id=sealed.case_id, report_id=sealed.report_id)
    sender.failures.append(DeliveryFailed("Exchange refused it (ErrorMessageSizeExceeded).", permanent=True,
                                          too_large=True))

    worker(outbox, sender, evidence).run_once()

    [sent] = sender.sent
    assert sent.attachments == ()
    assert sent.to == ("security@contoso.com",)
    where = f"case {sealed.case_id}, report {sealed.report_id}"
    assert sent.text.startswith("The reported message (2.9 MB) is not attached") and where in sent.text
    assert sent.text.endswith("\n\nt")
    assert sent.html.startswith('<html><body style="margin:0"><p style="font-weight:bold">The reported message')
    assert sent.html.endswith("<p>h &amp; more</p></body></html>") and where in sent.html
    [row] = outbox.entries("sent")
    assert row.last_error is not None and "refused for its size" in row.last_error
    assert "ErrorMessageSizeExceeded" in row.last_error


def test_over_smtp_the_security_team_is_told_when_the_relay_refuses_the_copy(
    outbox: Outbox, evidence: InMemoryEvidenceStore
) -> None:
    """What the security team reads when the reported message is larger than the relay takes."""
    sealed = file_report(evidence, b"From: x@example.net\r\n\r\n" + b"v" * 60_000)
    queue(outbox, notification("security@contoso.com", "security", attach=True),
          case_id=sealed.case_id, report_id=sealed.report_id)
    with SmtpServer(data_size_limit=40_000) as relay:
        smtp = SmtpSender(relay.url(), timeout=5)
        try:
            worker(outbox, smtp, evidence).run_once()  # type: ignore[arg-type]
        finally:
            smtp.close()
        [received] = relay.wait_for(1)

    message = received.message()
    assert list(message.iter_attachments()) == []
    text = message.get_body(("plain",))
    assert text is not None and f"export {sealed.case_id}" in text.get_content()
    assert outbox.counts()["sent"] == 1


@pytest.mark.parametrize(
    "failure",
    [
        DeliveryFailed("550 no such user", permanent=True),  # refused, but not for its size
        DeliveryFailed("Graph answered 503.", retry_after=1.0),
    ],
    ids=["permanent", "transient"],
)
def test_only_a_refusal_for_size_sends_the_security_notice_without_its_copy(
    outbox: Outbox, sender: RecordingSender, evidence: InMemoryEvidenceStore, failure: DeliveryFailed
) -> None:
    sealed = file_report(evidence, b"From: x@example.net\r\n\r\nthe evidence\r\n")
    queue(outbox, notification("security@contoso.com", "security", attach=True),
          case_id=sealed.case_id, report_id=sealed.report_id)
    sender.failures.append(failure)

    worker(outbox, sender, evidence).run_once()

    assert sender.sent == []
    assert outbox.counts()["sent"] == 0


def test_a_notice_without_a_copy_refused_for_size_fails_as_before(
    outbox: Outbox, sender: RecordingSender, evidence: InMemoryEvidenceStore
) -> None:
    """Nothing to leave out: the refusal is the outcome."""
    queue(outbox, notification("boss@contoso.com"))
    sender.failures.append(DeliveryFailed("552 too big", permanent=True, too_large=True))

    worker(outbox, sender, evidence).run_once()

    assert sender.sent == []
    [dead] = outbox.entries("dead")
    assert dead.last_error == "552 too big"


def test_a_missing_evidence_file_is_given_up_at_once(
    outbox: Outbox, sender: RecordingSender, evidence: InMemoryEvidenceStore
) -> None:
    queue(outbox, notification("security@contoso.com", "security", attach=True))

    worker(outbox, sender, evidence).run_once()

    [dead] = outbox.entries("dead")
    assert dead.last_error == "The evidence file to attach is missing."
    assert sender.sent == []


def test_a_temporary_failure_is_retried_and_checked_before_the_resend(
    outbox: Outbox, sender: RecordingSender, evidence: InMemoryEvidenceStore
) -> None:
    queue(outbox, notification("a@contoso.com"))
    sender.failures.append(DeliveryFailed("451 later"))
    loop = worker(outbox, sender, evidence)

    loop.run_once()
    assert outbox.entries("queued")[0].last_error == "451 later"
    _wait_until_due(outbox)
    loop.run_once()

    assert len(sender.sent) == 1
    assert sender.checked == [sender.sent[0].message_id]


def test_an_earlier_attempt_found_in_sent_items_is_not_sent_again(
    outbox: Outbox, sender: RecordingSender, evidence: InMemoryEvidenceStore
) -> None:
    queue(outbox, notification("a@contoso.com"))
    loop = worker(outbox, sender, evidence)
    sender.failures.append(DeliveryFailed("connection lost after the request went out"))
    loop.run_once()
    sender.in_sent_items.add(notification("a@contoso.com").message_id)
    _wait_until_due(outbox)

    loop.run_once()

    assert sender.sent == []
    [entry] = outbox.entries("sent")
    assert entry.last_error == "An earlier attempt had sent it (found in Sent Items)."


def test_attempts_run_out_and_the_notification_is_dead(
    outbox: Outbox, sender: RecordingSender, evidence: InMemoryEvidenceStore
) -> None:
    app_metrics = Metrics()
    registry = app_metrics.registry
    metrics = register_outbox_metrics(app_metrics, outbox)
    queue(outbox, notification("a@contoso.com"))
    sender.failures.extend(DeliveryFailed("451") for _ in range(3))
    loop = OutboxWorker(outbox, sender, evidence, from_address=FROM, metrics=metrics,
                        config=WorkerConfig(backoff=Backoff(base_seconds=0.01, max_seconds=0.01, max_attempts=3)))

    for _ in range(3):
        _wait_until_due(outbox)
        loop.run_once()

    assert outbox.counts()["dead"] == 1
    assert registry.get_sample_value("addin_outbox_dead_total", {"role": "supervisor"}) == 1
    assert registry.get_sample_value("addin_outbox_messages", {"state": "dead"}) == 1
    assert registry.get_sample_value("addin_outbox_failures_total", {"kind": "transient"}) == 3


def test_a_permanent_failure_is_dead_without_retrying(
    outbox: Outbox, sender: RecordingSender, evidence: InMemoryEvidenceStore
) -> None:
    queue(outbox, notification("gone@contoso.com"))
    sender.failures.append(DeliveryFailed("550 no such user", permanent=True))

    worker(outbox, sender, evidence).run_once()

    assert outbox.counts()["dead"] == 1


def test_a_sender_bug_does_not_stop_the_worker(
    outbox: Outbox, sender: RecordingSender, evidence: InMemoryEvidenceStore
) -> None:
    queue(outbox, notification("a@contoso.com"), notification("b@contoso.com"))
    sender.failures.append(KeyError("boom"))

    assert worker(outbox, sender, evidence).run_once() == 2

    assert [m.to for m in sender.sent] == [("b@contoso.com",)]
    assert outbox.entries("queued")[0].last_error == "Sending failed unexpectedly (KeyError)."


class BlinkingOutbox(Outbox):
    """An outbox whose database drops the first ``failures`` attempts to record a send."""

    def __init__(self, db: Database, failures: int) -> None:
        super().__init__(db)
        self.failures = failures

    def mark_sent(self, row: ClaimedNotification, note: str | None = None) -> bool:
        if self.failures:
            self.failures -= 1
            raise DatabaseUnavailable("The database is not reachable.", retry_after=5)
        return super().mark_sent(row, note)


@pytest.mark.parametrize(
    ("failures", "recorded"), [(2, True), (len(RECORD_RETRY_DELAYS) + 1, False)], ids=["blip", "outage"]
)
def test_a_send_is_recorded_through_a_database_blip_and_not_sent_again(
    any_database: Database, sender: RecordingSender, evidence: InMemoryEvidenceStore, failures: int, recorded: bool
) -> None:
    """Left unrecorded, the row would be sent again when its lease ran out: a second email."""
    outbox = BlinkingOutbox(any_database, failures)
    queue(outbox, notification("a@contoso.com"))
    waits: list[float] = []
    loop = OutboxWorker(outbox, sender, evidence, from_address=FROM, sleep=waits.append)  # type: ignore[arg-type]

    assert loop.run_once() == 1

    assert len(sender.sent) == 1
    if recorded:
        assert outbox.counts()["sent"] == 1
        assert waits == list(RECORD_RETRY_DELAYS[:failures])
    else:  # a longer outage: the lease decides, as before
        assert outbox.counts()["sending"] == 1
        assert waits == list(RECORD_RETRY_DELAYS)


def test_a_batch_that_outlives_half_its_lease_hands_the_rest_back(
    outbox: Outbox, sender: RecordingSender, evidence: InMemoryEvidenceStore
) -> None:
    queue(outbox, *(notification(f"p{i}@contoso.com") for i in range(4)))
    ticks = iter([0.0, 0.0, 1.0, 40.0, 40.0, 40.0])
    loop = OutboxWorker(outbox, sender, evidence, from_address=FROM, clock=lambda: next(ticks),
                        config=WorkerConfig(batch_size=4, lease_seconds=60))

    assert loop.run_once() == 2

    assert len(sender.sent) == 2
    assert outbox.counts() == {"queued": 2, "sending": 0, "sent": 2, "dead": 0}


def test_a_stopping_worker_hands_its_batch_back(
    outbox: Outbox, sender: RecordingSender, evidence: InMemoryEvidenceStore
) -> None:
    queue(outbox, notification("a@contoso.com"), notification("b@contoso.com"))
    stop = threading.Event()
    stop.set()

    assert worker(outbox, sender, evidence).run_once(stop) == 0

    assert outbox.counts()["queued"] == 2


@pytest.mark.postgres
def test_four_workers_on_postgresql_send_each_notification_once(postgres_database: Database) -> None:
    outbox = Outbox(postgres_database)
    for batch in range(10):
        queue(outbox, *(notification(f"p{batch}-{i}@contoso.com") for i in range(20)))
    sender = RecordingSender()
    evidence = InMemoryEvidenceStore()
    stop = threading.Event()
    loops = [worker(outbox, sender, evidence, batch_size=5, poll_interval=0.01) for _ in range(4)]
    threads = [threading.Thread(target=loop.run, args=(stop,)) for loop in loops]
    for thread in threads:
        thread.start()
    try:
        _wait(lambda: outbox.counts()["sent"] == 200)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    counts = Counter(m.message_id for m in sender.sent)
    assert len(counts) == 200 and set(counts.values()) == {1}


def _wait_until_due(outbox: Outbox) -> None:
    """The tests' backoff is at most 10 ms: after this, a row that failed is due again."""
    time.sleep(0.03)


def _wait(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() <= before
