"""Shared machinery: the EWS double in its own process, the service over real HTTP, timing and RSS."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests
from waitress.server import create_server

ROOT = Path(__file__).resolve().parent.parent
REPORTER = "alex@contoso.com"


@dataclass
class EwsDouble:
    url: str
    username: str
    password: str
    items: dict[tuple[int, int], str]  # (size, seed) → item id


@contextmanager
def double_process(module: str, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Run a protocol double (``python -m module``) in a child process so its memory and CPU are
    not the service's. It reads ``request`` as one JSON line and answers with one JSON line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(request) + "\n")
    proc.stdin.flush()
    try:
        yield json.loads(proc.stdout.readline())
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


@contextmanager
def ews_double_process(messages: list[tuple[int, int]]) -> Iterator[EwsDouble]:
    """The EWS double in a child process, seeded with messages of the given (size, seed)."""
    with double_process("benchmarks._ews_double_process", {"reporter": REPORTER, "messages": messages}) as info:
        yield EwsDouble(
            url=info["url"],
            username=info["username"],
            password=info["password"],
            items={(size, seed): item for size, seed, item in info["items"]},
        )


@dataclass
class Service:
    base_url: str
    token: str
    settings: Any
    app: Any

    def post_report(self, item_id: str) -> requests.Response:
        return requests.post(
            f"{self.base_url}/api/v1/reports",
            json={"item_id": item_id, "category": "threat-or-violence"},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=300,
        )


@contextmanager
def service(ews: EwsDouble, workdir: Path, **env: str) -> Iterator[Service]:
    """The real service (real EwsMailbox, token validation, SQLite, file evidence) over HTTP."""
    from addin_service.app import build_app
    from addin_service.bootstrap import build_container
    from addin_service.demo.oidc import OidcIssuer
    from addin_service.settings import Settings

    with OidcIssuer() as issuer:
        values = {
            "ADDIN_DATABASE_URL": f"sqlite:///{workdir / 'addin.db'}",
            "ADDIN_EVIDENCE_URL": f"file://{workdir / 'evidence'}",
            "ADDIN_EWS_URL": ews.url,
            "ADDIN_EWS_AUTH": "basic",
            "ADDIN_EWS_USERNAME": ews.username,
            "ADDIN_EWS_PASSWORD": ews.password,
            "ADDIN_EWS_VERSION": "Exchange2016",
            "ADDIN_EWS_TIMEOUT": "120",
            "ADDIN_TENANT_ID": issuer.tenant_id,
            "ADDIN_CLIENT_ID": issuer.client_id,
            "ADDIN_AUTHORITY": issuer.authority,
            "ADDIN_RATE_LIMIT": "100000/1h",
            "ADDIN_LOG_LEVEL": "warning",
            "ADDIN_WORKER": "false",
        }
        values.update(env)
        settings = Settings.from_env(values, cwd=workdir)
        app = build_app(container=build_container(settings))
        server = create_server(app, host="127.0.0.1", port=0, threads=4)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            yield Service(f"http://127.0.0.1:{server.effective_port}", issuer.demo_token(REPORTER), settings, app)
        finally:
            server.close()
            app.extensions["addin"].close()


def timed(fn: Callable[[], Any]) -> float:
    return measure(fn)[0]


def measure(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds taken by ``fn()`` and what it returned."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p * (len(ordered) - 1))))]

    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(pct(0.95) * 1000, 2),
        "min_ms": round(ordered[0] * 1000, 2),
    }


def rss_bytes() -> int:
    return int(psutil.Process().memory_info().rss)


class PeakRss:
    """Samples this process's RSS every few milliseconds while active; ``peak`` is the highest seen.

    getrusage's ru_maxrss is a lifetime high-water mark, so it cannot isolate one request; sampling can.
    """

    def __init__(self, interval: float = 0.002) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.before = 0
        self.peak = 0

    def _run(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, int(proc.memory_info().rss))
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRss:
        self.before = rss_bytes()
        self.peak = self.before
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.before


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="addin-bench-"))


def fsync_write(path: Path, chunks: Iterator[bytes] | list[bytes]) -> int:
    size = 0
    with open(path, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
            size += len(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    return size


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2))
