"""Who may read ``/metrics``.

The service faces every reporter, and often the internet, on one port. Its counters would tell
anyone who watched them when a report was filed, how large the reported message was, and when a
supervisor acknowledged it: enough for a sender to learn that their message was reported. So
``/metrics`` answers only

* a request that comes straight from an address in ``ADDIN_METRICS_ALLOW`` (loopback by default)
  and was not passed on by a proxy (a proxy on the same host would make every reporter look like
  loopback; proxies mark what they forward with ``Forwarded`` or an ``X-Forwarded-*`` header), or
* a request carrying ``Authorization: Bearer <ADDIN_METRICS_TOKEN>``, from anywhere.

The proxy check can only see headers the WSGI server hands on. waitress 3 by default deletes
``Forwarded`` and ``X-Forwarded-*`` before the app runs and leaves no trace of having done so, so
``run`` and ``demo`` serve through :func:`addin_service.cli.waitress_server`, which keeps them.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

from addin_service.settings import IpNetwork

_FORWARDING_HEADERS = frozenset({"forwarded", "x-real-ip", "x-client-ip"})


def was_forwarded(header_names: Iterable[str]) -> bool:
    """A proxy says it passed the request on (RFC 7239 ``Forwarded``, ``X-Forwarded-*`` and kin)."""
    return any(name.lower() in _FORWARDING_HEADERS or name.lower().startswith("x-forwarded-") for name in header_names)


def may_read_metrics(
    allow: tuple[IpNetwork, ...],
    token: str | None,
    remote_addr: str | None,
    header_names: Iterable[str],
    authorization: str | None,
) -> bool:
    if token is not None and authorization is not None:
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
            return True
    if was_forwarded(header_names):
        return False
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:  # a Unix socket, or no peer address at all
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in allow)
