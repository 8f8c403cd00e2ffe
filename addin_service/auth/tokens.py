"""Validating the Entra ID access token the task pane sends, with PyJWT.

msal acquires tokens but does not validate incoming ones, so this module does, following
Microsoft's guidance for protected web APIs: RS256 only, signature against the tenant's
published keys, ``iss`` exactly, ``aud`` one of ours, ``exp``/``nbf``/``iat`` with a minute of
leeway, ``tid`` our tenant, and ``scp`` granting ``access_as_user``. Every refusal is a calm
:class:`~addin_service.errors.Unauthenticated` that never echoes the token; the reason is
logged with the key id (never the token).

The app must be registered for v2.0 access tokens (``requestedAccessTokenVersion: 2`` in the
manifest): v1.0 tokens carry ``https://sts.windows.net/{tenant}/`` as issuer and are refused.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import jwt
import requests

from addin_service.auth.bearer import MAX_TOKEN_CHARS, MissingCredentials, bearer_from_header
from addin_service.auth.caller import Caller
from addin_service.auth.metadata import IssuerKeys, IssuerMetadata
from addin_service.errors import Unauthenticated
from addin_service.settings import Settings

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
LEEWAY_SECONDS = 60
# The username claims we accept, in order of preference. ``preferred_username`` is what v2.0
# tokens carry; ``upn`` when the tenant adds it as an optional claim; ``unique_name`` in v1.0
# shapes. ``email`` is deliberately absent: it can be unverified and set by the user.
USERNAME_CLAIMS = ("preferred_username", "upn", "unique_name")

_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_KID = re.compile(r"[\x21-\x7e]{1,128}")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_EMAIL = re.compile(rf"[^@\s<>\"(),;:\\\[\]]{{1,64}}@{_LABEL}(?:\.{_LABEL})+")
_REQUIRED_CLAIMS = ["iss", "aud", "exp", "nbf", "iat", "tid", "oid"]

_NOT_VERIFIED = "Your sign-in could not be verified. Close the add-in, open it again and retry."
_EXPIRED = "Your sign-in has expired. Close the add-in, open it again and retry."
_OTHER_TENANT = (
    "Your account belongs to a different organisation than this service. Sign in to Outlook with "
    "your work account and try again."
)
_NO_USERNAME = (
    "Your sign-in does not say which mailbox is yours. Ask your administrator to check the add-in's "
    "app registration (the token needs the preferred_username claim)."
)


class TokenRefused(Unauthenticated):
    """A token that failed validation (``invalid_token``). ``reason`` says which check failed, in
    words fit for logs and tests; it is never shown to the user and never holds token content."""

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail, error="invalid_token")
        self.reason = reason


class InsufficientScope(Unauthenticated):
    """A valid token that does not grant this service's scope (RFC 6750 ``insufficient_scope``)."""

    def __init__(self, scope: str) -> None:
        super().__init__(
            "Your sign-in does not allow this add-in to file reports for you. Ask your administrator "
            "to grant consent to the add-in, then try again.",
            error="insufficient_scope",
        )
        self.scope = scope


