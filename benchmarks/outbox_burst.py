"""Mass-report burst: 1,000 people report the same message at once. Measures filed reports per
second and checks the outcome — every report filed, ONE campaign case, the security team queued
exactly once. The outbox worker does not run (its drain rate is ``outbox_drain``). Prints JSON.

Two paths:

* ``http`` — the whole service: HTTP, token validation, EWS capture from the EWS double in its own
  process, the directory over EWS ResolveNames, sealed evidence, routing, the outbox. Served by
  gunicorn with ``infra/gunicorn.conf.py`` in its own processes (as deployed at scale), or by
  waitress inside this process. Baseline, same run, same double: the raw-protocol floor — every
  reporter's copy fetched by bare requests + lxml + base64 + fsync (issue 7's definition) with the
  same number of client threads. Each reporter is a browser of their own, so each report comes on a
  connection of its own (``--connections per-reporter``); ``kept-alive`` sends every report over a
  few kept-alive connections (one per client thread), which gunicorn's threaded workers may all
  accept in one process, leaving the others idle. The CPU each process used during the burst is
  printed beside the rate (service, this client, the EWS double), with the ceiling it sets: on a
  machine where all three share the cores, no more reports per second than cores ÷ CPU per report.
* ``use-case`` — ``ReportFiler.file()`` called from threads, with an in-memory mailbox and directory:
  the filing work itself (evidence sealing, database, routing, rendering, outbox), no protocols;
  notifications on against off (case choice, origin analysis and campaign grouping stay on in both).

Target: ≥ 150 reports per second.

    .venv/bin/python -m benchmarks.outbox_burst [--reporters 1000] [--threads 16]
        [--path http|use-case] [--database sqlite|postgres] [--server gunicorn|waitress] [--web-workers 2]
        [--connections per-reporter|kept-alive]
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import psutil
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
from benchmarks._floors import RawFloor
from benchmarks._harness import ROOT, EwsDouble, double_process, emit, scratch_dir
from tests.fakes.db import postgres_schema, postgres_server_url
from tests.fakes.mailbox import InMemoryMailbox

TARGET_PER_SECOND = 150.0
GUNICORN_CONF = ROOT / "infra" / "gunicorn.conf.py"
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


def environment_for(work: Path, database_url: str, **extra: str) -> dict[str, str]:
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
    return env


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
    parts = build_notifications(container.settings, container.database, container.evidence, directory=directory) \
        if notify else None
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
        container = build_container(Settings.from_env(environment_for(work, url), cwd=work), mailbox=mailbox)
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


def run_http(count: int, threads: int, database: str, server: str, web_workers: int, kept_alive: bool
             ) -> dict[str, Any]:
    """The raw-protocol floor (every reporter's GetItem fetched and fsynced by bare requests + lxml),
    then the whole service filing the same items, against the same EWS double in the same run."""
    work = scratch_dir()
    upns = reporters(count)
    request = {"reporters": upns, "message": base64.b64encode(MESSAGE).decode()}
    with double_process("benchmarks.outbox_burst_double", request) as ews, OidcIssuer() as issuer, \
            database_url(database, work) as url:
        floor = raw_floor_burst(ews, upns, threads, work)
        env = environment_for(
            work, url, ADDIN_EWS_URL=ews["url"], ADDIN_EWS_USERNAME=ews["username"],
            ADDIN_EWS_PASSWORD=ews["password"], ADDIN_TENANT_ID=issuer.tenant_id, ADDIN_CLIENT_ID=issuer.client_id,
            ADDIN_AUTHORITY=issuer.authority,
        )
        container = build_container(Settings.from_env(env, cwd=work))
        container.database.upgrade()
        serve = serve_gunicorn(env, web_workers, threads) if server == "gunicorn" \
            else serve_waitress(container, threads)
        tokens = {upn: issuer.demo_token(upn) for upn in upns}
        local = threading.local()
        statuses: Counter[int] = Counter()
        cases: set[str] = set()
        lock = threading.Lock()

        with serve as base:
            def post(upn: str) -> None:
                session = getattr(local, "session", None) or requests.Session()
                if kept_alive:
                    local.session = session
                response = session.post(
                    f"{base}/api/v1/reports",
                    json={"item_id": ews["items"][upn], "category": "threat-or-violence"},
                    headers={"Authorization": f"Bearer {tokens[upn]}"},
                    timeout=300,
                )
                if not kept_alive:
                    session.close()
                with lock:
                    statuses[response.status_code] += 1
                    cases.add(response.json().get("case_id", ""))

            with CpuSplit(here="client" if server == "gunicorn" else "client_and_service") as cpu:
                seconds = timed_burst(upns, threads, post)
        result = outcome(container, statuses, cases, count, seconds)
        container.close()
    return {"raw_floor": floor, "service": result, "cpu": cpu.summary(count),
            "ratio_to_floor": round(result["reports_per_second"] / floor["fetches_per_second"], 3)}


class CpuSplit:
    """CPU seconds used during a block by this process (the client, and the service under waitress),
    the gunicorn processes and the EWS double, each found among this process's descendants."""

    def __init__(self, here: str) -> None:
        self._here = here

    def __enter__(self) -> CpuSplit:
        self._before = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        self._after = self._sample()

    def _sample(self) -> dict[int, tuple[str, float]]:
        me = psutil.Process()
        samples: dict[int, tuple[str, float]] = {}
        for proc in [me, *me.children(recursive=True)]:
            try:
                command = " ".join(proc.cmdline())
                times = proc.cpu_times()
            except psutil.Error:
                continue
            role = self._here if proc.pid == me.pid else "service" if "gunicorn" in command \
                else "ews_double" if "outbox_burst_double" in command else "other"
            samples[proc.pid] = (role, times.user + times.system)
        return samples

    def summary(self, reports: int) -> dict[str, Any]:
        used: Counter[str] = Counter()
        service_processes: list[float] = []
        for pid, (role, after) in self._after.items():
            spent = after - self._before.get(pid, (role, 0.0))[1]
            used[role] += spent
            if role == "service" and spent > 0.05:  # the gunicorn arbiter only watches its workers
                service_processes.append(spent)
        per_report = {role: round(1000 * seconds / reports, 2) for role, seconds in used.items()}
        total_ms = sum(per_report.values())
        cores = os.cpu_count() or 1
        return {
            "seconds": {role: round(seconds, 2) for role, seconds in used.items()},
            "ms_per_report": per_report,
            "busy_service_processes": [round(seconds, 2) for seconds in sorted(service_processes, reverse=True)],
            "cores": cores,
            "ceiling_reports_per_second": round(cores * 1000 / total_ms, 1) if total_ms else None,
        }


def raw_floor_burst(ews: dict[str, Any], upns: list[str], threads: int, work: Path) -> dict[str, Any]:
    """Every reporter's copy fetched as issue 7 defines the floor: one GetItem POST with requests,
    lxml iterparse, base64 decode, write + fsync. The most a client can get from this double here."""
    double = EwsDouble(url=ews["url"], username=ews["username"], password=ews["password"], items={})
    local = threading.local()

    def fetch(upn: str) -> None:
        floor = getattr(local, "floor", None) or RawFloor(double)
        local.floor = floor
        floor.fetch(ews["items"][upn], work / f"floor-{threading.get_ident()}.eml", mailbox=upn)

    seconds = timed_burst(upns, threads, fetch)
    return {"seconds": round(seconds, 2), "fetches_per_second": round(len(upns) / seconds, 1)}


@contextmanager
def serve_waitress(container: Container, threads: int) -> Iterator[str]:
    """The app in this process under waitress (what ``addin-service run`` does)."""
    server = create_server(build_app(container=container), host="127.0.0.1", port=0, threads=threads)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()


@contextmanager
def serve_gunicorn(env: dict[str, str], workers: int, threads: int) -> Iterator[str]:
    """The service as deployed at scale: gunicorn with infra/gunicorn.conf.py, in its own processes."""
    port = free_port()
    child_env = {**os.environ, **env,
                 "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port} --workers {workers} --threads {threads}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "addin_service:create_app()"],
        cwd=ROOT, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, workers)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def wait_ready(base: str, proc: subprocess.Popen[bytes], workers: int) -> None:
    """Until every worker process has booted (each builds its app after the fork)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {proc.returncode}")
        try:
            booted = len(psutil.Process(proc.pid).children())
            if booted >= workers and requests.get(f"{base}/healthz", timeout=2).ok:
                for _ in range(4 * workers):  # one request per worker at least, so none boots mid-burst
                    requests.get(f"{base}/healthz", timeout=10)
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # still booting
        time.sleep(0.1)
    raise RuntimeError("gunicorn did not become ready")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    parser.add_argument("--server", choices=("gunicorn", "waitress"), default="gunicorn",
                        help="http path: gunicorn processes (infra/gunicorn.conf.py) or waitress in this process")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--connections", choices=("per-reporter", "kept-alive"), default="per-reporter",
                        help="http path: a connection of its own for each report, or one kept alive per client thread")
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "outbox_burst", "path": args.path, "database": args.database,
                              "reporters": args.reporters, "threads": args.threads}
    if args.path == "http":
        result.update(server=args.server, web_workers=args.web_workers if args.server == "gunicorn" else 1,
                      connections=args.connections)
        measured = run_http(args.reporters, args.threads, args.database, args.server, args.web_workers,
                            args.connections == "kept-alive")
        result.update(measured)
        notified = measured["service"]
    else:
        baseline = run_use_case(args.reporters, args.threads, args.database, False)
        notified = run_use_case(args.reporters, args.threads, args.database, True)
        result.update(baseline_notifications_off=baseline, notifications_on=notified,
                      ratio_on_to_off=round(notified["reports_per_second"] / baseline["reports_per_second"], 3))
    result.update(
        target_reports_per_second=TARGET_PER_SECOND,
        meets_target=notified["reports_per_second"] >= TARGET_PER_SECOND,
        one_case_security_once=notified["campaign_cases"] == 1 and notified["security_queued"] == 1
        and notified["reports_filed"] == args.reporters,
    )
    emit(result)


if __name__ == "__main__":
    main()
