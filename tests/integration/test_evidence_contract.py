"""The EvidenceStore contract, run against every implementation (the file store and the fake)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from addin_service import ids
from addin_service.errors import MessageTooLarge
from addin_service.evidence.files import FileEvidenceStore
from addin_service.evidence.ports import EvidenceStore
from tests.fakes.evidence import InMemoryEvidenceStore, file_report, sample_message, sha256

FACTORIES: dict[str, Callable[[Path], EvidenceStore]] = {
    "file": lambda tmp: FileEvidenceStore(tmp / "evidence"),
    "memory": lambda tmp: InMemoryEvidenceStore(),
}


@pytest.fixture(params=sorted(FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> EvidenceStore:
    return FACTORIES[request.param](tmp_path)


def test_the_sealed_message_reads_back_byte_for_byte(store: EvidenceStore) -> None:
    message = sample_message(b"\x00\xff\r\r\n")
    sealed = file_report(store, message)
    assert store.read_file(sealed.case_id, sealed.report_id, "message.eml") == message


def test_the_pending_package_hashes_and_counts_as_it_writes(store: EvidenceStore) -> None:
    pending = store.open_package(ids.new_report_id(), 100)
    pending.write(b"abc")
    pending.write(b"def")
    assert (pending.message_sha256, pending.message_size) == (sha256(b"abcdef"), 6)
    pending.abort()


def test_sealed_packages_take_consecutive_ledger_positions(store: EvidenceStore) -> None:
    assert [file_report(store, b"x").ledger_sequence for _ in range(3)] == [1, 2, 3]


def test_writing_past_the_limit_raises_message_too_large(store: EvidenceStore) -> None:
    pending = store.open_package(ids.new_report_id(), 10)
    with pytest.raises(MessageTooLarge):
        pending.write(b"x" * 11)
    pending.abort()


def test_an_aborted_package_is_not_readable(store: EvidenceStore) -> None:
    report_id = ids.new_report_id()
    pending = store.open_package(report_id, 10)
    pending.write(b"x")
    pending.abort()
    with pytest.raises(FileNotFoundError):
        store.read_file(ids.new_case_id(), report_id, "message.eml")


def test_a_missing_file_raises_file_not_found(store: EvidenceStore) -> None:
    sealed = file_report(store, b"x")
    with pytest.raises(FileNotFoundError):
        store.read_file(sealed.case_id, sealed.report_id, "other.txt")


def test_a_store_with_sealed_packages_verifies(store: EvidenceStore) -> None:
    file_report(store, b"x")
    file_report(store, b"y")
    result = store.verify()
    assert (result.ok, result.reports_checked) == (True, 2)


def test_check_passes_on_a_working_store(store: EvidenceStore) -> None:
    store.check()


def test_export_writes_a_zip_and_counts_the_reports(store: EvidenceStore, tmp_path: Path) -> None:
    case_id = ids.new_case_id()
    file_report(store, b"x", case_id=case_id)
    file_report(store, b"y", case_id=case_id)
    result = store.export_case(case_id, tmp_path / "out.zip")
    assert (result.count, result.problems) == (2, ())
    assert zipfile.is_zipfile(tmp_path / "out.zip")


def test_export_of_an_unknown_case_raises_key_error(store: EvidenceStore, tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        store.export_case(ids.new_case_id(), tmp_path / "out.zip")
