"""``addin-service evidence verify`` as an administrator runs it: the ledger head it prints, and
``--expect`` catching the newest reports removed together with their ledger lines, which the chain
alone cannot show (what is left of it is still a valid chain)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from addin_service.cli import cli
from addin_service.evidence.files import FileEvidenceStore
from tests.fakes.evidence import file_report, sample_message
from tests.fakes.stack import Stack, running_stack

HEAD = re.compile(r"^ledger head: (\d+:sha256:[0-9a-f]{64})$", re.MULTILINE)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "evidence"


def verify(root: Path, *args: str) -> Result:
    env = {"ADDIN_EVIDENCE_URL": f"file://{root}", "ADDIN_DATABASE_URL": f"sqlite:///{root.parent / 'db.sqlite'}"}
    return CliRunner().invoke(cli, ["evidence", "verify", *args], env=env)


def file_three(root: Path) -> None:
    store = FileEvidenceStore(root)
    for n in range(3):
        file_report(store, sample_message(f"message {n}".encode()))


def head_of(result: Result) -> str:
    match = HEAD.search(result.output)
    assert match, result.output
    return match.group(1)


def cut_the_last_report(root: Path) -> None:
    """What someone with write access to the evidence host could do: drop the newest ledger line
    and its package. The remaining chain is intact."""
    ledger = root / "ledger" / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    last = json.loads(lines[-1])
    ledger.chmod(0o644)
    ledger.write_bytes(b"".join(lines[:-1]))
    package = root / last["case_id"] / last["report_id"]
    for path in sorted(package.rglob("*"), reverse=True):
        path.parent.chmod(0o755)
        path.chmod(0o644)
        path.unlink()
    package.chmod(0o755)
    package.rmdir()
    case = root / last["case_id"]
    case.chmod(0o755)
    if not any(case.iterdir()):
        case.rmdir()


def test_verify_prints_the_ledger_head(root: Path) -> None:
    file_three(root)
    result = verify(root)
    assert result.exit_code == 0, result.output
    assert head_of(result).startswith("3:sha256:")


def test_the_recorded_head_is_found_again_while_nothing_is_removed(root: Path) -> None:
    file_three(root)
    head = head_of(verify(root))
    file_report(FileEvidenceStore(root), sample_message(b"a later report"))

    later = verify(root, "--expect", head)

    assert later.exit_code == 0, later.output
    assert "present and unchanged" in later.output and head_of(later).startswith("4:")


def test_removing_the_newest_report_with_its_ledger_line_is_caught_only_with_the_head(root: Path) -> None:
    file_three(root)
    head = head_of(verify(root))
    cut_the_last_report(root)

    assert verify(root).exit_code == 0  # what is left is a valid chain
    caught = verify(root, "--expect", head)
    assert caught.exit_code == 1
    assert "ledger #3" in caught.output and "no longer holds this entry" in caught.output


def test_an_empty_store_with_an_expected_head_fails(root: Path) -> None:
    root.mkdir()
    result = verify(root, "--expect", "1:sha256:" + "0" * 64)
    assert result.exit_code == 1 and "no ledger" in result.output


@pytest.mark.parametrize("bad", ["3", "x:sha256:" + "0" * 64, "0:sha256:" + "0" * 64, "2:sha256:abc", "2:md5:00"])
def test_a_malformed_expectation_is_a_usage_error(root: Path, bad: str) -> None:
    file_three(root)
    result = verify(root, "--expect", bad)
    assert result.exit_code == 2 and "SEQUENCE:sha256" in result.output


# -- the ledger against the case database --------------------------------------------------


def evidence_command(stack: Stack, *args: str) -> Result:
    """``addin-service evidence ARGS`` against the stack's evidence store and case database."""
    env = {"ADDIN_EVIDENCE_URL": stack.settings.evidence_url, "ADDIN_DATABASE_URL": stack.settings.database_url}
    return CliRunner().invoke(cli, ["evidence", *args], env=env)


