"""The ``addin-service`` command group (a Flask CLI group)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup

from addin_service.cases.records_check import reconcile
from addin_service.cli_support import (
    CommandFailed,
    host_port,
    listen_problem,
    missing_sqlite_file,
    stops_cleanly,
    storage_only_settings,
)
from addin_service.manifest import manifest_cli
from addin_service.notify.cli import outbox_cli, start_worker_thread, worker_command
from addin_service.settings import Settings
from addin_service.untrusted_numbers import decimal

cli = AppGroup(
    "addin-service",
    help="Report Harassment for Outlook: the service behind the add-in.",
)


# waitress reads a whole request body before the app sees it, spooling anything over 512 KiB to a
# temporary file, and accepts up to 1 GiB by default: anyone, without a token, could fill the disk
# with a few slow uploads. The app refuses more than 64 KiB itself, as problem+json (app.py); bodies
# up to this size still reach it for that answer, larger ones get waitress's own plain 413.
WAITRESS_MAX_BODY_BYTES = 1024 * 1024
# A TCP port; without the range, the socket layer would quietly take 99999 as 34463 (mod 65536).
PORT = click.IntRange(1, 65535)


def waitress_server(app: Any, *, host: str, port: int, threads: int, ident: str) -> Any:
    """The waitress server for ``app``, exactly as ``run`` and ``demo`` serve it (call ``.run()``).

    waitress 3 by default deletes ``Forwarded`` and ``X-Forwarded-For/-Host/-Proto/-Port/-By`` from
    every request that did not come from its ``trusted_proxy``, before the app sees it, and leaves
    no trace; ``/metrics`` could then not tell that a proxy on this host passed a request on, and
    would answer it as if it came from loopback. So they are kept. Nothing here trusts them: with no
    ``trusted_proxy`` waitress applies none of them, and the app reads them only to refuse metrics.

    The server binds here: an address that cannot be listened on (in use, not this machine's, a
    host that does not resolve) raises :class:`CommandFailed` saying which and why.
    """
    from waitress.server import create_server

    try:
        return create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident=ident,
            clear_untrusted_proxy_headers=False,
            max_request_body_size=WAITRESS_MAX_BODY_BYTES + 1,  # waitress refuses a body of exactly this size
        )
    except (OSError, ValueError) as exc:  # ValueError: waitress could not resolve host (or port)
        raise CommandFailed(f"cannot listen on {host_port(host, port)}: {listen_problem(exc, host)}") from exc


@cli.command("run", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=PORT)
@click.option("--threads", default=16, show_default=True, type=click.IntRange(1, 256), help="Request threads.")
@stops_cleanly
def run_command(host: str, port: int, threads: int) -> None:
    """Serve the API and the task pane (waitress, production-grade)."""
    from addin_service import create_app

    app = create_app()
    container = app.extensions["addin"]
    try:
        server = waitress_server(app, host=host, port=port, threads=threads, ident="addin-service")
    except BaseException:
        container.close()
        raise
    stop_worker = start_worker_thread(container) if container.settings.worker else (lambda: None)
    click.echo(f"serving on http://{host}:{port}", err=True)
    try:
        server.run()
    finally:
        stop_worker()


@cli.command("demo", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=PORT)
@click.option(
    "--data",
    "data_dir",
    default="var",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo keeps its SQLite database and evidence (the embedded defaults' folder).",
)
@click.option(
    "--exchange",
    type=click.Choice(["ews", "graph"]),
    default="ews",
    show_default=True,
    help="How the service reaches the demo Exchange: EWS (Exchange Server), or Microsoft Graph "
    "(Exchange Online: msal on behalf of the reporter, against the demo sign-in over TLS).",
)
@stops_cleanly
def demo_command(host: str, port: int, data_dir: Path, exchange: str) -> None:
    """Run everything on this machine: the service, a demo Exchange mailbox and a demo sign-in."""
    from addin_service.demo.runner import run_demo

    run_demo(host=host, port=port, data_dir=data_dir.resolve(), exchange=exchange)


@cli.group("db", cls=click.Group)
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@stops_cleanly
def db_upgrade() -> None:
    """Create or upgrade the database schema to the latest revision."""
    from addin_service.db.database import Database, head_revision

    settings = storage_only_settings()  # only ADDIN_DATABASE_URL matters here
    database = Database(settings.database_url)
    try:
        newer = database.upgrade()
    finally:
        database.dispose()
    if newer is not None:
        click.echo(
            f"database is at revision {newer}, newer than this version's {head_revision()}: nothing to upgrade "
            "(this version works with it)"
        )
        return
    click.echo("database is at the latest revision")


@cli.group("evidence", cls=click.Group)
def evidence_group() -> None:
    """Verify and export evidence."""


def _recorded_packages(
    settings: Settings, case_id: str | None = None
) -> tuple[dict[tuple[str, str], str] | None, str]:
    """The case database's reports (→ manifest sha256), all or ``case_id``'s, or None and why
    they could not be read."""
    from sqlalchemy.exc import SQLAlchemyError

    from addin_service.db import Database, ReportRepository
    from addin_service.errors import ServiceError

    missing = missing_sqlite_file(settings)
    if missing is not None:
        return None, f"there is no case database at {missing} (set ADDIN_DATABASE_URL to the service's)"
    try:
        database = Database(settings.database_url)
    except (ValueError, SQLAlchemyError) as exc:
        return None, f"ADDIN_DATABASE_URL cannot be used ({type(exc).__name__})"
    try:
        repository = ReportRepository(database)
        if case_id is None:
            return repository.recorded_packages(), ""
        return {(r.case_id, r.id): r.manifest_sha256 for r in repository.list_reports(case_id)}, ""
    except (ServiceError, SQLAlchemyError) as exc:
        return None, f"the case database could not be read ({type(exc).__name__}; run 'addin-service db upgrade'?)"
    finally:
        database.dispose()


def _package_folders(settings: Settings, case_id: str) -> int:
    """How many report folders the case's folder holds (ledgered or not)."""
    from addin_service.ids import is_report_id

    root = settings.evidence_path
    if root is None:
        return 0
    try:
        return sum(1 for entry in os.scandir(root / case_id) if is_report_id(entry.name) and entry.is_dir())
    except OSError:
        return 0


