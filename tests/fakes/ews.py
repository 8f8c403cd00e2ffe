"""Fixtures and helpers around the EWS server double (``addin_service.demo.ews_server``).

Import the fixtures you use into a test module (``from tests.fakes.ews import ews_server``), or
list this module in ``pytest_plugins`` of the root conftest.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from addin_service.demo.ews_server import EwsServer
from addin_service.errors import MessageTooLarge
from addin_service.mail.ews import EwsMailbox
from addin_service.mail.ews_retry import RetryPolicy
from addin_service.settings import Settings

SERVICE_USER = "svc-addin"
SERVICE_PASSWORD = "correct horse battery staple"  # noqa: S105 - the double's test credential
REPORTER = "alex@contoso.com"
COLLEAGUE = "riley.chen@contoso.com"
SHARED = "hr-cases@contoso.com"
TENANT = "contoso.com"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"

# Retries that take milliseconds, not seconds, but are otherwise the production policy.
FAST_RETRY = RetryPolicy(max_wait=3.0, max_attempts=4, base_delay=0.01, max_delay=0.05, default_retry_after=30)


def ews_settings(server: EwsServer | str, **overrides: str) -> Settings:
    """Settings for an EwsMailbox that talks to ``server`` (or an EWS URL) as its service account
    (basic auth, version pinned so request counts are exact). Overrides are ``ADDIN_*`` names
    without the prefix, in any case: ``ews_auth="ntlm"``."""
    env = {
        "ADDIN_EXCHANGE": "ews",
        "ADDIN_EWS_URL": server if isinstance(server, str) else server.url,
        "ADDIN_EWS_AUTH": "basic",
        "ADDIN_EWS_USERNAME": SERVICE_USER,
        "ADDIN_EWS_PASSWORD": SERVICE_PASSWORD,
        "ADDIN_EWS_VERSION": "Exchange2016",
        "ADDIN_EWS_TIMEOUT": "5",
        "ADDIN_EXCHANGE_MAX_WAIT": "5",
        "ADDIN_TENANT_ID": TENANT,
        "ADDIN_CLIENT_ID": CLIENT_ID,
    }
    env.update({f"ADDIN_{name.upper()}": value for name, value in overrides.items()})
    return Settings.from_env(env, cwd=Path(tempfile.gettempdir()))


class MemorySink:
    """A MimeSink that keeps the bytes and counts the writes."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class LimitedSink(MemorySink):
    """A MimeSink that refuses more than ``limit`` bytes, like the evidence store's package."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, data: bytes, /) -> int:
        if len(self.data) + len(data) > self.limit:
            raise MessageTooLarge(self.limit)
        return super().write(data)


@pytest.fixture
def ews_server() -> Iterator[EwsServer]:
    """A running double with the service account, the reporter's mailbox and no messages.
    Fails the test if the double itself hit an unexpected error."""
    with EwsServer(username=SERVICE_USER, password=SERVICE_PASSWORD) as server:
        server.add_mailbox(REPORTER)
        server.add_mailbox(COLLEAGUE)
        yield server
        assert not server.errors, f"the EWS double failed: {server.errors!r}"


@pytest.fixture
def ews_mailbox(ews_server: EwsServer) -> Iterator[EwsMailbox]:
    """An EwsMailbox for ``ews_server`` with fast retries."""
    mailbox = EwsMailbox(ews_settings(ews_server), retry=FAST_RETRY)
    yield mailbox
    mailbox.close()
