"""``addin-service demo --exchange graph``: the demo through the Microsoft Graph double, with real msal.

The command runs as a real process and files a report over HTTP; the CA bundle it trusts holds only
the demo's two throw-away CAs and is gone, with the variable put back, once the demo stops; an
unknown ``--exchange`` is a usage error that names the choices.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from addin_service.cli import cli
from addin_service.demo.ews_seed import DEMO_SUPERVISOR, DEMO_USER
from addin_service.demo.runner import start_demo
from tests.fakes.commands import loopback_session, wait_until_healthy
from tests.fakes.ports import free_port

pytestmark = pytest.mark.timeout(90)

SECURITY = "security@contoso.com"


@contextmanager
def _demo_process(tmp_path: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``addin-service demo ARGS`` in its own process, with its own temporary folder; yields its
    base URL once it answers ``/healthz``. Stopped with SIGTERM, as a service manager would."""
    port = free_port()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADDIN_")}
    env["TMPDIR"] = str(scratch)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from addin_service.cli import main; main()", "demo", *args, "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(proc, base, "addin-service demo")
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=30)


def test_the_graph_demo_command_files_a_report_and_sends_its_notifications_through_graph(tmp_path: Path) -> None:
    demo = _demo_process(tmp_path, "--exchange", "graph", "--data", "demo-data")
    with demo as (base, proc), loopback_session() as http:
        messages = http.get(f"{base}/demo/api/messages", timeout=30).json()["messages"]
        item = next(m for m in messages if m["subject"] == "You were warned")
        token = http.post(f"{base}/demo/api/token", json={"upn": DEMO_USER}, timeout=30).json()["access_token"]

        filed = http.post(
            f"{base}/api/v1/reports",
            json={"item_id": item["item_id"], "category": "threat-or-violence"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

        assert filed.status_code == 201, filed.text
        case_id = filed.json()["case_id"]
        deadline = time.monotonic() + 20
        listing = ""
        while not all(who in listing for who in (DEMO_SUPERVISOR, SECURITY)) and time.monotonic() < deadline:
            time.sleep(0.2)
            listing = http.get(f"{base}/demo/mail", timeout=30).text
        assert DEMO_SUPERVISOR in listing and SECURITY in listing and case_id in listing
        assert http.get(f"{base}/readyz", timeout=30).json()["checks"]["exchange"] == "ok"
        proc.terminate()
        output, _ = proc.communicate(timeout=30)

    assert proc.returncode == 0, output
    assert "Graph double" in output
    package = tmp_path / "demo-data" / "evidence" / case_id / filed.json()["report_id"]
    assert (package / "message.eml").is_file()
    assert list((tmp_path / "tmp").iterdir()) == []  # the throw-away CAs and keys are gone


def test_the_graph_demo_trusts_only_its_own_cas_and_forgets_them_when_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/an-admins-bundle.pem")
    handle = start_demo(tmp_path / "demo", exchange="graph")
    try:
        assert handle.ca_trust is not None and handle.graph is not None
        bundle = handle.ca_trust.bundle_path
        assert os.environ["REQUESTS_CA_BUNDLE"] == str(bundle)
        cas = x509.load_pem_x509_certificates(bundle.read_bytes())
        assert len(cas) == 2
        assert all("throw-away CA" in ca.subject.rfc4514_string() for ca in cas)
        assert handle.settings.authority.startswith("https://127.0.0.1:")
        assert handle.settings.graph_url.startswith("https://127.0.0.1:")
        assert handle.settings.graph_auth == "obo"
    finally:
        handle.stop()

    assert os.environ["REQUESTS_CA_BUNDLE"] == "/etc/ssl/certs/an-admins-bundle.pem"
    assert not bundle.parent.exists()


def test_an_unknown_exchange_is_a_usage_error_naming_the_choices(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--exchange", "exchange2010", "--data", str(tmp_path / "demo")])

    assert result.exit_code == 2
    assert "Invalid value for '--exchange'" in result.output
    assert "'ews'" in result.output and "'graph'" in result.output
    assert not (tmp_path / "demo").exists()