class TokenValidator:
    """Turns a bearer token into a :class:`Caller`, or refuses it. Thread-safe; build one per app."""

    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        *,
        keys: IssuerKeys | None = None,
        leeway: int = LEEWAY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """:param keys: the metadata/key cache; built from ``settings`` and ``session`` when omitted.
        :param clock: monotonic clock for the caches (tests pass a fake one).
        :raises ValueError: settings lack the tenant, or the audience is empty.
        """
        if not settings.audience:
            raise ValueError("settings.audience is empty: set ADDIN_CLIENT_ID or ADDIN_AUDIENCE")
        self._audience = list(settings.audience)
        self._scope = settings.required_scope
        self._leeway = leeway
        self._keys = keys or IssuerKeys(settings, session, clock=clock)

    def check(self) -> None:
        """Fetch (or confirm cached) discovery and keys; for ``/readyz`` and warm-up.

        :raises IdentityProviderUnavailable: Entra ID cannot be reached and nothing usable is cached.
        """
        self._keys.check()

    def close(self) -> None:
        """Release the HTTP session the key cache opened (if it opened one)."""
        self._keys.close()

    def validate(self, bearer: str) -> Caller:
        """Check every property of ``bearer`` and return who it identifies.

        :raises MissingCredentials: ``bearer`` is empty.
        :raises InsufficientScope: the token is valid but lacks the required scope.
        :raises TokenRefused: (``invalid_token``) the token fails any other check.
        :raises IdentityProviderUnavailable: the issuer's metadata or keys cannot be fetched.
        """
        if not bearer:
            raise MissingCredentials()
        if len(bearer) > MAX_TOKEN_CHARS:
            _refuse("oversize", _NOT_VERIFIED, length=len(bearer))
        if not _COMPACT_JWS.fullmatch(bearer):
            _refuse("not a compact JWS", _NOT_VERIFIED)
        try:
            header = jwt.get_unverified_header(bearer)
        except jwt.PyJWTError:
            _refuse("unreadable header", _NOT_VERIFIED)
        alg = header.get("alg")
        if alg != ALGORITHM:
            _refuse("algorithm not allowed", _NOT_VERIFIED, alg=str(alg)[:16])
        kid = header.get("kid")
        if not isinstance(kid, str) or not _KID.fullmatch(kid):
            _refuse("no usable kid", _NOT_VERIFIED)

        metadata = self._keys.metadata()
        signing_key = self._keys.key(kid)
        if signing_key is None:
            _refuse("unknown signing key", _NOT_VERIFIED, kid=kid)
        if signing_key.issuer is not None and signing_key.issuer != metadata.issuer:
            _refuse("key is pinned to another issuer", _NOT_VERIFIED, kid=kid)
        claims = self._decode(bearer, signing_key.key, metadata, kid)
        return self._caller(claims, metadata, bearer, kid)

    def _decode(self, bearer: str, key: Any, metadata: IssuerMetadata, kid: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                bearer,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=metadata.issuer,
                leeway=self._leeway,
                options={"require": _REQUIRED_CLAIMS, "enforce_minimum_key_length": True},
            )
        except jwt.ExpiredSignatureError:
            _refuse("expired", _EXPIRED, kid=kid)
        except jwt.ImmatureSignatureError:
            _refuse("not yet valid", _NOT_VERIFIED, kid=kid)
        except jwt.InvalidSignatureError:
            _refuse("bad signature", _NOT_VERIFIED, kid=kid)
        except jwt.InvalidAudienceError:
            _refuse("wrong audience", _NOT_VERIFIED, kid=kid)
        except jwt.InvalidIssuerError:
            _hint_about_issuer(bearer)
            _refuse("wrong issuer", _NOT_VERIFIED, kid=kid)
        except jwt.MissingRequiredClaimError as exc:
            _refuse(f"missing claim {exc.claim}", _NOT_VERIFIED, kid=kid)
        except jwt.PyJWTError as exc:
            _refuse(f"invalid ({type(exc).__name__})", _NOT_VERIFIED, kid=kid)

    def _caller(self, claims: Mapping[str, Any], metadata: IssuerMetadata, bearer: str, kid: str) -> Caller:
        if not isinstance(claims.get("aud"), str):
            _refuse("audience is not a single value", _NOT_VERIFIED, kid=kid)
        for time_claim in ("exp", "nbf", "iat"):
            # RFC 7519 NumericDate; PyJWT would also take a string of digits.
            value = claims.get(time_claim)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                _refuse(f"{time_claim} is not a NumericDate", _NOT_VERIFIED, kid=kid)
        tid = claims.get("tid")
        if not isinstance(tid, str) or tid.lower() != metadata.tenant_id:
            _refuse("wrong tenant", _OTHER_TENANT, kid=kid)
        oid = claims.get("oid")
        if not isinstance(oid, str) or not _is_guid(oid):
            _refuse("oid is not a GUID", _NOT_VERIFIED, kid=kid)
        scp = claims.get("scp")
        scopes = tuple(scp.split()) if isinstance(scp, str) else ()
        if self._scope not in scopes:
            log.info(
                "token refused",
                extra={"event": "auth.refused", "reason": "insufficient scope", "kid": kid, "oid": oid},
            )
            raise InsufficientScope(self._scope)
        upn = _username(claims)
        if upn is None:
            _refuse("no username claim that is an email address", _NO_USERNAME, kid=kid, oid=oid)
        name = claims.get("name")
        return Caller(
            upn=upn,
            object_id=oid.lower(),
            tenant_id=tid.lower(),
            name=name.strip() if isinstance(name, str) and name.strip() else upn,
            scopes=scopes,
            token=bearer,
        )


class BearerAuthenticator:
    """What the API calls: ``Authorization`` header in, :class:`Caller` out."""

    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        *,
        validator: TokenValidator | None = None,
    ) -> None:
        self.validator = validator or TokenValidator(settings, session)

    def authenticate(self, authorization: str | None) -> Caller:
        """Parse the header and validate its token.

        :raises Unauthenticated: no usable token (see :func:`bearer_from_header` and
            :meth:`TokenValidator.validate` for the sub-classes).
        :raises IdentityProviderUnavailable: Entra ID cannot be reached.
        """
        return self.validator.validate(bearer_from_header(authorization))

    def check(self) -> None:
        """:raises IdentityProviderUnavailable: Entra ID cannot be reached and nothing is cached."""
        self.validator.check()

    def close(self) -> None:
        """Release the validator's HTTP session."""
        self.validator.close()


def _username(claims: Mapping[str, Any]) -> str | None:
    for name in USERNAME_CLAIMS:
        value = claims.get(name)
        if isinstance(value, str):
            candidate = value.strip().lower()
            if len(candidate) <= 254 and _EMAIL.fullmatch(candidate):
                return candidate
    return None


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _refuse(reason: str, detail: str, **facts: object) -> NoReturn:
    log.info("token refused", extra={"event": "auth.refused", "reason": reason, **facts})
    raise TokenRefused(detail, reason) from None  # the library's exception adds nothing for the caller


def _hint_about_issuer(bearer: str) -> None:
    """Explain the most common misconfiguration in the log: v1.0 tokens for a v2.0 API."""
    try:
        unverified = jwt.decode(bearer, options={"verify_signature": False})
    except jwt.PyJWTError:
        return
    issuer = unverified.get("iss")
    if isinstance(issuer, str) and issuer.startswith("https://sts.windows.net/"):
        log.warning(
            "a v1.0 access token was presented; set requestedAccessTokenVersion to 2 in the app registration",
            extra={"event": "auth.v1_token"},
        )
