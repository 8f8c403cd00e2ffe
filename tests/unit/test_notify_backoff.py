"""Retry pacing: exponential, jittered, capped, never sooner than the server asked."""

from __future__ import annotations

import pytest

from addin_service.notify.backoff import Backoff


def lowest(low: float, high: float) -> float:
    return low


def highest(low: float, high: float) -> float:
    return high


def test_the_wait_doubles_with_each_failed_attempt() -> None:
    backoff = Backoff(base_seconds=30, max_seconds=3600, max_attempts=8)

    assert [backoff.delay(n, jitter=highest) for n in range(1, 6)] == [30, 60, 120, 240, 480]


def test_jitter_keeps_at_least_half_of_the_wait() -> None:
    backoff = Backoff(base_seconds=30)

    assert backoff.delay(3, jitter=lowest) == 60
    for _ in range(200):
        assert 60 <= backoff.delay(3) <= 120


def test_the_wait_is_capped() -> None:
    assert Backoff(base_seconds=30, max_seconds=3600).delay(30, jitter=highest) == 3600


def test_a_server_asking_for_longer_is_obeyed() -> None:
    assert Backoff(base_seconds=30).delay(1, retry_after=900, jitter=highest) == 900


def test_attempts_run_out() -> None:
    backoff = Backoff(max_attempts=3)

    assert not backoff.exhausted(2)
    assert backoff.exhausted(3)


def test_the_defaults_spread_retries_over_about_two_hours() -> None:
    backoff = Backoff()
    total = sum(backoff.delay(n, jitter=highest) for n in range(1, backoff.max_attempts))

    assert 3600 < total < 4 * 3600


@pytest.mark.parametrize("kwargs", [{"base_seconds": 0}, {"base_seconds": 10, "max_seconds": 5}, {"max_attempts": 0}])
def test_nonsense_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("asked", [31_536_000, 400_000_000_000, float("inf")])
def test_a_server_asking_for_a_year_or_forever_gets_at_most_an_hour(asked: float) -> None:
    # Otherwise the row would sit queued far beyond its last attempt, never counted as dead.
    assert Backoff(base_seconds=30).delay(1, retry_after=asked, jitter=highest) <= 3600
