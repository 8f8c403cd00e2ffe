"""Command-line pieces for notifications, attached to ``addin-service`` by ``cli.py``:

* ``outbox_cli`` — ``addin-service outbox list [--state S]`` and ``outbox retry ID|--all-dead``;
* ``worker_command`` — ``addin-service worker``: send queued notifications until stopped
  (SIGTERM/SIGINT finish the message in hand and hand the rest of the batch back);
* :func:`start_worker_thread` — the embedded default: a worker thread inside ``run``/``demo``.

``python -m addin_service.notify.cli`` runs the same commands on their own.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from addin_service.cli_support import CommandFailed, missing_sqlite_file, stops_cleanly, storage_only_settings
from addin_service.errors import ConfigError
from addin_service.notify.backoff import Backoff
from addin_service.notify.bootstrap import Notifications
from addin_service.notify.models import OUTBOX_STATES
from addin_service.notify.worker import WorkerConfig
from addin_service.settings import Settings

log = logging.getLogger("addin_service.notify.cli")
STOP_TIMEOUT_SECONDS = 30.0


def _outbox(*, upgrade: bool) -> Any:
    """The outbox; an SQLite schema is upgraded first only for a command that writes (``retry``),
    as the service does at start: looking at the outbox must not change a database that an older
    version, still running, would then refuse at its next start."""
    from addin_service.db.database import Database, schema_behind
    from addin_service.notify.outbox import Outbox

    settings = storage_only_settings()
    missing = None if upgrade else missing_sqlite_file(settings)
    if missing is not None:
        raise CommandFailed(f"there is no database at {missing} (ADDIN_DATABASE_URL)")
    database = Database(settings.database_url)
    if settings.is_sqlite and upgrade:
        database.upgrade()
    elif database.current_revision() is None:
        database.dispose()
        raise CommandFailed(schema_behind(None) or "the database has no schema")
    return Outbox(database)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


# -- outbox -------------------------------------------------------------------------------------


@click.group("outbox")
def outbox_cli() -> None:
    """Notifications waiting, sent or given up."""


@outbox_cli.command("list")
@click.option("--state", type=click.Choice(OUTBOX_STATES), default=None, help="Only rows in this state.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@stops_cleanly
def outbox_list(state: str | None, limit: int) -> None:
    """List notifications, newest first, with their state and last error."""
    outbox = _outbox(upgrade=False)
    try:
        entries = outbox.entries(state, limit)
        counts = outbox.counts()
    finally:
        outbox.db.dispose()
    click.echo("  ".join(f"{name}: {counts[name]}" for name in OUTBOX_STATES))
    if not entries:
        click.echo("no notifications" + (f" in state {state}" if state else ""))
        return
    click.echo(f"{'ID':>7}  {'STATE':<7}  {'TRIES':>5}  {'ROLE':<16}  {'CASE':<16}  {'WHEN':<20}  RECIPIENT")
    for e in entries:
        when = e.sent_at if e.state == "sent" else e.next_attempt_at
        click.echo(
            f"{e.id:>7}  {e.state:<7}  {e.attempts:>5}  {e.role:<16}  {e.case_id:<16}  {_when(when):<20}  {e.recipient}"
        )
        if e.last_error:  # on a sent row, a note on how it went (found in Sent Items, sent without the copy)
            click.echo(f"{'':>9}{'note' if e.state == 'sent' else 'last error'}: {e.last_error}")


@outbox_cli.command("retry")
@click.argument("outbox_id", required=False, type=int)
@click.option("--all-dead", is_flag=True, help="Queue every dead notification again.")
@stops_cleanly
def outbox_retry(outbox_id: int | None, all_dead: bool) -> None:
    """Queue a dead notification (by ID) or all dead ones again, with fresh attempts.

    A notification that may have gone out before is first looked for in Sent Items (where the
    transport can tell), so retrying does not send it twice there.
    """
    if (outbox_id is None) == (not all_dead):
        click.echo("error: give an outbox ID or --all-dead", err=True)
        sys.exit(2)
    outbox = _outbox(upgrade=True)
    try:
        if all_dead:
            count = outbox.retry(all_dead=True)
            click.echo(f"queued {count} dead notification(s) again")
            return
        assert outbox_id is not None
        entry = outbox.get(outbox_id)
        if entry is None:
            click.echo(f"error: there is no notification {outbox_id}", err=True)
            sys.exit(1)
        if entry.state not in ("dead", "queued"):
            click.echo(f"error: notification {outbox_id} is {entry.state}; only dead or waiting ones are retried",
                       err=True)
            sys.exit(1)
        outbox.retry(outbox_id)
        click.echo(f"notification {outbox_id} queued again")
    finally:
        outbox.db.dispose()


# -- worker -------------------------------------------------------------------------------------


@click.command("worker")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker loops.")
@click.option("--batch", default=10, show_default=True, type=click.IntRange(1, 1000), help="Rows per claim.")
@click.option("--lease", "lease_seconds", default=300.0, show_default=True, type=click.FloatRange(1, 86_400),
              help="Seconds a claimed row is held before another worker may take it.")
@click.option("--poll", "poll_interval", default=0.5, show_default=True, type=click.FloatRange(0.01, 60),
              help="Seconds between looks at an empty outbox.")
@click.option("--max-attempts", default=8, show_default=True, type=click.IntRange(1, 100))
@stops_cleanly
def worker_command(threads: int, batch: int, lease_seconds: float, poll_interval: float, max_attempts: int) -> None:
    """Send queued notifications until stopped (SIGTERM or Ctrl+C)."""
    from addin_service.bootstrap import build_evidence_store
    from addin_service.db.database import Database
    from addin_service.notify.bootstrap import build_notifications
    from addin_service.observability import logs
    from addin_service.observability.metrics import Metrics

    settings = Settings.from_env()
    logs.configure(settings.log_level)
    database = Database(settings.database_url, pool_size=max(5, threads + 2))
    if settings.is_sqlite:
        database.upgrade()
    notifications = build_notifications(settings, database, build_evidence_store(settings))
    # Counted where a web process's /metrics adds them up, when PROMETHEUS_MULTIPROC_DIR is shared.
    notifications.register_metrics(Metrics())
    config = WorkerConfig(
        batch_size=batch,
        lease_seconds=lease_seconds,
        poll_interval=poll_interval,
        backoff=Backoff(max_attempts=max_attempts),
        escalate_after=float(settings.escalate_after),
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    loops = [notifications.worker(config) for _ in range(threads)]
    transport = notifications.sender.name if notifications.sender else "-"
    click.echo(f"worker: {threads} loop(s) sending through {transport}", err=True)
    runners = [threading.Thread(target=w.run, args=(stop,), name=f"outbox-worker-{i}") for i, w in enumerate(loops)]
    for runner in runners:
        runner.start()
    try:
        while any(r.is_alive() for r in runners):
            stop.wait(0.5)
    finally:
        stop.set()
        for runner in runners:
            runner.join()
        notifications.close()
        database.dispose()


def start_worker_thread(
    container_or_parts: Any, *, threads: int = 1, config: WorkerConfig | None = None
) -> Callable[[], None]:
    """Start worker loop(s) in daemon threads of this process; returns ``stop()``, which hands
    unsent rows back and waits (up to 30 s) for the loops to end.

    ``container_or_parts`` is a :class:`Notifications` or anything with a ``notifications``
    attribute holding one (the app's container). Without a usable transport (no
    ``ADDIN_NOTIFY_FROM``) nothing is started: an error is logged, reports are still filed and their
    notifications stay queued, and ``stop()`` does nothing.
    """
    parts = container_or_parts if isinstance(container_or_parts, Notifications) else getattr(
        container_or_parts, "notifications", None
    )
    if not isinstance(parts, Notifications):
        raise TypeError("start_worker_thread needs Notifications or a container with .notifications")
    try:
        loops = [parts.worker(config) for _ in range(threads)]
    except ConfigError as exc:
        log.error("no outbox worker started: %s", exc.detail, extra={"event": "worker.not_started"})
        return lambda: None
    stop = threading.Event()
    runners = [
        threading.Thread(target=loop.run, args=(stop,), name=f"outbox-worker-{i}", daemon=True)
        for i, loop in enumerate(loops)
    ]
    for runner in runners:
        runner.start()

    def stop_workers() -> None:
        stop.set()
        parts.wake()
        for runner in runners:
            runner.join(timeout=STOP_TIMEOUT_SECONDS)

    return stop_workers


@click.group("notify")
def _standalone() -> None:
    """Notification commands (also available as ``addin-service outbox`` / ``addin-service worker``)."""


_standalone.add_command(outbox_cli)
_standalone.add_command(worker_command)


def main() -> None:
    """``python -m addin_service.notify.cli``."""
    _standalone.main(prog_name="addin-service")


if __name__ == "__main__":
    main()
