"""export_case(): a zip an investigator can verify with sha256sum, openssl or Python."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from addin_service import ids
from addin_service.evidence.files import FileEvidenceStore
from addin_service.evidence.howto import VERIFY_SCRIPT_BEGIN, VERIFY_SCRIPT_END
from addin_service.evidence.ports import SealedPackage
from tests.fakes.evidence import file_report, sample_message

PACKAGE_FILES = ("headers.txt", "manifest.json", "message.eml", "metadata.json")


@pytest.fixture
def store(tmp_path: Path) -> FileEvidenceStore:
    return FileEvidenceStore(tmp_path / "evidence")


@pytest.fixture
def case(store: FileEvidenceStore) -> list[SealedPackage]:
    """Two reports in one case, with another case filed in between."""
    case_id = ids.new_case_id()
    first = file_report(store, sample_message(b"\x00first\r\r\n" * 1000), case_id=case_id)
    file_report(store, sample_message(b"another case"))
    second = file_report(store, sample_message(b"second"), case_id=case_id)
    return [first, second]


def unzip(archive: Path, into: Path) -> Path:
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(into)
    return into


def test_the_zip_holds_the_packages_ledger_lines_key_sums_and_instructions(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    out = tmp_path / "case.zip"
    assert store.export_case(case[0].case_id, out) == 2
    expected = {f"{r.case_id}/{r.report_id}/{name}" for r in case for name in PACKAGE_FILES}
    expected |= {"ledger-entries.jsonl", "signing-key.pub.pem", "SHA256SUMS", "VERIFY.txt", "REPORT.html"}
    with zipfile.ZipFile(out) as zf:
        assert set(zf.namelist()) == expected


def test_files_in_the_zip_are_exactly_as_stored(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    store.export_case(case[0].case_id, tmp_path / "case.zip")
    with zipfile.ZipFile(tmp_path / "case.zip") as zf:
        for report in case:
            for name in PACKAGE_FILES:
                stored = store.read_file(report.case_id, report.report_id, name)
                assert zf.read(f"{report.case_id}/{report.report_id}/{name}") == stored


def test_the_message_is_stored_uncompressed(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    store.export_case(case[0].case_id, tmp_path / "case.zip")
    with zipfile.ZipFile(tmp_path / "case.zip") as zf:
        info = zf.getinfo(f"{case[0].case_id}/{case[0].report_id}/message.eml")
        assert info.compress_type == zipfile.ZIP_STORED


def test_the_ledger_lines_are_this_cases_lines_unchanged(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    store.export_case(case[0].case_id, tmp_path / "case.zip")
    ledger = (store.root / "ledger" / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    with zipfile.ZipFile(tmp_path / "case.zip") as zf:
        assert zf.read("ledger-entries.jsonl") == ledger[0] + ledger[2]


def test_sha256sum_accepts_the_unzipped_export(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    store.export_case(case[0].case_id, tmp_path / "case.zip")
    folder = unzip(tmp_path / "case.zip", tmp_path / "unzipped")
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == 2 * len(PACKAGE_FILES) + 4


def test_the_python_steps_in_verify_txt_pass(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    store.export_case(case[0].case_id, tmp_path / "case.zip")
    folder = unzip(tmp_path / "case.zip", tmp_path / "unzipped")
    howto = (folder / "VERIFY.txt").read_text()
    script = howto.split(VERIFY_SCRIPT_BEGIN + "\n", 1)[1].split(VERIFY_SCRIPT_END, 1)[0]
    ran = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [f"OK {r.case_id} {r.report_id}" for r in case]


def test_the_python_steps_in_verify_txt_catch_an_edited_message(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    store.export_case(case[0].case_id, tmp_path / "case.zip")
    folder = unzip(tmp_path / "case.zip", tmp_path / "unzipped")
    (folder / case[1].case_id / case[1].report_id / "message.eml").write_bytes(b"edited")
    howto = (folder / "VERIFY.txt").read_text()
    script = howto.split(VERIFY_SCRIPT_BEGIN + "\n", 1)[1].split(VERIFY_SCRIPT_END, 1)[0]
    ran = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True)
    assert ran.returncode != 0 and "message.eml" in ran.stderr


def test_the_openssl_steps_in_verify_txt_verify_a_ledger_signature(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    store.export_case(case[0].case_id, tmp_path / "case.zip")
    folder = unzip(tmp_path / "case.zip", tmp_path / "unzipped")
    entry = json.loads((folder / "ledger-entries.jsonl").read_bytes().splitlines()[0])
    (folder / "hash.txt").write_text(entry["hash"])
    (folder / "hash.sig").write_bytes(base64.b64decode(entry["signature"]))
    command = (
        "openssl pkeyutl -verify -pubin -inkey signing-key.pub.pem -rawin -in hash.txt -sigfile hash.sig"
    )
    assert command in (folder / "VERIFY.txt").read_text()
    ran = subprocess.run(command.split(), cwd=folder, capture_output=True, text=True)
    assert "Signature Verified Successfully" in ran.stdout, ran.stdout + ran.stderr


def test_an_unknown_case_raises_key_error_and_writes_nothing(
    store: FileEvidenceStore, tmp_path: Path
) -> None:
    file_report(store, b"x")
    with pytest.raises(KeyError):
        store.export_case(ids.new_case_id(), tmp_path / "case.zip")
    assert list(tmp_path.glob("*.zip*")) == [] and list(tmp_path.glob(".case.zip*")) == []


def test_a_malformed_case_id_raises_key_error(store: FileEvidenceStore, tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        store.export_case("../ledger", tmp_path / "case.zip")


def test_the_zip_replaces_an_older_export_and_leaves_no_temporary_file(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    out = tmp_path / "case.zip"
    out.write_bytes(b"an older export")
    store.export_case(case[0].case_id, out)
    assert zipfile.is_zipfile(out)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".case.zip")) == []


def test_verify_txt_is_short_plain_text(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    store.export_case(case[0].case_id, tmp_path / "case.zip")
    with zipfile.ZipFile(tmp_path / "case.zip") as zf:
        text = zf.read("VERIFY.txt").decode("ascii")
    assert "sha256sum -c SHA256SUMS" in text and case[0].case_id in text
    assert len(text.splitlines()) < 100
