"""Access tokens for Microsoft Graph (and, on behalf of the reporter, for EWS), acquired with msal
and kept in memory.

Two kinds of token:

* **Delegated, on behalf of the reporter** (``ADDIN_GRAPH_AUTH=obo``): the add-in's SSO token is
  exchanged with ``acquire_token_on_behalf_of`` for a Graph token carrying only the scopes the
  capture needs, so Graph itself enforces that the reporter reads only what they may read.
  msal does not cache on-behalf-of results for lookup, so they are cached here, keyed by a hash
  of the incoming assertion and the scopes, until five minutes before they expire.
* **Application** (client credentials, ``{graph_resource}/.default``): for app-only capture
  (``ADDIN_GRAPH_AUTH=app``), the directory and the sender. msal caches these itself.

This service proves who it is with ``ADDIN_CLIENT_CERTIFICATE`` when set (preferred), else with
``ADDIN_CLIENT_SECRET``. A certificate goes to msal in its documented PEM form (``private_key``,
``public_certificate``, ``passphrase``) without a ``thumbprint``: msal 1.35 and later then sign the
client assertion with PS256 and an ``x5t#S256`` (SHA-256) header, and send the certificate as
``x5c`` so Subject Name/Issuer authentication works too (hence ``msal>=1.35`` in pyproject.toml).

Scopes name the Graph resource of ``ADDIN_GRAPH_URL`` (scheme and host), so national clouds
(``graph.microsoft.us``, ``microsoftgraph.chinacloudapi.cn`` ...) get tokens for their own Graph.
The EWS adapter with ``ADDIN_EWS_AUTH=oauth-obo`` passes the EWS host instead (``resource=``), for
``{ews_host}/EWS.AccessAsUser.All``.

How msal failures are reported (decided here, relied on by the adapters):

* The reporter's own sign-in cannot be exchanged (``invalid_grant`` such as AADSTS50013 or an
  expired assertion, ``interaction_required`` for MFA or Conditional Access, ``consent_required``)
  → :class:`~addin_service.errors.Unauthenticated`: closing and reopening the add-in gets a fresh
  token and, when needed, a consent or MFA prompt. Only delegated tokens can fail this way.
* Everything else — the token endpoint unreachable or answering 5xx, ``temporarily_unavailable``,
  but also this service's own credentials being refused (``invalid_client``, unknown tenant,
  ``unauthorized_client``, ``invalid_scope``) — → :class:`~addin_service.errors.MailboxUnavailable`:
  the reporter did nothing wrong and cannot fix it by signing in again. Configuration problems
  are logged as errors (with Entra's error code, never a token or secret) so an administrator
  sees them.

Tokens, assertions and secrets are never logged.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import msal
import requests

from addin_service.client_certificate import CLIENT_CERTIFICATE, load_client_certificate
from addin_service.errors import ConfigError, MailboxUnavailable, Unauthenticated
from addin_service.settings import Settings

log = logging.getLogger(__name__)

# Authorities where msal's instance discovery is meaningful (Microsoft's own clouds). Anything
# else — an Entra double, a sovereign proxy — is trusted as configured, with no call to
# login.microsoftonline.com.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.microsoftonline.us",
        "login-us.microsoftonline.com",
        "login.usgovcloudapi.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
    }
)

# Delegated scopes for capture. ``User.ReadBasic.All`` is what translateExchangeIds needs;
# ``Mail.Read.Shared`` is asked for only when the item is in someone else's mailbox.
CAPTURE_SCOPES = ("Mail.Read", "User.ReadBasic.All")
SHARED_CAPTURE_SCOPES = ("Mail.Read", "Mail.Read.Shared", "User.ReadBasic.All")

EXPIRY_MARGIN = 300.0  # seconds before expiry when a cached token is no longer handed out
MAX_CACHED_DELEGATED = 10_000

# Entra answers that mean "this user's sign-in cannot be used; a fresh one can".
_SIGN_IN_AGAIN_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required", "login_required"})
_TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
_CONSENT_CODES = frozenset({65001, 65004})

_SIGN_IN_AGAIN = (
    "Your sign-in could not be used to read the message from Exchange. Close the add-in, open it again and retry."
)
_CONSENT_NEEDED = (
    "This add-in is not yet allowed to read your mail for you. Close the add-in, open it again and "
    "accept the permission prompt, or ask your administrator to grant consent."
)
_SIGN_IN_SERVICE_DOWN = (
    "Microsoft sign-in could not be reached to get access to Exchange. Nothing was filed; please "
    "try again in a few minutes."
)
_MISCONFIGURED = (
    "This service could not get access to Exchange. Nothing was filed; your administrator has been "
    "alerted. Please try again later or report the message another way."
)


def graph_resource(graph_url: str) -> str:
    """The resource (scheme and host) that scopes name for ``graph_url``.

    ``https://graph.microsoft.us/v1.0`` → ``https://graph.microsoft.us``.
    """
    parts = urlsplit(graph_url)
    return f"{parts.scheme}://{parts.netloc}"


class TokenSource(Protocol):
    """What the Graph adapters need from token acquisition (``GraphTokens`` or a test double)."""

    def app_token(self) -> str:
        """An application token for Graph.

        :raises MailboxUnavailable: no token could be had.
        """
        ...

    def delegated_token(self, user_assertion: str, scopes: Sequence[str]) -> str:
        """A Graph token on behalf of the user who presented ``user_assertion``.

        :raises Unauthenticated: the user must sign in again.
        :raises MailboxUnavailable: no token could be had for reasons the user cannot fix.
        """
        ...

    def forget(self, access_token: str) -> None:
        """Graph refused ``access_token`` (401): never hand it out again."""
        ...


@dataclass(frozen=True)
class _Cached:
    access_token: str
    usable_until: float


class GraphTokens:
    """msal-backed :class:`TokenSource`. Thread-safe; build one per process and share it.

    The msal application is built on first use (it fetches the authority's OpenID configuration,
    so building it at start would put a network call into ``create_app``).

    :param resource: whose tokens these are (scheme and host); default: the Graph of ``ADDIN_GRAPH_URL``.
    :raises ConfigError: (constructor) a credential variable is missing.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http_client: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        resource: str | None = None,
    ) -> None:
        for variable, value in (
            ("ADDIN_TENANT_ID", settings.tenant_id),
            ("ADDIN_CLIENT_ID", settings.client_id),
        ):
            if not value:
                raise ConfigError(variable, "is required for OAuth access to Exchange")
        self._client_id = settings.client_id or ""
        self._credential, self._credential_variable = client_credential(settings)
        self._authority = f"{settings.authority}/{settings.tenant_id}"
        self._instance_discovery = urlsplit(settings.authority).hostname in MICROSOFT_AUTHORITY_HOSTS
        self.resource = (resource or graph_resource(settings.graph_url)).rstrip("/")
        self._http_client = http_client
        self._timeout = min(settings.ews_timeout, settings.exchange_max_wait)
        self._clock = clock
        self._lock = threading.Lock()
        self._app: msal.ConfidentialClientApplication | None = None
        self._delegated: dict[tuple[str, tuple[str, ...]], _Cached] = {}

    # -- public -------------------------------------------------------------------------------

    def app_token(self) -> str:
        """A client-credentials token for ``{graph_resource}/.default`` (msal caches it).

        :raises MailboxUnavailable: the token endpoint is down or refuses this service.
        """
        app = self._application()
        try:
            result = app.acquire_token_for_client(scopes=[f"{self.resource}/.default"])
        except (requests.RequestException, msal.exceptions.MsalError, ValueError) as exc:
            raise self._unreachable(exc) from None
        return self._token_from(result, delegated=False)

    def delegated_token(self, user_assertion: str, scopes: Sequence[str]) -> str:
        """Exchange the add-in's SSO token for a Graph token with ``scopes`` (names like ``Mail.Read``).

        :raises Unauthenticated: the assertion cannot be exchanged; the user must sign in again.
        :raises MailboxUnavailable: the token endpoint is down or refuses this service.
        """
        if not user_assertion:
            raise Unauthenticated(_SIGN_IN_AGAIN)
        full_scopes = tuple(sorted(f"{self.resource}/{scope}" for scope in scopes))
        key = (hashlib.sha256(user_assertion.encode()).hexdigest(), full_scopes)
        now = self._clock()
        with self._lock:
            cached = self._delegated.get(key)
            if cached is not None and cached.usable_until > now:
                return cached.access_token
        app = self._application()
        try:
            result = app.acquire_token_on_behalf_of(user_assertion=user_assertion, scopes=list(full_scopes))
        except (requests.RequestException, msal.exceptions.MsalError, ValueError) as exc:
            raise self._unreachable(exc) from None
        token = self._token_from(result, delegated=True)
        lifetime = _expires_in(result)
        margin = min(EXPIRY_MARGIN, lifetime / 2)
        with self._lock:
            self._prune(now)
            self._delegated[key] = _Cached(token, now + lifetime - margin)
        return token

    def forget(self, access_token: str) -> None:
        """Drop ``access_token`` from every cache so the next call acquires a new one."""
        with self._lock:
            for key in [k for k, v in self._delegated.items() if v.access_token == access_token]:
                del self._delegated[key]
            app = self._app
        if app is not None:
            app.remove_tokens_for_client()

    # -- internals ----------------------------------------------------------------------------

    def _application(self) -> msal.ConfidentialClientApplication:
        with self._lock:
            if self._app is not None:
                return self._app
            try:
                # msal's own session waits forever for a token endpoint that stops answering.
                kwargs: dict[str, Any] = {"timeout": self._timeout}
                if self._http_client is not None:
                    kwargs["http_client"] = self._http_client
                if not self._instance_discovery:
                    kwargs["instance_discovery"] = False
                self._app = msal.ConfidentialClientApplication(
                    self._client_id,
                    client_credential=self._credential,
                    authority=self._authority,
                    **kwargs,
                )
            except (requests.RequestException, ValueError) as exc:
                # Not cached: the next request tries again.
                raise self._unreachable(exc) from None
            return self._app

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._delegated.items() if v.usable_until <= now]:
            del self._delegated[key]
        while len(self._delegated) >= MAX_CACHED_DELEGATED:
            del self._delegated[next(iter(self._delegated))]

    def _token_from(self, result: Any, *, delegated: bool) -> str:
        if isinstance(result, dict) and isinstance(result.get("access_token"), str) and result["access_token"]:
            return str(result["access_token"])
        error = str(result.get("error", "")) if isinstance(result, dict) else "no_response"
        codes = _error_codes(result)
        suberror = str(result.get("suberror", "")) if isinstance(result, dict) else ""
        if delegated and (codes & _CONSENT_CODES or suberror == "consent_required"):
            log.warning(
                "graph token refused: consent missing",
                extra={"entra_error": error, "entra_codes": sorted(codes)},
            )
            raise Unauthenticated(_CONSENT_NEEDED, error="insufficient_scope")
        if delegated and error in _SIGN_IN_AGAIN_ERRORS:
            log.info(
                "graph token refused: user must sign in again",
                extra={"entra_error": error, "entra_codes": sorted(codes)},
            )
            raise Unauthenticated(_SIGN_IN_AGAIN)
        if error in _TRANSIENT_ERRORS:
            log.warning("graph token endpoint busy", extra={"entra_error": error, "entra_codes": sorted(codes)})
            raise MailboxUnavailable(_SIGN_IN_SERVICE_DOWN, retry_after=30)
        log.error(
            f"graph token refused: check ADDIN_CLIENT_ID, {self._credential_variable}, ADDIN_TENANT_ID "
            "and the app's permissions",
            extra={"entra_error": error, "entra_codes": sorted(codes)},
        )
        raise MailboxUnavailable(_MISCONFIGURED, retry_after=60)

    def _unreachable(self, exc: Exception) -> MailboxUnavailable:
        log.warning("graph token endpoint unreachable", extra={"error_type": type(exc).__name__})
        return MailboxUnavailable(_SIGN_IN_SERVICE_DOWN, retry_after=30)


