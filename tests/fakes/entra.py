"""Pytest-friendly wrappers around the Entra ID double (``addin_service.demo.oidc``).

* :class:`EntraResponses` serves an :class:`EntraTokenFactory`'s discovery document and key set
  through ``responses`` at Entra's real URLs, counting calls and able to go down. Unit tests.
* :func:`settings_for` builds validated :class:`Settings` pointing at an issuer.
* :class:`FakeClock` drives the validator's caches without sleeping.
* :func:`app_certificate` makes a throw-away key and self-signed certificate for
  ``ADDIN_CLIENT_CERTIFICATE`` (certificate credentials), written as PEM.

Integration tests use :class:`OidcIssuer` itself (real HTTP/TLS on 127.0.0.1).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
import responses
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from addin_service.demo.oidc import EntraTokenFactory, OidcIssuer
from addin_service.demo.tls import self_signed_certificate
from addin_service.settings import Settings

ENTRA = "https://login.microsoftonline.com"
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
TENANT_DOMAIN = "contoso.onmicrosoft.com"
CLIENT_ID = "535fb089-9ff3-47b6-9bfb-4f1264799865"
CLIENT_SECRET = "test-secret-not-real"  # noqa: S105 - a test double's credential

Callback = Callable[[requests.PreparedRequest], tuple[int, dict[str, str], str]]


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def settings_for(
    authority: str = ENTRA,
    *,
    tenant: str = TENANT_ID,
    client_id: str = CLIENT_ID,
    **env: str,
) -> Settings:
    """Settings validated exactly as in production, for the Graph + OBO set-up."""
    values = {
        "ADDIN_EXCHANGE": "graph",
        "ADDIN_TENANT_ID": tenant,
        "ADDIN_CLIENT_ID": client_id,
        "ADDIN_CLIENT_SECRET": CLIENT_SECRET,
        "ADDIN_AUTHORITY": authority,
    }
    values.update({f"ADDIN_{k.upper()}": v for k, v in env.items()})
    return Settings.from_env(values, cwd=Path("/nonexistent-test-cwd"))


def settings_for_issuer(issuer: OidcIssuer, *, tenant: str | None = None) -> Settings:
    """Settings that trust ``issuer`` for its tenant and client id."""
    return settings_for(issuer.authority, tenant=tenant or issuer.tenant_id, client_id=issuer.client_id)


@dataclass(frozen=True)
class AppCertificate:
    """A throw-away application key and its self-signed certificate."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: str | None = None, *, traditional: bool = False) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
        )
        form = serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
        return self.key.private_bytes(serialization.Encoding.PEM, form, encryption)

    def write(self, path: Path, *, password: str | None = None, extra: bytes = b"") -> Path:
        """Key then certificate (then ``extra``) in one PEM file, as an admin would make it."""
        path.write_bytes(self.key_pem(password) + self.certificate_pem + extra)
        return path


def app_certificate(
    *,
    key: rsa.RSAPrivateKey | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key_size: int = 2048,
) -> AppCertificate:
    """A fresh RSA key and a self-signed certificate for it (valid from yesterday for a year)."""
    private = key or rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    certificate = self_signed_certificate(
        private, "report-harassment-addin.test", not_before=not_before, not_after=not_after
    )
    return AppCertificate(private, certificate)


class EntraResponses:
    """Entra's discovery and JWKS endpoints for one tenant, served from a factory via ``responses``.

    ``calls`` counts requests per endpoint name (``"discovery"``, ``"jwks"``). Set ``down`` to
    make every endpoint refuse connections (or add names to ``failing`` for just those), or
    ``status`` to answer with that HTTP status.
    ``discovery_overrides`` / ``jwks_transform`` let a test serve odd documents.
    """

    def __init__(
        self,
        rsps: responses.RequestsMock,
        factory: EntraTokenFactory,
        *,
        tenant_segment: str | None = None,
    ) -> None:
        self.factory = factory
        self.calls: dict[str, int] = {"discovery": 0, "jwks": 0}
        self.down = False
        self.failing: set[str] = set()
        self.status = 200
        self.discovery_overrides: dict[str, Any] = {}
        self.jwks_transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        segment = tenant_segment or factory.tenant_id
        self.discovery_url = f"{factory.authority}/{segment}/v2.0/.well-known/openid-configuration"
        self.jwks_url = f"{factory.authority}/{factory.tenant_id}/discovery/v2.0/keys"
        rsps.add_callback(responses.GET, self.discovery_url, callback=self._discovery)
        rsps.add_callback(responses.GET, self.jwks_url, callback=self._jwks)
        self._segment = segment

    def _answer(
        self, name: str, document: Callable[[], Mapping[str, Any]]
    ) -> tuple[int, dict[str, str], str]:
        self.calls[name] += 1
        if self.down or name in self.failing:
            raise requests.ConnectionError("connection refused (test: Entra is down)")
        if self.status != 200:
            return self.status, {"Content-Type": "text/html"}, "<html>Service Unavailable</html>"
        return 200, {"Content-Type": "application/json"}, json.dumps(document())

    def _discovery(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        def document() -> Mapping[str, Any]:
            base = self.factory.discovery_document(self._segment)
            base.update(self.discovery_overrides)
            return base

        return self._answer("discovery", document)

    def _jwks(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        def document() -> Mapping[str, Any]:
            keys = self.factory.jwks()
            return self.jwks_transform(keys) if self.jwks_transform else keys

        return self._answer("jwks", document)
