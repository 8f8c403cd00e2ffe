"""verify(): every kind of tampering is found, in ledger order, with only the public key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from addin_service import ids
from addin_service.evidence import signing
from addin_service.evidence.files import FileEvidenceStore
from addin_service.evidence.ports import SealedPackage
from tests.fakes.evidence import file_report, sample_message


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "evidence"


@pytest.fixture
def store(root: Path) -> FileEvidenceStore:
    return FileEvidenceStore(root)


@pytest.fixture
def reports(store: FileEvidenceStore) -> list[SealedPackage]:
    """Three reports; the first two in one case."""
    case_id = ids.new_case_id()
    return [
        file_report(store, sample_message(b"first"), case_id=case_id),
        file_report(store, sample_message(b"second"), case_id=case_id),
        file_report(store, sample_message(b"third")),
    ]


def folder(root: Path, report: SealedPackage) -> Path:
    return root / report.case_id / report.report_id


def tamper(path: Path, data: bytes) -> None:
    """Overwrite a sealed file the way someone with enough rights could."""
    path.parent.chmod(0o755)
    path.chmod(0o644)
    path.write_bytes(data)


def ledger_lines(root: Path) -> list[bytes]:
    return (root / "ledger" / "ledger.jsonl").read_bytes().splitlines(keepends=True)


def write_ledger(root: Path, lines: list[bytes]) -> None:
    (root / "ledger" / "ledger.jsonl").write_bytes(b"".join(lines))


def first_problem(store: FileEvidenceStore) -> tuple[str | None, str]:
    result = store.verify()
    assert not result.ok
    return result.problems[0].report_id, result.problems[0].problem


def test_an_untouched_store_verifies(store: FileEvidenceStore, reports: list[SealedPackage]) -> None:
    result = store.verify()
    assert (result.ok, result.reports_checked) == (True, 3)


def test_an_empty_store_verifies(store: FileEvidenceStore) -> None:
    assert store.verify().ok


def test_verify_needs_only_the_public_key(root: Path, reports: list[SealedPackage]) -> None:
    (root / "ledger" / "signing-key.pem").unlink()
    result = FileEvidenceStore(root).verify()
    assert result.ok
    assert not (root / "ledger" / "signing-key.pem").exists()


def test_one_edited_message_byte_is_found(
    store: FileEvidenceStore, root: Path, reports: list[SealedPackage]
) -> None:
    path = folder(root, reports[1]) / "message.eml"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    tamper(path, bytes(data))
    assert first_problem(store) == (
        reports[1].report_id,
        "message.eml does not match its sha256 in the manifest (it was edited)",
    )


def test_edited_metadata_is_found(store: FileEvidenceStore, root: Path, reports: list[SealedPackage]) -> None:
    path = folder(root, reports[0]) / "metadata.json"
    tamper(path, path.read_bytes().replace(b"threat", b"spam!!"))
    report_id, problem = first_problem(store)
    assert (report_id, problem.startswith("metadata.json")) == (reports[0].report_id, True)


def test_an_edited_and_re_hashed_manifest_is_found(
    store: FileEvidenceStore, root: Path, reports: list[SealedPackage]
) -> None:
    path = folder(root, reports[0]) / "manifest.json"
    manifest = json.loads(path.read_bytes())
    manifest["created_at"] = "2020-01-01T00:00:00.000000Z"
    tamper(path, json.dumps(manifest).encode())
    report_id, problem = first_problem(store)
    assert report_id == reports[0].report_id and "manifest.json does not match the hash" in problem


def test_a_removed_report_folder_is_found(
    store: FileEvidenceStore, root: Path, reports: list[SealedPackage]
) -> None:
    folder(root, reports[1]).chmod(0o755)
    shutil.rmtree(folder(root, reports[1]))
    assert first_problem(store) == (reports[1].report_id, "package folder is missing (removed)")


def test_an_added_report_folder_is_found(
    store: FileEvidenceStore, root: Path, reports: list[SealedPackage]
) -> None:
    forged = root / reports[0].case_id / ids.new_report_id()
    shutil.copytree(folder(root, reports[0]), forged)
    result = store.verify()
    assert [(p.report_id, p.problem) for p in result.problems] == [
        (forged.name, "package is not in the ledger (added, or its ledger entry was removed)")
    ]


def test_a_stray_file_added_to_a_package_is_found(
    store: FileEvidenceStore, root: Path, reports: list[SealedPackage]
) -> None:
    package = folder(root, reports[2])
    package.chmod(0o755)
    (package / "explanation.txt").write_bytes(b"added later")
    assert first_problem(store) == (
        reports[2].report_id,
        "unexpected file explanation.txt in the package (added)",
    )


def test_a_removed_file_is_found(store: FileEvidenceStore, root: Path, reports: list[SealedPackage]) -> None:
    package = folder(root, reports[0])
    package.chmod(0o755)
    (package / "headers.txt").unlink()
    assert first_problem(store) == (reports[0].report_id, "headers.txt is missing (removed)")


def test_reordered_ledger_lines_are_found(
    store: FileEvidenceStore, root: Path, reports: list[SealedPackage]
) -> None:
    lines = ledger_lines(root)
    write_ledger(root, [lines[0], lines[2], lines[1]])
    report_id, problem = first_problem(store)
    assert report_id == reports[2].report_id
    assert problem == "sequence 3 where 2 was expected (ledger entries were removed, inserted or reordered)"


def test_a_deleted_ledger_line_is_found(
    store: FileEvidenceStore, root: Path, reports: list[SealedPackage]
) -> None:
    lines = ledger_lines(root)
    write_ledger(root, [lines[0], lines[2]])
    problems = [(p.report_id, p.problem) for p in store.verify().problems]
    assert problems[0][0] == reports[2].report_id
    assert (
        reports[1].report_id,
        "package is not in the ledger (added, or its ledger entry was removed)",
    ) in problems


def test_an_edited_ledger_hash_is_found(
    store: FileEvidenceStore, root: Path, reports: list[SealedPackage]
) -> None:
    lines = ledger_lines(root)
    entry = json.loads(lines[1])
    entry["hash"] = "sha256:" + "0" * 64
    lines[1] = json.dumps(entry).encode() + b"\n"
    write_ledger(root, lines)
    assert first_problem(store) == (
        reports[1].report_id,
        "ledger entry does not match its hash (the entry was edited)",
    )


def test_a_ledger_signed_by_another_key_is_found(
    store: FileEvidenceStore, root: Path, reports: list[SealedPackage]
) -> None:
    other = signing.generate_private_key().public_key()
    (root / "ledger" / "signing-key.pub.pem").write_bytes(signing.public_key_pem(other))
    report_id, problem = first_problem(store)
    assert report_id == reports[0].report_id
    assert problem == "ledger entry signature is not valid for the ledger's public key"


def test_a_torn_last_ledger_line_is_reported(
    store: FileEvidenceStore, root: Path, reports: list[SealedPackage]
) -> None:
    lines = ledger_lines(root)
    write_ledger(root, [*lines, b'{"at":"2026-11-25T09:0'])
    problems = [p.problem for p in store.verify().problems]
    assert problems == ["ledger line 4: the last line is incomplete (a write was interrupted)"]


def test_the_first_bad_report_is_named_first(
    store: FileEvidenceStore, root: Path, reports: list[SealedPackage]
) -> None:
    for report in (reports[2], reports[1]):
        tamper(folder(root, report) / "message.eml", b"replaced")
    result = store.verify()
    assert [p.report_id for p in result.problems] == [reports[1].report_id, reports[2].report_id]
    assert [p.ledger_sequence for p in result.problems] == [2, 3]


def test_a_stray_folder_in_the_root_is_found(
    store: FileEvidenceStore, root: Path, reports: list[SealedPackage]
) -> None:
    (root / "not-a-case").mkdir()
    assert first_problem(store) == (None, "unexpected entry in the evidence folder: not-a-case")


def test_verify_package_checks_one_report(
    store: FileEvidenceStore, root: Path, reports: list[SealedPackage]
) -> None:
    tamper(folder(root, reports[0]) / "message.eml", b"replaced")
    assert store.verify_package(reports[1].case_id, reports[1].report_id).ok
    assert not store.verify_package(reports[0].case_id, reports[0].report_id).ok


def test_verify_package_of_an_unknown_report_raises_key_error(store: FileEvidenceStore) -> None:
    with pytest.raises(KeyError):
        store.verify_package(ids.new_case_id(), ids.new_report_id())
