"""Case and report numbers: their shapes, and every symbol equally likely."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from addin_service import ids


def test_case_and_report_ids_have_their_documented_shapes() -> None:
    case_id = ids.new_case_id(datetime(2026, 12, 3, tzinfo=UTC))
    assert case_id.startswith("HR-2026-")
    assert ids.is_case_id(case_id)
    assert ids.is_report_id(ids.new_report_id())


def test_every_random_byte_value_maps_to_a_symbol_and_each_symbol_is_hit_equally(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fed every byte value once, the 32 symbols come out eight times each: no symbol is favoured."""
    monkeypatch.setattr(ids.secrets, "token_bytes", lambda n: bytes(range(256))[:n])
    symbols = Counter(ids._random(256))
    assert set(symbols) == set(ids._CROCKFORD)
    assert set(symbols.values()) == {8}


def test_ids_do_not_repeat() -> None:
    assert len({ids.new_report_id() for _ in range(10_000)}) == 10_000
