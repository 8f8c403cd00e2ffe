"""Read requests' environment settings once, when an adapter is built, not on every request.

With ``trust_env`` (the default) requests works out, for every request, the proxy from
``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and ``NO_PROXY`` and the CA bundle from
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``: some 0.3-0.5 ms of scanning ``os.environ`` each time.
An adapter whose sessions only talk to endpoints from its configuration can take that decision
once, with requests' own functions, and have its sessions stop looking (``trust_env=False``).
That also stops requests reading ``~/.netrc``, whose credentials would replace a bearer token or
exchangelib's own authentication anyway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.utils import get_environ_proxies, select_proxy


@dataclass(frozen=True)
class EnvironmentSettings:
    """The proxies and CA bundle the environment gives requests for some endpoints."""

    proxies: tuple[tuple[str, str], ...]  # ("https://host", proxy URL), for hosts NO_PROXY does not exempt
    ca_bundle: str | None

    @classmethod
    def read(cls, *urls: str) -> EnvironmentSettings:
        """What requests would decide now, from the environment, for requests to ``urls``."""
        proxies = []
        for url in urls:
            proxy = select_proxy(url, get_environ_proxies(url))
            if proxy:
                parts = urlsplit(url)
                proxies.append((f"{parts.scheme}://{parts.hostname}", proxy))
        return cls(tuple(proxies), os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"))

    def apply(self, session: requests.Session) -> requests.Session:
        """Make ``session`` use these settings and ignore the environment from now on.

        Only for sessions that talk to the hosts given to :meth:`read`: others are reached directly.
        """
        session.proxies.update(self.proxies)
        if self.ca_bundle and session.verify is True:
            session.verify = self.ca_bundle
        session.trust_env = False
        return session


def pinned_session(url: str) -> requests.Session:
    """A new session for ``url``'s host with the environment's settings for it, read now."""
    return EnvironmentSettings.read(url).apply(requests.Session())
