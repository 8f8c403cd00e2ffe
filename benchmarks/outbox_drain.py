"""Draining a backlog: 10,000 queued notifications on PostgreSQL, sent to an SMTP server on loopback
by 1 and by 4 ``addin-service worker`` processes (claims with ``FOR UPDATE SKIP LOCKED``). The clock
starts when the whole backlog becomes due at once and stops when the last row is recorded as sent;
the SMTP server then confirms it received each message exactly once. Prints JSON.

Baseline, same run: the SMTP floor — as many plain ``smtplib`` connections as workers, each sending
the same messages (built once, beforehand, by the service's own MIME builder) to a fresh SMTP double
of the same kind, with no database at all. The ratio says how much of the drain rate the outbox
itself costs; the floor says how fast the double can take mail on this machine.

Target: ≥ 200 notifications per second.

    .venv/bin/python -m benchmarks.outbox_drain [--rows 10000] [--workers 1 4] [--batch 20]
"""

from __future__ import annotations

import argparse
import json
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text

from addin_service.db import Database
from addin_service.notify.mime import build_message
from addin_service.notify.models import PENDING_SQL
from addin_service.notify.outbox import Outbox
from addin_service.notify.ports import OutgoingMessage
from benchmarks._harness import ROOT, emit, scratch_dir
from benchmarks.outbox_common import (
    NOTIFY_FROM,
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
FLOOR_MESSAGES = 2000


@contextmanager
def smtp_double() -> Iterator[tuple[int, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.outbox_smtp_double"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
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


def unsent(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM outbox WHERE {PENDING_SQL}")).scalar_one())


def smtp_floor(connections: int, messages: int) -> dict[str, Any]:
    """Plain smtplib over ``connections`` persistent connections to a fresh SMTP double."""
    prepared = [
        build_message(
            OutgoingMessage(
                message_id=n.message_id,
                from_address=NOTIFY_FROM,
                to=(n.recipient,),
                subject=n.subject,
                text=n.text,
                html=n.html,
            )
        )[0]
        for n in notifications(f"floor{connections}-", messages)
    ]
    share = [prepared[i::connections] for i in range(connections)]
    with smtp_double() as (port, count):

        def send_all(datas: list[bytes]) -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
                for index, data in enumerate(datas):
                    smtp.sendmail(NOTIFY_FROM, [f"floor-{index}@contoso.com"], data)

        start = time.perf_counter()
        with ThreadPoolExecutor(connections) as pool:
            list(pool.map(send_all, share))
        seconds = time.perf_counter() - start
        received = count()
    return {
        "connections": connections,
        "messages": messages,
        "per_second": round(messages / seconds, 1),
        "smtp_received": received["received"],
    }


def drain(rows: int, workers: int, batch: int) -> dict[str, Any]:
    floor = smtp_floor(workers, min(rows, FLOOR_MESSAGES))
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
            # Polled cheaply (the pending rows, through the claim's own partial index) and not too
            # often: the observer must not load the database it is timing.
            seconds = wait_for(lambda: unsent(database) == 0, timeout=600, interval=0.1)
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
        "smtp_floor_same_run": floor,
        "ratio_to_smtp_floor": round(rows / seconds / floor["per_second"], 3),
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
    emit(
        {
            "benchmark": "outbox_drain",
            "database": "postgresql",
            "transport": "smtp (aiosmtpd on loopback, own process)",
            "worker_options": {"--batch": args.batch},
            "runs": [drain(args.rows, n, args.batch) for n in args.workers],
        }
    )


if __name__ == "__main__":
    main()
