"""The outbox on both back ends: written with the report, claimed once, leased, retried, given up."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from addin_service.db import ChosenCase, Database, ReportRepository
from addin_service.db.models import CaseRow
from addin_service.db.reports import AlreadyFiled, message_id_key
from addin_service.ids import new_case_id
from addin_service.notify.backoff import Backoff
from addin_service.notify.compose import NewNotification, campaign_notice_key, dedupe_key
from addin_service.notify.outbox import Outbox
from tests.fakes.db import make_case, make_report


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def notification(role: str = "supervisor", to: str = "morgan@contoso.com", **changes: object) -> NewNotification:
    n = NewNotification(
        role=role,
        template=role,
        recipient=to,
        subject=f"Subject for {role}",
        text="text",
        html="<p>html</p>",
        urgent=False,
        attach_message=False,
        ack_required=role == "supervisor",
        message_id=f"<R-1.{role}.{abs(hash(to)) % 10**8}@contoso.com>",
        dedupe_key=dedupe_key("test", role, to, str(changes.pop("salt", ""))),
        escalate_to=("sam@contoso.com", "security@contoso.com") if role == "supervisor" else (),
    )
    return replace(n, **changes)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(any_database: Database, clock: Clock) -> Outbox:
    return Outbox(any_database, clock=clock)


def queue(
    outbox: Outbox, case_id: str, report_id: str | None, notifications: Sequence[NewNotification]
) -> Callable[[Session], None]:
    """The ``extra`` that queues ``notifications`` in the filing transaction."""

    def write(session: Session) -> None:
        outbox.enqueue(session, case_id=case_id, report_id=report_id, notifications=notifications)

    return write


def file_report(outbox: Outbox, *notifications: NewNotification, reporter: str = "alex@contoso.com") -> tuple[str, str]:
    """File a report whose transaction also queues ``notifications``; (case id, report id)."""
    repo = ReportRepository(outbox.db)
    case = make_case(reporter)
    report = make_report(reporter, item_id=f"AAMk{new_case_id()[-8:]}=")
    repo.file(
        report,
        case,
        claim_token=None,
        idem_key=None,
        fingerprint=None,
        audit={},
        extra=queue(outbox, case.id, report.id, notifications),
    )
    return case.id, report.id


def test_rows_are_written_in_the_filing_transaction(outbox: Outbox) -> None:
    file_report(outbox, notification(), notification("security", "security@contoso.com"))

    assert outbox.counts() == {"queued": 2, "sending": 0, "sent": 0, "dead": 0}


def test_a_filing_that_fails_queues_nothing(outbox: Outbox) -> None:
    repo = ReportRepository(outbox.db)
    report = make_report()
    repo.file(report, make_case(), claim_token=None, idem_key=None, fingerprint=None, audit={})

    with pytest.raises(AlreadyFiled):
        repo.file(
            replace(report, id="R-0000000000000000"),
            make_case(),
            claim_token=None,
            idem_key=None,
            fingerprint=None,
            audit={},
            extra=queue(outbox, "HR-2026-00000000", None, [notification()]),
        )

    assert outbox.counts()["queued"] == 0


def test_the_same_dedupe_key_is_queued_once(outbox: Outbox) -> None:
    once = notification("security", "security@contoso.com", salt="campaign", campaign_once=True)
    file_report(outbox, once)
    file_report(outbox, once, reporter="riley@contoso.com")

    assert outbox.counts()["queued"] == 1


def test_a_claim_takes_due_rows_once(outbox: Outbox) -> None:
    file_report(outbox, notification(), notification("reporter", "alex@contoso.com"))

    first = outbox.claim(10, lease_seconds=60)
    second = outbox.claim(10, lease_seconds=60)

    assert len(first) == 2 and second == []
    assert {row.attempts for row in first} == {1}
    assert not any(row.sent_check for row in first)
    assert outbox.counts()["sending"] == 2


def test_a_row_whose_worker_died_is_claimed_again_after_its_lease_and_checked_first(
    outbox: Outbox, clock: Clock
) -> None:
    file_report(outbox, notification())
    lost = outbox.claim(10, lease_seconds=60)[0]

    clock.advance(59)
    assert outbox.claim(10, lease_seconds=60) == []
    clock.advance(2)
    again = outbox.claim(10, lease_seconds=60)

    assert [row.id for row in again] == [lost.id]
    assert again[0].sent_check and again[0].attempts == 2
    assert not outbox.mark_sent(lost)  # the dead worker's lease is gone
    assert outbox.mark_sent(again[0])
    assert outbox.counts()["sent"] == 1


def test_a_failure_waits_with_backoff_then_gives_up(outbox: Outbox, clock: Clock) -> None:
    file_report(outbox, notification())
    backoff = Backoff(base_seconds=10, max_seconds=100, max_attempts=2)

    row = outbox.claim(10, 60)[0]
    assert outbox.mark_failed(row, "451 try later", permanent=False, backoff=backoff, retry_after=None) == "queued"
    assert outbox.claim(10, 60) == []
    clock.advance(10)
    row = outbox.claim(10, 60)[0]
    assert row.sent_check
    assert outbox.mark_failed(row, "451 again", permanent=False, backoff=backoff, retry_after=None) == "dead"

    [entry] = outbox.entries("dead")
    assert entry.last_error == "451 again" and entry.attempts == 2


def test_a_permanent_failure_is_dead_at_once(outbox: Outbox) -> None:
    file_report(outbox, notification())
    row = outbox.claim(10, 60)[0]

    state = outbox.mark_failed(row, "550 no such user", permanent=True, backoff=Backoff(), retry_after=None)

    assert state == "dead"


def test_a_dead_row_can_be_retried_and_is_checked_before_sending(outbox: Outbox) -> None:
    file_report(outbox, notification(), notification("reporter", "alex@contoso.com"))
    for row in outbox.claim(10, 60):
        outbox.mark_failed(row, "550", permanent=True, backoff=Backoff(), retry_after=None)

    assert outbox.retry(all_dead=True) == 2
    again = outbox.claim(10, 60)
    assert len(again) == 2 and all(row.sent_check and row.attempts == 1 for row in again)


def test_handing_rows_back_restores_them(outbox: Outbox) -> None:
    file_report(outbox, notification(), notification("reporter", "alex@contoso.com"))
    rows = outbox.claim(10, 60)

    assert outbox.release(rows) == 2
    again = outbox.claim(10, 60)
    assert {row.attempts for row in again} == {1}


def test_an_acknowledgement_is_recorded_once_with_an_audit_entry(outbox: Outbox) -> None:
    n = notification()
    case_id, report_id = file_report(outbox, n)

    first = outbox.acknowledge(n.dedupe_key)
    second = outbox.acknowledge(n.dedupe_key)

    assert first is not None and first.first_time and first.case_id == case_id
    assert second is not None and not second.first_time and second.acknowledged_at == first.acknowledged_at
    assert outbox.acknowledge("0" * 64) is None
    audit = ReportRepository(outbox.db).list_audit(case_id=case_id)
    assert [a.action for a in audit].count("notification.acknowledged") == 1
    assert audit[-1].actor == "morgan@contoso.com"


def test_an_unacknowledged_manager_notification_is_escalated_once(outbox: Outbox, clock: Clock) -> None:
    n = notification()
    case_id, report_id = file_report(outbox, n)
    outbox.mark_sent(outbox.claim(10, 60)[0])

    assert outbox.due_escalations(3600) == []
    clock.advance(3600)
    [due] = outbox.due_escalations(3600)
    assert due.report_id == report_id
    assert due.targets == ("sam@contoso.com", "security@contoso.com")

    escalation = notification("escalation", "sam@contoso.com", ack_required=False, escalate_to=())
    assert outbox.queue_escalation(due, [escalation])
    assert not outbox.queue_escalation(due, [escalation])
    assert outbox.due_escalations(3600) == []
    assert outbox.counts()["queued"] == 1


def test_an_escalation_never_goes_to_someone_a_later_report_of_the_case_named_as_a_sender(
    outbox: Outbox, clock: Clock
) -> None:
    """Targets are chosen at filing; by the time nobody has confirmed, the case may name one of them."""
    case_id, _ = file_report(outbox, notification())
    outbox.mark_sent(outbox.claim(10, 60)[0])
    later = make_report("alex@contoso.com", item_id="AAMkLATER=")
    ReportRepository(outbox.db).file(
        later, case_id, claim_token=None, idem_key=None, fingerprint=None, audit={}, senders=["sam+x@contoso.com"]
    )
    clock.advance(3600)

    [due] = outbox.due_escalations(3600)

    assert due.targets == ("security@contoso.com",)


def test_a_configured_mailbox_named_by_a_later_report_is_still_escalated_to(
    any_database: Database, clock: Clock
) -> None:
    """A name written into a display name must not silence a mailbox (routing rule 1's exception)."""
    outbox = Outbox(any_database, clock=clock, mailboxes=("Security@contoso.com",))
    case_id, _ = file_report(outbox, notification())
    outbox.mark_sent(outbox.claim(10, 60)[0])
    later = make_report("alex@contoso.com", item_id="AAMkLATER=")
    ReportRepository(outbox.db).file(
        later,
        case_id,
        claim_token=None,
        idem_key=None,
        fingerprint=None,
        audit={},
        senders=["sam@contoso.com", "security@contoso.com"],
    )
    clock.advance(3600)

    [due] = outbox.due_escalations(3600)

    assert due.targets == ("security@contoso.com",)


def test_an_acknowledged_notification_is_not_escalated(outbox: Outbox, clock: Clock) -> None:
    n = notification()
    file_report(outbox, n)
    outbox.mark_sent(outbox.claim(10, 60)[0])
    outbox.acknowledge(n.dedupe_key)
    clock.advance(7200)

    assert outbox.due_escalations(3600) == []


def test_the_first_report_of_a_message_reserves_the_campaign_case(outbox: Outbox) -> None:
    first = outbox.reserve_campaign("<x@example.net>", "HR-2026-AAAAAAAA")
    second = outbox.reserve_campaign(" <x@example.net> ", "HR-2026-BBBBBBBB")

    assert first == second == "HR-2026-AAAAAAAA"
    assert outbox.reserve_campaign("<other@example.net>", "HR-2026-CCCCCCCC") == "HR-2026-CCCCCCCC"


def test_a_closed_campaign_case_gives_way_to_a_new_one(outbox: Outbox) -> None:
    case_id, _ = file_report(outbox)
    outbox.reserve_campaign("<x@example.net>", case_id)
    with outbox.db.session() as session:
        session.execute(update(CaseRow).where(CaseRow.id == case_id).values(status="closed"))

    assert outbox.reserve_campaign("<x@example.net>", "HR-2026-BBBBBBBB") == "HR-2026-BBBBBBBB"


def test_choosing_the_case_of_a_report_joins_its_campaign_writing_only_to_reserve_it(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = ReportRepository(outbox.db)
    mid = "<x@example.net>"
    turns = write_turns(outbox.db, monkeypatch)

    def choose(reporter: str) -> tuple[ChosenCase, list[bool]]:
        turns.clear()
        chosen = repo.choose_case(reporter, "harasser@fabrikam.example", new_case_id(), outbox.campaign_reserver(mid))
        return chosen, list(turns)

    first, first_turns = choose("alex@contoso.com")
    second, second_turns = choose("sam@contoso.com")  # before the first report is filed: open it too, if first
    report = make_report("alex@contoso.com")
    repo.file(report, make_case("alex@contoso.com", id=first.id, campaign_message_id=mid), claim_token=None,
              idem_key=None, fingerprint=None, audit={})
    third, third_turns = choose("kim@contoso.com")

    assert first == second == ChosenCase(first.id, exists=False)
    assert third == ChosenCase(first.id, exists=True)
    assert first_turns == [False, True]  # read: nothing reserved yet; then reserve it
    assert second_turns == third_turns == [False]  # settled by a read


def write_turns(database: Database, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each unit of work ``database`` runs from now on is a write (True) or a read."""
    turns: list[bool] = []
    original = database._write_turn

    def recording(write: bool) -> AbstractContextManager[None]:
        turns.append(write)
        return original(write)

    monkeypatch.setattr(database, "_write_turn", recording)
    return turns


def test_a_reporters_open_case_becomes_the_campaign_case_of_a_new_message(outbox: Outbox) -> None:
    repo = ReportRepository(outbox.db)
    own_case, _ = file_report(outbox)  # alex's open case about harasser@fabrikam.example
    mid = "<new@example.net>"

    mine = repo.choose_case("alex@contoso.com", "harasser@fabrikam.example", new_case_id(),
                            outbox.campaign_reserver(mid))
    theirs = repo.choose_case("sam@contoso.com", None, new_case_id(), outbox.campaign_reserver(mid))

    assert mine == theirs == ChosenCase(own_case, exists=True)


def test_a_closed_campaign_case_gives_way_when_choosing_the_case(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = ReportRepository(outbox.db)
    case_id, _ = file_report(outbox)
    outbox.reserve_campaign("<x@example.net>", case_id)
    with outbox.db.session() as session:
        session.execute(update(CaseRow).where(CaseRow.id == case_id).values(status="closed"))

    turns = write_turns(outbox.db, monkeypatch)

    chosen = repo.choose_case("sam@contoso.com", None, "HR-2026-BBBBBBBB", outbox.campaign_reserver("<x@example.net>"))

    assert chosen == ChosenCase("HR-2026-BBBBBBBB", exists=False)
    assert turns == [False, True]  # a closed case is taken over in a write transaction
    assert outbox.reserve_campaign("<x@example.net>", "HR-2026-CCCCCCCC") == "HR-2026-BBBBBBBB"


def test_a_campaign_notice_is_known_once_queued_and_an_urgent_one_only_when_urgent(outbox: Outbox) -> None:
    campaign = message_id_key("<x@example.net>")
    case_id = new_case_id()
    everyone = ["security@contoso.com", "Investigations@Contoso.com"]
    assert outbox.campaign_told(campaign, case_id, everyone, urgent=False) == frozenset()

    key = campaign_notice_key(campaign, case_id, "security@contoso.com", urgent=False)
    security = notification("security", "security@contoso.com", dedupe_key=key)
    report = make_report()
    ReportRepository(outbox.db).file(
        report, make_case(id=case_id), claim_token=None, idem_key=None, fingerprint=None, audit={},
        extra=queue(outbox, case_id, report.id, [security]),
    )

    assert outbox.campaign_told(campaign, case_id, everyone, urgent=False) == {"security@contoso.com"}
    assert outbox.campaign_told(campaign, case_id, everyone, urgent=True) == frozenset()
    assert outbox.campaign_told(campaign, new_case_id(), everyone, urgent=False) == frozenset()


@pytest.fixture
def pg_outbox(postgres_database: Database) -> Iterator[Outbox]:
    yield Outbox(postgres_database)


@pytest.mark.postgres
def test_concurrent_workers_on_postgresql_never_claim_the_same_row(pg_outbox: Outbox) -> None:
    for index in range(8):
        file_report(
            pg_outbox, *(notification("reporter", f"p{index}-{n}@contoso.com") for n in range(25)),
            reporter=f"r{index}@contoso.com",
        )
    claimed: list[list[int]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def work(slot: int) -> None:
        start.wait()
        while rows := pg_outbox.claim(7, 60):
            claimed[slot].extend(row.id for row in rows)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    everything = [row_id for ids in claimed for row_id in ids]
    assert len(everything) == 200 == len(set(everything))
    assert sum(1 for ids in claimed if ids) > 1  # the work really was shared


@pytest.mark.postgres
def test_concurrent_first_reports_on_postgresql_reserve_one_campaign_case(pg_outbox: Outbox) -> None:
    start = threading.Barrier(12)
    chosen: list[str] = []

    def reserve() -> None:
        candidate = new_case_id()
        start.wait()
        chosen.append(pg_outbox.reserve_campaign("<burst@example.net>", candidate))

    threads = [threading.Thread(target=reserve) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(chosen) == 12 and len(set(chosen)) == 1


@pytest.mark.postgres
def test_concurrent_first_reports_on_postgresql_choose_one_campaign_case(pg_outbox: Outbox) -> None:
    repo = ReportRepository(pg_outbox.db)
    start = threading.Barrier(12)
    chosen: list[ChosenCase] = []

    def choose(index: int) -> None:
        reserve = pg_outbox.campaign_reserver("<burst@example.net>")
        start.wait()
        chosen.append(repo.choose_case(f"p{index}@contoso.com", "harasser@fabrikam.example", new_case_id(), reserve))

    threads = [threading.Thread(target=choose, args=(index,)) for index in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(chosen) == 12 and len({c.id for c in chosen}) == 1
