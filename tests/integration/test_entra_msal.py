"""msal 1.x against the Entra double over TLS: both grants the service uses, and its errors.

msal accepts only ``https://`` authorities, so the double serves TLS with a throw-away CA that is
trusted either through ``REQUESTS_CA_BUNDLE`` or msal's own ``verify=`` argument.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jwt
import msal
import pytest
import requests

from addin_service.auth.tokens import TokenValidator
from addin_service.demo.oidc import GRAPH, OidcIssuer
from tests.fakes.entra import settings_for_issuer

UPN = "morgan.diaz@contoso.com"


@pytest.fixture(scope="module")
def running() -> Iterator[OidcIssuer]:
    with OidcIssuer(tls=True) as issuer:
        yield issuer


@pytest.fixture
def issuer(running: OidcIssuer) -> Iterator[OidcIssuer]:
    running.reset()
    yield running
    running.reset()


@pytest.fixture
def trusted(issuer: OidcIssuer, monkeypatch: pytest.MonkeyPatch) -> OidcIssuer:
    """The issuer, with its CA trusted process-wide as an admin would with REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(issuer.ca_bundle_path))
    return issuer


def confidential_app(
    issuer: OidcIssuer, *, tenant: str | None = None, **kwargs: Any
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        issuer.client_id,
        client_credential=kwargs.pop("secret", issuer.client_secret),
        authority=f"{issuer.authority}/{tenant or issuer.tenant_id}",
        instance_discovery=False,
        **kwargs,
    )


@pytest.fixture
def close_apps() -> Iterator[list[msal.ConfidentialClientApplication]]:
    apps: list[msal.ConfidentialClientApplication] = []
    yield apps
    for app in apps:
        app.http_client.close()


def test_the_double_really_speaks_tls(issuer: OidcIssuer) -> None:
    assert issuer.authority.startswith("https://127.0.0.1:")
    assert issuer.ca_bundle_path is not None

    with requests.Session() as http:
        with pytest.raises(requests.exceptions.SSLError):
            http.get(issuer.discovery_url, timeout=5, verify=True)
        assert http.get(issuer.discovery_url, timeout=5, verify=str(issuer.ca_bundle_path)).status_code == 200


def test_msal_client_credentials_with_the_ca_bundle_from_the_environment(
    trusted: OidcIssuer, close_apps: list[msal.ConfidentialClientApplication]
) -> None:
    app = confidential_app(trusted)
    close_apps.append(app)

    first = app.acquire_token_for_client(scopes=[f"{GRAPH}/.default"])
    second = app.acquire_token_for_client(scopes=[f"{GRAPH}/.default"])

    assert "access_token" in first, first.get("error_description")
    assert second["access_token"] == first["access_token"]  # msal's cache answered the second time
    claims = jwt.decode(first["access_token"], options={"verify_signature": False})
    assert claims["aud"] == GRAPH and "Mail.Read" in claims["roles"]
    assert [(g.grant_type, g.succeeded) for g in trusted.grants] == [("client_credentials", True)]


def test_msal_on_behalf_of_with_an_explicit_verify_path(
    issuer: OidcIssuer, close_apps: list[msal.ConfidentialClientApplication], monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's verify (psf/requests#4726),
    # so msal's verify= only takes effect when neither is set.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    app = confidential_app(issuer, verify=str(issuer.ca_bundle_path))
    close_apps.append(app)
    user_token = issuer.demo_token(UPN)

    result = app.acquire_token_on_behalf_of(user_token, scopes=[f"{GRAPH}/Mail.Read"])

    assert "access_token" in result, result.get("error_description")
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == GRAPH
    assert claims["scp"] == "Mail.Read"
    assert claims["preferred_username"] == UPN
    [grant] = issuer.grants
    assert (grant.grant_type, grant.subject, grant.succeeded) == ("on_behalf_of", UPN, True)


def test_msal_with_the_tenant_domain_as_authority_reaches_the_tenant(
    trusted: OidcIssuer, close_apps: list[msal.ConfidentialClientApplication]
) -> None:
    assert trusted.tenant_domain is not None
    app = confidential_app(trusted, tenant=trusted.tenant_domain)
    close_apps.append(app)

    result = app.acquire_token_for_client(scopes=[f"{GRAPH}/.default"])

    assert "access_token" in result, result.get("error_description")
    # Discovery named the tenant GUID in token_endpoint, as Entra does, and msal followed it.
    assert trusted.grants[0].tenant == trusted.tenant_id


def test_msal_surfaces_aadsts_errors_from_on_behalf_of(
    trusted: OidcIssuer, close_apps: list[msal.ConfidentialClientApplication]
) -> None:
    app = confidential_app(trusted)
    close_apps.append(app)
    trusted.fail_next_token_requests("interaction_required", 50076)

    result = app.acquire_token_on_behalf_of(trusted.demo_token(UPN), scopes=[f"{GRAPH}/Mail.Read"])

    assert "access_token" not in result
    assert result["error"] == "interaction_required"
    assert result["error_codes"] == [50076]


def test_msal_with_a_wrong_secret_gets_invalid_client(
    trusted: OidcIssuer, close_apps: list[msal.ConfidentialClientApplication]
) -> None:
    app = confidential_app(trusted, secret="not-the-secret")  # noqa: S106 - a test value
    close_apps.append(app)

    result = app.acquire_token_for_client(scopes=[f"{GRAPH}/.default"])

    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]


def test_the_validator_trusts_the_double_over_tls(trusted: OidcIssuer) -> None:
    validator = TokenValidator(settings_for_issuer(trusted))
    try:
        caller = validator.validate(trusted.demo_token(UPN))
    finally:
        validator.close()

    assert caller.upn == UPN
