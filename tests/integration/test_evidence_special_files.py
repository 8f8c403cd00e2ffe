"""A FIFO (or a folder, or a link) where an evidence or ledger file belongs: verify, export, filing
and the readiness check each say what is wrong at once, and never wait for someone to open the
FIFO's other end.

Each check runs in a thread that is given a few seconds: one still blocked is a failure, and the
FIFO is then opened from both ends so that the thread can finish.
"""

from __future__ import annotations

import os
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner, Result

from addin_service import ids
from addin_service.cli import cli
from addin_service.errors import EvidenceStoreUnavailable
from addin_service.evidence.export import LedgerUnreadable
from addin_service.evidence.files import FileEvidenceStore
from addin_service.evidence.fsio import NotRegularFile, read_regular
from addin_service.evidence.ports import SealedPackage
from tests.fakes.evidence import file_report, sample_message

T = TypeVar("T")
PROMPTLY = 10.0  # seconds; each check takes milliseconds


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "evidence"


@pytest.fixture
def store(root: Path) -> FileEvidenceStore:
    return FileEvidenceStore(root)


@pytest.fixture
def case(store: FileEvidenceStore) -> list[SealedPackage]:
    case_id = ids.new_case_id()
    return [file_report(store, sample_message(f"message {n}".encode()), case_id=case_id) for n in range(2)]


