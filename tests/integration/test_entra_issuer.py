"""The Entra double over real HTTP on 127.0.0.1: the validator against it, and its token endpoint
answering like Entra (grants, AADSTS errors) to plain ``requests``."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
import requests

from addin_service.auth.metadata import MIN_REFETCH_INTERVAL, IdentityProviderUnavailable
from addin_service.auth.tokens import TokenValidator
from addin_service.demo.oidc import GRAPH, JWT_BEARER, OidcIssuer
from tests.fakes.entra import FakeClock, settings_for_issuer

UPN = "jo.bloggs@contoso.com"


@pytest.fixture(scope="module")
def running() -> Iterator[OidcIssuer]:
    with OidcIssuer() as issuer:
        yield issuer


@pytest.fixture
def issuer(running: OidcIssuer) -> Iterator[OidcIssuer]:
    running.reset()
    yield running
    running.reset()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def token_request(
    http: requests.Session, issuer: OidcIssuer, form: dict[str, str], **kwargs: Any
) -> requests.Response:
    return http.post(issuer.token_url, data=form, timeout=5, **kwargs)


def client_credentials(issuer: OidcIssuer, scope: str = f"{GRAPH}/.default") -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": issuer.client_id,
        "client_secret": issuer.client_secret,
        "scope": scope,
    }


def on_behalf_of(issuer: OidcIssuer, assertion: str, scope: str = f"{GRAPH}/Mail.Read") -> dict[str, str]:
    return {
        "grant_type": JWT_BEARER,
        "requested_token_use": "on_behalf_of",
        "client_id": issuer.client_id,
        "client_secret": issuer.client_secret,
        "assertion": assertion,
        "scope": f"{scope} offline_access openid profile",
    }


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


# -- the validator against the live double ------------------------------------------------------


def test_the_validator_accepts_a_demo_token_fetching_metadata_once(issuer: OidcIssuer) -> None:
    validator = TokenValidator(settings_for_issuer(issuer))
    try:
        callers = [validator.validate(issuer.demo_token(UPN)) for _ in range(3)]
    finally:
        validator.close()

    assert {c.upn for c in callers} == {UPN}
    assert issuer.request_count(issuer.discovery_path) == 1
    assert issuer.request_count(issuer.jwks_path) == 1


def test_a_tenant_configured_by_domain_validates_against_the_double(issuer: OidcIssuer) -> None:
    assert issuer.tenant_domain is not None
    validator = TokenValidator(settings_for_issuer(issuer, tenant=issuer.tenant_domain))
    try:
        caller = validator.validate(issuer.demo_token(UPN))
    finally:
        validator.close()

    assert caller.tenant_id == issuer.tenant_id
    assert issuer.request_count(f"/{issuer.tenant_domain}/v2.0/.well-known/openid-configuration") == 1


def test_a_key_rotation_is_picked_up_with_one_more_key_fetch() -> None:
    clock = FakeClock()
    with OidcIssuer() as issuer:
        validator = TokenValidator(settings_for_issuer(issuer), clock=clock)
        try:
            validator.validate(issuer.demo_token(UPN))
            clock.advance(MIN_REFETCH_INTERVAL)
            issuer.rotate_key()
            caller = validator.validate(issuer.demo_token(UPN))
        finally:
            validator.close()
        jwks_fetches = issuer.request_count(issuer.jwks_path)

    assert caller.upn == UPN
    assert jwks_fetches == 2


def test_an_issuer_that_is_not_listening_makes_sign_in_unavailable() -> None:
    issuer = OidcIssuer().start()
    settings, token = settings_for_issuer(issuer), issuer.demo_token(UPN)
    issuer.stop()
    validator = TokenValidator(settings)
    try:
        with pytest.raises(IdentityProviderUnavailable) as caught:
            validator.validate(token)
    finally:
        validator.close()

    assert caught.value.status == 503


def test_an_issuer_answering_503_makes_sign_in_unavailable(issuer: OidcIssuer) -> None:
    issuer.set_down()
    validator = TokenValidator(settings_for_issuer(issuer))
    try:
        with pytest.raises(IdentityProviderUnavailable):
            validator.validate(issuer.demo_token(UPN))
    finally:
        validator.close()


def test_requests_are_counted_per_path(issuer: OidcIssuer, http: requests.Session) -> None:
    http.get(issuer.discovery_url, timeout=5)
    http.get(issuer.discovery_url, timeout=5)
    http.get(issuer.jwks_url, timeout=5)

    assert issuer.requests == {issuer.discovery_path: 2, issuer.jwks_path: 1}
    assert issuer.request_count() == 3


# -- client credentials -------------------------------------------------------------------------


def test_client_credentials_yield_an_app_token_with_the_granted_roles(
    issuer: OidcIssuer, http: requests.Session
) -> None:
    response = token_request(http, issuer, client_credentials(issuer))

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    claims = claims_of(body["access_token"])
    assert claims["aud"] == GRAPH
    assert claims["azp"] == issuer.client_id
    assert claims["idtyp"] == "app"
    assert "scp" not in claims
    assert set(claims["roles"]) >= {"Mail.Read", "Mail.Send"}


def test_client_secret_may_come_in_basic_auth(issuer: OidcIssuer, http: requests.Session) -> None:
    form = client_credentials(issuer)
    del form["client_id"], form["client_secret"]
    pair = f"{urllib.parse.quote_plus(issuer.client_id)}:{urllib.parse.quote_plus(issuer.client_secret)}"
    basic = base64.b64encode(pair.encode()).decode()

    response = token_request(http, issuer, form, headers={"Authorization": f"Basic {basic}"})

    assert response.status_code == 200


def test_every_grant_is_recorded_without_secrets_or_tokens(
    issuer: OidcIssuer, http: requests.Session
) -> None:
    assertion = issuer.demo_token(UPN)
    token_request(http, issuer, client_credentials(issuer))
    obo = token_request(http, issuer, on_behalf_of(issuer, assertion))
    bad = dict(client_credentials(issuer), client_secret="wrong")  # noqa: S106 - a test value
    token_request(http, issuer, bad)

    grants = issuer.grants
    assert [(g.grant_type, g.succeeded, g.error_code) for g in grants] == [
        ("client_credentials", True, None),
        ("on_behalf_of", True, None),
        ("client_credentials", False, 7000215),
    ]
    assert grants[1].subject == UPN
    recorded = repr(grants)
    for secret in (issuer.client_secret, assertion, obo.json()["access_token"]):
        assert secret not in recorded


# -- on behalf of -------------------------------------------------------------------------------


def test_on_behalf_of_returns_a_token_for_the_same_person(issuer: OidcIssuer, http: requests.Session) -> None:
    assertion = issuer.demo_token(UPN)

    response = token_request(http, issuer, on_behalf_of(issuer, assertion))

    assert response.status_code == 200
    body = response.json()
    assert body["scope"] == f"{GRAPH}/Mail.Read"
    incoming, outgoing = claims_of(assertion), claims_of(body["access_token"])
    assert outgoing["aud"] == GRAPH
    assert outgoing["scp"] == "Mail.Read"
    assert outgoing["azp"] == issuer.client_id
    assert (outgoing["oid"], outgoing["preferred_username"], outgoing["tid"]) == (
        incoming["oid"],
        incoming["preferred_username"],
        incoming["tid"],
    )


def test_on_behalf_of_with_default_scope_grants_the_consented_permissions(
    issuer: OidcIssuer, http: requests.Session
) -> None:
    form = on_behalf_of(issuer, issuer.demo_token(UPN), scope=f"{GRAPH}/.default")

    scp = claims_of(token_request(http, issuer, form).json()["access_token"])["scp"].split()

    assert {"Mail.Read", "User.Read"} <= set(scp)


FormBuilder = Callable[[OidcIssuer], dict[str, str]]

REFUSALS: list[tuple[str, FormBuilder, int, str, int]] = [
    (
        "unknown client",
        lambda i: dict(client_credentials(i), client_id="00000000-0000-0000-0000-00000000dead"),
        400,
        "unauthorized_client",
        700016,
    ),
    (
        "wrong secret",
        lambda i: dict(client_credentials(i), client_secret="nope"),
        401,
        "invalid_client",
        7000215,
    ),
    (
        "no secret",
        lambda i: {k: v for k, v in client_credentials(i).items() if k != "client_secret"},
        401,
        "invalid_client",
        7000218,
    ),
    (
        "no scope",
        lambda i: {k: v for k, v in client_credentials(i).items() if k != "scope"},
        400,
        "invalid_request",
        900144,
    ),
    (
        "no grant type",
        lambda i: {k: v for k, v in client_credentials(i).items() if k != "grant_type"},
        400,
        "invalid_request",
        900144,
    ),
    (
        "app scope without /.default",
        lambda i: client_credentials(i, scope=f"{GRAPH}/Mail.Read"),
        400,
        "invalid_scope",
        1002012,
    ),
    (
        "password grant",
        lambda i: dict(client_credentials(i), grant_type="password"),
        400,
        "unsupported_grant_type",
        70003,
    ),
    (
        "expired assertion",
        lambda i: on_behalf_of(i, i.factory.forge_expired(UPN)),
        400,
        "invalid_grant",
        500133,
    ),
    (
        "assertion for another app",
        lambda i: on_behalf_of(i, i.mint(UPN, audience=GRAPH)),
        400,
        "invalid_grant",
        50013,
    ),
    (
        "forged assertion",
        lambda i: on_behalf_of(i, i.factory.forge_with_unknown_key(UPN)),
        400,
        "invalid_grant",
        50013,
    ),
    (
        "unsigned assertion",
        lambda i: on_behalf_of(i, i.factory.forge_unsigned(UPN)),
        400,
        "invalid_grant",
        50013,
    ),
    (
        "app token as assertion",
        lambda i: on_behalf_of(i, i.factory.mint_app_token(i.client_id, i.client_id, ["x"])),
        400,
        "invalid_grant",
        50013,
    ),
    ("garbage assertion", lambda i: on_behalf_of(i, "not-a-jwt"), 400, "invalid_request", 50027),
    (
        "no assertion",
        lambda i: {k: v for k, v in on_behalf_of(i, "x").items() if k != "assertion"},
        400,
        "invalid_request",
        900144,
    ),
    (
        "scope never consented",
        lambda i: on_behalf_of(i, i.demo_token(UPN), scope=f"{GRAPH}/Directory.ReadWrite.All"),
        400,
        "invalid_grant",
        65001,
    ),
    (
        "two resources",
        lambda i: on_behalf_of(i, i.demo_token(UPN), scope=f"{GRAPH}/Mail.Read api://other/x"),
        400,
        "invalid_scope",
        28000,
    ),
]


@pytest.mark.parametrize(
    ("builder", "status", "error", "code"),
    [pytest.param(b, s, e, c, id=name) for name, b, s, e, c in REFUSALS],
)
def test_token_requests_are_refused_in_entras_error_shape(
    issuer: OidcIssuer, http: requests.Session, builder: FormBuilder, status: int, error: str, code: int
) -> None:
    response = token_request(http, issuer, builder(issuer), headers={"client-request-id": "corr-123"})

    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert body["correlation_id"] == "corr-123"
    assert {"timestamp", "trace_id", "error_uri"} <= set(body)
    assert issuer.grants[-1].error_code == code


def test_an_unknown_tenant_is_aadsts90002(issuer: OidcIssuer, http: requests.Session) -> None:
    base = f"{issuer.authority}/fabrikam.example"
    discovery = http.get(f"{base}/v2.0/.well-known/openid-configuration", timeout=5)
    keys = http.get(f"{base}/discovery/v2.0/keys", timeout=5)
    token = http.post(f"{base}/oauth2/v2.0/token", data=client_credentials(issuer), timeout=5)

    for response in (discovery, keys, token):
        assert response.status_code == 400
        assert response.json()["error_codes"] == [90002]
    assert issuer.grants[-1].error_code == 90002


def test_injected_failures_answer_the_next_requests_then_clear(
    issuer: OidcIssuer, http: requests.Session
) -> None:
    issuer.fail_next_token_requests("temporarily_unavailable", 50196, "Try again later.", status=503, count=2)

    statuses = [token_request(http, issuer, client_credentials(issuer)).status_code for _ in range(3)]

    assert statuses == [503, 503, 200]


def test_a_down_issuer_answers_503_everywhere(issuer: OidcIssuer, http: requests.Session) -> None:
    issuer.set_down()

    assert http.get(issuer.discovery_url, timeout=5).status_code == 503
    assert token_request(http, issuer, client_credentials(issuer)).status_code == 503


def test_the_issuer_can_listen_on_a_chosen_port_and_refuses_a_taken_one() -> None:
    with OidcIssuer() as first:
        port = int(first.authority.rsplit(":", 1)[1])
        with pytest.raises(OSError):
            OidcIssuer(port=port, tls=True).start()
    with OidcIssuer(port=port) as second:
        assert second.authority == f"http://127.0.0.1:{port}"
