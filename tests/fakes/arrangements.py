"""Every Mailbox implementation, arranged the same way: the EWS adapter against the EWS double,
the Graph adapter against the Graph double, and the in-memory fake. Used by the port's contract
tests (``pytest_plugins`` brings the fixtures in)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from addin_service.demo.ews_server import EwsServer
from addin_service.demo.graph_server import GraphServer
from addin_service.mail.ews import EwsMailbox
from addin_service.mail.graph import GraphMailbox
from addin_service.mail.ports import ItemRef, Mailbox
from tests.fakes.ews import FAST_RETRY, ews_settings
from tests.fakes.graph import DoubleTokens, graph_settings
from tests.fakes.mailbox import InMemoryMailbox

ALEX = "alex@contoso.com"
ROBIN = "robin@contoso.com"
SHARED = "hr-cases@contoso.com"
MIME = (
    b"Received: from a by b; Tue, 24 Nov 2026 09:00:00 +0000\r\n"
    b"From: Sam <sam@fabrikam.example>\r\nTo: alex@contoso.com\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
    b"Message-ID: <contract-1@fabrikam.example>\r\n\r\n"
    b"8-bit \xe9\xff, NUL \x00, bare LF\n, bare CR\r, CRLF\r\n" + b"x" * 200_000 + b"\r\n"
)


@dataclass
class Arrangement:
    mailbox: Mailbox
    add: Callable[[str, bytes], str]  # (mailbox address, mime) → canonical (EWS-form) item id
    share: Callable[[str, str], None]  # (owner, delegate): delegate may read owner's mailbox
    token_for: Callable[[str], str | None]  # what ItemRef.user_token carries for a reporter


@pytest.fixture
def ews() -> Iterator[Arrangement]:
    with EwsServer() as server:
        for address in (ALEX, ROBIN, SHARED):
            server.add_mailbox(address)
        settings = ews_settings(server, ews_username=server.username, ews_password=server.password)
        adapter = EwsMailbox(settings, retry=FAST_RETRY)
        yield Arrangement(adapter, lambda mb, mime: server.add_message(mb, mime), server.grant, lambda upn: None)
        adapter.close()


@pytest.fixture
def graph() -> Iterator[Arrangement]:
    with GraphServer() as server:
        for address in (ALEX, ROBIN, SHARED):
            server.state.add_user(address)
        adapter = GraphMailbox(graph_settings(server.graph_url), DoubleTokens(server))

        def share(owner: str, delegate: str) -> None:
            user = server.state.find_user(owner)
            assert user is not None
            user.delegates.add(delegate.lower())

        yield Arrangement(adapter, lambda mb, mime: server.state.add_message(mb, mime).ews_id, share, lambda upn: upn)
        adapter.close()


@pytest.fixture
def memory() -> Arrangement:
    fake = InMemoryMailbox()

    def add(mailbox: str, mime: bytes) -> str:
        item_id = base64.b64encode(b"AAMk" + secrets.token_bytes(30)).decode()
        fake.add(item_id, mailbox, mime, internet_message_id="<contract-1@fabrikam.example>")
        return item_id

    def share(owner: str, delegate: str) -> None:
        fake.delegates.setdefault(owner, set()).add(delegate)

    return Arrangement(fake, add, share, lambda upn: None)


@pytest.fixture(params=["ews", "graph", "memory"])
def arranged(request: pytest.FixtureRequest) -> Arrangement:
    arrangement: Arrangement = request.getfixturevalue(request.param)
    return arrangement


def ref(arranged: Arrangement, item_id: str, mailbox: str = ALEX, reporter: str = ALEX) -> ItemRef:
    return ItemRef(item_id=item_id, mailbox=mailbox, reporter=reporter, user_token=arranged.token_for(reporter))
