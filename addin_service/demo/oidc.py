"""A Microsoft Entra ID double: discovery, signing keys and the token endpoint, over real HTTP(S).

The demo signs people in with it and the tests point the real code at it: ``TokenValidator``
fetches its discovery document and JWKS with ``requests``; msal's ``ConfidentialClientApplication``
acquires tokens from it with the client-credentials and on-behalf-of grants. It speaks Entra's
shapes (v2.0 discovery fields, JWKs with ``x5t``/``x5c``, v2.0 access-token claims, AADSTS error
bodies) so that what works against it works against Entra.

Two layers:

* :class:`EntraTokenFactory` signs tokens and builds the documents, with no I/O;
  unit tests serve it through ``responses``.
* :class:`OidcIssuer` serves a factory on ``127.0.0.1`` (random port) from a background thread,
  optionally over TLS with a throw-away CA (msal accepts only ``https://`` authorities), counts
  requests per path and records every grant (never a secret or a token).

Confidential clients authenticate with their secret or, like Entra's certificate credentials
(``private_key_jwt``), with a ``client_assertion`` signed by a certificate uploaded with
:meth:`OidcIssuer.register_certificate`: checked for its ``x5t#S256`` (PS256/RS256) or ``x5t``
(RS256) thumbprint, signature, ``aud`` (this tenant's token endpoint), ``iss`` = ``sub`` = the
client id, ``exp`` and ``nbf``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from addin_service.demo.tls import ThrowawayTls, make_throwaway_tls, self_signed_certificate

log = logging.getLogger(__name__)

GRAPH = "https://graph.microsoft.com"
EXCHANGE_ONLINE = "https://outlook.office365.com"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLIENT_ASSERTION_ALGORITHMS = ("PS256", "RS256")  # what Entra accepts for certificate credentials
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
DEFAULT_APP_ROLES: Mapping[str, tuple[str, ...]] = {
    GRAPH: ("Mail.Read", "Mail.ReadWrite", "Mail.Send", "User.Read.All"),  # what the README asks admins to grant
    EXCHANGE_ONLINE: ("full_access_as_app",),
}
DEFAULT_DELEGATED_SCOPES: Mapping[str, tuple[str, ...]] = {
    GRAPH: ("Mail.Read", "Mail.Read.Shared", "Mail.Send", "User.Read", "User.ReadBasic.All"),
    EXCHANGE_ONLINE: ("EWS.AccessAsUser.All",),
}
_MAX_BODY = 64 * 1024
_ASSERTION_LEEWAY = 60


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _opaque(n: int = 16) -> str:
    return _b64url(secrets.token_bytes(n))


def new_signing_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key, the size Entra ID uses."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class _KeyPair:
    kid: str
    private_key: rsa.RSAPrivateKey
    certificate_der: bytes

    @classmethod
    def create(cls, private_key: rsa.RSAPrivateKey | None = None) -> _KeyPair:
        """Wrap a key in a self-signed certificate; ``kid`` is its SHA-1 thumbprint, as in Entra."""
        key = private_key or new_signing_key()
        cert = self_signed_certificate(key, "accounts.entra-double.invalid")
        der = cert.public_bytes(serialization.Encoding.DER)
        thumbprint = hashlib.sha1(der, usedforsecurity=False).digest()
        return cls(kid=_b64url(thumbprint), private_key=key, certificate_der=der)

    def jwk(self, issuer: str) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
            "x5c": [base64.b64encode(self.certificate_der).decode("ascii")],
            "cloud_instance_name": "microsoftonline.com",
            "issuer": issuer,
        }

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass(frozen=True)
class DemoUser:
    """A person the double can sign in. ``oid`` is stable for a given tenant and address."""

    upn: str
    oid: str
    name: str


class EntraTokenFactory:
    """Signs Entra ID v2.0-shaped tokens and builds discovery and JWKS documents. No I/O. Thread-safe."""

    def __init__(
        self,
        authority: str,
        tenant_id: str | None = None,
        *,
        tenant_domain: str | None = "contoso.onmicrosoft.com",
        client_id: str | None = None,
    ) -> None:
        """:param authority: base URL, e.g. ``https://127.0.0.1:8443`` (use it as ``ADDIN_AUTHORITY``).
        :param tenant_id: the tenant GUID (random when omitted).
        :param tenant_domain: a domain that resolves to the same tenant in discovery paths.
        :param client_id: the add-in's application id, the default audience (random when omitted).
        """
        self.authority = authority.rstrip("/")
        self.tenant_id = str(uuid.UUID(tenant_id)) if tenant_id else str(uuid.uuid4())
        self.tenant_domain = tenant_domain.lower() if tenant_domain else None
        self.client_id = str(uuid.UUID(client_id)) if client_id else str(uuid.uuid4())
        self._lock = threading.Lock()
        self._keys: list[_KeyPair] = [_KeyPair.create()]
        self._signing_kid = self._keys[0].kid
        self._users: dict[str, DemoUser] = {}

    # -- documents ----------------------------------------------------------------------------

    def issuer(self, tenant: str | None = None) -> str:
        """The ``iss`` of v2.0 tokens for ``tenant`` (this tenant by default)."""
        return f"{self.authority}/{tenant or self.tenant_id}/v2.0"

    def resolve_tenant(self, segment: str) -> str | None:
        """The tenant GUID a path segment names (GUID or domain), or None when unknown."""
        lowered = segment.lower()
        if lowered == self.tenant_id or (self.tenant_domain and lowered == self.tenant_domain):
            return self.tenant_id
        return None

    def discovery_document(self, segment: str | None = None) -> dict[str, Any]:
        """The v2.0 OpenID configuration served for ``segment`` (tenant GUID, domain, or
        ``common``/``organizations``, which carry the ``{tenantid}`` placeholder in ``issuer``).

        :raises KeyError: ``segment`` names no tenant this double knows.
        """
        segment = segment or self.tenant_id
        if segment.lower() in ("common", "organizations"):
            tenant, path = "{tenantid}", segment.lower()
        else:
            resolved = self.resolve_tenant(segment)
            if resolved is None:
                raise KeyError(segment)
            tenant = path = resolved
        base = f"{self.authority}/{path}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": self.issuer(tenant),
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.authority}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def jwks(self, tenant: str | None = None) -> dict[str, Any]:
        """The JSON Web Key Set: every published key, each pinned to this tenant's issuer."""
        with self._lock:
            keys = list(self._keys)
        return {"keys": [k.jwk(self.issuer(tenant)) for k in keys]}

    # -- keys ---------------------------------------------------------------------------------

    @property
    def signing_kid(self) -> str:
        return self._signing_kid

    @property
    def kids(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(k.kid for k in self._keys)

    def publish_key(self) -> str:
        """Add a new key to the JWKS without signing with it yet (Entra publishes keys ahead)."""
        pair = _KeyPair.create()
        with self._lock:
            self._keys.append(pair)
        return pair.kid

    def rotate_key(self, *, retire_previous: bool = False) -> str:
        """Start signing with a new key (published now). The old key stays in the JWKS unless
        ``retire_previous``, as Entra keeps it during the overlap. Returns the new ``kid``."""
        pair = _KeyPair.create()
        with self._lock:
            previous = self._signing_kid
            self._keys.append(pair)
            self._signing_kid = pair.kid
            if retire_previous:
                self._keys = [k for k in self._keys if k.kid != previous]
        return pair.kid

    def retire_key(self, kid: str) -> None:
        """Remove a key from the JWKS. Tokens it signed stop validating once caches refresh.

        :raises ValueError: ``kid`` is the current signing key.
        """
        with self._lock:
            if kid == self._signing_kid:
                raise ValueError("rotate to another key before retiring the signing key")
            self._keys = [k for k in self._keys if k.kid != kid]

    def public_key_pem(self, kid: str | None = None) -> bytes:
        """The PEM of a published public key (the signing key by default)."""
        return self._pair(kid or self._signing_kid).public_pem()

    def _pair(self, kid: str) -> _KeyPair:
        with self._lock:
            for pair in self._keys:
                if pair.kid == kid:
                    return pair
        raise KeyError(kid)

    def public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        try:
            return self._pair(kid).private_key.public_key()
        except KeyError:
            return None

    # -- users --------------------------------------------------------------------------------

    def add_user(self, upn: str, *, name: str | None = None, oid: str | None = None) -> DemoUser:
        """Register a person with a chosen display name or object id."""
        user = DemoUser(upn=upn.lower(), oid=oid or self._derived_oid(upn), name=name or _display_name(upn))
        with self._lock:
            self._users[user.upn] = user
        return user

    def user(self, upn: str) -> DemoUser:
        """The registered person, or one derived from the address (same address → same oid)."""
        with self._lock:
            known = self._users.get(upn.lower())
        return known or DemoUser(upn=upn.lower(), oid=self._derived_oid(upn), name=_display_name(upn))

    def _derived_oid(self, upn: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"entra-double:{self.tenant_id}:{upn.lower()}"))

    # -- tokens -------------------------------------------------------------------------------

    def mint(
        self,
        upn: str,
        *,
        audience: str | None = None,
        scopes: Iterable[str] = ("access_as_user",),
        tenant: str | None = None,
        expires_in: int = 3600,
        not_before: datetime | None = None,
        kid: str | None = None,
        alg: str = "RS256",
        extra_claims: Mapping[str, Any] | None = None,
        signing_key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        """A v2.0 delegated access token for ``upn``, as Entra issues to the add-in.

        :param audience: ``aud``; the add-in's client id by default.
        :param scopes: ``scp`` (space-joined); empty omits the claim.
        :param tenant: tenant GUID for ``iss`` and ``tid`` (this tenant by default).
        :param expires_in: seconds from now; negative for an already expired token.
        :param not_before: ``nbf`` (now by default).
        :param kid: header ``kid`` (the signing key's by default).
        :param alg: ``RS256``; other RSA algorithms sign with the key; ``none`` leaves the
            signature empty; ``HS256`` signs with the public key's PEM as the HMAC secret (the
            algorithm-confusion attack). All but RS256 exist to test refusals.
        :param extra_claims: claims to add or replace; a value of None removes the claim.
        :param signing_key: sign with this key instead (a "wrong key" forgery).
        """
        user = self.user(upn)
        audience = audience or self.client_id
        tenant = tenant or self.tenant_id
        now = int(time.time())
        exp = now + expires_in
        issued = now if expires_in > 0 else exp - 3600
        nbf = int(not_before.timestamp()) if not_before is not None else issued
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer(tenant),
            "iat": issued,
            "nbf": nbf,
            "exp": exp,
            "aio": _opaque(40),
            "azp": self.client_id,
            "azpacr": "0",
            "name": user.name,
            "oid": user.oid,
            "preferred_username": user.upn,
            "rh": f"1.{_opaque(40)}.",
            "scp": " ".join(scopes),
            "sid": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{user.oid}:{now // 86400}")),
            "sub": _b64url(hashlib.sha256(f"{user.oid}:{audience}".encode()).digest()),
            "tid": tenant,
            "uti": _opaque(16),
            "ver": "2.0",
        }
        if not claims["scp"]:
            del claims["scp"]
        return self.sign(claims, kid=kid, alg=alg, signing_key=signing_key, extra_claims=extra_claims)

    def mint_app_token(
        self, client_id: str, resource: str, roles: Iterable[str], *, expires_in: int = 3599
    ) -> str:
        """A v2.0 app-only token (client credentials): ``roles``, no ``scp``, ``idtyp`` app."""
        now = int(time.time())
        principal_name = f"entra-double:sp:{self.tenant_id}:{client_id}"
        service_principal = str(uuid.uuid5(uuid.NAMESPACE_URL, principal_name))
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": self.issuer(),
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "aio": _opaque(40),
            "azp": client_id,
            "azpacr": "1",
            "idtyp": "app",
            "oid": service_principal,
            "rh": f"1.{_opaque(40)}.",
            "roles": sorted(set(roles)),
            "sub": service_principal,
            "tid": self.tenant_id,
            "uti": _opaque(16),
            "ver": "2.0",
        }
        return self.sign(claims)

    def demo_token(self, upn: str) -> str:
        """A one-hour token for the add-in's own API, as the demo sign-in hands to the task pane."""
        return self.mint(upn, audience=self.client_id, expires_in=3600)

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        kid: str | None = None,
        alg: str = "RS256",
        signing_key: rsa.RSAPrivateKey | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """Encode ``claims`` as a compact JWS (see :meth:`mint` for ``alg`` and ``signing_key``)."""
        payload = dict(claims)
        for name, value in (extra_claims or {}).items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        header_kid = kid or self._signing_kid
        header = {"typ": "JWT", "alg": alg, "kid": header_kid}
        if alg == "none":
            return f"{_segment(header)}.{_segment(payload)}."
        if alg == "HS256":
            secret = self.public_key_pem(self._signing_kid)
            signing_input = f"{_segment(header)}.{_segment(payload)}"
            mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
            return f"{signing_input}.{_b64url(mac)}"
        key = signing_key or self._pair(self._signing_kid).private_key
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": header_kid, "typ": "JWT"})

    # -- forgeries, for tests of the validator -------------------------------------------------

    def forge_unsigned(self, upn: str, **kwargs: Any) -> str:
        """``alg: none`` with an empty signature."""
        return self.mint(upn, alg="none", **kwargs)

    def forge_hs256_with_public_key(self, upn: str, **kwargs: Any) -> str:
        """HS256, keyed with the published RSA public key's PEM (RS/HS algorithm confusion)."""
        return self.mint(upn, alg="HS256", **kwargs)

    def forge_with_unknown_key(self, upn: str, **kwargs: Any) -> str:
        """RS256 signed by a key the issuer never published, claiming the real ``kid``."""
        return self.mint(upn, signing_key=new_signing_key(), **kwargs)

    def forge_expired(self, upn: str, *, seconds_ago: int = 600, **kwargs: Any) -> str:
        """A genuine token that expired ``seconds_ago``."""
        return self.mint(upn, expires_in=-seconds_ago, **kwargs)

    # -- validation of assertions presented to the token endpoint ------------------------------

    def decode_assertion(self, assertion: str, *, audiences: Iterable[str]) -> dict[str, Any]:
        """Check a user assertion as Entra does for on-behalf-of: our key, our issuer, an
        audience of the requesting app, not expired.

        :raises _GrantError: with the AADSTS code Entra would answer.
        """
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise _GrantError(400, "invalid_request", 50027, "JWT token is invalid or malformed.") from None
        kid = header.get("kid")
        key = self.public_key(kid) if isinstance(kid, str) else None
        if header.get("alg") != "RS256" or key is None:
            raise _GrantError(
                400,
                "invalid_grant",
                50013,
                "Assertion failed signature validation. [Reason - The key was not found.]",
            )
        expected = list(audiences)
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                issuer=self.issuer(),
                options={"verify_aud": False, "require": ["exp", "iss", "aud"]},
                leeway=_ASSERTION_LEEWAY,
            )
        except jwt.ExpiredSignatureError:
            raise _GrantError(
                400,
                "invalid_grant",
                500133,
                "Assertion is not within its valid time range. Ensure that the access token is not expired "
                "before using it for user assertion, or request a new token.",
            ) from None
        except jwt.InvalidSignatureError:
            raise _GrantError(400, "invalid_grant", 50013, "Assertion failed signature validation.") from None
        except jwt.PyJWTError:
            raise _GrantError(400, "invalid_grant", 50013, "Assertion is invalid.") from None
        if claims.get("aud") not in expected:
            raise _GrantError(
                400,
                "invalid_grant",
                50013,
                "Assertion audience does not match the Client app presenting the assertion. "
                f"The audience in the assertion was '{claims.get('aud')}' and the expected audience is "
                f"'{expected[0]}' or one of the Application Uris of this application.",
            )
        if not isinstance(claims.get("scp"), str) or not isinstance(claims.get("oid"), str):
            raise _GrantError(400, "invalid_grant", 50013, "Assertion is not a delegated (user) token.")
        return claims


