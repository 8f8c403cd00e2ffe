"""Shared set-up for the outbox benchmarks: settings, a case to hang rows on, bulk queueing, workers
as child processes (``python -m addin_service.notify.cli worker``, i.e. ``addin-service worker``)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from addin_service.db import Database, NewCase, NewReport, ReportRepository, item_key
from addin_service.ids import new_case_id, new_report_id
from addin_service.notify.compose import NewNotification, dedupe_key
from addin_service.notify.models import OutboxRow
from addin_service.notify.outbox import Outbox
from addin_service.settings import Settings
from benchmarks._harness import ROOT

NOTIFY_FROM = "report-harassment@contoso.com"
TEXT = "A harassment report was filed. Case HR-2026-7K3M9Q2X.\n" * 12
HTML = "<p>A harassment report was filed. Case <b>HR-2026-7K3M9Q2X</b>.</p>\n" * 12


def service_env(database_url: str, evidence_dir: Path, smtp_port: int, **extra: str) -> dict[str, str]:
    """``ADDIN_*`` for a service that sends through the SMTP double (Exchange is not asked)."""
    env = {
        "ADDIN_DATABASE_URL": database_url,
        "ADDIN_EVIDENCE_URL": f"file://{evidence_dir}",
        "ADDIN_EXCHANGE": "ews",
        "ADDIN_EWS_URL": "https://unused.invalid/EWS/Exchange.asmx",
        "ADDIN_EWS_AUTH": "oauth-app",
        "ADDIN_CLIENT_SECRET": "unused",
        "ADDIN_TENANT_ID": "contoso.com",
        "ADDIN_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "ADDIN_NOTIFY_FROM": NOTIFY_FROM,
        "ADDIN_NOTIFY_TRANSPORT": "smtp",
        "ADDIN_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "ADDIN_LOG_LEVEL": "warning",
    }
    env.update(extra)
    return env


def settings_from(env: dict[str, str], cwd: Path) -> Settings:
    return Settings.from_env(env, cwd=cwd)


def one_case(database: Database) -> tuple[str, str]:
    """A case and a report for outbox rows to belong to; (case id, report id)."""
    case_id, report_id = new_case_id(), new_report_id()
    report = NewReport(
        id=report_id, reporter="alex@contoso.com", mailbox="alex@contoso.com", item_id=report_id,
        item_key=item_key("alex@contoso.com", report_id), change_key=None, internet_message_id=None,
        category="other", note=None, feels_unsafe=False, include_related=False,
        message_sha256="sha256:" + "0" * 64, message_size=1, manifest_sha256="sha256:" + "0" * 64,
        ledger_sequence=0, adapter="bench", mime_source="bench", response_json="{}",
    )
    ReportRepository(database).file(
        report, NewCase(id=case_id, reporter="alex@contoso.com"), claim_token=None, idem_key=None,
        fingerprint=None, audit={},
    )
    return case_id, report_id


def notifications(prefix: str, count: int) -> list[NewNotification]:
    return [
        NewNotification(
            role="supervisor", template="supervisor", recipient=f"{prefix}{i}@contoso.com",
            subject=f"A member of your team reported harassment ({prefix}{i})", text=TEXT, html=HTML,
            urgent=False, attach_message=False, ack_required=False,
            message_id=f"<{prefix}.{i}.bench@contoso.com>", dedupe_key=dedupe_key("bench", prefix, str(i)),
        )
        for i in range(count)
    ]


def queue(outbox: Outbox, case_id: str, report_id: str, rows: list[NewNotification], *, hold: bool = False) -> None:
    """Insert rows in one transaction (``hold``: not due until :func:`release_held`)."""
    with outbox.db.session() as session:
        outbox.enqueue(session, case_id=case_id, report_id=report_id, notifications=rows)
        if hold:
            _hold(session)


def _hold(session: Session) -> None:
    from datetime import UTC, datetime

    session.execute(
        update(OutboxRow).where(OutboxRow.state == "queued").values(next_attempt_at=datetime(2999, 1, 1, tzinfo=UTC))
    )


def release_held(outbox: Outbox) -> None:
    from datetime import UTC, datetime

    with outbox.db.session() as session:
        session.execute(update(OutboxRow).where(OutboxRow.state == "queued").values(next_attempt_at=datetime.now(UTC)))


@contextmanager
def worker_processes(env: dict[str, str], count: int, *args: str) -> Iterator[list[subprocess.Popen[str]]]:
    """``count`` ``addin-service worker`` processes, returned once each has started its loop."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ADDIN_")} | env | {"PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "addin_service.notify.cli", "worker", *args],
            cwd=ROOT, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(count)
    ]
    try:
        for proc in procs:
            assert proc.stderr is not None
            line = proc.stderr.readline()
            if not line.startswith("worker:"):
                raise RuntimeError(f"worker did not start: {line}{proc.stderr.read()}")
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
            if proc.stderr is not None:
                proc.stderr.close()


def percentiles(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p * (len(ordered) - 1))))]

    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(pct(0.99) * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def wait_for(check: Any, timeout: float, interval: float = 0.05) -> float:
    """Poll ``check()`` until true; the seconds it took. :raises TimeoutError: not in time."""
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout:
            raise TimeoutError("the benchmark did not finish in time")
        time.sleep(interval)
    return time.perf_counter() - started
