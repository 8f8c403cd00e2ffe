"""The issuer's OpenID configuration and signing keys, fetched with ``requests`` and cached.

Discovery (``{authority}/{tenant}/v2.0/.well-known/openid-configuration``) says which ``issuer``
tokens carry and where the JSON Web Key Set lives. Both are cached for an hour. A token naming
a key id we have not seen makes us fetch the key set again (Entra ID rotates keys), but at most
once per ``min_refetch_interval`` so that a flood of made-up key ids cannot turn this service into
a hammer against the issuer. When the issuer cannot be reached, keys fetched within the last day
are still used; with nothing usable the caller gets :class:`IdentityProviderUnavailable` (503):
the user did nothing wrong.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm
from jwt.exceptions import InvalidKeyError

from addin_service.errors import Unavailable
from addin_service.settings import Settings, is_loopback_host

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 5.0
CACHE_TTL = 3600.0
MIN_REFETCH_INTERVAL = 30.0
MAX_STALE = 24 * 3600.0
MIN_RSA_BITS = 2048
_MAX_DOCUMENT_BYTES = 512 * 1024
_TENANT_PLACEHOLDER = "{tenantid}"
_KID = re.compile(r"[\x21-\x7e]{1,128}")


class IdentityProviderUnavailable(Unavailable):
    """Microsoft Entra ID (discovery or signing keys) cannot be reached or answered nonsense."""

    title = "Sign-in service unavailable"
    type_slug = "identity-unavailable"


_UNAVAILABLE = (
    "Your sign-in cannot be checked right now because Microsoft Entra ID is not reachable. "
    "Nothing was filed. Please try again in a minute."
)


@dataclass(frozen=True)
class IssuerMetadata:
    """What discovery told us, with ``{tenantid}`` already replaced."""

    issuer: str
    jwks_uri: str
    tenant_id: str  # the tenant GUID that tokens' ``tid`` must equal


@dataclass(frozen=True)
class SigningKey:
    kid: str
    key: RSAPublicKey
    issuer: str | None  # Entra may pin a key to an issuer; None when the JWK does not say


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _check_fetch_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return url
    raise ValueError(f"{what} must be an https:// URL (got scheme {parts.scheme!r})")


class IssuerKeys:
    """Thread-safe cache of one tenant's issuer metadata and signing keys.

    Reads of fresh data take no lock; a refresh is done by one thread while the others wait for
    its answer rather than fetching the same document themselves.
    """

    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        cache_ttl: float = CACHE_TTL,
        min_refetch_interval: float = MIN_REFETCH_INTERVAL,
        max_stale: float = MAX_STALE,
        timeout: float = FETCH_TIMEOUT,
    ) -> None:
        if not settings.tenant_id:
            raise ValueError("settings.tenant_id is required to validate tokens")
        self._configured_tenant = settings.tenant_id.lower()
        self._discovery_url = settings.issuer_discovery_url
        self._owns_session = session is None
        self._session = session or requests.Session()
        self._clock = clock
        self._ttl = cache_ttl
        self._min_interval = min_refetch_interval
        self._max_stale = max_stale
        self._timeout = timeout
        self._lock = threading.Lock()
        self._metadata: IssuerMetadata | None = None
        self._metadata_at: float | None = None  # last successful discovery fetch
        self._metadata_tried_at: float | None = None  # last attempt, successful or not
        self._keys: Mapping[str, SigningKey] = MappingProxyType({})
        self._keys_at: float | None = None
        self._keys_tried_at: float | None = None
        self._keys_failing = False  # the latest attempt to fetch the keys failed

    # -- public -------------------------------------------------------------------------------

    def metadata(self) -> IssuerMetadata:
        """The issuer's metadata, from cache when fresh.

        :raises IdentityProviderUnavailable: discovery failed and nothing usable is cached.
        """
        metadata, fetched_at = self._metadata, self._metadata_at
        if metadata is not None and self._fresh(fetched_at, self._clock()):
            return metadata
        with self._lock:
            return self._metadata_locked(self._clock())

    def key(self, kid: str) -> SigningKey | None:
        """The signing key named ``kid``, or None when the issuer does not publish it.

        An unknown ``kid`` triggers one fetch of the key set, unless one was made in the last
        ``min_refetch_interval`` seconds.

        :raises IdentityProviderUnavailable: the keys could not be fetched and none usable are
            cached, or ``kid`` is unknown and fetching a newer key set failed.
        """
        keys, fetched_at = self._keys, self._keys_at
        if kid in keys and self._fresh(fetched_at, self._clock()):
            return keys[kid]
        with self._lock:
            now = self._clock()
            metadata = self._metadata_locked(now)
            if not self._keys_fresh(now):
                self._refresh_keys_locked(now, metadata, reason="expired", required=True)
            found = self._keys.get(kid)
            if found is not None:
                return found
            if not self._may_try(self._keys_tried_at, now):
                if self._keys_failing:
                    # The key may be a genuinely new one we cannot fetch: not the user's fault.
                    raise self._unavailable(self._keys_tried_at, now)
                log.debug(
                    "token names an unknown signing key; key set fetched recently, not fetching again",
                    extra={"event": "auth.jwks.unknown_kid", "kid": kid},
                )
                return None
            log.info(
                "token names an unknown signing key; fetching the key set again",
                extra={"event": "auth.jwks.unknown_kid", "kid": kid},
            )
            if not self._refresh_keys_locked(now, metadata, reason="unknown kid", required=False):
                raise self._unavailable(None, now)
            return self._keys.get(kid)

    def check(self) -> None:
        """Make sure metadata and keys are available (for ``/readyz`` and start-up warm-up).

        :raises IdentityProviderUnavailable: they are not.
        """
        metadata = self.metadata()
        if self._keys_fresh(self._clock()):
            return
        with self._lock:
            now = self._clock()
            if not self._keys_fresh(now):
                self._refresh_keys_locked(now, metadata, reason="check", required=True)

    def close(self) -> None:
        """Close the HTTP session, if this object created it."""
        if self._owns_session:
            self._session.close()

    # -- internals ----------------------------------------------------------------------------

    def _may_try(self, tried_at: float | None, now: float) -> bool:
        return tried_at is None or now - tried_at >= self._min_interval

    def _keys_fresh(self, now: float) -> bool:
        return self._fresh(self._keys_at, now)

    def _usable(self, fetched_at: float | None, now: float) -> bool:
        return fetched_at is not None and now - fetched_at < self._max_stale

    def _fresh(self, fetched_at: float | None, now: float) -> bool:
        return fetched_at is not None and now - fetched_at < self._ttl

    def _unavailable(self, tried_at: float | None, now: float) -> IdentityProviderUnavailable:
        """503 with Retry-After pointing at the moment another fetch will be allowed."""
        wait = self._min_interval if tried_at is None else self._min_interval - (now - tried_at)
        return IdentityProviderUnavailable(_UNAVAILABLE, retry_after=max(1, int(wait) + 1))

    def _metadata_locked(self, now: float) -> IssuerMetadata:
        if self._metadata is not None and self._fresh(self._metadata_at, now):
            return self._metadata
        if self._may_try(self._metadata_tried_at, now):
            self._metadata_tried_at = now
            try:
                fresh = self._fetch_metadata()
            except _FetchFailed as exc:
                log.warning(
                    "could not fetch the OpenID configuration",
                    extra={"event": "auth.discovery.failed", "url": self._discovery_url, "reason": str(exc)},
                )
            else:
                if self._metadata is not None and fresh.jwks_uri != self._metadata.jwks_uri:
                    self._keys, self._keys_at, self._keys_tried_at = MappingProxyType({}), None, None
                self._metadata, self._metadata_at = fresh, now
                return fresh
        if self._metadata is not None and self._usable(self._metadata_at, now):
            return self._metadata
        raise self._unavailable(self._metadata_tried_at, now)

    def _refresh_keys_locked(
        self, now: float, metadata: IssuerMetadata, *, reason: str, required: bool
    ) -> bool:
        """Fetch the key set if allowed. True when fetched; False when stale keys must do.

        :raises IdentityProviderUnavailable: ``required`` and no usable keys are left.
        """
        if self._may_try(self._keys_tried_at, now):
            self._keys_tried_at = now
            try:
                keys = self._fetch_keys(metadata)
            except _FetchFailed as exc:
                self._keys_failing = True
                log.warning(
                    "could not fetch the signing keys",
                    extra={
                        "event": "auth.jwks.failed",
                        "url": metadata.jwks_uri,
                        "reason": str(exc),
                        "why": reason,
                    },
                )
            else:
                self._keys, self._keys_at, self._keys_failing = MappingProxyType(keys), now, False
                log.info(
                    "fetched the signing keys",
                    extra={"event": "auth.jwks.fetched", "kids": sorted(keys), "why": reason},
                )
                return True
        if required and not (self._keys and self._usable(self._keys_at, now)):
            raise self._unavailable(self._keys_tried_at, now)
        return False

    def _get_json(self, url: str) -> Any:
        try:
            response = self._session.get(url, timeout=self._timeout, headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise _FetchFailed(type(exc).__name__) from None
        if response.status_code != 200:
            raise _FetchFailed(f"HTTP {response.status_code}: {response.text[:300]}")
        if len(response.content) > _MAX_DOCUMENT_BYTES:
            raise _FetchFailed("document too large")
        try:
            return json.loads(response.content)
        except ValueError:
            raise _FetchFailed("not JSON") from None

    def _fetch_metadata(self) -> IssuerMetadata:
        document = self._get_json(self._discovery_url)
        if not isinstance(document, dict):
            raise _FetchFailed("discovery document is not a JSON object")
        issuer, jwks_uri = document.get("issuer"), document.get("jwks_uri")
        if not isinstance(issuer, str) or not isinstance(jwks_uri, str):
            raise _FetchFailed("discovery document lacks issuer or jwks_uri")
        try:
            _check_fetch_url(jwks_uri, "jwks_uri")
        except ValueError as exc:
            raise _FetchFailed(str(exc)) from None
        tenant = self._tenant_guid(issuer)
        issuer = issuer.replace(_TENANT_PLACEHOLDER, tenant)
        jwks_uri = jwks_uri.replace(_TENANT_PLACEHOLDER, tenant)
        return IssuerMetadata(issuer=issuer, jwks_uri=jwks_uri, tenant_id=tenant)

    def _tenant_guid(self, issuer: str) -> str:
        """The tenant GUID tokens must carry: the configured one, or the one the issuer names."""
        in_issuer = [s.lower() for s in urlsplit(issuer).path.split("/") if _is_guid(s)]
        if _is_guid(self._configured_tenant):
            if in_issuer and in_issuer[0] != self._configured_tenant:
                log.warning(
                    "the issuer names a different tenant than ADDIN_TENANT_ID; every token will be refused",
                    extra={"event": "auth.discovery.tenant_mismatch", "issuer": issuer},
                )
            return self._configured_tenant
        if not in_issuer:
            raise _FetchFailed(
                "ADDIN_TENANT_ID is a domain and the issuer names no tenant id; "
                "set ADDIN_TENANT_ID to the tenant GUID"
            )
        return in_issuer[0]

    def _fetch_keys(self, metadata: IssuerMetadata) -> dict[str, SigningKey]:
        document = self._get_json(metadata.jwks_uri)
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise _FetchFailed("key set has no 'keys' list")
        keys: dict[str, SigningKey] = {}
        for entry in entries:
            key = self._signing_key(entry, metadata.tenant_id)
            if key is not None:
                keys[key.kid] = key
        if not keys:
            raise _FetchFailed("key set holds no usable RSA signing key")
        return keys

    @staticmethod
    def _signing_key(entry: object, tenant: str) -> SigningKey | None:
        """An RSA signature key from one JWK, or None for anything else (encryption keys, EC...)."""
        if not isinstance(entry, dict):
            return None
        kid = entry.get("kid")
        if entry.get("kty") != "RSA" or not isinstance(kid, str) or not _KID.fullmatch(kid):
            return None
        if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256" or "d" in entry:
            return None
        try:
            key = RSAAlgorithm.from_jwk(entry)
        except (InvalidKeyError, ValueError, TypeError):  # a malformed JWK is skipped, never fatal
            log.warning(
                "skipping a malformed key in the key set", extra={"event": "auth.jwks.bad_key", "kid": kid}
            )
            return None
        if not isinstance(key, RSAPublicKey) or key.key_size < MIN_RSA_BITS:
            return None
        pinned = entry.get("issuer")
        return SigningKey(
            kid=kid,
            key=key,
            issuer=pinned.replace(_TENANT_PLACEHOLDER, tenant) if isinstance(pinned, str) else None,
        )


class _FetchFailed(Exception):
    """Internal: a fetch or parse failed; the message is safe to log (no secrets are involved)."""
