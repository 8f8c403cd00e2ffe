"""Draining a backlog: 10,000 queued notifications on PostgreSQL, sent to an SMTP server on loopback
by 1 and by 4 ``addin-service worker`` processes (claims with ``FOR UPDATE SKIP LOCKED``). The clock
starts when the whole backlog becomes due at once and stops when the last row is recorded as sent;
the SMTP server then confirms it received each message exactly once. Prints JSON.

Target: ≥ 200 notifications per second.

    .venv/bin/python -m benchmarks.outbox_drain [--rows 10000] [--workers 1 4] [--batch 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from addin_service.db import Database
from addin_service.notify.outbox import Outbox
from benchmarks._harness import ROOT, emit, scratch_dir
from benchmarks.outbox_common import (
    notifications,
    one_case,
    queue,
    release_held,
    service_env,
    wait_for,
    worker_processes,
)
from tests.fakes.db import postgres_schema, postgres_server_url, postgres_unreachable_reason

TARGET_PER_SECOND = 200.0
CHUNK = 1000


@contextmanager
def smtp_double() -> Iterator[tuple[int, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.outbox_smtp_double"], cwd=ROOT, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    port = json.loads(proc.stdout.readline())["port"]

    def count() -> dict[str, int]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("count\n")
        proc.stdin.flush()
        answer: dict[str, int] = json.loads(proc.stdout.readline())
        return answer

    try:
        yield port, count
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def drain(rows: int, workers: int, batch: int) -> dict[str, Any]:
    work = scratch_dir()
    with postgres_schema(postgres_server_url()) as url, smtp_double() as (port, count):
        database = Database(url)
        database.upgrade()
        outbox = Outbox(database)
        case = one_case(database)
        for start in range(0, rows, CHUNK):
            queue(outbox, *case, notifications(f"w{workers}-{start}-", min(CHUNK, rows - start)), hold=True)
        env = service_env(url, work / "evidence", port)
        with worker_processes(env, workers, "--batch", str(batch)):
            release_held(outbox)
            seconds = wait_for(lambda: outbox.counts()["sent"] == rows, timeout=600, interval=0.02)
        received = count()
        counts = outbox.counts()
        database.dispose()
    return {
        "workers": workers,
        "rows": rows,
        "seconds": round(seconds, 2),
        "per_second": round(rows / seconds, 1),
        "smtp_received": received["received"],
        "smtp_distinct_message_ids": received["distinct"],
        "outbox": counts,
        "target_per_second": TARGET_PER_SECOND,
        "meets_target": rows / seconds >= TARGET_PER_SECOND,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    reason = postgres_unreachable_reason()
    if reason:
        sys.exit(reason)
    emit({
        "benchmark": "outbox_drain",
        "database": "postgresql",
        "transport": "smtp (aiosmtpd on loopback, own process)",
        "worker_options": {"--batch": args.batch},
        "runs": [drain(args.rows, n, args.batch) for n in args.workers],
    })


if __name__ == "__main__":
    main()
