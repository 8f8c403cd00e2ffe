"""Numbers from outside: only ASCII digits count, nothing that passed a check raises, waits are bounded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from addin_service.untrusted_numbers import MAX_WAIT_SECONDS, bounded_wait, decimal, is_decimal, retry_after_seconds

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["²", "①", "٣", "１２", "", " ", "-1", "+1", "1.0", "1e3", "0x10"])
def test_only_ascii_digits_are_a_decimal(text: str) -> None:
    assert text.isdigit() or not is_decimal(text)  # the trap: "²".isdigit() is True
    assert not is_decimal(text)
    assert decimal(text) is None


def test_a_decimal_is_read_with_blanks_around_it_and_within_its_length() -> None:
    assert decimal(" 0042\r\n") == 42
    assert decimal("123", max_digits=3) == 123
    assert decimal("1234", max_digits=3) is None
    assert decimal("9" * 5000) is None  # int() itself would refuse more than 4,300 digits
    assert decimal(None) is None


@pytest.mark.parametrize(
    ("asked", "kept"),
    [(0, 0.0), (2.5, 2.5), (3600, 3600.0), (31_536_000, MAX_WAIT_SECONDS), (float("inf"), None), (float("nan"), None),
     (-1, None), (None, None)],
)
def test_a_wait_asked_for_is_finite_and_at_most_an_hour(asked: float | None, kept: float | None) -> None:
    assert bounded_wait(asked) == kept


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120),
        (" 7 ", 7),
        ("86400", MAX_WAIT_SECONDS),
        ("400000000000", MAX_WAIT_SECONDS),
        ("9" * 5000, MAX_WAIT_SECONDS),
        ("Fri, 04 Dec 2026 12:00:30 GMT", 30),
        ("Fri, 04 Dec 2026 11:00:00 GMT", 0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_WAIT_SECONDS),
        ("²", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_whole_seconds_within_an_hour(header: str | None, seconds: int | None) -> None:
    assert retry_after_seconds(header, now=lambda: NOW) == seconds
