"""export_case(): a zip an investigator can verify with sha256sum, openssl or Python."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
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


def folder(store: FileEvidenceStore, report: SealedPackage) -> Path:
    return store.root / report.case_id / report.report_id


def tamper(path: Path, data: bytes) -> None:
    """Overwrite a sealed file the way someone with enough rights could."""
    path.parent.chmod(0o755)
    path.chmod(0o644)
    path.write_bytes(data)


def flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    tamper(path, bytes(data))


def report_page(out: Path) -> str:
    with zipfile.ZipFile(out) as zf:
        return zf.read("REPORT.html").decode("utf-8")


def test_the_zip_holds_the_packages_ledger_lines_key_sums_and_instructions(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    out = tmp_path / "case.zip"
    assert store.export_case(case[0].case_id, out).count == 2
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


# -- each package is checked as verify checks one report ----------------------------------------


def test_a_clean_export_finds_no_problems(store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path) -> None:
    out = tmp_path / "case.zip"
    result = store.export_case(case[0].case_id, out)
    assert (result.count, result.problems, result.ok) == (2, (), True)
    assert "DAMAGED" not in report_page(out)


def test_an_edited_message_is_exported_as_found_with_the_problems_verify_names(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    message = folder(store, case[1]) / "message.eml"
    flip_a_bit(message)
    out = tmp_path / "case.zip"

    result = store.export_case(case[0].case_id, out)

    assert result.count == 2
    assert list(result.problems) == store.verify_package(case[1].case_id, case[1].report_id).problems
    assert [(p.report_id, p.ledger_sequence, p.problem) for p in result.problems] == [
        (case[1].report_id, 3, "message.eml does not match its sha256 in the manifest (it was edited)")
    ]
    with zipfile.ZipFile(out) as zf:
        assert zf.read(f"{case[1].case_id}/{case[1].report_id}/message.eml") == message.read_bytes()


def test_report_html_marks_an_edited_message_with_the_sealed_hash_beside_the_one_found(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    message = folder(store, case[1]) / "message.eml"
    flip_a_bit(message)
    out = tmp_path / "case.zip"
    store.export_case(case[0].case_id, out)

    page = report_page(out)
    found = "sha256:" + hashlib.sha256(message.read_bytes()).hexdigest()
    assert "DAMAGED EVIDENCE: 1 report(s) of this case are not as they were sealed" in page
    assert f"Report {case[1].report_id} (ledger #3): message.eml does not match its sha256" in page
    damaged_section = page.split(f"<h2>Report {case[1].report_id}</h2>", 1)[1]
    assert damaged_section.index("DAMAGED EVIDENCE: this package does not match what was sealed") < 200
    assert f"message.eml as sealed (manifest.json)</th><td class=\"hash\">{case[1].message_sha256}" in damaged_section
    assert f"message.eml as found (this export)</th><td class=\"hash\">{found}" in damaged_section
    assert "DOES NOT MATCH" in damaged_section
    intact_section = page.split(f"<h2>Report {case[0].report_id}</h2>", 1)[1].split("<section", 1)[0]
    assert "DAMAGED" not in intact_section


def test_an_edited_ledger_entry_is_a_problem_of_the_export(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    ledger = store.root / "ledger" / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    entry = json.loads(lines[0])
    entry["at"] = "2020-01-01T00:00:00.000000Z"
    lines[0] = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    ledger.chmod(0o644)
    ledger.write_bytes(b"".join(lines))

    result = store.export_case(case[0].case_id, tmp_path / "case.zip")

    assert [(p.report_id, p.problem) for p in result.problems] == [
        (case[0].report_id, "ledger entry does not match its hash (the entry was edited)")
    ]


def test_a_folder_in_place_of_a_message_is_a_problem_of_the_export(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    message = folder(store, case[0]) / "message.eml"
    message.parent.chmod(0o755)
    message.unlink()
    message.mkdir()

    result = store.export_case(case[0].case_id, tmp_path / "case.zip")

    assert [p.problem for p in result.problems] == ["message.eml cannot be read (not a regular file)"]
    assert "Missing or unreadable in this export: message.eml" in report_page(tmp_path / "case.zip")


def test_a_removed_package_is_a_problem_and_its_ledger_line_still_shows_the_gap(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    package = folder(store, case[0])
    package.chmod(0o755)
    for path in package.iterdir():
        path.unlink()
    package.rmdir()
    out = tmp_path / "case.zip"

    result = store.export_case(case[0].case_id, out)

    assert result.count == 1
    assert [(p.report_id, p.problem) for p in result.problems] == [
        (case[0].report_id, "package folder is missing (removed)")
    ]
    with zipfile.ZipFile(out) as zf:
        assert case[0].report_id in zf.read("ledger-entries.jsonl").decode()
    assert f"Report {case[0].report_id} (ledger #1): package folder is missing (removed)" in report_page(out)


def test_a_file_in_place_of_the_case_folder_is_a_problem_of_every_report_not_a_crash(
    store: FileEvidenceStore, case: list[SealedPackage], tmp_path: Path
) -> None:
    case_folder = folder(store, case[0]).parent
    case_folder.chmod(0o755)
    shutil.rmtree(case_folder)
    case_folder.write_bytes(b"not a folder")

    result = store.export_case(case[0].case_id, tmp_path / "case.zip")

    assert result.count == 0
    assert {p.report_id for p in result.problems} == {r.report_id for r in case}
