"""The ledger file itself: appends that fail leave no torn line; the lock; reading the tail."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import pytest

from addin_service import ids
from addin_service.errors import EvidenceStoreUnavailable
from addin_service.evidence import signing
from addin_service.evidence.files import FileEvidenceStore
from addin_service.evidence.keys import Signer
from addin_service.evidence.ledger import Ledger, LedgerEntry, LedgerUnusable
from tests.fakes.evidence import file_report

MANIFEST_HASH = "sha256:" + "cd" * 32


@pytest.fixture
def signer() -> Signer:
    key = signing.generate_private_key()
    return Signer(key, key.public_key(), signing.fingerprint(key.public_key()))


def next_entry(previous: LedgerEntry | None, signer: Signer) -> LedgerEntry:
    return LedgerEntry.create(
        previous, ids.new_case_id(), ids.new_report_id(), MANIFEST_HASH, "2026-11-25T09:00:00.000000Z", signer
    )


def test_a_failed_append_cuts_the_file_back_to_its_previous_length(
    tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(tmp_path)
    first = next_entry(None, signer)
    ledger.append(first)
    before = ledger.path.read_bytes()

    def fsync_fails(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync_fails)
    with pytest.raises(OSError):
        ledger.append(next_entry(first, signer))
    monkeypatch.undo()
    assert ledger.path.read_bytes() == before


def test_the_last_entry_is_found_at_the_end_of_a_long_ledger(tmp_path: Path, signer: Signer) -> None:
    ledger = Ledger(tmp_path)
    entry = None
    for _ in range(40):
        entry = next_entry(entry, signer)
        ledger.append(entry)
    assert ledger.last_entry(signer.public_key) == entry


def test_the_last_entry_must_be_signed_by_the_key_in_use(tmp_path: Path, signer: Signer) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(next_entry(None, signer))
    other = signing.generate_private_key().public_key()
    with pytest.raises(LedgerUnusable, match="not signed by this service's key"):
        ledger.last_entry(other)


def test_a_seal_gives_up_calmly_when_the_ledger_stays_locked(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    FileEvidenceStore(root).check()
    holder = os.open(root / "ledger" / "ledger.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with pytest.raises(EvidenceStoreUnavailable, match="try again shortly"):
            file_report(FileEvidenceStore(root, lock_timeout=0.2), b"x")
    finally:
        os.close(holder)
    assert sorted(p.name for p in root.iterdir()) == [".tmp", "ledger"]
    assert list((root / ".tmp").iterdir()) == []


# The ledger remembers the last line it read or appended, so that sealing need not parse and verify
# it again. Anything another writer does to the end of the file must still be seen.


def test_a_writer_chains_onto_an_entry_another_writer_appended_since(tmp_path: Path, signer: Signer) -> None:
    ours, theirs = Ledger(tmp_path), Ledger(tmp_path)  # two processes, each with its own memory
    first = next_entry(None, signer)
    ours.append(first, signed_by=signer.public_key)
    assert theirs.last_entry(signer.public_key) == first
    second = next_entry(first, signer)
    theirs.append(second, signed_by=signer.public_key)
    assert ours.last_entry(signer.public_key) == second
    third = next_entry(second, signer)
    ours.append(third, signed_by=signer.public_key)
    assert theirs.last_entry(signer.public_key) == third
    assert (third.sequence, third.previous_hash) == (3, second.hash)


def test_two_stores_taking_turns_on_one_folder_make_one_valid_chain(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    stores = [FileEvidenceStore(root), FileEvidenceStore(root)]
    sealed = [file_report(stores[n % 2], f"report {n}".encode()) for n in range(5)]
    assert [s.ledger_sequence for s in sealed] == [1, 2, 3, 4, 5]
    result = stores[0].verify()
    assert (result.ok, result.reports_checked) == (True, 5)


def test_an_edit_of_the_remembered_last_line_is_still_refused(tmp_path: Path, signer: Signer) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(next_entry(None, signer), signed_by=signer.public_key)
    edited = ledger.path.read_bytes().replace(b'"sequence":1', b'"sequence":7')
    ledger.path.write_bytes(edited)  # same length, possibly within the same clock tick
    with pytest.raises(LedgerUnusable, match="edited"):
        ledger.last_entry(signer.public_key)


def test_a_line_that_only_ends_like_the_remembered_one_is_refused(tmp_path: Path, signer: Signer) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(next_entry(None, signer), signed_by=signer.public_key)
    ledger.path.write_bytes(b"garbage" + ledger.path.read_bytes())
    with pytest.raises(LedgerUnusable, match="not a valid entry"):
        ledger.last_entry(signer.public_key)


def test_the_remembered_entry_is_only_trusted_for_the_key_that_signed_it(tmp_path: Path, signer: Signer) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(next_entry(None, signer), signed_by=signer.public_key)
    with pytest.raises(LedgerUnusable, match="not signed by this service's key"):
        ledger.last_entry(signing.generate_private_key().public_key())


def test_a_failed_append_forgets_the_remembered_entry(
    tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(tmp_path)
    first = next_entry(None, signer)
    ledger.append(first, signed_by=signer.public_key)

    def fsync_fails(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", fsync_fails)
        with pytest.raises(OSError):
            ledger.append(next_entry(first, signer), signed_by=signer.public_key)
    assert ledger.last_entry(signer.public_key) == first


def test_the_entry_just_appended_is_not_parsed_or_verified_again(
    tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(tmp_path)
    entry = next_entry(None, signer)
    ledger.append(entry, signed_by=signer.public_key)

    def must_not_run(*args: object) -> None:
        raise AssertionError("the remembered last entry was checked again")

    monkeypatch.setattr(LedgerEntry, "parse", must_not_run)
    monkeypatch.setattr(LedgerEntry, "signature_valid", must_not_run)
    assert ledger.last_entry(signer.public_key) == entry
