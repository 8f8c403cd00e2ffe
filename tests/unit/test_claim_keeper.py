"""The claim keeper renews what is held, only while it is held, and for no longer than allowed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import pytest

from addin_service.cases.claim_keeper import ClaimKeeper
from addin_service.db.reports import HeldClaim, ReportRepository
from addin_service.errors import DatabaseUnavailable

A = HeldClaim("alex@contoso.com", "a" * 64, "token-a")
B = HeldClaim("kim@contoso.com", "b" * 64, "token-b")


class RecordingRepository:
    """Stands in for ``ReportRepository.renew`` and ``release``: records each call; may fail the
    first few of each."""

    def __init__(self, failures: int = 0, release_failures: int = 0) -> None:
        self.calls: list[tuple[frozenset[HeldClaim], float]] = []
        self.failures = failures
        self.called = threading.Event()
        self.released: list[tuple[str, str | None]] = []
        self.release_failures = release_failures
        self.release_attempts = 0

    def release(
        self, reporter: str, item_key: str, token: str, *, idem_key: str | None = None, fingerprint: str | None = None
    ) -> None:
        self.release_attempts += 1
        if self.release_failures:
            self.release_failures -= 1
            raise DatabaseUnavailable("The database is not reachable.", retry_after=5)
        self.released.append((token, idem_key))

    def renew(self, claims: Iterable[HeldClaim], lease_seconds: float) -> int:
        held = frozenset(claims)
        self.calls.append((held, lease_seconds))
        self.called.set()
        if self.failures:
            self.failures -= 1
            raise DatabaseUnavailable("The database is not reachable.", retry_after=5)
        return len(held)

    def renewed(self) -> set[HeldClaim]:
        return {claim for held, _ in self.calls for claim in held}


def keeper(repo: RecordingRepository, max_hold_seconds: float = 30.0) -> ClaimKeeper:
    return ClaimKeeper(
        repo,  # type: ignore[arg-type]  # only renew() is used
        max_hold_seconds=max_hold_seconds,
        lease_seconds=1.0,
        renew_every=0.02,
    )


def wait_for_calls(repo: RecordingRepository, n: int) -> None:
    deadline = time.monotonic() + 5
    while len(repo.calls) < n:
        assert time.monotonic() < deadline, "no renewal"
        time.sleep(0.01)


def test_held_claims_are_renewed_with_the_lease_until_released() -> None:
    repo = RecordingRepository()
    claims = keeper(repo)
    with claims.holding(A):
        with claims.holding(B):
            wait_for_calls(repo, 2)
        released_b = len(repo.calls)
        wait_for_calls(repo, released_b + 2)
    assert repo.renewed() == {A, B}
    assert all(lease == 1.0 for _, lease in repo.calls)
    assert all(held == {A} for held, _ in repo.calls[released_b + 1 :])


def test_nothing_is_renewed_once_nothing_is_held_and_the_thread_ends() -> None:
    repo = RecordingRepository()
    claims = keeper(repo)
    before = set(threading.enumerate())
    with claims.holding(A):
        wait_for_calls(repo, 1)
        ours = [t for t in threading.enumerate() if t.name == "claim-keeper" and t not in before]
    assert len(ours) == 1
    ours[0].join(timeout=5)
    assert not ours[0].is_alive()
    calls = len(repo.calls)
    time.sleep(0.1)
    assert len(repo.calls) == calls


def test_a_claim_held_past_its_longest_hold_is_no_longer_renewed() -> None:
    repo = RecordingRepository()
    claims = keeper(repo, max_hold_seconds=0.1)
    with claims.holding(A):
        time.sleep(0.3)
        calls = len(repo.calls)
        time.sleep(0.1)
        assert len(repo.calls) == calls  # it lapses as if its holder had died


def test_a_failed_renewal_is_tried_again_at_the_next_round() -> None:
    repo = RecordingRepository(failures=2)
    claims = keeper(repo)
    with claims.holding(A):
        wait_for_calls(repo, 3)
    assert repo.failures == 0


def test_claims_must_be_renewed_more_often_than_they_lapse() -> None:
    with pytest.raises(ValueError):
        ClaimKeeper(ReportRepository.__new__(ReportRepository), max_hold_seconds=30, lease_seconds=10, renew_every=10)


def test_a_release_goes_straight_to_the_database_when_it_can() -> None:
    repo = RecordingRepository()
    keeper(repo).release(A, idem_key="k", fingerprint="f")
    assert repo.released == [("token-a", "k")]


def test_a_release_the_database_refused_is_tried_again_in_the_background() -> None:
    repo = RecordingRepository(release_failures=2)
    keeper(repo).release(A, idem_key="k", fingerprint="f")  # does not raise: the caller has its own error
    deadline = time.monotonic() + 5
    while not repo.released:
        assert time.monotonic() < deadline, "never released"
        time.sleep(0.01)
    assert repo.released == [("token-a", "k")]


def test_a_release_is_not_tried_once_the_lease_has_lapsed_anyway() -> None:
    now = [0.0]
    repo = RecordingRepository(release_failures=1_000_000)  # the database stays away
    claims = ClaimKeeper(
        repo,  # type: ignore[arg-type]
        max_hold_seconds=30,
        lease_seconds=1.0,
        renew_every=0.02,
        clock=lambda: now[0],
    )
    before = set(threading.enumerate())
    claims.release(A)
    ours = [t for t in threading.enumerate() if t.name == "claim-keeper" and t not in before]
    now[0] = 2.0  # past the lease: whoever retries takes the claim over
    assert len(ours) == 1
    ours[0].join(timeout=5)
    assert not ours[0].is_alive()  # nothing left to do
    attempts = repo.release_attempts
    time.sleep(0.1)
    assert repo.release_attempts == attempts
