"""Who may read /metrics: allowed addresses straight, never through a proxy; the token from anywhere."""

from __future__ import annotations

import ipaddress

import pytest

from addin_service.observability.metrics_access import may_read_metrics
from addin_service.settings import LOOPBACK_NETWORKS

TOKEN = "t" * 40


def allowed(
    remote: str | None,
    headers: tuple[str, ...] = (),
    authorization: str | None = None,
    allow: tuple[str, ...] | None = None,
    token: str | None = None,
) -> bool:
    networks = LOOPBACK_NETWORKS if allow is None else tuple(ipaddress.ip_network(n) for n in allow)
    return may_read_metrics(networks, token, remote, headers, authorization)


@pytest.mark.parametrize("remote", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_is_allowed_by_default(remote: str) -> None:
    assert allowed(remote)


@pytest.mark.parametrize("remote", ["192.0.2.7", "10.0.0.5", "fd00::2", "::ffff:192.0.2.7", "", None, "unix:/run/x"])
def test_any_other_address_or_none_is_refused_by_default(remote: str | None) -> None:
    assert not allowed(remote)


@pytest.mark.parametrize(
    "header", ["Forwarded", "X-Forwarded-For", "x-forwarded-for", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-IP"]
)
def test_a_request_a_proxy_passed_on_is_refused_even_from_loopback(header: str) -> None:
    assert not allowed("127.0.0.1", headers=("Host", header))


def test_configured_networks_replace_loopback() -> None:
    allow = ("10.1.2.0/24", "2001:db8::/32")

    assert allowed("10.1.2.99", allow=allow)
    assert allowed("2001:db8::5", allow=allow)
    assert not allowed("10.1.3.1", allow=allow)
    assert not allowed("127.0.0.1", allow=allow)


def test_with_no_networks_only_the_token_opens_it() -> None:
    assert not allowed("127.0.0.1", allow=())
    assert allowed("127.0.0.1", allow=(), token=TOKEN, authorization=f"Bearer {TOKEN}")


def test_the_token_is_accepted_from_anywhere_even_through_a_proxy() -> None:
    assert allowed("198.51.100.9", headers=("X-Forwarded-For",), token=TOKEN, authorization=f"bearer {TOKEN}")


@pytest.mark.parametrize(
    "authorization", [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, "Bearer ", ""]
)
def test_a_wrong_or_malformed_token_is_refused(authorization: str) -> None:
    assert not allowed("198.51.100.9", token=TOKEN, authorization=authorization)


def test_a_token_presented_when_none_is_configured_opens_nothing() -> None:
    assert not allowed("198.51.100.9", authorization=f"Bearer {TOKEN}")
