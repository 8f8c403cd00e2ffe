"""GraphTokens: msal's on-behalf-of and client-credentials grants, cached, with errors decided."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
import requests
import responses

from addin_service.errors import ConfigError, MailboxUnavailable, Unauthenticated
from addin_service.mail.graph_tokens import CAPTURE_SCOPES, GraphTokens, graph_resource
from tests.fakes.graph import CLIENT_ID, CLIENT_SECRET, TENANT_ID, FakeTime, fixture, graph_settings

AUTHORITY = "https://login.example.test"
TENANT_URL = f"{AUTHORITY}/{TENANT_ID}"
TOKEN_URL = f"{TENANT_URL}/oauth2/v2.0/token"
ASSERTION = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJhZGQtaW4ifQ.the-add-in-sso-token"


def discovery() -> dict[str, object]:
    document = fixture("openid_configuration.json")
    text = json.dumps(document).replace("https://login.microsoftonline.com", AUTHORITY)
    return dict(json.loads(text))


@pytest.fixture
def entra() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.GET, f"{TENANT_URL}/v2.0/.well-known/openid-configuration", json=discovery())
        yield mock


def token_calls(mock: responses.RequestsMock) -> list[dict[str, list[str]]]:
    return [parse_qs(str(call.request.body)) for call in mock.calls if call.request.url == TOKEN_URL]


def tokens_for(graph_url: str = "https://graph.microsoft.com/v1.0", **kwargs: object) -> GraphTokens:
    settings = graph_settings(graph_url, authority=AUTHORITY)
    return GraphTokens(settings, **kwargs)  # type: ignore[arg-type]


def test_graph_resource_is_the_scheme_and_host_of_the_graph_url() -> None:
    assert graph_resource("https://graph.microsoft.us/v1.0") == "https://graph.microsoft.us"
    assert graph_resource("http://127.0.0.1:8123/v1.0") == "http://127.0.0.1:8123"


def test_on_behalf_of_exchanges_the_sso_token_for_graph_scopes_of_the_configured_cloud(
    entra: responses.RequestsMock,
) -> None:
    entra.add(responses.POST, TOKEN_URL, json=fixture("token_obo.json"))
    tokens = tokens_for("https://graph.microsoft.us/v1.0")

    token = tokens.delegated_token(ASSERTION, CAPTURE_SCOPES)

    assert token == fixture("token_obo.json")["access_token"]
    (form,) = token_calls(entra)
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert form["requested_token_use"] == ["on_behalf_of"]
    assert form["assertion"] == [ASSERTION]
    assert form["client_id"] == [CLIENT_ID]
    assert form["client_secret"] == [CLIENT_SECRET]
    scopes = form["scope"][0].split()
    assert "https://graph.microsoft.us/Mail.Read" in scopes
    assert "https://graph.microsoft.us/User.ReadBasic.All" in scopes
    assert not any(s.startswith("https://graph.microsoft.com") for s in scopes)


def test_on_behalf_of_tokens_are_reused_until_five_minutes_before_they_expire(
    entra: responses.RequestsMock,
) -> None:
    entra.add(responses.POST, TOKEN_URL, json=fixture("token_obo.json"))
    time = FakeTime()
    tokens = tokens_for(clock=time.clock)

    tokens.delegated_token(ASSERTION, CAPTURE_SCOPES)
    time.advance(3599 - 301)
    tokens.delegated_token(ASSERTION, CAPTURE_SCOPES)
    assert len(token_calls(entra)) == 1

    time.advance(2)
    tokens.delegated_token(ASSERTION, CAPTURE_SCOPES)
    assert len(token_calls(entra)) == 2


def test_another_sign_in_or_other_scopes_get_their_own_token(entra: responses.RequestsMock) -> None:
    entra.add(responses.POST, TOKEN_URL, json=fixture("token_obo.json"))
    tokens = tokens_for()

    tokens.delegated_token(ASSERTION, CAPTURE_SCOPES)
    tokens.delegated_token(ASSERTION + "-someone-else", CAPTURE_SCOPES)
    tokens.delegated_token(ASSERTION, ("Mail.Read", "Mail.Read.Shared", "User.ReadBasic.All"))

    assert len(token_calls(entra)) == 3


def test_a_forgotten_token_is_never_handed_out_again(entra: responses.RequestsMock) -> None:
    entra.add(responses.POST, TOKEN_URL, json=fixture("token_obo.json"))
    tokens = tokens_for()

    first = tokens.delegated_token(ASSERTION, CAPTURE_SCOPES)
    tokens.forget(first)
    tokens.delegated_token(ASSERTION, CAPTURE_SCOPES)

    assert len(token_calls(entra)) == 2


@pytest.mark.parametrize(
    "payload",
    ["token_invalid_grant_assertion.json", "token_interaction_required.json"],
)
def test_a_sign_in_that_cannot_be_exchanged_asks_the_user_to_sign_in_again(
    entra: responses.RequestsMock, payload: str
) -> None:
    entra.add(responses.POST, TOKEN_URL, status=400, json=fixture(payload))

    with pytest.raises(Unauthenticated) as raised:
        tokens_for().delegated_token(ASSERTION, CAPTURE_SCOPES)

    assert "sign" in raised.value.detail.lower()
    assert raised.value.error == "invalid_token"


def test_missing_consent_asks_for_consent_not_just_a_new_sign_in(entra: responses.RequestsMock) -> None:
    entra.add(responses.POST, TOKEN_URL, status=400, json=fixture("token_consent_required.json"))

    with pytest.raises(Unauthenticated) as raised:
        tokens_for().delegated_token(ASSERTION, CAPTURE_SCOPES)

    assert raised.value.error == "insufficient_scope"
    assert "consent" in raised.value.detail


def test_refused_service_credentials_are_unavailability_not_the_users_fault(
    entra: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    entra.add(responses.POST, TOKEN_URL, status=401, json=fixture("token_invalid_client.json"))
    caplog.set_level(logging.DEBUG, logger="addin_service")

    with pytest.raises(MailboxUnavailable):
        tokens_for().delegated_token(ASSERTION, CAPTURE_SCOPES)

    assert [getattr(r, "entra_error", None) for r in caplog.records] == ["invalid_client"]
    assert CLIENT_SECRET not in caplog.text
    assert ASSERTION not in caplog.text


def test_a_busy_token_endpoint_is_unavailability(entra: responses.RequestsMock) -> None:
    entra.add(responses.POST, TOKEN_URL, status=400, json=fixture("token_temporarily_unavailable.json"))

    with pytest.raises(MailboxUnavailable) as raised:
        tokens_for().delegated_token(ASSERTION, CAPTURE_SCOPES)

    assert raised.value.retry_after == 30


def test_a_token_endpoint_answering_503_is_unavailability(entra: responses.RequestsMock) -> None:
    entra.add(responses.POST, TOKEN_URL, status=503, body="<html>Service Unavailable</html>")

    with pytest.raises(MailboxUnavailable):
        tokens_for().app_token()


def test_an_unreachable_authority_is_unavailability_and_is_tried_again_next_time() -> None:
    tokens = tokens_for()
    with responses.RequestsMock() as mock:
        mock.add(
            responses.GET,
            f"{TENANT_URL}/v2.0/.well-known/openid-configuration",
            body=requests.ConnectionError("connection refused"),
        )
        with pytest.raises(MailboxUnavailable):
            tokens.app_token()

    with responses.RequestsMock() as mock:
        mock.add(responses.GET, f"{TENANT_URL}/v2.0/.well-known/openid-configuration", json=discovery())
        mock.add(responses.POST, TOKEN_URL, json=fixture("token_app.json"))
        assert tokens.app_token() == fixture("token_app.json")["access_token"]


def test_app_tokens_use_the_default_scope_of_the_graph_resource_and_are_cached(
    entra: responses.RequestsMock,
) -> None:
    entra.add(responses.POST, TOKEN_URL, json=fixture("token_app.json"))
    tokens = tokens_for("https://microsoftgraph.chinacloudapi.cn/v1.0")

    tokens.app_token()
    tokens.app_token()

    (form,) = token_calls(entra)
    assert form["grant_type"] == ["client_credentials"]
    assert form["scope"] == ["https://microsoftgraph.chinacloudapi.cn/.default"]


def test_a_forgotten_app_token_is_acquired_again(entra: responses.RequestsMock) -> None:
    entra.add(responses.POST, TOKEN_URL, json=fixture("token_app.json"))
    tokens = tokens_for()

    tokens.forget(tokens.app_token())
    tokens.app_token()

    assert len(token_calls(entra)) == 2


def test_app_token_failures_are_never_blamed_on_the_user(entra: responses.RequestsMock) -> None:
    entra.add(responses.POST, TOKEN_URL, status=400, json=fixture("token_invalid_grant_assertion.json"))

    with pytest.raises(MailboxUnavailable):
        tokens_for().app_token()


def test_no_sign_in_means_sign_in_again_without_asking_entra() -> None:
    with responses.RequestsMock(), pytest.raises(Unauthenticated):
        tokens_for().delegated_token("", CAPTURE_SCOPES)


def test_an_authority_that_is_not_microsofts_is_used_as_configured(entra: responses.RequestsMock) -> None:
    entra.add(responses.POST, TOKEN_URL, json=fixture("token_app.json"))

    tokens_for().app_token()

    # Instance discovery would ask login.microsoftonline.com to vouch for the authority: a test
    # double (or a sovereign proxy) must be trusted as configured instead.
    assert {str(call.request.url).split("/")[2] for call in entra.calls} == {"login.example.test"}


def test_a_missing_client_secret_names_the_variable() -> None:
    # Graph only for notifications, EWS with a service account for capture: no secret configured.
    settings = graph_settings(authority=AUTHORITY).replace(
        exchange="ews",
        ews_url="https://mail.contoso.com/EWS/Exchange.asmx",
        ews_auth="ntlm",
        ews_username="svc-report",
        ews_password="not-a-real-password",
        notify_transport="graph",
        client_secret=None,
    )

    with pytest.raises(ConfigError) as raised:
        GraphTokens(settings)

    assert raised.value.variable == "ADDIN_CLIENT_SECRET"