def _segment(part: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(part, separators=(",", ":")).encode())


def _display_name(upn: str) -> str:
    local = upn.split("@", 1)[0]
    words = [w for w in local.replace("_", ".").replace("-", ".").split(".") if w]
    return " ".join(w.capitalize() for w in words) or upn


class _GrantError(Exception):
    """An AADSTS error to answer from the token endpoint."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(f"AADSTS{code}")
        self.status, self.error, self.code, self.description = status, error, code, description


@dataclass(frozen=True)
class GrantRecord:
    """One request to the token endpoint, as tests want to see it. Never holds a secret or token."""

    grant_type: str  # "client_credentials", "on_behalf_of", or whatever was sent
    client_id: str | None
    tenant: str
    scopes: tuple[str, ...]
    subject: str | None = None  # the user's address for on-behalf-of
    error: str | None = None  # e.g. "invalid_grant"
    error_code: int | None = None  # the AADSTS number
    at: float = field(default_factory=time.time)
    client_auth: str | None = None  # "client_secret" or "client_assertion", as presented
    assertion_alg: str | None = None  # the client assertion's ``alg``, when one was presented

    @property
    def succeeded(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class _Injected:
    status: int
    error: str
    code: int
    description: str
    remaining: int


class OidcIssuer:
    """The Entra double, serving over HTTP(S) on ``127.0.0.1`` from a daemon thread.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with OidcIssuer(tls=True) as issuer:
            os.environ["REQUESTS_CA_BUNDLE"] = str(issuer.ca_bundle_path)
            token = issuer.mint("alex@contoso.com")
    """

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        tenant_domain: str | None = "contoso.onmicrosoft.com",
        client_id: str | None = None,
        client_secret: str | None = None,
        tls: bool = False,
        port: int = 0,
        app_roles: Mapping[str, Iterable[str]] | None = None,
        delegated_scopes: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        """:param client_id: the add-in's application, registered with ``client_secret``
            (both random when omitted); more clients with :meth:`register_client`.
        :param port: loopback port to listen on; 0 picks a free one.
        :param app_roles: application permissions granted per resource (client credentials).
        :param delegated_scopes: delegated permissions consented per resource (on-behalf-of);
            asking for another one on a listed resource fails with AADSTS65001 consent_required.
        """
        self._tenant_id = str(uuid.UUID(tenant_id)) if tenant_id else str(uuid.uuid4())
        self._tenant_domain = tenant_domain
        self._client_id = str(uuid.UUID(client_id)) if client_id else str(uuid.uuid4())
        self._client_secret = client_secret or secrets.token_urlsafe(24)
        self._clients: dict[str, str | None] = {self._client_id: self._client_secret}
        self._certificates: dict[str, list[x509.Certificate]] = {}
        self._tls_enabled = tls
        self._port = port
        roles = DEFAULT_APP_ROLES if app_roles is None else app_roles
        delegated = DEFAULT_DELEGATED_SCOPES if delegated_scopes is None else delegated_scopes
        self._app_roles = {k.rstrip("/"): tuple(v) for k, v in roles.items()}
        self._delegated = {k.rstrip("/"): tuple(v) for k, v in delegated.items()}
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._grants: list[GrantRecord] = []
        self._injected: _Injected | None = None
        self._down = False
        self._token_delay = 0.0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tls: ThrowawayTls | None = None
        self._tls_dir: Path | None = None
        self._factory: EntraTokenFactory | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> OidcIssuer:
        """Bind a random loopback port, generate keys (and TLS material) and start serving.

        :raises RuntimeError: already started.
        :raises OSError: no port could be bound.
        """
        if self._server is not None:
            raise RuntimeError("the issuer is already running")
        context: ssl.SSLContext | None = None
        try:
            if self._tls_enabled:
                self._tls_dir = Path(tempfile.mkdtemp(prefix="entra-double-"))
                self._tls = make_throwaway_tls(self._tls_dir)
                context = self._tls.server_context()
            server = _Server(self, context, self._port)
        except BaseException:
            self.stop()
            raise
        scheme = "https" if context else "http"
        port = server.server_address[1]
        self._factory = EntraTokenFactory(
            f"{scheme}://127.0.0.1:{port}",
            self._tenant_id,
            tenant_domain=self._tenant_domain,
            client_id=self._client_id,
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="entra-double", daemon=True
        )
        self._thread.start()
        log.info("Entra double listening", extra={"event": "demo.oidc.started", "authority": self.authority})
        return self

    def stop(self) -> None:
        """Stop serving and delete the TLS material. Safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
            self._tls_dir = None

    def __enter__(self) -> OidcIssuer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what clients configure ---------------------------------------------------------------

    @property
    def factory(self) -> EntraTokenFactory:
        """The token factory (keys, documents, mint). Available once started.

        :raises RuntimeError: not started.
        """
        if self._factory is None:
            raise RuntimeError("start the issuer first")
        return self._factory

    @property
    def authority(self) -> str:
        """Base URL to use as ``ADDIN_AUTHORITY``, e.g. ``https://127.0.0.1:40123``."""
        return self.factory.authority

    @property
    def tenant_id(self) -> str:
        return self._tenant_id

    @property
    def tenant_domain(self) -> str | None:
        return self._tenant_domain

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def client_secret(self) -> str:
        return self._client_secret

    @property
    def issuer(self) -> str:
        return self.factory.issuer()

    @property
    def discovery_url(self) -> str:
        return f"{self.authority}/{self._tenant_id}/v2.0/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        return f"{self.authority}/{self._tenant_id}/discovery/v2.0/keys"

    @property
    def token_url(self) -> str:
        return f"{self.authority}/{self._tenant_id}/oauth2/v2.0/token"

    @property
    def ca_bundle_path(self) -> Path | None:
        """The throw-away CA certificate to trust (``REQUESTS_CA_BUNDLE`` or ``verify=``); None
        without TLS."""
        return self._tls.ca_bundle_path if self._tls else None

    def register_client(self, client_id: str, client_secret: str) -> None:
        """Accept another confidential client at the token endpoint."""
        with self._lock:
            self._clients[str(uuid.UUID(client_id))] = client_secret

    def register_certificate(self, certificate: x509.Certificate | bytes, client_id: str | None = None) -> None:
        """Upload a certificate (object or PEM) to an application's registration, as "Certificates &
        secrets" does: client assertions signed with its key are then accepted for that client.

        :param client_id: the add-in's application by default; an unknown one is registered with
            no secret (certificate credentials only).
        """
        cert = certificate if isinstance(certificate, x509.Certificate) else x509.load_pem_x509_certificate(certificate)
        key = str(uuid.UUID(client_id)) if client_id else self._client_id
        with self._lock:
            self._clients.setdefault(key, None)
            self._certificates.setdefault(key, []).append(cert)

    # -- tokens, keys (delegating to the factory) ---------------------------------------------

    def mint(self, upn: str, **kwargs: Any) -> str:
        """See :meth:`EntraTokenFactory.mint`."""
        return self.factory.mint(upn, **kwargs)

    def demo_token(self, upn: str) -> str:
        """A one-hour token for the add-in's API for ``upn``: what the demo sign-in hands out."""
        return self.factory.demo_token(upn)

    def rotate_key(self, *, retire_previous: bool = False) -> str:
        """See :meth:`EntraTokenFactory.rotate_key`."""
        return self.factory.rotate_key(retire_previous=retire_previous)

    # -- observing and breaking it ------------------------------------------------------------

    def request_count(self, path: str | None = None) -> int:
        """Requests served for ``path`` (e.g. ``issuer.jwks_path``), or in total."""
        with self._lock:
            return sum(self._requests.values()) if path is None else self._requests[path]

    @property
    def requests(self) -> Counter[str]:
        """A copy of the per-path request counts."""
        with self._lock:
            return Counter(self._requests)

    @property
    def jwks_path(self) -> str:
        return f"/{self._tenant_id}/discovery/v2.0/keys"

    @property
    def discovery_path(self) -> str:
        return f"/{self._tenant_id}/v2.0/.well-known/openid-configuration"

    @property
    def grants(self) -> list[GrantRecord]:
        """Every token request so far, oldest first."""
        with self._lock:
            return list(self._grants)

    def reset(self) -> None:
        """Forget counted requests and recorded grants, come back up, drop injected failures.
        Keys and registered clients are kept."""
        with self._lock:
            self._requests.clear()
            self._grants.clear()
            self._injected = None
            self._down = False
            self._token_delay = 0.0

    def set_down(self, down: bool = True) -> None:
        """While down, every endpoint answers 503 (Entra having a bad day)."""
        with self._lock:
            self._down = down

    def delay_token_requests(self, seconds: float) -> None:
        """Hold every token request this long before answering (a token endpoint that hangs)."""
        with self._lock:
            self._token_delay = seconds

    def fail_next_token_requests(
        self,
        error: str = "invalid_grant",
        code: int = 50076,
        description: str = (
            "Due to a configuration change made by your administrator, or because you moved to a new "
            "location, you must use multi-factor authentication to access this resource."
        ),
        *,
        status: int = 400,
        count: int = 1,
    ) -> None:
        """Answer the next ``count`` token requests with this AADSTS error, e.g. ``consent_required``
        (65001), ``interaction_required`` (50076), ``temporarily_unavailable`` with status 503."""
        with self._lock:
            self._injected = _Injected(status, error, code, description, count)

    # -- HTTP ---------------------------------------------------------------------------------

    def _handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Reply:
        path = urlsplit(target).path
        with self._lock:
            self._requests[path] += 1
            down = self._down
        if down:
            return _Reply(503, b'{"error":"temporarily_unavailable"}', headers=(("Retry-After", "5"),))
        parts = path.strip("/").split("/")
        factory = self.factory
        if method == "GET" and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            try:
                return _json_reply(200, factory.discovery_document(parts[0]))
            except KeyError:
                return self._tenant_not_found(parts[0], headers)
        if method == "GET" and parts[1:] == ["discovery", "v2.0", "keys"]:
            if parts[0].lower() in ("common", "organizations"):
                return _json_reply(200, factory.jwks("{tenantid}"))
            if factory.resolve_tenant(parts[0]) is None:
                return self._tenant_not_found(parts[0], headers)
            return _json_reply(200, factory.jwks())
        if parts[1:] == ["oauth2", "v2.0", "token"]:
            if method != "POST":
                return _json_reply(405, {"error": "invalid_request"})
            return self._token(parts[0], headers, body)
        return _json_reply(404, {"error": "not_found", "error_description": f"No such endpoint: {path}"})

    def _tenant_not_found(self, segment: str, headers: Mapping[str, str]) -> _Reply:
        return _aadsts(_unknown_tenant(segment), headers)

    def _token(self, segment: str, headers: Mapping[str, str], body: bytes) -> _Reply:
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        grant_type = form.get("grant_type", "")
        kind = "on_behalf_of" if form.get("requested_token_use") == "on_behalf_of" else grant_type
        scopes = tuple(form.get("scope", "").split())
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = _basic_credentials(headers.get("Authorization"))
        if basic is not None:
            client_id, client_secret = basic
        client_auth, assertion_alg = _client_auth(form, client_secret)
        try:
            if self.factory.resolve_tenant(segment) is None:
                raise _unknown_tenant(segment)
            reply, subject = self._issue(form, grant_type, scopes, client_id, client_secret, segment)
        except _GrantError as exc:
            self._record(
                GrantRecord(
                    grant_type=kind,
                    client_id=client_id,
                    tenant=segment,
                    scopes=scopes,
                    error=exc.error,
                    error_code=exc.code,
                    client_auth=client_auth,
                    assertion_alg=assertion_alg,
                )
            )
            log.debug("token request refused", extra={"event": "demo.oidc.refused", "code": exc.code})
            return _aadsts(exc, headers)
        self._record(
            GrantRecord(
                grant_type=kind,
                client_id=client_id,
                tenant=segment,
                scopes=scopes,
                subject=subject,
                client_auth=client_auth,
                assertion_alg=assertion_alg,
            )
        )
        return reply

    def _record(self, record: GrantRecord) -> None:
        with self._lock:
            self._grants.append(record)

    def _issue(
        self,
        form: Mapping[str, str],
        grant_type: str,
        scopes: tuple[str, ...],
        client_id: str | None,
        client_secret: str | None,
        segment: str,
    ) -> tuple[_Reply, str | None]:
        with self._lock:
            injected = self._injected
            if injected is not None:
                injected.remaining -= 1
                if injected.remaining <= 0:
                    self._injected = None
            delay = self._token_delay
        if delay:
            time.sleep(delay)
        if injected is not None:
            raise _GrantError(injected.status, injected.error, injected.code, injected.description)
        if not grant_type:
            raise _missing("grant_type")
        if not client_id:
            raise _missing("client_id")
        with self._lock:
            known = client_id.lower() in self._clients
            expected_secret = self._clients.get(client_id.lower())
            certificates = list(self._certificates.get(client_id.lower(), ()))
        if not known:
            raise _GrantError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id[:64]}' was not found in the directory "
                f"'{self._tenant_id}'.",
            )
        if form.get("client_assertion") or form.get("client_assertion_type"):
            if client_secret:
                raise _GrantError(
                    400,
                    "invalid_request",
                    90014,
                    "A client may authenticate with 'client_assertion' or with 'client_secret', not both.",
                )
            self._check_client_assertion(form, client_id.lower(), certificates, segment)
        elif not client_secret:
            raise _GrantError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        elif expected_secret is None or not hmac.compare_digest(client_secret.encode(), expected_secret.encode()):
            raise _GrantError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
            )
        if not scopes:
            raise _missing("scope")
        if grant_type == "client_credentials":
            return self._client_credentials(client_id.lower(), scopes), None
        if grant_type == JWT_BEARER and form.get("requested_token_use") == "on_behalf_of":
            return self._on_behalf_of(client_id.lower(), form, scopes)
        raise _GrantError(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant_type[:64]}'.",
        )

    def _check_client_assertion(
        self, form: Mapping[str, str], client_id: str, certificates: list[x509.Certificate], segment: str
    ) -> None:
        """Verify a certificate credential as Entra does (private_key_jwt).

        :raises _GrantError: ``invalid_client`` with the AADSTS code Entra would answer.
        """
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise _GrantError(
                400,
                "invalid_request",
                900144 if not form.get("client_assertion_type") else 50027,
                f"The request body must contain the following parameter: 'client_assertion_type' with the "
                f"value '{CLIENT_ASSERTION_TYPE}'.",
            )
        assertion = form.get("client_assertion")
        if not assertion:
            raise _missing("client_assertion")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise _GrantError(400, "invalid_request", 50027, "JWT token is invalid or malformed.") from None
        alg = header.get("alg")
        if alg not in CLIENT_ASSERTION_ALGORITHMS:
            raise _GrantError(
                401,
                "invalid_client",
                700027,
                f"Client assertion contains an invalid signature. [Reason - The algorithm '{str(alg)[:16]}' is "
                "not supported.]",
            )
        # msal pads these base64url values ("="); Entra accepts either form.
        sha256_print, sha1_print = (
            None if value is None else str(value).rstrip("=") for value in (header.get("x5t#S256"), header.get("x5t"))
        )
        if sha256_print is None and sha1_print is None:
            raise _GrantError(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation. [Reason - The header carries no 'x5t#S256' or "
                "'x5t' thumbprint.]",
            )
        if alg == "PS256" and sha256_print is None:
            raise _GrantError(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation. [Reason - PS256 assertions must carry 'x5t#S256'.]",
            )
        certificate = next(
            (
                cert
                for cert in certificates
                if (sha256_print is None or sha256_print == _thumbprint(cert, hashes.SHA256()))
                and (sha1_print is None or sha1_print == _thumbprint(cert, hashes.SHA1()))  # noqa: S303 - x5t is SHA-1
            ),
            None,
        )
        if certificate is None:
            shown = str(sha256_print or sha1_print)[:64]
            raise _GrantError(
                401,
                "invalid_client",
                700027,
                "The certificate with identifier used to sign the client assertion is not registered on "
                f"application. [Reason - The key was not found., Thumbprint of key used by client: '{shown}', "
                f"Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys "
                f"for app Id '{client_id}'.]",
            )
        if certificate.not_valid_after_utc <= datetime.now(UTC):
            raise _GrantError(
                401,
                "invalid_client",
                700027,
                "Client assertion contains an invalid signature. [Reason - The key used is expired.]",
            )
        base = self.factory.authority
        audiences = {
            f"{base}/{tenant}/oauth2/{version}token"
            for tenant in {segment, self._tenant_id, *([self._tenant_domain] if self._tenant_domain else [])}
            for version in ("v2.0/", "")
        }
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                certificate.public_key(),  # type: ignore[arg-type]
                algorithms=[alg],
                options={"verify_aud": False, "require": ["aud", "exp", "iss", "sub"]},
                leeway=_ASSERTION_LEEWAY,
            )
        except jwt.ExpiredSignatureError:
            raise _GrantError(
                401, "invalid_client", 700024, "Client assertion is not within its valid time range."
            ) from None
        except jwt.ImmatureSignatureError:
            raise _GrantError(
                401, "invalid_client", 700024, "Client assertion is not within its valid time range."
            ) from None
        except jwt.InvalidSignatureError:
            raise _GrantError(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation. [Reason - The provided signature value did not "
                "match the expected signature value.]",
            ) from None
        except jwt.PyJWTError:
            raise _GrantError(401, "invalid_client", 50027, "JWT token is invalid or malformed.") from None
        if claims.get("aud") not in audiences:
            raise _GrantError(
                401,
                "invalid_client",
                700027,
                f"Client assertion audience claim does not match Realm issuer. [Reason - The audience "
                f"'{str(claims.get('aud'))[:200]}' is not this tenant's token endpoint.]",
            )
        issuer, subject = str(claims.get("iss", "")).lower(), str(claims.get("sub", "")).lower()
        if issuer != client_id or subject != client_id:
            raise _GrantError(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter. Review the "
                "documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/"
                "active-directory-certificate-credentials .",
            )

    def _client_credentials(self, client_id: str, scopes: tuple[str, ...]) -> _Reply:
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise _GrantError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {' '.join(scopes)[:200]} is not valid. Client credential "
                "flows must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        resource = scopes[0][: -len("/.default")]
        roles = self._app_roles.get(resource.rstrip("/"), ())
        token = self.factory.mint_app_token(client_id, _audience_of(resource), roles)
        return _json_reply(
            200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        )

    def _on_behalf_of(
        self, client_id: str, form: Mapping[str, str], scopes: tuple[str, ...]
    ) -> tuple[_Reply, str | None]:
        assertion = form.get("assertion")
        if not assertion:
            raise _missing("assertion")
        claims = self.factory.decode_assertion(assertion, audiences=(client_id, f"api://{client_id}"))
        resource, permissions = _split_scopes(scopes)
        consented = self._delegated.get(resource.rstrip("/"))
        if permissions == (".default",):
            permissions = consented or ()
        elif consented is not None:
            missing = [p for p in permissions if p not in consented]
            if missing:
                raise _GrantError(
                    400,
                    "invalid_grant",
                    65001,
                    f"The user or administrator has not consented to use the application with ID "
                    f"'{client_id}'. Send an interactive authorization request for this user and resource.",
                )
        upn = str(claims.get("preferred_username") or claims.get("upn") or "")
        token = self.factory.mint(
            upn,
            audience=_audience_of(resource),
            scopes=permissions,
            extra_claims={
                "oid": claims["oid"],
                "name": claims.get("name"),
                "azp": client_id,
                "azpacr": "1",
                "upn": upn or None,
                "preferred_username": upn or None,
            },
        )
        granted = " ".join(f"{resource}/{p}" for p in permissions)
        return _json_reply(
            200,
            {
                "token_type": "Bearer",
                "scope": granted,
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": token,
            },
        ), upn or None


def _audience_of(resource: str) -> str:
    """``aud`` for a resource: v2.0 tokens name custom APIs by client id (``api://{guid}`` → guid)."""
    resource = resource.rstrip("/")
    if resource.startswith("api://"):
        rest = resource[len("api://") :]
        try:
            return str(uuid.UUID(rest))
        except ValueError:
            return resource
    return resource


def _split_scopes(scopes: Iterable[str]) -> tuple[str, tuple[str, ...]]:
    """``https://graph.microsoft.com/Mail.Read offline_access`` → (resource, permissions).

    Bare permissions belong to Microsoft Graph, as in Entra.

    :raises _GrantError: no resource scope, or scopes for more than one resource.
    """
    resources: set[str] = set()
    permissions: list[str] = []
    for scope in scopes:
        if scope in OIDC_SCOPES:
            continue
        resource, sep, permission = scope.rpartition("/")
        if not sep:
            resource, permission = GRAPH, scope
        resources.add(resource.rstrip("/"))
        permissions.append(permission)
    if not resources:
        raise _GrantError(
            400, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid."
        )
    if len(resources) > 1:
        raise _GrantError(
            400,
            "invalid_scope",
            28000,
            "Provided value for the input parameter scope is not valid because it contains more than "
            "one resource.",
        )
    return resources.pop(), tuple(permissions)


def _client_auth(form: Mapping[str, str], client_secret: str | None) -> tuple[str | None, str | None]:
    """How the client authenticated and the assertion's ``alg``, for :class:`GrantRecord`
    (never the credential itself)."""
    assertion = form.get("client_assertion")
    if assertion:
        try:
            alg = jwt.get_unverified_header(assertion).get("alg")
        except jwt.PyJWTError:
            alg = None
        return "client_assertion", str(alg)[:16] if alg else None
    return ("client_secret" if client_secret else None), None


def _thumbprint(certificate: x509.Certificate, algorithm: hashes.HashAlgorithm) -> str:
    """A certificate thumbprint as JWS headers carry it: base64url of the DER's digest."""
    return _b64url(certificate.fingerprint(algorithm))


def _unknown_tenant(segment: str) -> _GrantError:
    return _GrantError(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{segment[:64]}' not found. Check to make sure you have the correct tenant ID "
        "and are signing into the correct cloud.",
    )


def _missing(parameter: str) -> _GrantError:
    return _GrantError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{parameter}'.",
    )


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic`` client credentials (RFC 6749 §2.3.1: form-encoded, then base64)."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (unquote_plus(client_id), unquote_plus(secret)) if sep else None