def verify_stack(stack: Stack, *args: str) -> Result:
    return evidence_command(stack, "verify", *args)


def case_with_an_unfiled_package(stack: Stack) -> str:
    """A case holding one filed report and one package sealed beside it that was never filed."""
    case_id: str = stack.report(stack.add_message(sample_message())).get_json()["case_id"]
    file_report(FileEvidenceStore(stack.evidence_root), sample_message(b"sealed, not filed"), case_id=case_id)
    return case_id


def filed_reports(stack: Stack, count: int) -> None:
    for n in range(count):
        response = stack.report(stack.add_message(sample_message(f"message {n}".encode())))
        assert response.status_code == 201, response.get_json()


def test_verify_says_the_case_database_records_every_sealed_report(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        filed_reports(stack, 2)
        result = verify_stack(stack)

    assert result.exit_code == 0, result.output
    assert "the case database records 2 report(s), each with the manifest the ledger sealed" in result.output
    assert "note:" not in result.output


def test_a_package_sealed_by_a_request_that_failed_is_named_but_is_not_tampering(tmp_path: Path) -> None:
    """Evidence is sealed before its report is recorded: a request that failed in between (the
    database refused the commit, the process died) leaves a signed package no report points to."""
    with running_stack(tmp_path) as stack:
        filed_reports(stack, 1)
        orphan = file_report(FileEvidenceStore(stack.evidence_root), sample_message(b"sealed, then the commit failed"))
        result = verify_stack(stack)

    assert result.exit_code == 0, result.output
    assert "note: 1 sealed package(s) were never filed as reports" in result.output
    assert f"{orphan.case_id}/{orphan.report_id}" in result.output
    assert "evidence intact: 1 report(s) and 1 sealed package(s) never filed" in result.output


def test_a_recorded_report_cut_from_the_ledger_with_its_package_is_caught_without_expect(tmp_path: Path) -> None:
    """What --expect catches with a head kept elsewhere, the case database catches on its own."""
    with running_stack(tmp_path) as stack:
        filed_reports(stack, 2)
        cut_the_last_report(stack.evidence_root)
        result = verify_stack(stack)

    assert result.exit_code == 1
    assert "the case database records this report, but the ledger does not" in result.output


def test_a_filed_reports_ledger_line_cut_is_not_headlined_as_an_interrupted_seal(tmp_path: Path) -> None:
    """Its package is genuine, so without the database it looks like an interrupted seal; the
    database knows it was filed, and the first line an admin reads must say so."""
    with running_stack(tmp_path) as stack:
        filed_reports(stack, 2)
        drop_the_last_ledger_line(stack.evidence_root)
        result = verify_stack(stack)

    assert result.exit_code == 1
    first = next(line for line in result.output.splitlines() if line.startswith("EVIDENCE PROBLEM"))
    assert "the case database records it as a filed report: its ledger entry was removed" in first
    assert "interrupted" not in result.output


def test_without_the_case_database_verify_checks_the_evidence_and_says_what_it_did_not_compare(root: Path) -> None:
    file_three(root)
    result = verify(root)

    assert result.exit_code == 0, result.output
    assert "note: the case database was not compared with the ledger: there is no case database at" in result.output


def test_an_export_marks_a_package_that_was_sealed_but_never_filed(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        case_id = case_with_an_unfiled_package(stack)
        out = tmp_path / "case.zip"
        result = evidence_command(stack, "export", case_id, "-o", str(out))

    assert result.exit_code == 0, result.output
    assert "exported 2 report(s)" in result.output
    assert "note: 1 of them were sealed but never filed as reports" in result.output
    with zipfile.ZipFile(out) as zf:
        page = zf.read("REPORT.html").decode()
    assert page.count("Not filed as a report") == 1


def drop_the_last_ledger_line(root: Path) -> None:
    """What a process stopped between moving a sealed package into place and appending its ledger
    entry leaves behind (``evidence/sealing.py``)."""
    ledger = root / "ledger" / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    ledger.chmod(0o644)
    ledger.write_bytes(b"".join(lines[:-1]))


def test_a_seal_interrupted_before_its_ledger_entry_is_told_from_tampering(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        filed_reports(stack, 1)
        stranded = file_report(FileEvidenceStore(stack.evidence_root), sample_message(b"the process stopped here"))
        drop_the_last_ledger_line(stack.evidence_root)
        filed_reports(stack, 1)  # the next seal takes the same ledger position
        with_database = verify_stack(stack)
        without = verify(stack.evidence_root)  # no case database beside it: it cannot tell

    assert with_database.exit_code == 0, with_database.output
    assert "the process stopped before their ledger entries were written" in with_database.output
    assert f"{stranded.case_id}/{stranded.report_id}" in with_database.output
    assert "evidence intact: 2 report(s)" in with_database.output
    assert without.exit_code == 1
    assert "it is genuine (signed, intact, chained onto the entry before it)" in without.output


def test_an_unledgered_package_that_is_not_a_genuine_seal_still_fails(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        filed_reports(stack, 1)
        stranded = file_report(FileEvidenceStore(stack.evidence_root), sample_message(b"the process stopped here"))
        drop_the_last_ledger_line(stack.evidence_root)
        message = stack.evidence_root / stranded.case_id / stranded.report_id / "message.eml"
        message.parent.chmod(0o755)
        message.chmod(0o644)
        message.write_bytes(message.read_bytes().replace(b"stopped", b"STOPPED"))
        result = verify_stack(stack)

    assert result.exit_code == 1
    assert "package is not in the ledger (added, or its ledger entry was removed)" in result.output


def test_an_export_says_when_the_case_holds_packages_the_ledger_does_not_list(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        case_id = case_with_an_unfiled_package(stack)
        drop_the_last_ledger_line(stack.evidence_root)
        result = evidence_command(stack, "export", case_id, "-o", str(tmp_path / "c.zip"))

    assert result.exit_code == 0, result.output
    assert "exported 1 report(s)" in result.output
    assert f"note: 1 package folder(s) of {case_id} are not in the ledger and were not exported" in result.output


# -- export checks what it exports -----------------------------------------------------------------


def export(root: Path, case_id: str, out: Path) -> Result:
    env = {"ADDIN_EVIDENCE_URL": f"file://{root}", "ADDIN_DATABASE_URL": f"sqlite:///{root.parent / 'db.sqlite'}"}
    return CliRunner().invoke(cli, ["evidence", "export", case_id, "-o", str(out)], env=env)


def test_an_export_of_an_edited_message_names_the_problem_and_exits_1(root: Path, tmp_path: Path) -> None:
    store = FileEvidenceStore(root)
    intact = file_report(store, sample_message(b"intact"))
    edited = file_report(store, sample_message(b"edited later"), case_id=intact.case_id)
    message = root / edited.case_id / edited.report_id / "message.eml"
    message.parent.chmod(0o755)
    message.chmod(0o644)
    message.write_bytes(message.read_bytes().replace(b"later", b"LATER"))
    out = tmp_path / "case.zip"

    result = export(root, intact.case_id, out)

    assert result.exit_code == 1
    assert f"exported 2 report(s) of {intact.case_id}" in result.stdout
    assert (
        f"EVIDENCE PROBLEM: {edited.case_id}/{edited.report_id} (ledger #2): "
        "message.eml does not match its sha256 in the manifest (it was edited)\n"
    ) in result.stderr
    assert "REPORT.html marks each one" in result.stderr
    assert zipfile.is_zipfile(out)


def test_a_clean_export_prints_no_problem_and_exits_0(root: Path, tmp_path: Path) -> None:
    sealed = file_report(FileEvidenceStore(root), sample_message())

    result = export(root, sealed.case_id, tmp_path / "case.zip")

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.startswith(f"exported 1 report(s) of {sealed.case_id} to ")
