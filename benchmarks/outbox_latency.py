"""Outbox → SMTP latency at idle: from the commit that queues a notification to the SMTP server's
250, one notification at a time, on the embedded default (SQLite). Prints JSON.

Two set-ups:

* ``worker_process`` — ``addin-service worker`` in its own process with its defaults (it finds new
  rows by polling every 0.5 s): what a separate worker deployment sees.
* ``worker_thread_woken`` — the embedded worker thread, woken by the filer right after its commit
  (``Notifications.wake()``), as in ``addin-service run``.

Target: p99 ≤ 1 s.

    .venv/bin/python -m benchmarks.outbox_latency [--samples 150]
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from addin_service.db import Database
from addin_service.notify.bootstrap import build_notifications
from addin_service.notify.cli import start_worker_thread
from addin_service.notify.outbox import Outbox
from addin_service.notify.worker import WorkerConfig
from benchmarks._harness import emit, scratch_dir
from benchmarks.outbox_common import (
    notifications,
    one_case,
    percentiles,
    queue,
    service_env,
    settings_from,
    worker_processes,
)
from tests.fakes.evidence import InMemoryEvidenceStore
from tests.fakes.smtp import SmtpServer

TARGET_P99_MS = 1000.0


def sample(outbox: Outbox, smtp: SmtpServer, case: tuple[str, str], label: str, count: int, wake: Any) -> list[float]:
    latencies = []
    rng = random.Random(7)
    for index in range(count):
        time.sleep(rng.uniform(0.0, 0.3))  # idle, and never in step with the poll interval
        before = len(smtp.received)
        queue(outbox, *case, notifications(f"{label}-{index}-", 1))
        committed = time.time()
        wake()
        arrived = smtp.wait_for(before + 1, timeout=10)[before]
        latencies.append(arrived.arrived_at - committed)
    return latencies


def run(samples: int) -> dict[str, Any]:
    work = scratch_dir()
    results: dict[str, Any] = {}
    with SmtpServer() as smtp:
        env = service_env(f"sqlite:///{work / 'addin.db'}", work / "evidence", smtp.port)
        settings = settings_from(env, work)
        database = Database(settings.database_url)
        database.upgrade()
        outbox = Outbox(database)
        case = one_case(database)

        with worker_processes(env, 1):
            latencies = sample(outbox, smtp, case, "process", samples, lambda: None)
        results["worker_process"] = percentiles(latencies) | {"poll_interval_s": 0.5}

        parts = build_notifications(settings, database, InMemoryEvidenceStore())
        stop = start_worker_thread(parts, config=WorkerConfig())
        try:
            latencies = sample(outbox, smtp, case, "thread", samples, parts.wake)
        finally:
            stop()
            parts.close()
        results["worker_thread_woken"] = percentiles(latencies)
        database.dispose()
    for result in results.values():
        result["target_p99_ms"] = TARGET_P99_MS
        result["meets_target"] = result["p99_ms"] <= TARGET_P99_MS
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=150)
    args = parser.parse_args()
    emit({"benchmark": "outbox_latency", "database": "sqlite", "transport": "smtp (aiosmtpd on loopback)",
          "latency": run(args.samples)})


if __name__ == "__main__":
    main()
