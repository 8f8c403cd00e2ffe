"""The ledger's head, off the evidence host: ``FileEvidenceStore.ledger_head`` and the
``addin_evidence_ledger_head_sequence`` gauge on /metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from addin_service.errors import EvidenceStoreUnavailable
from addin_service.evidence.files import FileEvidenceStore
from tests.fakes.evidence import file_report, sample_message
from tests.fakes.stack import Stack, running_stack

MIME = b"From: Sam <sam@fabrikam.example>\r\nTo: alex@contoso.com\r\nSubject: hi\r\n\r\nbody\r\n"


def metric(stack: Stack, name: str) -> float:
    for line in stack.client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not on /metrics")


def test_the_head_is_the_newest_entry_as_verify_reports_it(tmp_path: Path) -> None:
    store = FileEvidenceStore(tmp_path / "evidence")
    assert store.ledger_head() is None
    for n in range(3):
        file_report(store, sample_message(f"report {n}".encode()))
    result = store.verify()
    assert result.ok and store.ledger_head() == result.head and result.head is not None
    assert result.head[0] == 3


def test_a_torn_last_line_makes_the_head_unavailable(tmp_path: Path) -> None:
    store = FileEvidenceStore(tmp_path / "evidence")
    file_report(store, sample_message())
    ledger = tmp_path / "evidence" / "ledger" / "ledger.jsonl"
    ledger.chmod(0o644)
    with ledger.open("ab") as fh:
        fh.write(b'{"sequence": 2, "torn')
    with pytest.raises(EvidenceStoreUnavailable):
        store.ledger_head()


def test_metrics_show_the_ledger_head_growing_with_each_report(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        assert metric(stack, "addin_evidence_ledger_up") == 1
        assert metric(stack, "addin_evidence_ledger_head_sequence") == 0
        for _ in range(2):
            assert stack.report(stack.add_message(MIME)).status_code == 201
        assert metric(stack, "addin_evidence_ledger_head_sequence") == 2


def test_an_unreadable_ledger_is_ledger_up_zero_not_a_failed_scrape(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        assert stack.report(stack.add_message(MIME)).status_code == 201
        ledger = stack.evidence_root / "ledger" / "ledger.jsonl"
        ledger.chmod(0o644)
        with ledger.open("ab") as fh:
            fh.write(b"not an entry")
        response = stack.client.get("/metrics")
        assert response.status_code == 200
        assert metric(stack, "addin_evidence_ledger_up") == 0
