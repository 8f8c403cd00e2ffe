"""Ledger entries: chaining, hashing, signing, parsing, torn lines."""

from __future__ import annotations

import dataclasses
import json

import pytest

from addin_service import ids
from addin_service.evidence import signing
from addin_service.evidence.canonical import canonical_json, sha256_tag
from addin_service.evidence.keys import Signer
from addin_service.evidence.ledger import LedgerEntry, split_lines

MANIFEST_HASH = "sha256:" + "ab" * 32


def make_signer() -> Signer:
    key = signing.generate_private_key()
    return Signer(key, key.public_key(), signing.fingerprint(key.public_key()))


def entry_after(previous: LedgerEntry | None, signer: Signer) -> LedgerEntry:
    return LedgerEntry.create(
        previous, ids.new_case_id(), ids.new_report_id(), MANIFEST_HASH, "2026-11-25T09:00:00.000000Z", signer
    )


def test_the_first_entry_has_sequence_one_and_no_previous_hash() -> None:
    first = entry_after(None, make_signer())
    assert (first.sequence, first.previous_hash) == (1, None)


def test_each_entry_chains_onto_the_hash_of_the_one_before() -> None:
    signer = make_signer()
    first = entry_after(None, signer)
    second = entry_after(first, signer)
    assert (second.sequence, second.previous_hash) == (2, first.hash)


def test_the_hash_is_sha256_of_the_canonical_content_fields() -> None:
    entry = entry_after(None, make_signer())
    content = {k: v for k, v in dataclasses.asdict(entry).items() if k not in ("hash", "signature")}
    assert entry.hash == sha256_tag(canonical_json(content))


def test_the_time_is_covered_by_the_hash() -> None:
    entry = entry_after(None, make_signer())
    edited = dataclasses.replace(entry, at="2020-01-01T00:00:00.000000Z")
    assert edited.computed_hash() != entry.hash


def test_the_signature_is_over_the_hash_text() -> None:
    signer = make_signer()
    entry = entry_after(None, signer)
    assert signing.verify(signer.public_key, entry.hash.encode("ascii"), entry.signature)


def test_a_line_round_trips_through_parse() -> None:
    entry = entry_after(None, make_signer())
    assert LedgerEntry.parse(entry.to_line().rstrip(b"\n")) == entry


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"case_id": "../../etc"}, "case_id"),
        ({"report_id": "R-../passwd"}, "report_id"),
        ({"sequence": True}, "sequence"),
        ({"sequence": 0}, "sequence"),
        ({"hash": "md5:00"}, "hash"),
        ({"previous_hash": 7}, "previous_hash"),
        ({"extra": 1}, "fields"),
    ],
)
def test_parse_refuses_malformed_entries(change: dict[str, object], reason: str) -> None:
    obj = json.loads(entry_after(None, make_signer()).to_line())
    obj.update(change)
    with pytest.raises(ValueError, match=reason):
        LedgerEntry.parse(json.dumps(obj).encode())


def test_a_file_without_a_final_newline_ends_in_a_torn_line() -> None:
    line = entry_after(None, make_signer()).to_line()
    lines = split_lines(line + line[:40])
    assert lines[0].entry is not None
    assert lines[1].entry is None and "incomplete" in (lines[1].error or "")


def test_an_empty_file_has_no_lines() -> None:
    assert split_lines(b"") == []
