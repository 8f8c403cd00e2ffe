"""Certificate credentials end to end: ADDIN_CLIENT_CERTIFICATE, real msal over TLS, the Entra double
verifying the client assertion as Entra does, and the Graph double accepting only its tokens.

The double's refusals are checked with hand-made assertions against its real token endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import hashes
from flask.testing import FlaskClient

from addin_service.app import build_app
from addin_service.bootstrap import build_container
from addin_service.demo.graph_server import GraphServer
from addin_service.demo.oidc import CLIENT_ASSERTION_TYPE, OidcIssuer
from addin_service.mail.graph import GraphMailbox
from addin_service.mail.graph_tokens import GraphTokens
from addin_service.mail.ports import ItemRef
from addin_service.settings import Settings
from tests.fakes.entra import AppCertificate, app_certificate
from tests.fakes.graph import BytesSink, entra_for_graph, nasty_mime

ALEX = "alex@contoso.com"
MIME = b"From: Sam <sam@fabrikam.example>\r\nTo: alex@contoso.com\r\nSubject: hi\r\n\r\nbody \x00\xff\r\n.\n"


@pytest.fixture(scope="module")
def registered() -> AppCertificate:
    return app_certificate()


@pytest.fixture(scope="module")
def stranger() -> AppCertificate:
    return app_certificate()


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    with GraphServer() as running:
        running.state.add_user(ALEX, "Alex Wilber")
        yield running


@pytest.fixture
def issuer(graph: GraphServer, registered: AppCertificate, monkeypatch: pytest.MonkeyPatch) -> Iterator[OidcIssuer]:
    with entra_for_graph(graph, monkeypatch) as running:
        running.register_certificate(registered.certificate_pem)
        yield running


def settings_for(graph: GraphServer, issuer: OidcIssuer, pem: Path, tmp_path: Path, **env: str) -> Settings:
    values = {
        "ADDIN_EXCHANGE": "graph",
        "ADDIN_GRAPH_URL": graph.graph_url,
        "ADDIN_GRAPH_AUTH": "app",
        "ADDIN_TENANT_ID": issuer.tenant_id,
        "ADDIN_CLIENT_ID": issuer.client_id,
        "ADDIN_CLIENT_CERTIFICATE": str(pem),
        "ADDIN_AUTHORITY": issuer.authority,
        "ADDIN_EXCHANGE_MAX_WAIT": "2",
        "ADDIN_DATABASE_URL": f"sqlite:///{tmp_path / 'addin.db'}",
        "ADDIN_EVIDENCE_URL": f"file://{tmp_path / 'evidence'}",
    }
    values.update({f"ADDIN_{k.upper()}": v for k, v in env.items()})
    return Settings.from_env(values, cwd=tmp_path)


@pytest.fixture
def client_for(
    graph: GraphServer, issuer: OidcIssuer, tmp_path: Path
) -> Iterator[Callable[[AppCertificate], FlaskClient]]:
    apps: list[Any] = []

    def build(certificate: AppCertificate) -> FlaskClient:
        settings = settings_for(graph, issuer, certificate.write(tmp_path / "app.pem"), tmp_path)
        app = build_app(container=build_container(settings))
        apps.append(app)
        return app.test_client()

    yield build
    for app in apps:
        app.extensions["addin"].close()


def report(client: FlaskClient, issuer: OidcIssuer, item_id: str) -> Any:
    return client.post(
        "/api/v1/reports",
        json={"item_id": item_id, "category": "stalking"},
        headers={"Authorization": f"Bearer {issuer.mint(ALEX)}"},
    )


# -- the service ------------------------------------------------------------------------------


def test_app_mode_with_a_certificate_files_a_report_through_graph(
    graph: GraphServer,
    issuer: OidcIssuer,
    registered: AppCertificate,
    client_for: Callable[[AppCertificate], FlaskClient],
    tmp_path: Path,
) -> None:
    item = graph.state.add_message(ALEX, MIME)

    response = report(client_for(registered), issuer, item.ews_id)

    assert response.status_code == 201
    body = response.get_json()
    assert (tmp_path / "evidence" / body["case_id"] / body["report_id"] / "message.eml").read_bytes() == MIME
    grants = [g for g in issuer.grants if g.grant_type == "client_credentials"]
    assert grants and all(g.succeeded for g in grants)
    assert {(g.client_auth, g.assertion_alg) for g in grants} == {("client_assertion", "PS256")}
    assert all(r.authorized for r in graph.requests)


def test_a_certificate_entra_does_not_know_is_the_credentials_refused_unavailability(
    graph: GraphServer,
    issuer: OidcIssuer,
    stranger: AppCertificate,
    client_for: Callable[[AppCertificate], FlaskClient],
) -> None:
    item = graph.state.add_message(ALEX, MIME)

    response = report(client_for(stranger), issuer, item.ews_id)

    assert response.status_code == 503
    assert "could not get access to Exchange" in response.get_json()["detail"]
    assert int(response.headers["Retry-After"]) >= 1
    refused = [g for g in issuer.grants if not g.succeeded]
    assert refused and {(g.error, g.error_code) for g in refused} == {("invalid_client", 700027)}
    assert not any(r.operation == "getMimeContent" for r in graph.requests)


def test_on_behalf_of_works_with_the_certificate_too(
    graph: GraphServer, issuer: OidcIssuer, registered: AppCertificate, tmp_path: Path
) -> None:
    item = graph.state.add_message(ALEX, nasty_mime())
    settings = settings_for(graph, issuer, registered.write(tmp_path / "app.pem"), tmp_path, graph_auth="obo")
    sink = BytesSink()

    GraphMailbox(settings, GraphTokens(settings)).capture(
        ItemRef(item.ews_id, ALEX, ALEX, user_token=issuer.mint(ALEX)), sink
    )

    assert bytes(sink.data) == nasty_mime()
    (grant,) = issuer.grants
    assert grant.grant_type == "on_behalf_of" and grant.client_auth == "client_assertion" and grant.succeeded


# -- the double verifies client assertions as Entra does -----------------------------------------


def thumbprint(certificate: AppCertificate, algorithm: hashes.HashAlgorithm) -> str:
    return base64.urlsafe_b64encode(certificate.certificate.fingerprint(algorithm)).decode()


def assertion(
    issuer: OidcIssuer,
    certificate: AppCertificate,
    *,
    alg: str = "PS256",
    header: dict[str, Any] | None = None,
    signer: AppCertificate | None = None,
    **claims: Any,
) -> str:
    now = int(time.time())
    payload = {
        "aud": issuer.token_url,
        "iss": issuer.client_id,
        "sub": issuer.client_id,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    headers = header if header is not None else {"x5t#S256": thumbprint(certificate, hashes.SHA256())}
    return jwt.encode(payload, (signer or certificate).key, algorithm=alg, headers=headers)


def token_request(issuer: OidcIssuer, client_assertion: str, **extra: str) -> requests.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": issuer.client_id,
        "scope": "https://graph.microsoft.com/.default",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": client_assertion,
        **extra,
    }
    return requests.post(issuer.token_url, data=form, timeout=10)


def test_a_ps256_assertion_with_the_sha256_thumbprint_gets_a_token(
    issuer: OidcIssuer, registered: AppCertificate
) -> None:
    response = token_request(issuer, assertion(issuer, registered))

    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"


def test_a_legacy_rs256_assertion_with_the_sha1_thumbprint_gets_a_token(
    issuer: OidcIssuer, registered: AppCertificate
) -> None:
    header = {"x5t": thumbprint(registered, hashes.SHA1())}  # noqa: S303 - x5t is SHA-1 by definition

    response = token_request(issuer, assertion(issuer, registered, alg="RS256", header=header))

    assert response.status_code == 200


Refusal = Callable[[OidcIssuer, AppCertificate, AppCertificate], str]

REFUSALS: dict[str, tuple[Refusal, int]] = {
    "audience is another endpoint": (
        lambda i, r, s: assertion(i, r, aud=f"{i.authority}/{uuid.uuid4()}/oauth2/v2.0/token"),
        700027,
    ),
    "issuer is another app": (lambda i, r, s: assertion(i, r, iss=str(uuid.uuid4())), 700021),
    "subject is another app": (lambda i, r, s: assertion(i, r, sub=str(uuid.uuid4())), 700021),
    "expired": (lambda i, r, s: assertion(i, r, iat=int(time.time()) - 3600, exp=int(time.time()) - 600), 700024),
    "no expiry": (lambda i, r, s: assertion(i, r, exp=None), 50027),
    "unregistered certificate": (lambda i, r, s: assertion(i, s), 700027),
    "signed by another key": (lambda i, r, s: assertion(i, r, signer=s), 700027),
    "sha256 thumbprint of another certificate": (
        lambda i, r, s: assertion(i, r, header={"x5t#S256": thumbprint(s, hashes.SHA256())}),
        700027,
    ),
    "no thumbprint": (lambda i, r, s: assertion(i, r, header={}), 700027),
    "hmac keyed with the certificate": (lambda i, r, s: hs256_with_certificate(i, r), 700027),
}


def hs256_with_certificate(issuer: OidcIssuer, certificate: AppCertificate) -> str:
    """The algorithm-confusion forgery: HMAC keyed with the public certificate's PEM."""

    def segment(part: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()

    header = {"alg": "HS256", "typ": "JWT", "x5t#S256": thumbprint(certificate, hashes.SHA256())}
    claims = {"aud": issuer.token_url, "iss": issuer.client_id, "sub": issuer.client_id, "exp": int(time.time()) + 600}
    signing_input = f"{segment(header)}.{segment(claims)}"
    mac = hmac.new(certificate.certificate_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_bad_client_assertion_is_refused_with_entras_error(
    issuer: OidcIssuer, registered: AppCertificate, stranger: AppCertificate, case: str
) -> None:
    make, code = REFUSALS[case]
    token = make(issuer, registered, stranger)

    response = token_request(issuer, token)

    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_client"
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert issuer.grants[-1].error_code == code


def test_a_certificate_whose_registration_expired_is_refused(issuer: OidcIssuer) -> None:
    now = datetime.now(UTC)
    expired = app_certificate(not_before=now - timedelta(days=30), not_after=now - timedelta(days=1))
    issuer.register_certificate(expired.certificate)

    response = token_request(issuer, assertion(issuer, expired))

    assert response.status_code == 401
    assert response.json()["error_codes"] == [700027]
    assert "expired" in response.json()["error_description"]


def test_a_secret_and_an_assertion_together_are_refused(issuer: OidcIssuer, registered: AppCertificate) -> None:
    response = token_request(issuer, assertion(issuer, registered), client_secret=issuer.client_secret)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_a_wrong_assertion_type_is_refused(issuer: OidcIssuer, registered: AppCertificate) -> None:
    response = token_request(issuer, assertion(issuer, registered), client_assertion_type="urn:example:other")

    assert response.status_code == 400
    assert json.loads(response.text)["error"] == "invalid_request"


def test_the_secret_still_works_beside_a_registered_certificate(issuer: OidcIssuer) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": issuer.client_id,
        "client_secret": issuer.client_secret,
        "scope": "https://graph.microsoft.com/.default",
    }

    response = requests.post(issuer.token_url, data=form, timeout=10)

    assert response.status_code == 200
    assert issuer.grants[-1].client_auth == "client_secret"
