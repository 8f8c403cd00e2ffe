"""EwsMailbox with ADDIN_EWS_AUTH=oauth-app: client-credentials token from the Entra double (TLS),
then EWS with a bearer token and impersonation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from addin_service.demo.ews_server import EwsServer
from addin_service.demo.oidc import OidcIssuer
from addin_service.errors import MailboxUnavailable
from addin_service.mail.ews import EwsMailbox
from addin_service.mail.ports import ItemRef
from tests.fakes.ews import FAST_RETRY, REPORTER, MemorySink, ews_settings

MIME = b"Subject: over oauth\r\n\r\nbody"


@pytest.fixture
def issuer(monkeypatch: pytest.MonkeyPatch) -> Iterator[OidcIssuer]:
    with OidcIssuer(tls=True) as issuer:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(issuer.ca_bundle_path))
        # requests-oauthlib refuses plain http; the EWS double is http on loopback only.
        monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
        yield issuer


@pytest.fixture
def server() -> Iterator[EwsServer]:
    with EwsServer(accept_bearer=True) as server:
        server.add_mailbox(REPORTER)
        yield server


def oauth_mailbox(server: EwsServer, issuer: OidcIssuer, secret: str | None = None) -> EwsMailbox:
    settings = ews_settings(
        server,
        ews_auth="oauth-app",
        tenant_id=issuer.tenant_id,
        client_id=issuer.client_id,
        client_secret=secret or issuer.client_secret,
        authority=issuer.authority,
    )
    return EwsMailbox(settings, retry=FAST_RETRY)


def test_captures_with_an_app_token_while_impersonating_the_reporter(server: EwsServer, issuer: OidcIssuer) -> None:
    item_id = server.add_message(REPORTER, MIME)
    sink = MemorySink()
    oauth_mailbox(server, issuer).capture(ItemRef(item_id, REPORTER, REPORTER), sink)
    assert sink.data == MIME
    [request] = server.requests
    assert (request.username, request.impersonated, len(server.bearer_tokens)) == (None, REPORTER, 1)
    [grant] = issuer.grants
    resource = server.url.split("/EWS/")[0]
    assert (grant.grant_type, grant.scopes) == ("client_credentials", (f"{resource}/.default",))


def test_the_token_is_reused_across_captures(server: EwsServer, issuer: OidcIssuer) -> None:
    item_id = server.add_message(REPORTER, MIME)
    mailbox = oauth_mailbox(server, issuer)
    for _ in range(3):
        mailbox.capture(ItemRef(item_id, REPORTER, REPORTER), MemorySink())
    assert len(issuer.grants) == 1
    assert len(set(server.bearer_tokens)) == 1


def test_a_refused_client_secret_is_unavailable_with_a_message_for_the_admin(
    server: EwsServer, issuer: OidcIssuer
) -> None:
    item_id = server.add_message(REPORTER, MIME)
    with pytest.raises(MailboxUnavailable) as raised:
        oauth_mailbox(server, issuer, secret="not-the-secret").capture(
            ItemRef(item_id, REPORTER, REPORTER), MemorySink()
        )
    assert "ADDIN_CLIENT_SECRET" in raised.value.detail
    assert server.count() == 0


def test_a_token_exchange_stops_accepting_is_replaced_and_the_capture_retried(
    server: EwsServer, issuer: OidcIssuer
) -> None:
    item_id = server.add_message(REPORTER, MIME)
    mailbox = oauth_mailbox(server, issuer)
    mailbox.capture(ItemRef(item_id, REPORTER, REPORTER), MemorySink())
    server.revoke_token(server.bearer_tokens[0])
    sink = MemorySink()
    mailbox.capture(ItemRef(item_id, REPORTER, REPORTER), sink)
    assert sink.data == MIME
    assert len(issuer.grants) == 2
    assert len(set(server.bearer_tokens)) == 2
