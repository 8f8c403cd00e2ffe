"""Mass-report burst: 1,000 people report the same message at once. Measures filed reports per
second and checks the outcome — every report filed, ONE campaign case, the security team queued
exactly once — with notifications on, against a baseline with notifications off in the same run
(case choice, origin analysis and campaign grouping stay on in both). The outbox worker does not
run (its drain rate is ``outbox_drain``). Prints JSON.

Two paths:

* ``http`` — the whole service: HTTP (waitress), token validation, EWS capture from the EWS double
  in its own process, the directory over EWS ResolveNames, sealed evidence, routing, the outbox.
* ``use-case`` — ``ReportFiler.file()`` called from threads, with an in-memory mailbox and directory:
  the filing work itself (evidence sealing, database, routing, rendering, outbox), no protocols.

Target: ≥ 150 reports per second.

    .venv/bin/python -m benchmarks.outbox_burst [--reporters 1000] [--threads 16]
        [--path http|use-case] [--database sqlite|postgres]
"""

from __future__ import annotations

import argparse
import base64
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select
from waitress.server import create_server

from addin_service.app import build_app
from addin_service.auth.caller import Caller
from addin_service.bootstrap import Container, build_container
from addin_service.cases.service import ReportCommand, ReportFiler
from addin_service.demo.ews_seed import sample_messages
from addin_service.demo.oidc import OidcIssuer
from addin_service.notify.bootstrap import build_notifications
from addin_service.notify.models import OutboxRow
from addin_service.notify.ports import Person
from addin_service.settings import Settings
from benchmarks._harness import double_process, emit, scratch_dir
from tests.fakes.db import postgres_schema, postgres_server_url
from tests.fakes.mailbox import InMemoryMailbox

TARGET_PER_SECOND = 150.0
SECURITY = "security@contoso.com"
MESSAGE = sample_messages()["01-external-threat"]


def reporters(count: int) -> list[str]:
    return [f"employee{i:04d}@contoso.com" for i in range(count)]


def manager_of(upn: str) -> str:
    return f"manager{int(upn[8:12]) // 20}@contoso.com"


class MemoryDirectory:
    """Every 20 employees share a manager, every 5 managers a director (as in the EWS double)."""

    name = "memory"

    def person(self, address: str) -> Person | None:
        return Person(address.lower(), address.split("@")[0])

    def manager_chain(self, address: str, depth: int = 3) -> list[Person]:
        manager = manager_of(address) if address.startswith("employee") else None
        if manager is None:
            return []
        director = f"director{int(manager[7:].split('@')[0]) // 5}@contoso.com"
        return [Person(manager, "Manager"), Person(director, "Director")][:depth]


def settings_for(work: Path, database_url: str, **extra: str) -> Settings:
    env = {
        "ADDIN_DATABASE_URL": database_url,
        "ADDIN_EVIDENCE_URL": f"file://{work / 'evidence'}",
        "ADDIN_EWS_URL": "https://unused.invalid/EWS/Exchange.asmx",
        "ADDIN_EWS_AUTH": "basic",
        "ADDIN_EWS_USERNAME": "svc",
        "ADDIN_EWS_PASSWORD": "unused",
        "ADDIN_EWS_VERSION": "Exchange2016",
        "ADDIN_TENANT_ID": "contoso.com",
        "ADDIN_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "ADDIN_ACCEPTED_DOMAINS": "contoso.com",
        "ADDIN_SECURITY_MAILBOX": SECURITY,
        "ADDIN_FALLBACK_MAILBOX": "hr-desk@contoso.com",
        "ADDIN_INVESTIGATIONS_MAILBOX": "investigations@contoso.com",
        "ADDIN_INTERNAL_AFFAIRS_MAILBOX": "internal-affairs@contoso.com",
        "ADDIN_NOTIFY_FROM": "report-harassment@contoso.com",
        "ADDIN_RATE_LIMIT": "100000/1h",
        "ADDIN_LOG_LEVEL": "error",
        "ADDIN_WORKER": "false",
    }
    env.update(extra)
    return Settings.from_env(env, cwd=work)


@contextmanager
def database_url(kind: str, work: Path) -> Iterator[str]:
    if kind == "postgres":
        with postgres_schema(postgres_server_url()) as url:
            yield url
    else:
        with nullcontext(f"sqlite:///{work / 'addin.db'}") as url:
            yield url


def wire(container: Container, notify: bool, directory: Any = None) -> Any:
    """Give the container a filer with notifications on (or off, the baseline)."""
    if not notify:
        return None
    parts = build_notifications(container.settings, container.database, container.evidence, directory=directory)
    container.filer = ReportFiler(container.settings, container.repository, container.evidence, container.mailbox,
                                  notifications=parts)
    return parts


def outcome(container: Container, statuses: Counter[int], cases: set[str], count: int, seconds: float
            ) -> dict[str, Any]:
    with container.database.session(write=False) as session:
        queued = dict(session.execute(select(OutboxRow.role, func.count()).group_by(OutboxRow.role)).all())
    filed = sum(len(container.repository.list_reports(case_id)) for case_id in cases if case_id)
    return {
        "seconds": round(seconds, 2),
        "reports_per_second": round(count / seconds, 1),
        "statuses": {str(k): v for k, v in statuses.items()},
        "campaign_cases": len(cases),
        "reports_filed": filed,
        "security_queued": queued.get("security", 0),
        "queued_by_role": queued,
    }


