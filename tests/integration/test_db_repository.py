"""Contract of the filing repository, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, func, select, update

from addin_service.db import AlreadyFiled, CaseReserver, ChosenCase, Database, ReportRepository, item_key
from addin_service.db.models import AuditRow, CaseRow, IdempotencyKeyRow, ItemClaimRow, ReportRow
from addin_service.db.reports import HeldClaim
from addin_service.errors import IdempotencyKeyReused, InvalidRequest, ReportInProgress
from addin_service.mail.ports import canonical_item_id
from tests.fakes.db import make_case, make_report

REPORTER = "alex@contoso.com"
FINGERPRINT = "f" * 64
OTHER_FINGERPRINT = "e" * 64


class FakeClock:
    """A UTC clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def repo(any_database: Database, clock: FakeClock) -> ReportRepository:
    return ReportRepository(any_database, clock=clock, poll_interval=0.01)


def count(database: Database, model: type) -> int:
    with database.session(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def file_one(repo: ReportRepository, **changes: object) -> tuple[str, str]:
    """File a report in a new case through claim → file; return (case id, report id)."""
    report = make_report(**changes)
    case = make_case(reporter=report.reporter)
    token = repo.claim(report.reporter, report.item_key)
    assert token is not None
    repo.file(report, case, claim_token=token, idem_key=None, fingerprint=None, audit={"adapter": "ews"})
    return case.id, report.id


# -- lookup and replay ---------------------------------------------------------------------


def test_lookup_finds_nothing_before_the_item_is_filed(repo: ReportRepository) -> None:
    assert repo.lookup(REPORTER, item_key(REPORTER, "AAMk1"), "key-1", FINGERPRINT).existing is None


def test_lookup_after_filing_returns_the_exact_first_answer(repo: ReportRepository) -> None:
    body = '{"case_id": "x", "report_id": "y", "size": 2048}'
    report = make_report(response_json=body)
    repo.file(report, make_case(), claim_token=None, idem_key=None, fingerprint=None, audit={})

    found = repo.lookup(REPORTER, report.item_key, None, None).existing

    assert found is not None
    assert (found.id, found.response_json) == (report.id, body)


def test_the_ews_and_rest_ids_of_one_item_find_the_same_report(repo: ReportRepository) -> None:
    ews_id = "AAMkAGI2/TG93+AAA="
    rest_id = "AAMkAGI2-TG93_AAA="  # Outlook's REST form: '/' → '-', '+' → '_'

    report = make_report(item_id=ews_id)
    repo.file(report, make_case(), claim_token=None, idem_key=None, fingerprint=None, audit={})

    key = item_key(REPORTER, canonical_item_id(rest_id, "rest"))
    found = repo.lookup(REPORTER, key, None, None).existing

    assert found is not None and found.id == report.id


def test_reporter_and_mailbox_addresses_are_compared_without_case(repo: ReportRepository) -> None:
    report = make_report(reporter="Alex@Contoso.com", mailbox="Alex@Contoso.com")
    repo.file(report, make_case(reporter="Alex@Contoso.com"), claim_token=None, idem_key=None,
              fingerprint=None, audit={})

    found = repo.lookup("ALEX@contoso.com", item_key("alex@CONTOSO.com", report.item_id), None, None)

    assert found.existing is not None
    assert (found.existing.reporter, found.existing.mailbox) == (REPORTER, REPORTER)


def test_the_same_idempotency_key_and_request_returns_the_first_report(repo: ReportRepository) -> None:
    report = make_report()
    repo.file(report, make_case(), claim_token=None, idem_key="key-1", fingerprint=FINGERPRINT, audit={})

    found = repo.lookup(REPORTER, report.item_key, "key-1", FINGERPRINT).existing

    assert found is not None and found.id == report.id


def test_an_idempotency_key_reused_for_a_different_request_is_refused_with_422(
    repo: ReportRepository,
) -> None:
    report = make_report()
    repo.file(report, make_case(), claim_token=None, idem_key="key-1", fingerprint=FINGERPRINT, audit={})

    with pytest.raises(IdempotencyKeyReused) as raised:
        repo.lookup(REPORTER, report.item_key, "key-1", OTHER_FINGERPRINT)

    assert raised.value.status == 422


def test_an_idempotency_key_reused_for_another_item_is_refused(repo: ReportRepository) -> None:
    repo.file(make_report(item_id="AAMk1"), make_case(), claim_token=None, idem_key="key-1",
              fingerprint=FINGERPRINT, audit={})

    with pytest.raises(IdempotencyKeyReused):
        repo.lookup(REPORTER, item_key(REPORTER, "AAMk2"), "key-1", FINGERPRINT)


def test_filing_with_a_key_already_bound_to_another_request_files_nothing(
    repo: ReportRepository, any_database: Database
) -> None:
    repo.file(make_report(item_id="AAMk1"), make_case(), claim_token=None, idem_key="key-1",
              fingerprint=FINGERPRINT, audit={})

    with pytest.raises(IdempotencyKeyReused):
        repo.file(make_report(item_id="AAMk2"), make_case(), claim_token=None, idem_key="key-1",
                  fingerprint=OTHER_FINGERPRINT, audit={})

    assert (count(any_database, ReportRow), count(any_database, CaseRow)) == (1, 1)


def test_the_same_key_from_another_reporter_is_a_different_key(repo: ReportRepository) -> None:
    repo.file(make_report(), make_case(), claim_token=None, idem_key="key-1", fingerprint=FINGERPRINT,
              audit={})

    other = make_report(reporter="sam@contoso.com")
    repo.file(other, make_case(reporter="sam@contoso.com"), claim_token=None, idem_key="key-1",
              fingerprint=OTHER_FINGERPRINT, audit={})

    assert repo.lookup("sam@contoso.com", other.item_key, "key-1", OTHER_FINGERPRINT).existing is not None


def test_an_overlong_idempotency_key_is_a_400_naming_the_header(repo: ReportRepository) -> None:
    with pytest.raises(InvalidRequest) as raised:
        repo.lookup(REPORTER, item_key(REPORTER, "AAMk1"), "k" * 256, FINGERPRINT)

    assert list(raised.value.errors) == ["Idempotency-Key"]


def test_remember_key_binds_a_new_key_to_a_replayed_report(repo: ReportRepository) -> None:
    report = make_report()
    repo.file(report, make_case(), claim_token=None, idem_key=None, fingerprint=None, audit={})

    repo.remember_key(REPORTER, "key-2", FINGERPRINT, report.item_key, report.id)

    assert repo.lookup(REPORTER, report.item_key, "key-2", FINGERPRINT).existing is not None
    with pytest.raises(IdempotencyKeyReused):
        repo.lookup(REPORTER, report.item_key, "key-2", OTHER_FINGERPRINT)


def test_remember_key_twice_for_the_same_request_is_fine(repo: ReportRepository) -> None:
    report = make_report()
    repo.file(report, make_case(), claim_token=None, idem_key="key-1", fingerprint=FINGERPRINT, audit={})

    repo.remember_key(REPORTER, "key-1", FINGERPRINT, report.item_key, report.id)

    with pytest.raises(IdempotencyKeyReused):
        repo.remember_key(REPORTER, "key-1", OTHER_FINGERPRINT, report.item_key, report.id)


# -- claims --------------------------------------------------------------------------------


def test_a_claim_is_granted_once_while_it_is_live(repo: ReportRepository) -> None:
    key = item_key(REPORTER, "AAMk1")

    first = repo.claim(REPORTER, key)
    second = repo.claim(REPORTER, key)

    assert first is not None and second is None


def test_a_released_claim_can_be_claimed_again(repo: ReportRepository) -> None:
    key = item_key(REPORTER, "AAMk1")
    token = repo.claim(REPORTER, key)
    assert token is not None

    repo.release(REPORTER, key, token)

    assert repo.claim(REPORTER, key) is not None


def test_an_expired_claim_is_taken_over(repo: ReportRepository, clock: FakeClock) -> None:
    key = item_key(REPORTER, "AAMk1")
    first = repo.claim(REPORTER, key, lease_seconds=120)
    clock.advance(121)

    second = repo.claim(REPORTER, key, lease_seconds=120)

    assert second is not None and second != first
    assert repo.claim(REPORTER, key) is None  # the new lease is live


def test_a_renewed_claim_outlives_its_first_lease(repo: ReportRepository, clock: FakeClock) -> None:
    key = item_key(REPORTER, "AAMk1")
    token = repo.claim(REPORTER, key, lease_seconds=60)
    assert token is not None
    clock.advance(45)

    assert repo.renew([HeldClaim(REPORTER.upper(), key, token)], lease_seconds=60) == 1
    clock.advance(45)  # 90 s after the claim, 45 s after the renewal

    assert repo.claim(REPORTER, key) is None


def test_a_claim_taken_over_after_it_lapsed_is_not_renewed_by_its_old_holder(
    repo: ReportRepository, clock: FakeClock
) -> None:
    key = item_key(REPORTER, "AAMk1")
    stale = repo.claim(REPORTER, key, lease_seconds=60)
    assert stale is not None
    clock.advance(61)
    fresh = repo.claim(REPORTER, key, lease_seconds=60)
    assert fresh is not None

    assert repo.renew([HeldClaim(REPORTER, key, stale)], lease_seconds=600) == 0
    clock.advance(61)

    assert repo.claim(REPORTER, key) is not None  # the new holder's lease ran out; nothing kept it


def test_renewing_nothing_touches_nothing(repo: ReportRepository) -> None:
    assert repo.renew([], lease_seconds=60) == 0
    with pytest.raises(ValueError):
        repo.renew([HeldClaim(REPORTER, item_key(REPORTER, "AAMk1"), "t")], lease_seconds=0)


def test_releasing_with_a_stale_token_leaves_the_new_claim(repo: ReportRepository, clock: FakeClock) -> None:
    key = item_key(REPORTER, "AAMk1")
    stale = repo.claim(REPORTER, key, lease_seconds=10)
    assert stale is not None
    clock.advance(11)
    assert repo.claim(REPORTER, key, lease_seconds=10) is not None

    repo.release(REPORTER, key, stale)

    assert repo.claim(REPORTER, key) is None


def test_no_claim_is_granted_for_an_item_already_filed(
    repo: ReportRepository, any_database: Database
) -> None:
    file_one(repo)

    assert repo.claim(REPORTER, make_report().item_key) is None
    assert count(any_database, ItemClaimRow) == 0


def test_filing_removes_the_claim(repo: ReportRepository, any_database: Database) -> None:
    file_one(repo)

    assert count(any_database, ItemClaimRow) == 0


def test_claims_are_per_reporter(repo: ReportRepository) -> None:
    key = item_key("shared@contoso.com", "AAMk1")

    assert repo.claim(REPORTER, key) is not None
    assert repo.claim("sam@contoso.com", key) is not None


# -- lookup or claim: the filing flow's first step ------------------------------------------


def test_lookup_or_claim_claims_an_item_not_filed_yet_once(
    repo: ReportRepository, any_database: Database
) -> None:
    key = item_key(REPORTER, "AAMk1")

    first = repo.lookup_or_claim(REPORTER, key, "key-1", FINGERPRINT)
    second = repo.lookup_or_claim(REPORTER, key, "key-1", FINGERPRINT)

    assert first.existing is None and first.token is not None
    assert (second.existing, second.token) == (None, None)  # being filed: wait for it
    assert count(any_database, ItemClaimRow) == 1


def test_lookup_or_claim_after_filing_returns_the_first_report_and_claims_nothing(
    repo: ReportRepository, any_database: Database
) -> None:
    _, report_id = file_one(repo)

    found = repo.lookup_or_claim("ALEX@contoso.com", make_report().item_key, None, None)

    assert found.existing is not None and found.existing.id == report_id and found.token is None
    assert count(any_database, ItemClaimRow) == 0


def test_lookup_or_claim_with_the_key_of_a_filed_request_replays_it(
    repo: ReportRepository, any_database: Database
) -> None:
    report = make_report()
    repo.file(report, make_case(), claim_token=None, idem_key="key-1", fingerprint=FINGERPRINT, audit={})

    found = repo.lookup_or_claim(REPORTER, report.item_key, "key-1", FINGERPRINT)

    assert found.existing is not None and found.existing.id == report.id and found.token is None
    assert count(any_database, ItemClaimRow) == 0


def test_lookup_or_claim_refuses_a_reused_key_and_claims_nothing(
    repo: ReportRepository, any_database: Database
) -> None:
    repo.file(make_report(item_id="AAMk1"), make_case(), claim_token=None, idem_key="key-1",
              fingerprint=FINGERPRINT, audit={})

    with pytest.raises(IdempotencyKeyReused):
        repo.lookup_or_claim(REPORTER, item_key(REPORTER, "AAMk2"), "key-1", FINGERPRINT)
    with pytest.raises(IdempotencyKeyReused):
        repo.lookup_or_claim(REPORTER, item_key(REPORTER, "AAMk1"), "key-1", OTHER_FINGERPRINT)

    assert count(any_database, ItemClaimRow) == 0


def test_lookup_or_claim_takes_over_an_expired_claim(repo: ReportRepository, clock: FakeClock) -> None:
    key = item_key(REPORTER, "AAMk1")
    stale = repo.claim(REPORTER, key, lease_seconds=10)
    clock.advance(11)

    found = repo.lookup_or_claim(REPORTER, key, None, None, lease_seconds=10)

    assert found.token is not None and found.token != stale
    assert repo.lookup_or_claim(REPORTER, key, None, None).token is None  # the new lease is live


def test_lookup_or_claim_checks_its_arguments(repo: ReportRepository) -> None:
    key = item_key(REPORTER, "AAMk1")
    with pytest.raises(InvalidRequest):
        repo.lookup_or_claim(REPORTER, key, "k" * 256, FINGERPRINT)
    with pytest.raises(ValueError, match="lease"):
        repo.lookup_or_claim(REPORTER, key, None, None, lease_seconds=0)
    with pytest.raises(ValueError, match="item_key"):
        repo.lookup_or_claim(REPORTER, "not-a-key", None, None)


# -- choosing the case ---------------------------------------------------------------------


def test_a_report_without_sender_or_reservation_gets_the_new_case(repo: ReportRepository) -> None:
    assert repo.choose_case(REPORTER, None, "HR-2026-NEWCASE1") == ChosenCase("HR-2026-NEWCASE1", exists=False)


def test_the_reporters_open_case_about_the_sender_is_chosen(repo: ReportRepository, any_database: Database) -> None:
    case_id, _ = file_one(repo)

    assert repo.choose_case("Alex@Contoso.com", "Harasser@Fabrikam.example", "HR-2026-NEWCASE1") == ChosenCase(
        case_id, exists=True
    )
    assert repo.choose_case("sam@contoso.com", "harasser@fabrikam.example", "HR-2026-NEWCASE1").id != case_id
    assert repo.choose_case(REPORTER, "someone@else.example", "HR-2026-NEWCASE1").id != case_id
    with any_database.session() as session:
        session.execute(update(CaseRow).values(status="closed"))
    assert repo.choose_case(REPORTER, "harasser@fabrikam.example", "HR-2026-NEWCASE1").exists is False


def test_the_reserver_has_the_last_word_in_the_same_transaction(repo: ReportRepository) -> None:
    case_id, _ = file_one(repo)
    offered: list[ChosenCase] = []

    def reserve(connection: Connection, candidate: ChosenCase) -> ChosenCase:
        assert connection.in_transaction()
        offered.append(candidate)
        return ChosenCase("HR-2026-CAMPAIGN", exists=False)

    undecided = CaseReserver(settled=lambda _c: None, reserve=reserve)
    chosen = repo.choose_case(REPORTER, "harasser@fabrikam.example", "HR-2026-NEWCASE1", undecided)
    as_offered = CaseReserver(settled=lambda _c: None, reserve=lambda _c, candidate: candidate)

    assert offered == [ChosenCase(case_id, exists=True)]
    assert chosen == ChosenCase("HR-2026-CAMPAIGN", exists=False)
    assert repo.choose_case(REPORTER, None, "HR-2026-NEWCASE1", as_offered) == ChosenCase(
        "HR-2026-NEWCASE1", exists=False
    )


def test_a_reserver_that_has_settled_the_case_by_reading_is_not_asked_to_reserve(repo: ReportRepository) -> None:
    file_one(repo)

    def reserve(connection: Connection, candidate: ChosenCase) -> ChosenCase:
        raise AssertionError("no write transaction was needed")

    settled = CaseReserver(settled=lambda _c: ChosenCase("HR-2026-CAMPAIGN", exists=True), reserve=reserve)

    assert repo.choose_case(REPORTER, "harasser@fabrikam.example", "HR-2026-NEWCASE1", settled) == ChosenCase(
        "HR-2026-CAMPAIGN", exists=True
    )


# -- waiting for another request -----------------------------------------------------------


def test_wait_returns_the_report_once_the_other_request_files_it(
    any_database: Database,
) -> None:
    repo = ReportRepository(any_database, poll_interval=0.01)
    report = make_report()
    token = repo.claim(REPORTER, report.item_key)
    assert token is not None

    def other_request() -> None:
        time.sleep(0.1)
        repo.file(report, make_case(), claim_token=token, idem_key=None, fingerprint=None, audit={})

    worker = threading.Thread(target=other_request)
    worker.start()
    found = repo.wait_for_report(REPORTER, report.item_key, timeout=10)
    worker.join()

    assert found is not None and found.id == report.id


def test_wait_returns_none_when_the_other_request_gives_up(repo: ReportRepository) -> None:
    key = item_key(REPORTER, "AAMk1")
    token = repo.claim(REPORTER, key)
    assert token is not None
    repo.release(REPORTER, key, token)

    assert repo.wait_for_report(REPORTER, key, timeout=1) is None


def test_wait_returns_none_when_the_claim_expired(repo: ReportRepository, clock: FakeClock) -> None:
    key = item_key(REPORTER, "AAMk1")
    assert repo.claim(REPORTER, key, lease_seconds=5) is not None
    clock.advance(6)

    assert repo.wait_for_report(REPORTER, key, timeout=1) is None


def test_wait_times_out_with_report_in_progress_and_retry_after(repo: ReportRepository) -> None:
    key = item_key(REPORTER, "AAMk1")
    assert repo.claim(REPORTER, key) is not None

    started = time.monotonic()
    with pytest.raises(ReportInProgress) as raised:
        repo.wait_for_report(REPORTER, key, timeout=0.2)

    assert time.monotonic() - started >= 0.2
    assert (raised.value.status, raised.value.retry_after) == (503, 2)


# -- filing --------------------------------------------------------------------------------


def test_filing_a_new_case_stores_case_report_key_and_audit_together(
    repo: ReportRepository, clock: FakeClock
) -> None:
    report = make_report(feels_unsafe=True)
    case = make_case(origin="spoofed-internal", campaign_message_id="<1234@fabrikam.example>")
    token = repo.claim(REPORTER, report.item_key)

    repo.file(report, case, claim_token=token, idem_key="key-1", fingerprint=FINGERPRINT,
              audit={"adapter": "ews", "size": 2048})

    stored_case = repo.get_case(case.id)
    assert stored_case is not None
    assert (stored_case.status, stored_case.origin, stored_case.urgent) == ("open", "spoofed-internal", True)
    assert stored_case.created_at == clock.now and stored_case.created_at.tzinfo == UTC
    stored = repo.get_report(report.id)
    assert stored is not None and stored.case_id == case.id
    assert stored.created_at == clock.now
    [entry] = repo.list_audit(case_id=case.id)
    assert (entry.action, entry.actor, entry.report_id) == ("report.filed", REPORTER, report.id)
    assert entry.details == {"adapter": "ews", "size": 2048}


def test_a_filed_report_keeps_every_fact_given(repo: ReportRepository) -> None:
    report = make_report(message_size=7_340_032, ledger_sequence=2**40, note=None, change_key=None)
    case = make_case()

    repo.file(report, case, claim_token=None, idem_key=None, fingerprint=None, audit={})

    stored = repo.get_report(report.id)
    assert stored is not None
    expected = {name: getattr(report, name) for name in report.__dataclass_fields__}
    assert {name: getattr(stored, name) for name in expected} == expected


def test_a_report_can_join_an_existing_case(repo: ReportRepository, clock: FakeClock) -> None:
    case_id, first_id = file_one(repo, item_id="AAMk1")
    clock.advance(60)
    second = make_report(item_id="AAMk2", feels_unsafe=True)

    repo.file(second, case_id, claim_token=None, idem_key=None, fingerprint=None, audit={})

    case = repo.get_case(case_id)
    assert case is not None
    assert case.updated_at == clock.now and case.created_at == clock.now - timedelta(seconds=60)
    assert case.urgent is True
    assert [r.id for r in repo.list_reports(case_id)] == [first_id, second.id]


def test_a_second_report_opening_the_same_campaign_case_joins_it(repo: ReportRepository) -> None:
    mid = "<campaign@fabrikam.example>"
    agreed = make_case(campaign_message_id=mid)
    repo.file(make_report(), agreed, claim_token=None, idem_key=None, fingerprint=None, audit={})
    other = make_report(reporter="sam@contoso.com", feels_unsafe=True)

    repo.file(other, replace(agreed, reporter="sam@contoso.com"), claim_token=None, idem_key=None,
              fingerprint=None, audit={})

    case = repo.get_case(agreed.id)
    assert case is not None and case.reporter == REPORTER and case.urgent is True
    assert len(repo.list_reports(agreed.id)) == 2


def test_a_new_case_id_that_collides_with_a_strangers_case_files_nothing(
    repo: ReportRepository, any_database: Database
) -> None:
    first = make_case()
    repo.file(make_report(), first, claim_token=None, idem_key=None, fingerprint=None, audit={})

    with pytest.raises(RuntimeError, match="unrelated case"):
        repo.file(make_report(reporter="sam@contoso.com"), replace(first, reporter="sam@contoso.com"),
                  claim_token=None, idem_key=None, fingerprint=None, audit={})

    assert count(any_database, ReportRow) == 1


def test_filing_into_an_unknown_case_writes_nothing(repo: ReportRepository, any_database: Database) -> None:
    with pytest.raises(LookupError):
        repo.file(make_report(), "HR-2026-00000000", claim_token=None, idem_key=None, fingerprint=None,
                  audit={})

    assert (count(any_database, ReportRow), count(any_database, AuditRow)) == (0, 0)


def test_filing_an_item_filed_meanwhile_raises_already_filed_with_the_first_report(
    repo: ReportRepository, any_database: Database
) -> None:
    first = make_report()
    repo.file(first, make_case(), claim_token=None, idem_key=None, fingerprint=None, audit={})
    late = make_report()  # same reporter and item, another report id

    with pytest.raises(AlreadyFiled) as raised:
        repo.file(late, make_case(), claim_token=None, idem_key="key-9", fingerprint=FINGERPRINT,
                  audit={})

    assert raised.value.existing.id == first.id
    counts = [count(any_database, m) for m in (CaseRow, ReportRow, AuditRow, IdempotencyKeyRow)]
    assert counts == [1, 1, 1, 0]


def test_a_claim_taken_over_meanwhile_is_left_to_its_new_owner(
    repo: ReportRepository, clock: FakeClock, any_database: Database
) -> None:
    report = make_report()
    stale = repo.claim(REPORTER, report.item_key, lease_seconds=10)
    clock.advance(11)
    assert repo.claim(REPORTER, report.item_key, lease_seconds=10) is not None

    repo.file(report, make_case(), claim_token=stale, idem_key=None, fingerprint=None, audit={})

    assert count(any_database, ItemClaimRow) == 1
    assert repo.get_report(report.id) is not None


def test_two_different_messages_with_one_message_id_are_both_filed(
    repo: ReportRepository, clock: FakeClock
) -> None:
    forged = "<same@fabrikam.example>"
    _, first = file_one(repo, item_id="AAMk1", internet_message_id=forged)
    clock.advance(1)
    _, second = file_one(repo, item_id="AAMk2", internet_message_id=forged)

    assert [r.id for r in repo.find_reports_by_message_id(forged)] == [first, second]


def test_an_enormous_message_id_cannot_stop_a_report_being_filed(repo: ReportRepository) -> None:
    huge = "<" + "x" * 20_000 + "@fabrikam.example>"
    report = make_report(internet_message_id=huge)

    repo.file(report, make_case(campaign_message_id=huge, sender_address="y" * 5000 + "@f.example"),
              claim_token=None, idem_key=None, fingerprint=None, audit={})

    assert [r.id for r in repo.find_reports_by_message_id(huge)] == [report.id]
    assert repo.find_campaign_case(huge) is not None


def test_the_extra_hook_writes_in_the_same_transaction(repo: ReportRepository) -> None:
    report = make_report()

    def add_row(session: object) -> None:
        from sqlalchemy.orm import Session

        assert isinstance(session, Session)
        session.add(AuditRow(at=datetime.now(UTC), actor="system", action="outbox.queued",
                             case_id=None, report_id=report.id, details="{}"))

    repo.file(report, make_case(), claim_token=None, idem_key=None, fingerprint=None, audit={},
              extra=add_row)

    assert [e.action for e in repo.list_audit(report_id=report.id)] == ["report.filed", "outbox.queued"]


def test_a_failing_extra_hook_rolls_back_the_whole_filing(
    repo: ReportRepository, any_database: Database
) -> None:
    report = make_report()
    token = repo.claim(REPORTER, report.item_key)

    def fail(session: object) -> None:
        raise RuntimeError("outbox refused")

    with pytest.raises(RuntimeError):
        repo.file(report, make_case(), claim_token=token, idem_key="key-1", fingerprint=FINGERPRINT,
                  audit={}, extra=fail)

    counts = [count(any_database, m) for m in (CaseRow, ReportRow, AuditRow, IdempotencyKeyRow)]
    assert counts == [0, 0, 0, 0]
    assert count(any_database, ItemClaimRow) == 1  # still held: the caller releases it


@pytest.mark.parametrize("details", [{"note": "x"}, {"request": {"Token": "x"}}, {"items": [{"body": "x"}]}])
def test_audit_details_never_hold_a_note_a_body_or_a_token(
    repo: ReportRepository, any_database: Database, details: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match="must not contain"):
        repo.file(make_report(), make_case(), claim_token=None, idem_key=None, fingerprint=None,
                  audit=details)

    assert count(any_database, ReportRow) == 0


def test_the_note_is_not_in_a_reports_repr(repo: ReportRepository) -> None:
    report = make_report(note="private words")
    repo.file(report, make_case(), claim_token=None, idem_key=None, fingerprint=None, audit={})

    assert "private words" not in repr(repo.get_report(report.id))
    assert "private words" not in repr(report)


# -- reads and audit -----------------------------------------------------------------------


def test_unknown_ids_read_as_none(repo: ReportRepository) -> None:
    assert repo.get_report("R-0000000000000000") is None
    assert repo.get_case("HR-2026-00000000") is None
    assert repo.list_reports("HR-2026-00000000") == []


def test_the_open_case_about_a_sender_is_found_for_that_reporter_only(repo: ReportRepository) -> None:
    case_id, _ = file_one(repo)

    found = repo.find_open_case(REPORTER, "Harasser@Fabrikam.example")

    assert found is not None and found.id == case_id
    assert repo.find_open_case("sam@contoso.com", "harasser@fabrikam.example") is None
    assert repo.find_open_case(REPORTER, "someone@else.example") is None
    assert repo.find_open_case(REPORTER, None) is None


def test_a_closed_case_is_not_offered_for_new_reports(repo: ReportRepository, any_database: Database) -> None:
    case_id, _ = file_one(repo, internet_message_id="<c@f.example>")
    with any_database.session() as session:
        row = session.get(CaseRow, case_id)
        assert row is not None
        row.status = "closed"

    assert repo.find_open_case(REPORTER, "harasser@fabrikam.example") is None


def test_the_campaign_case_for_a_message_id_is_the_oldest_open_one(
    repo: ReportRepository, clock: FakeClock
) -> None:
    mid = "<campaign@fabrikam.example>"
    first = make_case(campaign_message_id=mid)
    repo.file(make_report(item_id="AAMk1"), first, claim_token=None, idem_key=None, fingerprint=None,
              audit={})
    clock.advance(1)
    repo.file(make_report(item_id="AAMk2", reporter="sam@contoso.com"),
              make_case(reporter="sam@contoso.com", campaign_message_id=mid),
              claim_token=None, idem_key=None, fingerprint=None, audit={})

    found = repo.find_campaign_case(f"  {mid} ")

    assert found is not None and found.id == first.id
    assert repo.find_campaign_case("<other@fabrikam.example>") is None
    assert repo.find_campaign_case(None) is None


def test_record_audit_appends_an_entry_with_json_details(repo: ReportRepository, clock: FakeClock) -> None:
    repo.record_audit("report.failed", actor="Alex@Contoso.com", details={"error": "MessageNotFound"})
    repo.record_audit("report.replayed", actor=REPORTER, case_id="HR-2026-00000000",
                      report_id="R-0000000000000000")

    entries = repo.list_audit()
    assert [(e.action, e.actor, e.details) for e in entries] == [
        ("report.failed", REPORTER, {"error": "MessageNotFound"}),
        ("report.replayed", REPORTER, {}),
    ]
    assert entries[0].at == clock.now
    assert json.loads(json.dumps(entries[1].details)) == {}


def test_record_audit_refuses_values_json_cannot_hold(repo: ReportRepository) -> None:
    with pytest.raises(ValueError, match="plain JSON"):
        repo.record_audit("report.failed", actor=REPORTER, details={"when": datetime.now(UTC)})
