"""The whole chain with real tokens: msal against the Entra double (TLS), Graph double checking them.

The add-in's SSO token is exchanged on behalf of the reporter (msal ``acquire_token_on_behalf_of``),
and the Graph double accepts only tokens signed by that issuer for its own resource, then lets the
delegated user read only their own mailbox. The directory uses a client-credentials token.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from addin_service.demo.graph_server import GraphServer
from addin_service.demo.oidc import OidcIssuer
from addin_service.errors import MailboxUnavailable, NotYourMailbox, Unauthenticated
from addin_service.mail.graph import GraphMailbox
from addin_service.mail.graph_directory import GraphDirectory
from addin_service.mail.graph_tokens import GraphTokens
from addin_service.mail.ports import ItemRef
from addin_service.settings import Settings
from tests.fakes.graph import BytesSink, entra_for_graph, graph_settings, nasty_mime

ALEX = "alex@contoso.com"
ROBIN = "robin@contoso.com"
SARA = "sara.davis@contoso.com"


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    with GraphServer() as running:
        running.state.add_user(SARA, "Sara Davis")
        running.state.add_user(ALEX, "Alex Wilber", manager=SARA)
        running.state.add_user(ROBIN, "Robin Kline")
        yield running


@pytest.fixture
def issuer(graph: GraphServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[OidcIssuer]:
    with entra_for_graph(graph, monkeypatch) as running:
        yield running


def settings_for(graph: GraphServer, issuer: OidcIssuer, **env: str) -> Settings:
    return graph_settings(
        graph.graph_url,
        authority=issuer.authority,
        tenant_id=issuer.tenant_id,
        client_id=issuer.client_id,
        client_secret=issuer.client_secret,
        **env,
    )


def test_a_reporter_captures_their_message_with_an_on_behalf_of_token(graph: GraphServer, issuer: OidcIssuer) -> None:
    item = graph.state.add_message(ALEX, nasty_mime())
    settings = settings_for(graph, issuer)
    sink = BytesSink()

    captured = GraphMailbox(settings, GraphTokens(settings)).capture(
        ItemRef(item.ews_id, ALEX, ALEX, user_token=issuer.mint(ALEX)), sink
    )

    assert bytes(sink.data) == nasty_mime()
    assert captured.internet_message_id == "<nasty-1@evil.example>"
    (grant,) = issuer.grants
    assert grant.grant_type == "on_behalf_of" and grant.subject == ALEX
    assert {s for s in grant.scopes if s.startswith(graph.root_url)} == {
        f"{graph.root_url}/Mail.Read",
        f"{graph.root_url}/User.ReadBasic.All",
    }
    assert all(r.authorized for r in graph.requests)


def test_the_delegated_token_cannot_read_another_persons_mailbox(graph: GraphServer, issuer: OidcIssuer) -> None:
    item = graph.state.add_message(ROBIN, nasty_mime())
    settings = settings_for(graph, issuer)

    with pytest.raises(NotYourMailbox):
        GraphMailbox(settings, GraphTokens(settings)).capture(
            ItemRef(item.ews_id, ROBIN, ALEX, user_token=issuer.mint(ALEX)), BytesSink()
        )


def test_a_sign_in_that_needs_mfa_asks_the_reporter_to_sign_in_again(graph: GraphServer, issuer: OidcIssuer) -> None:
    item = graph.state.add_message(ALEX, nasty_mime())
    issuer.fail_next_token_requests()  # AADSTS50076: multi-factor authentication required
    settings = settings_for(graph, issuer)

    with pytest.raises(Unauthenticated):
        GraphMailbox(settings, GraphTokens(settings)).capture(
            ItemRef(item.ews_id, ALEX, ALEX, user_token=issuer.mint(ALEX)), BytesSink()
        )

    assert graph.requests == []


def test_a_token_endpoint_that_stops_answering_is_given_up_on_in_the_configured_time(
    graph: GraphServer, issuer: OidcIssuer
) -> None:
    """msal's own session has no timeout: one hung endpoint would hold the report, and a server
    thread, for as long as it hangs."""
    item = graph.state.add_message(ALEX, nasty_mime())
    settings = settings_for(graph, issuer, ews_timeout="1", exchange_max_wait="1")
    issuer.delay_token_requests(8)
    started = time.monotonic()

    with pytest.raises(MailboxUnavailable):
        GraphMailbox(settings, GraphTokens(settings)).capture(
            ItemRef(item.ews_id, ALEX, ALEX, user_token=issuer.mint(ALEX)), BytesSink()
        )

    assert time.monotonic() - started < 6
    assert graph.requests == []


def test_a_token_from_another_issuer_is_refused_by_graph(graph: GraphServer, issuer: OidcIssuer) -> None:
    item = graph.state.add_message(ALEX, nasty_mime())
    settings = settings_for(graph, issuer)
    with OidcIssuer(tls=True, app_roles={graph.root_url: ("Mail.Read",)}) as stranger:
        forged = stranger.factory.mint(ALEX, audience=graph.root_url, scopes=["Mail.Read", "User.ReadBasic.All"])

    class Forged:
        def app_token(self) -> str:
            return forged

        def delegated_token(self, user_assertion: str, scopes: object) -> str:
            return forged

        def forget(self, access_token: str) -> None:
            return None

    with pytest.raises(Unauthenticated):
        GraphMailbox(settings, Forged()).capture(ItemRef(item.ews_id, ALEX, ALEX, user_token="x"), BytesSink())

    assert [r.operation for r in graph.requests] == ["translateExchangeIds", "translateExchangeIds"]


def test_the_directory_uses_a_client_credentials_token(graph: GraphServer, issuer: OidcIssuer) -> None:
    settings = settings_for(graph, issuer)

    chain = GraphDirectory(settings, GraphTokens(settings)).manager_chain(ALEX)

    assert [p.address for p in chain] == [SARA]
    assert [g.grant_type for g in issuer.grants] == ["client_credentials"]
    assert issuer.grants[0].scopes == (f"{graph.root_url}/.default",)