def promptly(action: Callable[[], T], fifo: Path) -> T:
    """``action()``'s result (or exception), provided it comes within :data:`PROMPTLY` seconds."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = action()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(PROMPTLY)
    if thread.is_alive():
        # O_RDWR opens a FIFO without waiting and counts as both ends: the blocked open returns.
        os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))
        thread.join(PROMPTLY)
        pytest.fail(f"still blocked on the FIFO {fifo.name} after {PROMPTLY} seconds")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def replace_with_fifo(path: Path) -> Path:
    path.parent.chmod(0o755)
    path.unlink()
    os.mkfifo(path)
    return path


def message_of(root: Path, report: SealedPackage) -> Path:
    return root / report.case_id / report.report_id / "message.eml"


def ledger_of(root: Path) -> Path:
    return root / "ledger" / "ledger.jsonl"


def cli_env(root: Path) -> dict[str, str]:
    return {"ADDIN_EVIDENCE_URL": f"file://{root}", "ADDIN_DATABASE_URL": f"sqlite:///{root.parent / 'db.sqlite'}"}


def run_cli(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["evidence", *args], env=cli_env(root))


# -- the file helper every read goes through ---------------------------------------------------


def test_reading_a_fifo_is_refused_as_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFile, match="not a regular file"):
        promptly(lambda: read_regular(fifo), fifo)


def test_a_regular_file_is_read_whole_and_blocking_as_before(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"x" * 3_000_000)
    assert read_regular(path) == b"x" * 3_000_000


# -- verify ------------------------------------------------------------------------------------


def test_verify_names_a_fifo_in_place_of_a_message(
    store: FileEvidenceStore, root: Path, case: list[SealedPackage]
) -> None:
    fifo = replace_with_fifo(message_of(root, case[1]))

    result = promptly(store.verify, fifo)

    assert [(p.report_id, p.problem) for p in result.problems] == [
        (case[1].report_id, "message.eml cannot be read (not a regular file)")
    ]


def test_verify_of_one_report_names_a_fifo_in_place_of_its_message(
    store: FileEvidenceStore, root: Path, case: list[SealedPackage]
) -> None:
    fifo = replace_with_fifo(message_of(root, case[0]))

    result = promptly(lambda: store.verify_package(case[0].case_id, case[0].report_id), fifo)

    assert [p.problem for p in result.problems] == ["message.eml cannot be read (not a regular file)"]


def test_verify_names_a_fifo_in_place_of_the_ledger(
    store: FileEvidenceStore, root: Path, case: list[SealedPackage]
) -> None:
    fifo = replace_with_fifo(ledger_of(root))

    result = promptly(store.verify, fifo)

    assert [p.problem for p in result.problems] == [
        "ledger/ledger.jsonl cannot be read (not a regular file): nothing can be checked without it"
    ]


def test_verify_names_a_fifo_in_place_of_the_ledger_lock(
    store: FileEvidenceStore, root: Path, case: list[SealedPackage]
) -> None:
    fifo = replace_with_fifo(root / "ledger" / "ledger.lock")

    result = promptly(store.verify, fifo)

    assert [p.problem for p in result.problems] == [
        "ledger/ledger.lock cannot be read (not a regular file): nothing can be checked without it"
    ]


def test_verify_names_a_symbolic_link_in_place_of_the_ledger(
    store: FileEvidenceStore, root: Path, case: list[SealedPackage], tmp_path: Path
) -> None:
    ledger = ledger_of(root)
    ledger.rename(tmp_path / "elsewhere.jsonl")
    ledger.symlink_to(tmp_path / "elsewhere.jsonl")

    result = store.verify()

    assert [p.problem for p in result.problems] == [
        "ledger/ledger.jsonl cannot be read (it is a symbolic link): nothing can be checked without it"
    ]


def test_verify_names_a_fifo_in_place_of_the_public_key(
    store: FileEvidenceStore, root: Path, case: list[SealedPackage]
) -> None:
    fifo = replace_with_fifo(root / "ledger" / "signing-key.pub.pem")

    result = promptly(store.verify, fifo)

    assert "signing-key.pub.pem cannot be read (not a regular file)" in result.problems[0].problem


def test_the_verify_command_names_a_fifo_in_place_of_a_message(root: Path, case: list[SealedPackage]) -> None:
    fifo = replace_with_fifo(message_of(root, case[1]))

    result = promptly(lambda: run_cli(root, "verify"), fifo)

    assert result.exit_code == 1
    assert (
        f"EVIDENCE PROBLEM: first bad report: {case[1].case_id}/{case[1].report_id} (ledger #2): "
        "message.eml cannot be read (not a regular file)"
    ) in result.stderr


def test_the_verify_command_names_a_fifo_in_place_of_the_ledger(root: Path, case: list[SealedPackage]) -> None:
    fifo = replace_with_fifo(ledger_of(root))

    result = promptly(lambda: run_cli(root, "verify"), fifo)

    assert result.exit_code == 1
    assert "ledger/ledger.jsonl cannot be read (not a regular file)" in result.stderr


# -- export ------------------------------------------------------------------------------------


def test_an_export_names_a_fifo_in_place_of_a_message_and_leaves_it_out(
    store: FileEvidenceStore, root: Path, case: list[SealedPackage], tmp_path: Path
) -> None:
    fifo = replace_with_fifo(message_of(root, case[1]))
    out = tmp_path / "case.zip"

    result = promptly(lambda: store.export_case(case[0].case_id, out), fifo)

    assert result.count == 2
    assert [(p.report_id, p.problem) for p in result.problems] == [
        (case[1].report_id, "message.eml cannot be read (not a regular file)")
    ]
    with zipfile.ZipFile(out) as zf:
        assert f"{case[1].case_id}/{case[1].report_id}/message.eml" not in zf.namelist()


def test_an_export_stops_with_why_when_the_ledger_is_a_fifo(
    store: FileEvidenceStore, root: Path, case: list[SealedPackage], tmp_path: Path
) -> None:
    fifo = replace_with_fifo(ledger_of(root))

    with pytest.raises(LedgerUnreadable, match=r"ledger/ledger\.jsonl cannot be read \(not a regular file\)"):
        promptly(lambda: store.export_case(case[0].case_id, tmp_path / "case.zip"), fifo)
    assert not (tmp_path / "case.zip").exists()


def test_the_export_command_says_why_when_the_ledger_is_a_fifo(
    root: Path, case: list[SealedPackage], tmp_path: Path
) -> None:
    fifo = replace_with_fifo(ledger_of(root))

    result = promptly(lambda: run_cli(root, "export", case[0].case_id, "-o", str(tmp_path / "case.zip")), fifo)

    assert result.exit_code == 1
    assert "error: cannot export: ledger/ledger.jsonl cannot be read (not a regular file)" in result.stderr


# -- filing and readiness ----------------------------------------------------------------------


def test_filing_onto_a_fifo_ledger_fails_calmly_and_leaves_nothing(
    store: FileEvidenceStore, root: Path, case: list[SealedPackage]
) -> None:
    fifo = replace_with_fifo(ledger_of(root))
    case_id = ids.new_case_id()

    with pytest.raises(EvidenceStoreUnavailable):
        promptly(lambda: file_report(store, sample_message(b"later"), case_id=case_id), fifo)
    assert not (root / case_id).exists()


def test_filing_with_a_fifo_as_the_ledger_lock_fails_calmly(
    store: FileEvidenceStore, root: Path, case: list[SealedPackage]
) -> None:
    fifo = replace_with_fifo(root / "ledger" / "ledger.lock")

    with pytest.raises(EvidenceStoreUnavailable):
        promptly(lambda: file_report(store, sample_message(b"later")), fifo)


def test_the_readiness_check_fails_calmly_on_a_fifo_ledger(
    store: FileEvidenceStore, root: Path, case: list[SealedPackage]
) -> None:
    fifo = replace_with_fifo(ledger_of(root))

    with pytest.raises(EvidenceStoreUnavailable):
        promptly(store.check, fifo)
    with pytest.raises(EvidenceStoreUnavailable):
        promptly(store.ledger_head, fifo)
