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