def _json_reply(status: int, document: Mapping[str, Any]) -> _Reply:
    return _Reply(status, json.dumps(document).encode())


def _aadsts(exc: _GrantError, headers: Mapping[str, str]) -> _Reply:
    """Entra's error body: AADSTS code and trace/correlation ids in the description too."""
    trace_id = str(uuid.uuid4())
    correlation_id = headers.get("client-request-id") or str(uuid.uuid4())
    timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    document = {
        "error": exc.error,
        "error_description": (
            f"AADSTS{exc.code}: {exc.description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
            f"Timestamp: {timestamp}"
        ),
        "error_codes": [exc.code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={exc.code}",
    }
    return _Reply(exc.status, json.dumps(document).encode())


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10
    server_version = "EntraDouble/1.0"

    def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
        self._serve("POST")

    def _serve(self, method: str) -> None:
        body = b""
        if method == "POST":
            try:
                length = int(self.headers.get("Content-Length") or "0")
            except ValueError:
                length = -1
            if length < 0 or length > _MAX_BODY:
                self._send(_json_reply(413, {"error": "invalid_request"}))
                return
            body = self.rfile.read(length)
        reply = self.server.issuer._handle(method, self.path, dict(self.headers.items()), body)
        self._send(reply)

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by http.server
        # The request line carries no secrets (they travel in POST bodies), but keep it at DEBUG.
        log.debug("entra double: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, issuer: OidcIssuer, tls_context: ssl.SSLContext | None, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.issuer = issuer
        self.tls_context = tls_context

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, not in the accept loop.
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        raw = cast(socket.socket, request)
        raw.settimeout(10)
        try:
            wrapped = self.tls_context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with the Entra double failed", extra={"reason": type(exc).__name__})
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("the Entra double dropped a connection", exc_info=True)
