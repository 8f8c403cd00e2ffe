"""/metrics under waitress, the server ``addin-service run`` and ``demo`` use: a request a proxy passed
on is refused even though it reaches the service from loopback.

waitress 3 by default deletes ``Forwarded`` and ``X-Forwarded-*`` from the request before the app
sees it, so these tests must go through real waitress (the werkzeug server in ``tests/fakes/stack.py``
hands every header on), and through the commands themselves.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.fakes.commands import UNUSED_EXCHANGE, loopback_session, wait_until_healthy
from tests.fakes.ports import free_port
from tests.fakes.stack import running_stack
from tests.fakes.waitress import served_by_waitress

pytestmark = pytest.mark.timeout(90)

PROXY_HEADERS = [
    ("Forwarded", "for=203.0.113.9;proto=https"),
    ("X-Forwarded-For", "203.0.113.9"),
    ("X-Forwarded-Host", "hr.contoso.com"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Port", "443"),
    ("X-Real-IP", "203.0.113.9"),
]
FORBIDDEN = "urn:report-harassment:problem:metrics-forbidden"


def _get(url: str, **headers: str) -> requests.Response:
    with loopback_session() as session:
        return session.get(url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def waitress_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stack's app served by ``waitress_server`` on loopback, as ``run`` serves it."""
    with running_stack(tmp_path_factory.mktemp("waitress")) as stack, served_by_waitress(stack.app) as base:
        yield base


@pytest.mark.parametrize(("name", "value"), PROXY_HEADERS, ids=[name for name, _ in PROXY_HEADERS])
def test_a_request_a_proxy_passed_on_is_refused_metrics_under_waitress(
    waitress_base: str, name: str, value: str
) -> None:
    answer = _get(f"{waitress_base}/metrics", **{name: value})

    assert answer.status_code == 403
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["type"] == FORBIDDEN
    assert "addin_" not in answer.text


def test_a_direct_loopback_request_reads_metrics_under_waitress(waitress_base: str) -> None:
    answer = _get(f"{waitress_base}/metrics")

    assert answer.status_code == 200
    assert "addin_reports_total" in answer.text


@contextmanager
def _command(tmp_path: Path, *args: str) -> Iterator[str]:
    """``addin-service ARGS --port P`` in its own process, with only this test's ``ADDIN_*``
    variables; yields its base URL once it answers ``/healthz``, and stops it afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADDIN_")}
    env.update(UNUSED_EXCHANGE, ADDIN_WORKER="false", ADDIN_LOG_LEVEL="warning")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from addin_service.cli import main; main()", *args, "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(proc, base, f"addin-service {args[0]}")
        yield base
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.mark.parametrize("command", [["run"], ["demo", "--data", "demo-data"]], ids=["run", "demo"])
def test_the_commands_refuse_metrics_to_every_proxied_request(tmp_path: Path, command: list[str]) -> None:
    with _command(tmp_path, *command) as base:
        proxied = {name: _get(f"{base}/metrics", **{name: value}).status_code for name, value in PROXY_HEADERS}
        direct = _get(f"{base}/metrics")

    assert proxied == {name: 403 for name, _ in PROXY_HEADERS}
    assert direct.status_code == 200
    assert "addin_reports_total" in direct.text