def client_credential(settings: Settings) -> tuple[str | dict[str, str], str]:
    """msal's ``client_credential`` for this service, and the variable it came from.

    The certificate wins when both it and a secret are set.

    :raises ConfigError: neither is set, or the certificate file is not usable.
    """
    if settings.client_certificate:
        certificate = load_client_certificate(settings.client_certificate, settings.client_certificate_password)
        credential = {"private_key": certificate.private_key_pem, "public_certificate": certificate.certificate_pem}
        if settings.client_certificate_password:
            credential["passphrase"] = settings.client_certificate_password
        _warn_if_expiring(certificate.not_valid_after)
        return credential, CLIENT_CERTIFICATE
    if settings.client_secret:
        return settings.client_secret, "ADDIN_CLIENT_SECRET"
    raise ConfigError("ADDIN_CLIENT_SECRET", f"or {CLIENT_CERTIFICATE} is required for OAuth access to Exchange")


CERTIFICATE_WARNING_DAYS = 30


def _warn_if_expiring(not_valid_after: datetime, now: datetime | None = None) -> None:
    """Say in the log, at start, when the certificate lapses within a month: once it has, every
    token request is refused and reports answer 503 until a new one is uploaded and configured."""
    left = not_valid_after - (now or datetime.now(UTC))
    if left < timedelta(days=CERTIFICATE_WARNING_DAYS):
        log.warning(
            "the %s certificate expires on %s (in %d days); upload a new one to the app registration",
            CLIENT_CERTIFICATE,
            not_valid_after.strftime("%Y-%m-%d"),
            max(0, left.days),
            extra={"event": "graph.certificate_expiring", "days_left": max(0, left.days)},
        )


def _expires_in(result: dict[str, Any]) -> float:
    try:
        value = float(result.get("expires_in", 0))
    except (TypeError, ValueError):
        value = 0.0
    return max(0.0, value)


def _error_codes(result: Any) -> set[int]:
    if not isinstance(result, dict):
        return set()
    codes = result.get("error_codes") or []
    out: set[int] = set()
    for code in codes if isinstance(codes, list) else []:
        try:
            out.add(int(code))
        except (TypeError, ValueError):
            continue
    return out
