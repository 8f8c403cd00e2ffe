"""Every Directory and Sender implementation arranged alike, for the ports' contract tests: EWS
adapters against the EWS double, Graph adapters against the Graph double, SMTP against a real SMTP
server on loopback, and in-memory fakes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from addin_service.demo.ews_server import EwsServer
from addin_service.demo.graph_server import GraphServer
from addin_service.mail.ews_directory import EwsDirectory
from addin_service.mail.ews_sender import EwsSender
from addin_service.mail.graph_directory import GraphDirectory
from addin_service.mail.graph_sender import GraphSender
from addin_service.notify.ports import Directory, OutgoingMessage, Sender
from addin_service.notify.smtp import SmtpSender
from tests.fakes.directory import InMemoryDirectory
from tests.fakes.ews import SERVICE_PASSWORD, SERVICE_USER, ews_settings
from tests.fakes.graph import DoubleTokens, graph_settings
from tests.fakes.smtp import SmtpServer

NOTIFY_FROM = "report-harassment@contoso.com"
# (person, display name, manager, aliases), top of the hierarchy first.
PEOPLE = (
    ("ceo@contoso.com", "Dana Chief", None, ()),
    ("sam@contoso.com", "Sam Okafor", "ceo@contoso.com", ()),
    ("morgan@contoso.com", "Morgan Lee", "sam@contoso.com", ("m.lee@contoso.com",)),
    ("alex@contoso.com", "Alex Wilber", "morgan@contoso.com", ()),
    ("security@contoso.com", "Security team", None, ()),
)


@pytest.fixture(params=["ews", "graph", "memory"])
def any_directory(request: pytest.FixtureRequest) -> Iterator[Directory]:
    if request.param == "ews":
        with EwsServer(username=SERVICE_USER, password=SERVICE_PASSWORD) as ews:
            for address, name, manager, aliases in PEOPLE:
                ews.add_person(address, name, aliases=aliases, manager=manager)
            made = EwsDirectory(ews_settings(ews))
            yield made
            made.close()
    elif request.param == "graph":
        with GraphServer() as graph:
            for address, name, manager, aliases in PEOPLE:
                graph.state.add_user(address, name, aliases=aliases, manager=manager)
            yield GraphDirectory(graph_settings(graph.graph_url), DoubleTokens(graph))
    else:
        yield InMemoryDirectory(
            managers={a: m for a, _, m, _ in PEOPLE if m},
            aliases={a: frozenset(al) for a, _, _, al in PEOPLE if al},
        )


@dataclass
class SenderArrangement:
    sender: Sender
    delivered: Callable[[], list[str]]  # Message-IDs the recipients' side has seen
    knows_sent_items: bool  # False for SMTP: it cannot look into a Sent Items folder


@dataclass
class InMemorySender:
    """The Sender port's behaviour without a transport: keeps what it sends."""

    name: str = "memory"
    sent: list[OutgoingMessage] = field(default_factory=list)

    def send(self, message: OutgoingMessage) -> None:
        self.sent.append(message)

    def already_sent(self, message: OutgoingMessage) -> bool:
        return any(m.message_id == message.message_id for m in self.sent)


@pytest.fixture(params=["ews", "graph", "smtp", "memory"])
def any_sender(request: pytest.FixtureRequest) -> Iterator[SenderArrangement]:
    if request.param == "ews":
        with EwsServer(username=SERVICE_USER, password=SERVICE_PASSWORD) as ews:
            for address, name, manager, aliases in PEOPLE:
                ews.add_person(address, name, aliases=aliases, manager=manager)
            ews.add_mailbox(NOTIFY_FROM)
            made = EwsSender(ews_settings(ews, notify_from=NOTIFY_FROM))
            yield SenderArrangement(made, lambda: [m.internet_message_id for m in ews.sent_items()], True)
            made.close()
    elif request.param == "graph":
        with GraphServer() as graph:
            for address, name, manager, aliases in PEOPLE:
                graph.state.add_user(address, name, aliases=aliases, manager=manager)
            graph.state.add_user(NOTIFY_FROM, "Report harassment")
            made = GraphSender(graph_settings(graph.graph_url, notify_from=NOTIFY_FROM), DoubleTokens(graph))
            yield SenderArrangement(made, lambda: [m.message.get("internetMessageId") for m in graph.sent], True)
    elif request.param == "smtp":
        with SmtpServer() as smtp:
            made = SmtpSender(smtp.url())
            yield SenderArrangement(made, lambda: [r.message_id for r in smtp.received], False)
            made.close()
    else:
        fake = InMemorySender()
        yield SenderArrangement(fake, lambda: [m.message_id for m in fake.sent], True)
