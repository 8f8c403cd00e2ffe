"""Concurrent retries make one report: claims and filing raced by 16 threads, on both back ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy import func, select

from addin_service.db import AlreadyFiled, Database, ReportRepository
from addin_service.db.models import AuditRow, CaseRow, IdempotencyKeyRow, ItemClaimRow, ReportRow
from addin_service.errors import IdempotencyKeyReused
from addin_service.ids import new_case_id, new_report_id
from tests.fakes.db import make_case, make_report

THREADS = 16
REPORTER = "alex@contoso.com"
FINGERPRINT = "f" * 64
T = TypeVar("T")


def race(action: Callable[[int], T], threads: int = THREADS) -> list[T]:
    """Run ``action(i)`` in ``threads`` threads released at the same instant; return results."""
    start = threading.Barrier(threads)

    def run(i: int) -> T:
        start.wait(timeout=10)
        return action(i)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(run, range(threads)))


def count(database: Database, model: type) -> int:
    with database.session(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def file_like_the_use_case(repo: ReportRepository, idem_key: str | None, capture_seconds: float) -> str:
    """The filing flow of cases/service.py, with a sleep standing in for the Exchange capture."""
    template = make_report()
    for _ in range(10):
        found = repo.lookup_or_claim(REPORTER, template.item_key, idem_key, FINGERPRINT)
        if found.existing is not None:
            return found.existing.id
        if found.token is None:
            waited = repo.wait_for_report(REPORTER, template.item_key, timeout=20)
            if waited is not None:
                return waited.id
            continue
        time.sleep(capture_seconds)
        report = make_report(id=new_report_id())
        try:
            repo.file(report, make_case(id=new_case_id()), claim_token=found.token, idem_key=idem_key,
                      fingerprint=FINGERPRINT, audit={"adapter": "ews"})
        except AlreadyFiled as first:
            return first.existing.id
        return report.id
    raise AssertionError("no report after ten rounds")


def test_sixteen_racing_claims_grant_exactly_one_token(any_database: Database) -> None:
    repo = ReportRepository(any_database)
    key = make_report().item_key

    tokens = race(lambda _: repo.claim(REPORTER, key))

    assert len([t for t in tokens if t is not None]) == 1
    assert count(any_database, ItemClaimRow) == 1


@pytest.mark.parametrize("idem_key", [None, "retry-key-1"])
def test_sixteen_racing_lookups_grant_exactly_one_claim(any_database: Database, idem_key: str | None) -> None:
    repo = ReportRepository(any_database)
    key = make_report().item_key

    found = race(lambda _: repo.lookup_or_claim(REPORTER, key, idem_key, FINGERPRINT))

    assert len([f for f in found if f.token is not None]) == 1
    assert all(f.existing is None for f in found)
    assert count(any_database, ItemClaimRow) == 1


def test_sixteen_racing_takeovers_of_an_expired_claim_grant_exactly_one(any_database: Database) -> None:
    start = datetime.now(UTC)
    later = start + timedelta(seconds=300)
    now = [start]
    repo = ReportRepository(any_database, clock=lambda: now[0])
    key = make_report().item_key
    expired = repo.claim(REPORTER, key, lease_seconds=60)
    now[0] = later

    tokens = race(lambda _: repo.claim(REPORTER, key, lease_seconds=60))

    winners = [t for t in tokens if t is not None]
    assert len(winners) == 1 and winners[0] != expired


@pytest.mark.parametrize("idem_key", [None, "retry-key-1"])
def test_sixteen_concurrent_retries_make_one_report_and_all_get_its_id(
    any_database: Database, idem_key: str | None
) -> None:
    repo = ReportRepository(any_database, poll_interval=0.02)

    report_ids = race(lambda _: file_like_the_use_case(repo, idem_key, capture_seconds=0.05))

    assert len(set(report_ids)) == 1
    counts = [count(any_database, m) for m in (ReportRow, CaseRow, AuditRow, ItemClaimRow)]
    assert counts == [1, 1, 1, 0]
    assert count(any_database, IdempotencyKeyRow) == (1 if idem_key else 0)


def test_a_stalled_filer_whose_lease_was_taken_over_gets_the_first_report(any_database: Database) -> None:
    """Lease takeover race: the slow first attempt files after a second attempt already did."""
    now = [datetime.now(UTC)]
    repo = ReportRepository(any_database, clock=lambda: now[0])
    key = make_report().item_key
    slow_token = repo.claim(REPORTER, key, lease_seconds=60)
    now[0] += timedelta(seconds=61)
    fast_token = repo.claim(REPORTER, key, lease_seconds=60)
    fast = make_report()
    repo.file(fast, make_case(), claim_token=fast_token, idem_key=None, fingerprint=None, audit={})

    with pytest.raises(AlreadyFiled) as raised:
        repo.file(make_report(), make_case(), claim_token=slow_token, idem_key=None, fingerprint=None,
                  audit={})

    assert raised.value.existing.id == fast.id
    assert count(any_database, ReportRow) == 1


def test_one_key_raced_for_different_items_files_one_and_refuses_the_rest(any_database: Database) -> None:
    repo = ReportRepository(any_database)

    def attempt(i: int) -> str:
        report = make_report(item_id=f"AAMk{i}")
        try:
            repo.file(report, make_case(), claim_token=None, idem_key="shared-key",
                      fingerprint=f"{i:064x}", audit={})
        except IdempotencyKeyReused:
            return "refused"
        return "filed"

    outcomes = race(attempt)

    assert sorted(outcomes) == ["filed"] + ["refused"] * (THREADS - 1)
    assert count(any_database, ReportRow) == 1


def test_sixteen_reporters_of_one_campaign_opening_its_agreed_case_at_once_share_it(
    any_database: Database,
) -> None:
    repo = ReportRepository(any_database)
    agreed = make_case(campaign_message_id="<campaign@fabrikam.example>")

    def report(i: int) -> None:
        reporter = f"person{i}@contoso.com"
        repo.file(make_report(reporter=reporter), replace(agreed, reporter=reporter), claim_token=None,
                  idem_key=None, fingerprint=None, audit={})

    race(report)

    assert (count(any_database, CaseRow), count(any_database, ReportRow)) == (1, THREADS)