def _evidence_store(settings: Settings) -> Any:
    """The store for ``verify`` and ``export``, which never sign: they check and ship the public key
    published beside the ledger, so a bad ``ADDIN_SIGNING_KEY`` cannot change what they report (when
    that public key is missing, verify falls back to the private key and fails if it is unusable)."""
    from addin_service.bootstrap import build_evidence_store

    return build_evidence_store(settings, check_key=False)


def _ledger_anchor(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[int, str]:
    from addin_service.evidence.canonical import is_sha256_tag

    anchors: dict[int, str] = {}
    for value in values:
        sequence, _, digest = value.partition(":")
        number = decimal(sequence)
        if number is None or number < 1 or not is_sha256_tag(digest):
            raise click.BadParameter(f"{value!r} is not SEQUENCE:sha256:<64 hex digits>, as verify prints the head")
        anchors[number] = digest
    return anchors


@evidence_group.command("verify")
@click.option(
    "--expect",
    "expected",
    multiple=True,
    callback=_ledger_anchor,
    metavar="SEQUENCE:HASH",
    help="A ledger head printed by an earlier verify: fail unless that entry is still there, unchanged "
    "(proves nothing filed up to it was removed since). May be given more than once.",
)
@stops_cleanly
def evidence_verify(expected: dict[int, str]) -> None:
    """Check every package and the signed ledger. Exits 1 and names the first bad report.

    Prints the ledger's head; keep it somewhere the evidence host cannot write and pass it back
    with --expect, so that removing the newest reports together with their ledger lines shows too.
    """
    settings = storage_only_settings()
    root = settings.evidence_path
    if root is None or not root.is_dir():
        click.echo(
            f"error: there is no evidence store at {root or settings.evidence_url} "
            "(set ADDIN_EVIDENCE_URL to where the service keeps evidence)",
            err=True,
        )
        sys.exit(1)
    if not (root / "ledger" / "ledger.jsonl").exists() and not any(root.glob("HR-*")):
        if expected:
            click.echo(f"EVIDENCE PROBLEM: {root} holds no ledger, but ledger entries were expected", err=True)
            sys.exit(1)
        click.echo(f"no reports have been filed in {root} yet")
        return
    # The database first: every report it holds was sealed into the ledger before it was recorded,
    # so a verify running beside a filing service never finds a report missing from the ledger.
    recorded, not_compared = _recorded_packages(settings)
    result = _evidence_store(settings).verify()
    result.problems += result.expectation_problems(expected)
    records = reconcile(result, recorded) if recorded is not None else None
    if records is not None:
        if records.stranded:
            click.echo(
                f"note: {len(records.stranded)} package(s) were sealed, but the process stopped before their ledger "
                "entries were written; each is genuine (signed by the ledger key and intact) and was never filed "
                "as a report: " + ", ".join(f"{case_id}/{report_id}" for case_id, report_id in records.stranded)
            )
        if records.unrecorded:
            click.echo(
                f"note: {len(records.unrecorded)} sealed package(s) were never filed as reports: the request that "
                "sealed each one failed before it could record it and was answered with an error (a retry files "
                "the message again). They are kept as evidence and are not reports: "
                + ", ".join(f"{case_id}/{report_id}" for case_id, report_id in records.unrecorded)
            )
    else:
        click.echo(f"note: the case database was not compared with the ledger: {not_compared}")
    if result.ok:
        unfiled = len(records.unrecorded) if records is not None else 0
        counted = f"{result.reports_checked - unfiled} report(s)"
        if unfiled:
            counted += f" and {unfiled} sealed package(s) never filed"
        click.echo(
            f"evidence intact: {counted} in {root}; every file hash, manifest signature and the ledger chain are valid"
        )
        if records is not None:
            click.echo(
                f"the case database records {len(recorded or {})} report(s), each with the manifest the ledger sealed"
            )
        if expected:
            click.echo(f"the expected ledger entr{'y is' if len(expected) == 1 else 'ies are'} present and unchanged")
        if result.head is not None:
            sequence, digest = result.head
            click.echo(f"ledger head: {sequence}:{digest}")
        return
    first = result.problems[0]
    where = "/".join(p for p in (first.case_id, first.report_id) if p) or "ledger"
    click.echo(
        f"EVIDENCE PROBLEM: first bad report: {where} (ledger #{first.ledger_sequence}): {first.problem}", err=True
    )
    for problem in result.problems[1:]:
        where = "/".join(p for p in (problem.case_id, problem.report_id) if p) or "ledger"
        click.echo(f"  also: {where}: {problem.problem}", err=True)
    sys.exit(1)


@evidence_group.command("export")
@click.argument("case_id")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@stops_cleanly
def evidence_export(case_id: str, output: Path) -> None:
    """Write CASE_ID's evidence, ledger entries and how-to-verify into a zip.

    Each package is checked as verify checks one report. A damaged one is still exported as found
    (REPORT.html marks it); each problem is printed and the command exits 1.
    """
    from addin_service.evidence.ports import ExportResult
    from addin_service.ids import is_case_id

    if not is_case_id(case_id):
        click.echo(f"error: {case_id!r} is not a case number (like HR-2026-7K3M9Q2X)", err=True)
        sys.exit(1)
    settings = storage_only_settings()
    recorded, not_compared = _recorded_packages(settings, case_id)
    filed = {report_id for _, report_id in recorded} if recorded is not None else None
    try:
        exported: ExportResult = _evidence_store(settings).export_case(case_id, output, recorded=filed)
    except KeyError:
        click.echo(f"error: no evidence for case {case_id}", err=True)
        sys.exit(1)
    except ValueError as exc:  # no usable public key to ship with the evidence
        click.echo(f"error: cannot export {case_id}: {exc}", err=True)
        sys.exit(1)
    count = exported.count
    click.echo(f"exported {count} report(s) of {case_id} to {output}")
    if filed is None:
        click.echo(f"note: not compared with the case database: {not_compared}")
    elif count > len(filed):
        click.echo(
            f"note: {count - len(filed)} of them were sealed but never filed as reports (a request failed after "
            "sealing; REPORT.html marks them)"
        )
    elif count < len(filed):
        click.echo(f"warning: the case database records {len(filed)} report(s) for {case_id}: run evidence verify")
    on_disk = _package_folders(settings, case_id)
    if on_disk > count:
        click.echo(
            f"note: {on_disk - count} package folder(s) of {case_id} are not in the ledger and were not exported: "
            "run evidence verify, which says what each one is"
        )
    if exported.problems:
        for problem in exported.problems:
            click.echo(
                f"EVIDENCE PROBLEM: {problem.case_id}/{problem.report_id} (ledger #{problem.ledger_sequence}): "
                f"{problem.problem}",
                err=True,
            )
        damaged = len({problem.report_id for problem in exported.problems})
        click.echo(
            f"error: {damaged} report(s) of {case_id} are not as they were sealed; the export holds what was "
            "found, and REPORT.html marks each one",
            err=True,
        )
        sys.exit(1)


cli.add_command(manifest_cli)
cli.add_command(outbox_cli)
cli.add_command(worker_command)


def main() -> None:
    cli.main(prog_name="addin-service")