def run_use_case(count: int, threads: int, database: str, notify: bool) -> dict[str, Any]:
    work = scratch_dir()
    upns = reporters(count)
    headers = tuple(exchange_headers(MESSAGE))
    mailbox = InMemoryMailbox()
    for upn in upns:
        mailbox.add(f"AAMk{upn[8:12]}=", upn, MESSAGE, headers, "<threat-4471@mailbox.example.net>",
                    "dmercer@mailbox.example.net")
    with database_url(database, work) as url:
        container = build_container(settings_for(work, url), mailbox=mailbox)
        if database == "postgres":
            container.database.upgrade()
        parts = wire(container, notify, MemoryDirectory())
        filer = container.filer
        statuses: Counter[int] = Counter()
        cases: set[str] = set()
        lock = threading.Lock()

        def file(upn: str) -> None:
            caller = Caller(upn=upn, object_id=upn, tenant_id="t", name=upn, scopes=("access_as_user",), token="t")
            command = ReportCommand(item_id=f"AAMk{upn[8:12]}=", id_format="ews", mailbox=None,
                                    category="threat-or-violence", note="", feels_unsafe=False, include_related=False)
            filed = filer.file(caller, command, None)
            with lock:
                statuses[201 if filed.created else 200] += 1
                cases.add(filed.body["case_id"])

        seconds = timed_burst(upns, threads, file)
        result = outcome(container, statuses, cases, count, seconds)
        if parts is not None:
            parts.close()
        container.close()
    return result


def exchange_headers(mime: bytes) -> list[tuple[str, str]]:
    """The header block as Exchange lists it (name, value), for the in-memory mailbox."""
    block = mime.split(b"\r\n\r\n", 1)[0].decode()
    fields: list[tuple[str, str]] = []
    for line in block.split("\r\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + "\r\n" + line)
        else:
            name, _, value = line.partition(":")
            fields.append((name, value.lstrip()))
    return fields


def run_http(count: int, threads: int, database: str, notify: bool) -> dict[str, Any]:
    work = scratch_dir()
    upns = reporters(count)
    request = {"reporters": upns, "message": base64.b64encode(MESSAGE).decode()}
    with double_process("benchmarks.outbox_burst_double", request) as ews, OidcIssuer() as issuer, \
            database_url(database, work) as url:
        settings = settings_for(
            work, url, ADDIN_EWS_URL=ews["url"], ADDIN_EWS_USERNAME=ews["username"],
            ADDIN_EWS_PASSWORD=ews["password"], ADDIN_TENANT_ID=issuer.tenant_id, ADDIN_CLIENT_ID=issuer.client_id,
            ADDIN_AUTHORITY=issuer.authority,
        )
        container = build_container(settings)
        if database == "postgres":
            container.database.upgrade()
        parts = wire(container, notify)
        app = build_app(container=container)
        server = create_server(app, host="127.0.0.1", port=0, threads=threads)
        threading.Thread(target=server.run, daemon=True).start()
        base = f"http://127.0.0.1:{server.effective_port}"
        tokens = {upn: issuer.demo_token(upn) for upn in upns}
        local = threading.local()
        statuses: Counter[int] = Counter()
        cases: set[str] = set()
        lock = threading.Lock()

        def post(upn: str) -> None:
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            response = session.post(
                f"{base}/api/v1/reports",
                json={"item_id": ews["items"][upn], "category": "threat-or-violence"},
                headers={"Authorization": f"Bearer {tokens[upn]}"},
                timeout=300,
            )
            with lock:
                statuses[response.status_code] += 1
                cases.add(response.json().get("case_id", ""))

        seconds = timed_burst(upns, threads, post)
        server.close()
        result = outcome(container, statuses, cases, count, seconds)
        if parts is not None:
            parts.close()
        container.close()
    return result


def timed_burst(upns: list[str], threads: int, one: Callable[[str], None]) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(one, upn) for upn in upns]:
            future.result()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reporters", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--path", choices=("http", "use-case"), default="http")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    run = run_http if args.path == "http" else run_use_case
    baseline = run(args.reporters, args.threads, args.database, False)
    notified = run(args.reporters, args.threads, args.database, True)
    emit({
        "benchmark": "outbox_burst",
        "path": args.path,
        "database": args.database,
        "reporters": args.reporters,
        "threads": args.threads,
        "baseline_notifications_off": baseline,
        "notifications_on": notified,
        "ratio_on_to_off": round(notified["reports_per_second"] / baseline["reports_per_second"], 3),
        "target_reports_per_second": TARGET_PER_SECOND,
        "meets_target": notified["reports_per_second"] >= TARGET_PER_SECOND,
        "one_case_security_once": notified["campaign_cases"] == 1 and notified["security_queued"] == 1
        and notified["reports_filed"] == args.reporters,
    })


if __name__ == "__main__":
    main()
