"""EwsMailbox with ADDIN_EWS_AUTH=oauth-obo: the reporter's add-in token is exchanged with msal
(on behalf of, against the Entra double over TLS) for a delegated ``EWS.AccessAsUser.All`` token,
and the EWS double, which checks the token's signature, issuer and audience, lets that user read
only what they may read. Nobody is impersonated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from addin_service.app import build_app
from addin_service.bootstrap import build_container
from addin_service.demo.ews_server import EwsServer
from addin_service.demo.graph_server import jwt_verifier
from addin_service.demo.oidc import OidcIssuer
from addin_service.errors import MailboxUnavailable, NotYourMailbox, Unauthenticated
from addin_service.mail.ews import EwsMailbox
from addin_service.mail.ports import ItemRef
from addin_service.settings import Settings
from tests.fakes.ews import FAST_RETRY, REPORTER, MemorySink, ews_settings
from tests.fakes.stack import stack_env

MIME = b"Subject: read as the reporter\r\n\r\nbody"
COLLEAGUE = "robin@contoso.com"
SHARED = "hr-shared@contoso.com"


@pytest.fixture
def server() -> Iterator[EwsServer]:
    with EwsServer() as running:
        running.add_mailbox(REPORTER)
        running.add_mailbox(COLLEAGUE)
        yield running


@pytest.fixture
def issuer(server: EwsServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[OidcIssuer]:
    resource = server.url.split("/EWS/")[0]
    with OidcIssuer(
        tls=True,
        app_roles={resource: ("full_access_as_app",)},  # the directory's own calls
        delegated_scopes={resource: ("EWS.AccessAsUser.All",)},
    ) as running:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.ca_bundle_path))
        server.verify_token = jwt_verifier(running.factory.jwks(), issuer=running.issuer, audience=resource)
        yield running


def obo_mailbox(server: EwsServer, issuer: OidcIssuer, **overrides: str) -> EwsMailbox:
    settings = ews_settings(
        server,
        ews_auth="oauth-obo",
        ews_username="",
        ews_password="",
        tenant_id=issuer.tenant_id,
        client_id=issuer.client_id,
        client_secret=issuer.client_secret,
        authority=issuer.authority,
        **overrides,
    )
    return EwsMailbox(settings, retry=FAST_RETRY)


def ref(item_id: str, issuer: OidcIssuer, *, mailbox: str = REPORTER, reporter: str = REPORTER) -> ItemRef:
    return ItemRef(item_id, mailbox, reporter, user_token=issuer.mint(reporter))


def test_the_reporter_captures_their_own_message_with_a_delegated_token(
    server: EwsServer, issuer: OidcIssuer
) -> None:
    item_id = server.add_message(REPORTER, MIME)
    sink = MemorySink()

    captured = obo_mailbox(server, issuer).capture(ref(item_id, issuer), sink)

    assert sink.data == MIME and captured.adapter == "ews"
    [request] = server.requests
    assert request.operation == "GetItem"
    assert (request.username, request.impersonated, request.headers["Authorization"]) == (None, None, "Bearer")
    assert request.headers["X-AnchorMailbox"] == REPORTER
    [grant] = issuer.grants
    resource = server.url.split("/EWS/")[0]
    assert (grant.grant_type, grant.subject) == ("on_behalf_of", REPORTER)
    assert [s for s in grant.scopes if s.startswith(resource)] == [f"{resource}/EWS.AccessAsUser.All"]


def test_the_delegated_token_is_reused_until_it_expires(server: EwsServer, issuer: OidcIssuer) -> None:
    item_id = server.add_message(REPORTER, MIME)
    mailbox = obo_mailbox(server, issuer)
    reference = ref(item_id, issuer)
    for _ in range(3):
        mailbox.capture(reference, MemorySink())
    assert len(issuer.grants) == 1 and len(set(server.bearer_tokens)) == 1


def test_exchange_not_the_service_stops_a_reporter_reading_someone_elses_mailbox(
    server: EwsServer, issuer: OidcIssuer
) -> None:
    theirs = server.add_message(COLLEAGUE, MIME)
    with pytest.raises(NotYourMailbox):
        obo_mailbox(server, issuer).capture(ref(theirs, issuer, mailbox=COLLEAGUE), MemorySink())
    assert all(r.impersonated is None for r in server.requests)


def test_a_shared_mailbox_the_reporter_may_read_is_captured_as_the_reporter(
    server: EwsServer, issuer: OidcIssuer
) -> None:
    server.add_mailbox(SHARED)
    server.grant(SHARED, REPORTER)
    item_id = server.add_message(SHARED, MIME)
    sink = MemorySink()
    obo_mailbox(server, issuer).capture(ref(item_id, issuer, mailbox=SHARED), sink)
    assert sink.data == MIME
    assert [r.operation for r in server.requests] == ["ConvertId", "GetItem"]


def test_a_token_exchange_stops_accepting_is_replaced_once(server: EwsServer, issuer: OidcIssuer) -> None:
    item_id = server.add_message(REPORTER, MIME)
    mailbox = obo_mailbox(server, issuer)
    reference = ref(item_id, issuer)
    mailbox.capture(reference, MemorySink())
    server.revoke_token(server.bearer_tokens[0])

    sink = MemorySink()
    mailbox.capture(reference, sink)

    assert sink.data == MIME
    assert len(issuer.grants) == 2 and len(set(server.bearer_tokens)) == 2


def test_exchange_refusing_fresh_tokens_too_asks_the_reporter_to_sign_in_again(
    server: EwsServer, issuer: OidcIssuer
) -> None:
    item_id = server.add_message(REPORTER, MIME)
    server.verify_token = lambda token: {"scp": "Mail.Read", "preferred_username": REPORTER}  # wrong scope
    with pytest.raises(Unauthenticated) as raised:
        obo_mailbox(server, issuer).capture(ref(item_id, issuer), MemorySink())
    assert "sign" in raised.value.detail.lower()
    assert server.count("GetItem") == 2  # one fresh token was tried, no more


def test_no_add_in_token_means_sign_in_again_and_nothing_is_sent(server: EwsServer, issuer: OidcIssuer) -> None:
    item_id = server.add_message(REPORTER, MIME)
    with pytest.raises(Unauthenticated):
        obo_mailbox(server, issuer).capture(ItemRef(item_id, REPORTER, REPORTER), MemorySink())
    assert server.count() == 0 and issuer.grants == []


def test_mfa_required_by_entra_asks_the_reporter_to_sign_in_again(server: EwsServer, issuer: OidcIssuer) -> None:
    item_id = server.add_message(REPORTER, MIME)
    issuer.fail_next_token_requests("interaction_required", 50076)
    with pytest.raises(Unauthenticated):
        obo_mailbox(server, issuer).capture(ref(item_id, issuer), MemorySink())
    assert server.count() == 0


def test_sign_in_service_down_is_unavailable_and_nothing_reaches_exchange(
    server: EwsServer, issuer: OidcIssuer
) -> None:
    item_id = server.add_message(REPORTER, MIME)
    issuer.fail_next_token_requests("temporarily_unavailable", 0, "busy", status=503, count=5)
    with pytest.raises(MailboxUnavailable) as raised:
        obo_mailbox(server, issuer).capture(ref(item_id, issuer), MemorySink())
    assert raised.value.retry_after
    assert server.count() == 0


def test_related_messages_are_searched_as_the_reporter(server: EwsServer, issuer: OidcIssuer) -> None:
    sender = "harasser@evil.example"
    mime = f"From: {sender}\r\nSubject: again\r\n\r\nbody".encode()
    reported = server.add_message(REPORTER, mime)
    other = server.add_message(REPORTER, mime)
    found = obo_mailbox(server, issuer).find_from_sender(ref(reported, issuer), sender, 10)
    assert found == [other]
    assert {r.impersonated for r in server.requests} == {None}
    assert len(issuer.grants) == 1


def test_readiness_needs_no_token_of_the_service(server: EwsServer, issuer: OidcIssuer) -> None:
    mailbox = obo_mailbox(server, issuer)
    mailbox.check()  # EWS answered (401 to a request without credentials): reachable
    assert issuer.grants == []


def test_readiness_fails_when_exchange_is_down(issuer: OidcIssuer) -> None:
    with EwsServer() as running:
        mailbox = EwsMailbox(
            ews_settings(
                running,
                ews_auth="oauth-obo",
                tenant_id=issuer.tenant_id,
                client_id=issuer.client_id,
                client_secret=issuer.client_secret,
                authority=issuer.authority,
            ),
            retry=FAST_RETRY,
        )
    with pytest.raises(MailboxUnavailable):
        mailbox.check()


def test_without_a_pinned_version_no_discovery_request_is_made(server: EwsServer, issuer: OidcIssuer) -> None:
    item_id = server.add_message(REPORTER, MIME)
    obo_mailbox(server, issuer, ews_version="").capture(ref(item_id, issuer), MemorySink())
    [request] = server.requests
    assert request.requested_version == "Exchange2013_SP1"


def test_the_service_files_a_report_read_with_the_reporters_own_rights(
    server: EwsServer, issuer: OidcIssuer, tmp_path: Path
) -> None:
    mime = b"From: Sam <sam@fabrikam.example>\r\nSubject: hi\r\n\r\nbody \x00\xff\r\n.\n"
    mine = server.add_message(REPORTER, mime)
    theirs = server.add_message(COLLEAGUE, mime)
    env = stack_env(
        tmp_path,
        server,
        issuer,
        ADDIN_EWS_AUTH="oauth-obo",
        ADDIN_EWS_USERNAME="",
        ADDIN_EWS_PASSWORD="",
        ADDIN_CLIENT_SECRET=issuer.client_secret,
    )
    settings = Settings.from_env(env, cwd=tmp_path)
    app = build_app(container=build_container(settings))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {issuer.mint(REPORTER)}"}
    try:
        filed = client.post("/api/v1/reports", json={"item_id": mine, "category": "stalking"}, headers=headers)
        refused = client.post(
            "/api/v1/reports",
            json={"item_id": theirs, "category": "stalking", "mailbox": COLLEAGUE},
            headers=headers,
        )
    finally:
        app.extensions["addin"].close()

    assert filed.status_code == 201, filed.get_json()
    body = filed.get_json()
    package = tmp_path / "evidence" / body["case_id"] / body["report_id"]
    assert (package / "message.eml").read_bytes() == mime
    assert json.loads((package / "metadata.json").read_text())["capture"]["adapter"] == "ews"
    assert refused.status_code == 403
    captures = [r for r in server.requests if r.operation in ("GetItem", "ConvertId")]
    assert captures and all(r.impersonated is None and r.username is None for r in captures)
