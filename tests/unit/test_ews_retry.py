"""Bounded retries with backoff for EWS calls (addin_service.mail.ews_retry)."""

from __future__ import annotations

import pytest

from addin_service.errors import MailboxUnavailable, MessageTooLarge
from addin_service.mail.ews_retry import Retrier, RetryPolicy, TransientFailure


class FakeTime:
    """A clock that advances only when the retrier sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def upper_jitter(low: float, high: float) -> float:
    return high


def retrier(time: FakeTime, max_wait: float = 10.0, max_attempts: int = 5) -> Retrier:
    policy = RetryPolicy(max_wait=max_wait, max_attempts=max_attempts, base_delay=0.5, max_delay=4.0)
    return Retrier(policy, sleep=time.sleep, clock=time.clock, jitter=upper_jitter)


class Flaky:
    """An operation that fails ``times`` times, then answers "ok"."""

    def __init__(self, times: int, failure: TransientFailure) -> None:
        self.times = times
        self.failure = failure
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise self.failure
        return "ok"


def test_a_transient_failure_is_retried_until_it_succeeds() -> None:
    time = FakeTime()
    r = retrier(time)
    assert r.run(Flaky(2, TransientFailure("busy")), what="GetItem", deadline=r.deadline()) == "ok"
    assert len(time.sleeps) == 2


def test_waits_grow_exponentially_up_to_the_cap() -> None:
    time = FakeTime()
    r = retrier(time, max_wait=100.0, max_attempts=10)
    r.run(Flaky(6, TransientFailure("busy")), what="GetItem", deadline=r.deadline())
    assert time.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_jitter_keeps_each_wait_between_half_and_all_of_the_backoff() -> None:
    policy = RetryPolicy(max_wait=10, base_delay=1.0, max_delay=8.0)
    assert policy.delay(2, None, lambda low, high: low) == 2.0
    assert policy.delay(2, None, lambda low, high: high) == 4.0


def test_the_server_back_off_is_honoured_when_longer_than_ours() -> None:
    time = FakeTime()
    r = retrier(time)
    r.run(Flaky(1, TransientFailure("busy", back_off=3.0)), what="GetItem", deadline=r.deadline())
    assert time.sleeps == [3.0]


def test_giving_up_when_the_next_wait_would_pass_the_deadline_reports_the_back_off() -> None:
    time = FakeTime()
    r = retrier(time, max_wait=5.0)
    with pytest.raises(MailboxUnavailable) as raised:
        r.run(Flaky(99, TransientFailure("busy", back_off=7.2)), what="GetItem", deadline=r.deadline())
    assert time.sleeps == []
    assert raised.value.retry_after == 8


def test_giving_up_after_the_last_attempt_suggests_the_default_retry_after() -> None:
    time = FakeTime()
    r = retrier(time, max_attempts=3)
    operation = Flaky(99, TransientFailure("HTTP 503"))
    with pytest.raises(MailboxUnavailable) as raised:
        r.run(operation, what="GetItem", deadline=r.deadline())
    assert operation.calls == 3
    assert raised.value.retry_after == 30


def test_a_failure_that_must_not_be_retried_gives_up_at_once_with_its_detail() -> None:
    time = FakeTime()
    r = retrier(time)
    failure = TransientFailure("broken stream", detail="The copy is incomplete.", retryable=False)
    with pytest.raises(MailboxUnavailable, match="The copy is incomplete."):
        r.run(Flaky(1, failure), what="GetItem", deadline=r.deadline())
    assert time.sleeps == []


def test_other_errors_pass_through_without_retry() -> None:
    time = FakeTime()
    r = retrier(time)

    def too_large() -> str:
        raise MessageTooLarge(10)

    with pytest.raises(MessageTooLarge):
        r.run(too_large, what="GetItem", deadline=r.deadline())
    assert time.sleeps == []
