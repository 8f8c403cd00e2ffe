"""ADDIN_CLIENT_CERTIFICATE: the application's certificate credential, checked at start, used by msal.

Every refusal names the variable to fix and never echoes key material.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from addin_service.client_certificate import load_client_certificate
from addin_service.errors import ConfigError
from addin_service.mail.graph_tokens import GraphTokens, _warn_if_expiring
from addin_service.settings import Settings
from tests.fakes.entra import AppCertificate, app_certificate
from tests.fakes.graph import CLIENT_ID, CLIENT_SECRET, TENANT_ID, fixture, graph_settings

AUTHORITY = "https://login.example.test"
TOKEN_URL = f"{AUTHORITY}/{TENANT_ID}/oauth2/v2.0/token"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a test value


@pytest.fixture(scope="module")
def pair() -> AppCertificate:
    return app_certificate()


@pytest.fixture(scope="module")
def other() -> AppCertificate:
    return app_certificate()


def certificate_settings(path: Path, **env: str) -> Settings:
    """Graph, app mode, a certificate and no secret."""
    values = {"client_secret": "", "client_certificate": str(path), "graph_auth": "app", **env}
    return graph_settings("https://graph.microsoft.com/v1.0", authority=AUTHORITY, **values)


def refusal(path: Path, **env: str) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        certificate_settings(path, **env)
    return raised.value


def assert_no_key_material(error: ConfigError, pair: AppCertificate) -> None:
    text = str(error)
    assert "PRIVATE KEY" not in text
    assert "MII" not in text  # the start of any base64 DER key or certificate
    body = b"".join(pair.key_pem().splitlines()[1:-1]).decode()
    assert body[:40] not in text


# -- accepted ---------------------------------------------------------------------------------


def test_graph_starts_with_a_certificate_and_no_secret(tmp_path: Path, pair: AppCertificate) -> None:
    settings = certificate_settings(pair.write(tmp_path / "app.pem"))

    assert settings.client_certificate == str(tmp_path / "app.pem")
    assert settings.client_secret is None


def test_an_encrypted_key_is_read_with_the_password(tmp_path: Path, pair: AppCertificate) -> None:
    path = pair.write(tmp_path / "app.pem", password=PASSWORD)

    settings = certificate_settings(path, client_certificate_password=PASSWORD)

    assert PASSWORD not in repr(settings)


def test_a_traditional_encrypted_rsa_key_is_read_with_the_password(tmp_path: Path, pair: AppCertificate) -> None:
    path = tmp_path / "app.pem"
    path.write_bytes(pair.key_pem(PASSWORD, traditional=True) + pair.certificate_pem)

    certificate_settings(path, client_certificate_password=PASSWORD)


def test_the_certificate_may_come_first_and_a_chain_may_follow(
    tmp_path: Path, pair: AppCertificate, other: AppCertificate
) -> None:
    path = tmp_path / "app.pem"
    path.write_bytes(pair.certificate_pem + pair.key_pem() + other.certificate_pem)

    loaded = load_client_certificate(str(path))

    assert loaded.certificate_pem.encode() == pair.certificate_pem
    der = pair.certificate.public_bytes(serialization.Encoding.DER)
    assert loaded.sha256_thumbprint == hashlib.sha256(der).hexdigest()
    assert "PRIVATE KEY" not in repr(loaded)


# -- refused, naming the variable ---------------------------------------------------------------


def test_graph_without_a_secret_or_a_certificate_names_both() -> None:
    with pytest.raises(ConfigError) as raised:
        graph_settings(client_secret="")

    assert raised.value.variable == "ADDIN_CLIENT_SECRET"
    assert "ADDIN_CLIENT_CERTIFICATE" in str(raised.value)


def test_a_missing_file_names_the_variable(tmp_path: Path) -> None:
    error = refusal(tmp_path / "nowhere.pem")

    assert error.variable == "ADDIN_CLIENT_CERTIFICATE"
    assert str(error).startswith("ADDIN_CLIENT_CERTIFICATE: ")


def test_an_unreadable_file_names_the_variable(tmp_path: Path, pair: AppCertificate) -> None:
    path = pair.write(tmp_path / "app.pem")

    with pytest.raises(ConfigError) as raised:
        load_client_certificate(str(tmp_path))  # a directory: open() fails

    assert raised.value.variable == "ADDIN_CLIENT_CERTIFICATE"
    assert path.exists()


def test_a_file_that_is_not_pem_names_the_variable(tmp_path: Path, pair: AppCertificate) -> None:
    path = tmp_path / "app.pfx"
    path.write_bytes(pair.certificate.public_bytes(serialization.Encoding.DER))

    error = refusal(path)

    assert error.variable == "ADDIN_CLIENT_CERTIFICATE"
    assert "not a PEM file" in str(error)
    assert "openssl pkcs12" in str(error)


def test_a_key_and_a_certificate_that_are_not_a_pair_are_refused(
    tmp_path: Path, pair: AppCertificate, other: AppCertificate
) -> None:
    path = tmp_path / "app.pem"
    path.write_bytes(pair.key_pem() + other.certificate_pem)

    error = refusal(path)

    assert error.variable == "ADDIN_CLIENT_CERTIFICATE"
    assert "not a pair" in str(error)
    assert_no_key_material(error, pair)


def test_an_encrypted_key_without_a_password_names_the_password_variable(tmp_path: Path, pair: AppCertificate) -> None:
    error = refusal(pair.write(tmp_path / "app.pem", password=PASSWORD))

    assert error.variable == "ADDIN_CLIENT_CERTIFICATE_PASSWORD"
    assert "encrypted" in str(error)


def test_a_wrong_password_names_the_password_variable_and_is_not_shown(tmp_path: Path, pair: AppCertificate) -> None:
    error = refusal(pair.write(tmp_path / "app.pem", password=PASSWORD), client_certificate_password="not the password")

    assert error.variable == "ADDIN_CLIENT_CERTIFICATE_PASSWORD"
    assert "not the password" not in str(error)
    assert_no_key_material(error, pair)


def test_a_password_for_a_key_that_is_not_encrypted_is_refused(tmp_path: Path, pair: AppCertificate) -> None:
    error = refusal(pair.write(tmp_path / "app.pem"), client_certificate_password=PASSWORD)

    assert error.variable == "ADDIN_CLIENT_CERTIFICATE_PASSWORD"
    assert PASSWORD not in str(error)


def test_a_password_without_a_certificate_is_refused() -> None:
    with pytest.raises(ConfigError) as raised:
        graph_settings(client_certificate_password=PASSWORD)

    assert raised.value.variable == "ADDIN_CLIENT_CERTIFICATE_PASSWORD"


def test_an_expired_certificate_is_refused_with_its_date(tmp_path: Path, pair: AppCertificate) -> None:
    now = datetime.now(UTC)
    expired = app_certificate(key=pair.key, not_before=now - timedelta(days=400), not_after=now - timedelta(days=2))

    error = refusal(expired.write(tmp_path / "app.pem"))

    assert error.variable == "ADDIN_CLIENT_CERTIFICATE"
    assert f"expired on {(now - timedelta(days=2)).date().isoformat()}" in str(error)


def test_a_certificate_not_yet_valid_is_refused(tmp_path: Path, pair: AppCertificate) -> None:
    now = datetime.now(UTC)
    future = app_certificate(key=pair.key, not_before=now + timedelta(days=3), not_after=now + timedelta(days=30))

    assert refusal(future.write(tmp_path / "app.pem")).variable == "ADDIN_CLIENT_CERTIFICATE"


def test_two_private_keys_are_refused(tmp_path: Path, pair: AppCertificate, other: AppCertificate) -> None:
    path = tmp_path / "app.pem"
    path.write_bytes(pair.key_pem() + other.key_pem() + pair.certificate_pem)

    error = refusal(path)

    assert "2 private keys" in str(error)
    assert_no_key_material(error, pair)


def test_a_key_without_its_certificate_is_refused(tmp_path: Path, pair: AppCertificate) -> None:
    path = tmp_path / "app.pem"
    path.write_bytes(pair.key_pem())

    error = refusal(path)

    assert error.variable == "ADDIN_CLIENT_CERTIFICATE"
    assert "no CERTIFICATE" in str(error)


def test_a_key_that_is_not_rsa_is_refused(tmp_path: Path, pair: AppCertificate) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "app.pem"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem + pair.certificate_pem)

    error = refusal(path)

    assert error.variable == "ADDIN_CLIENT_CERTIFICATE"
    assert "RSA" in str(error)


def test_a_short_rsa_key_is_refused(tmp_path: Path) -> None:
    short = app_certificate(key=rsa.generate_private_key(public_exponent=65537, key_size=1024))

    error = refusal(short.write(tmp_path / "app.pem"))

    assert "1024-bit" in str(error)


def test_ews_oauth_still_needs_a_secret_because_exchangelib_takes_no_certificate(
    tmp_path: Path, pair: AppCertificate
) -> None:
    env = {
        "ADDIN_EXCHANGE": "ews",
        "ADDIN_EWS_URL": "https://mail.contoso.com/EWS/Exchange.asmx",
        "ADDIN_EWS_AUTH": "oauth-app",
        "ADDIN_TENANT_ID": TENANT_ID,
        "ADDIN_CLIENT_ID": CLIENT_ID,
        "ADDIN_CLIENT_CERTIFICATE": str(pair.write(tmp_path / "app.pem")),
    }

    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env, cwd=tmp_path)

    assert raised.value.variable == "ADDIN_CLIENT_SECRET"
    assert "ADDIN_EWS_AUTH=oauth-app" in str(raised.value)


# -- what msal sends ----------------------------------------------------------------------------


@pytest.fixture
def entra() -> Iterator[responses.RequestsMock]:
    document = json.loads(
        json.dumps(fixture("openid_configuration.json")).replace("https://login.microsoftonline.com", AUTHORITY)
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.GET, f"{AUTHORITY}/{TENANT_ID}/v2.0/.well-known/openid-configuration", json=document)
        mock.add(responses.POST, TOKEN_URL, json=fixture("token_app.json"))
        yield mock


def sent_form(mock: responses.RequestsMock) -> dict[str, list[str]]:
    (call,) = [c for c in mock.calls if c.request.url == TOKEN_URL]
    return parse_qs(str(call.request.body))


def test_msal_signs_a_ps256_assertion_with_the_sha256_thumbprint_and_sends_no_secret(
    tmp_path: Path, pair: AppCertificate, entra: responses.RequestsMock
) -> None:
    tokens = GraphTokens(
        certificate_settings(pair.write(tmp_path / "app.pem", password=PASSWORD), client_certificate_password=PASSWORD)
    )

    tokens.app_token()

    form = sent_form(entra)
    assert "client_secret" not in form
    assert form["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
    (assertion,) = form["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    der = pair.certificate.public_bytes(serialization.Encoding.DER)
    assert header["alg"] == "PS256"
    assert header["x5t#S256"].rstrip("=") == base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    assert "".join(header["x5c"][0].split()) == base64.b64encode(der).decode()
    claims = jwt.decode(assertion, pair.key.public_key(), algorithms=["PS256"], audience=TOKEN_URL)
    assert claims["iss"] == claims["sub"] == CLIENT_ID


def test_the_certificate_is_preferred_when_a_secret_is_set_too(
    tmp_path: Path, pair: AppCertificate, entra: responses.RequestsMock
) -> None:
    settings = certificate_settings(pair.write(tmp_path / "app.pem"), client_secret=CLIENT_SECRET)

    GraphTokens(settings).app_token()

    form = sent_form(entra)
    assert "client_secret" not in form
    assert "client_assertion" in form


def test_a_certificate_that_lapses_within_a_month_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    now = datetime(2026, 12, 3, tzinfo=UTC)
    with caplog.at_level(logging.WARNING, logger="addin_service.mail.graph_tokens"):
        _warn_if_expiring(now + timedelta(days=90), now)
        assert not caplog.records
        _warn_if_expiring(now + timedelta(days=12, hours=3), now)

    (record,) = caplog.records
    assert "ADDIN_CLIENT_CERTIFICATE" in record.getMessage() and "in 12 days" in record.getMessage()
    assert getattr(record, "days_left") == 12  # noqa: B009 - set through logging's extra
