"""/metrics over real HTTP: loopback reads it, another address or a proxied request gets a 403
problem (and no counter), and ADDIN_METRICS_TOKEN opens it from anywhere."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import requests

from tests.fakes.stack import running_stack, serving

TOKEN = "9f2c4e6a8b0d1f3e5a7c9e1b3d5f7a9c"


def _get(url: str, **headers: str) -> requests.Response:
    """Straight to the service: never through a proxy from the environment."""
    with requests.Session() as session:
        session.trust_env = False
        return session.get(url, headers=headers)


def _this_machines_other_address() -> str:
    """An address of this machine that is not loopback, so a request to it does not come from loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.123", 9))  # no packet is sent: this only picks the outgoing interface
        except OSError:
            pytest.skip("this machine has no network interface but loopback")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("this machine has no network interface but loopback")
    return address


def test_only_loopback_reads_metrics_by_default(tmp_path: Path) -> None:
    other = _this_machines_other_address()
    with running_stack(tmp_path) as stack, serving(stack.app, host="0.0.0.0") as base:
        port = base.rsplit(":", 1)[1]
        from_loopback = _get(f"{base}/metrics")
        from_other = _get(f"http://{other}:{port}/metrics")
        proxied = _get(f"{base}/metrics", **{"X-Forwarded-For": "198.51.100.7"})

    assert from_loopback.status_code == 200
    assert "addin_reports_total" in from_loopback.text
    for refused in (from_other, proxied):
        assert refused.status_code == 403
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert refused.json()["type"] == "urn:report-harassment:problem:metrics-forbidden"
        assert "addin_" not in refused.text


def test_the_metrics_token_opens_it_from_another_address(tmp_path: Path) -> None:
    other = _this_machines_other_address()
    with running_stack(tmp_path, ADDIN_METRICS_TOKEN=TOKEN) as stack, serving(stack.app, host="0.0.0.0") as base:
        url = f"http://{other}:{base.rsplit(':', 1)[1]}/metrics"
        with_token = _get(url, Authorization=f"Bearer {TOKEN}")
        wrong = _get(url, Authorization=f"Bearer {TOKEN[::-1]}")

    assert with_token.status_code == 200
    assert "addin_outbox_up" in with_token.text
    assert wrong.status_code == 403


def test_configured_networks_let_a_prometheus_elsewhere_in(tmp_path: Path) -> None:
    other = _this_machines_other_address()
    with running_stack(tmp_path, ADDIN_METRICS_ALLOW=other) as stack, serving(stack.app, host="0.0.0.0") as base:
        from_other = _get(f"http://{other}:{base.rsplit(':', 1)[1]}/metrics")
        from_loopback = _get(f"{base}/metrics")

    assert from_other.status_code == 200
    assert from_loopback.status_code == 403
