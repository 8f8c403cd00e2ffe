"""Concurrent seals from threads and from processes make one valid, gapless chain."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from addin_service.evidence.files import FileEvidenceStore
from tests.fakes.evidence import file_report, sample_message

REPO = Path(__file__).resolve().parents[2]


def ledger_sequences(root: Path) -> list[int]:
    lines = (root / "ledger" / "ledger.jsonl").read_bytes().splitlines()
    return [json.loads(line)["sequence"] for line in lines]


def test_eight_threads_sealing_at_once_make_a_valid_gapless_chain(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    store = FileEvidenceStore(root)

    def seal_three(n: int) -> list[int]:
        return [
            file_report(store, sample_message(f"thread {n} #{i}".encode())).ledger_sequence for i in range(3)
        ]

    with ThreadPoolExecutor(max_workers=8) as pool:
        returned = sorted(seq for seqs in pool.map(seal_three, range(8)) for seq in seqs)
    assert returned == list(range(1, 25))
    assert ledger_sequences(root) == list(range(1, 25))
    assert store.verify().ok


SEALER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from addin_service.evidence.files import FileEvidenceStore
    from tests.fakes.evidence import file_report, sample_message

    store = FileEvidenceStore(Path(sys.argv[1]))
    sys.stdin.readline()  # start together
    for i in range(6):
        file_report(store, sample_message(f"process {sys.argv[2]} #{i}".encode()))
    """
)


def test_two_processes_sealing_at_once_make_a_valid_gapless_chain(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", SEALER, str(root), str(n)], cwd=REPO, stdin=subprocess.PIPE, text=True
        )
        for n in range(2)
    ]
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.close()
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0]
    assert ledger_sequences(root) == list(range(1, 13))
    result = FileEvidenceStore(root).verify()
    assert (result.ok, result.reports_checked) == (True, 12)


ONE_SEAL = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from addin_service.evidence.files import FileEvidenceStore
    from tests.fakes.evidence import file_report

    file_report(FileEvidenceStore(Path(sys.argv[1])), b"sealed by another process")
    """
)


def test_a_seal_chains_onto_what_another_process_appended_since_this_one_last_sealed(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    store = FileEvidenceStore(root)
    file_report(store, b"first")
    subprocess.run([sys.executable, "-c", ONE_SEAL, str(root)], cwd=REPO, check=True, timeout=60)
    third = file_report(store, b"third")
    lines = [json.loads(line) for line in (root / "ledger" / "ledger.jsonl").read_bytes().splitlines()]
    assert [line["sequence"] for line in lines] == [1, 2, 3]
    assert lines[2]["previous_hash"] == lines[1]["hash"]
    manifest = json.loads(store.read_file(third.case_id, third.report_id, "manifest.json"))
    assert (third.ledger_sequence, manifest["ledger"]) == (3, {"sequence": 3, "previous_hash": lines[1]["hash"]})
    result = store.verify()
    assert (result.ok, result.reports_checked) == (True, 3)
