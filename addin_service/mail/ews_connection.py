"""One authenticated EWS endpoint: exchangelib's protocol (credentials, NTLM/OAuth, session pool)
plus a streaming POST that turns HTTP-level trouble into this adapter's failure types.

The endpoint comes only from ``ADDIN_EWS_URL`` (never autodiscover). exchangelib owns
authentication and connection reuse; this module owns how a response is read: in large chunks.

With ``ADDIN_EWS_AUTH=oauth-obo`` a request may instead carry the reporter's own delegated token
(``post(..., bearer=...)``): it goes out on a plain pooled session with ``Authorization: Bearer``,
because exchangelib's OAuth sessions put the service's token on every request. The service's own
calls (the directory, sending) keep the application's credentials.
exchangelib's own response handling feeds its XML parser one byte at a time
(``to_xml(response.iter_content())`` with requests' default ``chunk_size=1``); sessions created
here get a response hook that makes that default 64 KiB for non-streamed responses, for the
exchangelib services that still run on them (version discovery). Nothing is patched globally.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests
from exchangelib import (
    BASIC,
    NTLM,
    OAUTH2,
    Build,
    Configuration,
    Credentials,
    FailFast,
    OAuth2Credentials,
    Version,
)
from exchangelib.errors import EWSError, UnauthorizedError
from exchangelib.protocol import CachingProtocol, Protocol
from exchangelib.version import VERSIONS
from oauthlib.oauth2 import InsecureTransportError, OAuth2Error, TokenExpiredError

from addin_service.errors import ConfigError, MailboxUnavailable
from addin_service.mail.ews_retry import TransientFailure
from addin_service.mail.http_env import EnvironmentSettings
from addin_service.settings import Settings
from addin_service.untrusted_numbers import is_decimal, retry_after_seconds

READ_CHUNK = 64 * 1024
DEFAULT_MAX_CONNECTIONS = 4
# exchangelib logs whole SOAP requests and responses (message bodies) at DEBUG, requests-oauthlib
# and oauthlib log tokens and client secrets at DEBUG: none of that may reach our logs.
QUIET_LOGGERS = ("exchangelib", "requests_oauthlib", "oauthlib", "requests_ntlm")

# With oauth-obo and no ADDIN_EWS_VERSION, requests name the oldest schema an OAuth-capable
# Exchange speaks (hybrid modern authentication needs Exchange 2013 SP1 or later), so capture
# needs no discovery request with the application's credentials, which may have no EWS rights.
DELEGATED_DEFAULT_VERSION = "Exchange2013_SP1"

CREDENTIALS_REJECTED = (
    "Exchange rejected this service's sign-in (HTTP 401). This is a configuration problem, not "
    "something the reporter can fix: an administrator should check ADDIN_EWS_AUTH and the service "
    "account's user name, password or application credentials."
)
TLS_FAILED = (
    "The TLS connection to Exchange failed (certificate or protocol). An administrator should "
    "check ADDIN_EWS_URL and the trusted certificates."
)


def quiet_library_loggers() -> None:
    """Force the loggers that would write SOAP bodies, tokens or secrets to WARNING or higher."""
    for name in QUIET_LOGGERS:
        prefix = name + "."
        loggers = [logging.getLogger(name)] + [
            logging.getLogger(other) for other in list(logging.root.manager.loggerDict) if other.startswith(prefix)
        ]
        for logger in loggers:
            if logger.level < logging.WARNING:
                logger.setLevel(logging.WARNING)


def _read_in_large_chunks(
    response: requests.Response, *args: Any, stream: bool = False, **kwargs: Any
) -> requests.Response:
    """Response hook: for a response read whole (``stream=False``, exchangelib's normal services),
    make ``iter_content()`` without arguments yield 64 KiB slices instead of single bytes.

    Streamed responses are left alone: exchangelib's ``DocumentYielder`` (GetStreamingEvents)
    expects one byte per item, and the capture path asks for its chunk size explicitly.
    """
    if stream:
        return response
    original = response.iter_content

    def iter_content(chunk_size: int | None = READ_CHUNK, decode_unicode: bool = False) -> Iterator[Any]:
        return original(chunk_size=chunk_size, decode_unicode=decode_unicode)

    response.iter_content = iter_content  # type: ignore[method-assign]
    return response


class _PrivateProtocol(CachingProtocol):  # type: ignore[misc]  # exchangelib is untyped
    """exchangelib caches one Protocol per (endpoint, credentials) for the whole process; ours is
    owned by one adapter instance so its sessions, hook and timeout are not shared by accident."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return type.__call__(cls, *args, **kwargs)


class AddinProtocol(Protocol, metaclass=_PrivateProtocol):  # type: ignore[misc]
    """exchangelib's Protocol with a per-instance timeout, large-chunk response reading, and the
    environment's proxy and CA bundle read once, at construction (see ``http_env``)."""

    def __init__(self, *args: Any, timeout: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.TIMEOUT = timeout
        token_url = getattr(self.credentials, "token_url", None)
        self.environment = EnvironmentSettings.read(self.service_endpoint, *([token_url] if token_url else []))

    def create_session(self) -> Any:
        # Sessions are created lazily and renewed (new OAuth token); each gets the settings read above.
        # Only the token request made while creating an OAuth session still reads the environment.
        return self.environment.apply(super().create_session())

    @classmethod
    def raw_session(
        cls,
        prefix: str,
        oauth2_client: Any = None,
        oauth2_session_params: Any = None,
        oauth2_token_endpoint: Any = None,
    ) -> Any:
        session = super().raw_session(prefix, oauth2_client, oauth2_session_params, oauth2_token_endpoint)
        session.hooks["response"].append(_read_in_large_chunks)
        return session


class AppCredentials(OAuth2Credentials):  # type: ignore[misc]
    """OAuth 2.0 client credentials against ``ADDIN_AUTHORITY`` for the EWS host's resource.

    exchangelib's defaults point at login.microsoftonline.com and outlook.office365.com; an
    on-premises or sovereign deployment needs its own authority and resource. Tokens are not
    refreshed in place (client credentials have no refresh token): an expired token surfaces as
    ``TokenExpiredError`` and a new session fetches a new one.
    """

    def __init__(self, *, authority: str, resource: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.authority = authority.rstrip("/")
        self.resource = resource.rstrip("/")

    @property
    def token_url(self) -> str:
        return f"{self.authority}/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def scope(self) -> list[str]:
        return [f"{self.resource}/.default"]

    def session_params(self) -> dict[str, Any]:
        return {"token": self.access_token}


def pinned_version(value: str | None) -> Any:
    """``ADDIN_EWS_VERSION`` as an exchangelib Version: an EWS schema name such as ``Exchange2016``
    or a build number such as ``15.1.2507.6``. None means "ask the server once".

    :raises ConfigError: neither form.
    """
    if not value:
        return None
    text = value.strip()
    names = [(build, name) for build, name, _ in VERSIONS if name.lower() == text.lower()]
    if names:
        build, name = names[-1]  # the oldest server that speaks this schema
        return Version(build=build, api_version=name)
    parts = text.split(".")
    if 2 <= len(parts) <= 4 and all(is_decimal(part) and len(part) <= 9 for part in parts):
        numbers = [int(part) for part in parts] + [0] * (4 - len(parts))
        try:
            return Version(build=Build(*numbers))
        except ValueError:
            pass
    known = ", ".join(sorted({name for _, name, _ in VERSIONS}))
    raise ConfigError(
        "ADDIN_EWS_VERSION",
        f"must be an EWS schema version ({known}) or an Exchange build number such as 15.1.2507.6",
    )


def ews_resource(ews_url: str) -> str:
    """The resource (scheme and host) whose tokens EWS at ``ews_url`` accepts."""
    parts = urlsplit(ews_url)
    return f"{parts.scheme}://{parts.netloc}"


def _credentials(settings: Settings) -> tuple[Any, str]:
    auth = settings.ews_auth
    if auth in ("basic", "ntlm"):
        if not settings.ews_username or not settings.ews_password:
            raise ConfigError("ADDIN_EWS_USERNAME", f"and ADDIN_EWS_PASSWORD are required when ADDIN_EWS_AUTH={auth}")
        return Credentials(settings.ews_username, settings.ews_password), BASIC if auth == "basic" else NTLM
    if auth in ("oauth-app", "oauth-obo"):
        # oauth-obo: the application's credentials serve the service's own calls only.
        if not (settings.tenant_id and settings.client_id and settings.client_secret):
            raise ConfigError("ADDIN_CLIENT_SECRET", f"with ADDIN_TENANT_ID and ADDIN_CLIENT_ID is required for {auth}")
        credentials = AppCredentials(
            authority=settings.authority,
            resource=ews_resource(settings.ews_url or ""),
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            tenant_id=settings.tenant_id,
        )
        return credentials, OAUTH2
    raise ConfigError("ADDIN_EWS_AUTH", "must be one of: basic, ntlm, oauth-app, oauth-obo")


def _retry_after_header(response: requests.Response) -> float | None:
    seconds = retry_after_seconds(response.headers.get("Retry-After"))
    return float(seconds) if seconds is not None else None


def _check_status(response: requests.Response) -> None:
    """Accept a response whose body is EWS XML; classify everything else.

    :raises TransientFailure: HTTP 5xx or 429 (with Retry-After when given).
    :raises MailboxUnavailable: HTTP 401 (credentials), redirects, other client errors.
    """
    status = response.status_code
    is_xml = "xml" in response.headers.get("Content-Type", "").lower()
    if status == 200 or (status == 500 and is_xml):
        return
    if status == 401:
        raise MailboxUnavailable(CREDENTIALS_REJECTED)
    if status >= 500 or status == 429:
        raise TransientFailure(f"Exchange answered HTTP {status}", back_off=_retry_after_header(response))
    if 300 <= status < 400:
        raise MailboxUnavailable(
            f"Exchange answered with a redirect (HTTP {status}), which this service does not follow. "
            "An administrator should set ADDIN_EWS_URL to the final EWS endpoint."
        )
    raise MailboxUnavailable(
        f"Exchange answered HTTP {status}. An administrator should check that ADDIN_EWS_URL is the "
        "EWS endpoint (.../EWS/Exchange.asmx)."
    )


class DelegatedTokenRejected(Exception):
    """Exchange answered HTTP 401 to a request carrying the reporter's delegated token."""


class _PlainSessions:
    """A pool of sessions without credentials of their own, for requests that bring a bearer token.

    Same hooks and environment as exchangelib's sessions; idle sessions are reused, at most
    ``keep`` are kept.
    """

    def __init__(self, url: str, environment: EnvironmentSettings, keep: int) -> None:
        self._url = url
        self._environment = environment
        self._idle: queue.LifoQueue[requests.Session] = queue.LifoQueue(maxsize=keep)

    def get(self) -> requests.Session:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            session: requests.Session = AddinProtocol.raw_session(self._url)
            return self._environment.apply(session)

    def put(self, session: requests.Session) -> None:
        try:
            self._idle.put_nowait(session)
        except queue.Full:
            session.close()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class EwsConnection:
    """The EWS endpoint of one adapter instance. Thread-safe; sessions are pooled by exchangelib.

    :raises ConfigError: a missing endpoint, unsupported auth mode or bad version pin.
    """

    def __init__(self, settings: Settings, *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        quiet_library_loggers()
        if not settings.ews_url:
            raise ConfigError("ADDIN_EWS_URL", "is required for the EWS adapter")
        self.url = settings.ews_url
        self.timeout = settings.ews_timeout
        credentials, auth_type = _credentials(settings)
        self.uses_oauth = auth_type == OAUTH2
        self.delegated = settings.ews_auth == "oauth-obo"
        version = pinned_version(settings.ews_version)
        if version is None and self.delegated:
            version = pinned_version(DELEGATED_DEFAULT_VERSION)
        config = Configuration(
            credentials=credentials,
            service_endpoint=self.url,
            auth_type=auth_type,
            version=version,
            retry_policy=FailFast(),  # retries are the adapter's, with its own budget
            max_connections=max_connections,
        )
        self.protocol = AddinProtocol(config=config, timeout=settings.ews_timeout)
        self._plain = _PlainSessions(self.url, self.protocol.environment, keep=max_connections)

    def version(self) -> Any:
        """The server's EWS version: pinned, or learnt once with exchangelib's discovery request.

        :raises TransientFailure: the discovery request failed in a way worth retrying.
        :raises MailboxUnavailable: Exchange refused our credentials.
        """
        try:
            return self.protocol.version
        except UnauthorizedError:
            raise MailboxUnavailable(CREDENTIALS_REJECTED) from None
        except (EWSError, requests.RequestException, OAuth2Error) as exc:
            raise TransientFailure(f"could not learn the Exchange version ({type(exc).__name__})") from None

    @contextmanager
    def post(
        self, envelope: bytes, *, anchor_mailbox: str | None = None, bearer: str | None = None
    ) -> Iterator[requests.Response]:
        """POST a SOAP envelope with ``stream=True`` and yield the response, whose body is XML
        (a 200, or a 500 carrying a SOAP fault). The session goes back to the pool afterwards.

        ``bearer`` (oauth-obo): send the reporter's delegated token instead of the service's
        credentials. Exceptions from ``requests`` while the caller reads the body become
        TransientFailure; anything else the caller raises (such as the sink's ``MessageTooLarge``)
        passes through.

        :raises TransientFailure: connection trouble, timeouts, HTTP 5xx, an expired token.
        :raises DelegatedTokenRejected: HTTP 401 to a request carrying ``bearer``.
        :raises MailboxUnavailable: rejected credentials, TLS failure, redirects, other HTTP errors.
        """
        if bearer is not None:
            with self._post_delegated(envelope, anchor_mailbox, bearer) as delegated:
                yield delegated
            return
        session = self._session()
        response: requests.Response | None = None
        try:
            response = self._send(session, envelope, anchor_mailbox)
            if response.status_code == 401 and self.uses_oauth:
                # A token Exchange no longer accepts: a fresh session fetches a fresh one.
                session = self._renewed(session, self.protocol.renew_session)
                raise TransientFailure("Exchange rejected the OAuth token", detail=CREDENTIALS_REJECTED)
            _check_status(response)
            yield response
        except TokenExpiredError:
            session = self._renewed(session, self.protocol.refresh_credentials)
            raise TransientFailure("the OAuth token expired", back_off=0) from None
        except InsecureTransportError:
            raise MailboxUnavailable(
                "OAuth access to Exchange needs https. An administrator should set ADDIN_EWS_URL to an https:// URL."
            ) from None
        except requests.exceptions.SSLError:
            raise MailboxUnavailable(TLS_FAILED) from None
        except (requests.RequestException, OAuth2Error) as exc:
            raise TransientFailure(f"connection to Exchange failed ({type(exc).__name__})") from None
        finally:
            if response is not None:
                response.close()
            self.protocol.release_session(session)

    @contextmanager
    def _post_delegated(self, envelope: bytes, anchor_mailbox: str | None, bearer: str) -> Iterator[requests.Response]:
        with self._plain_session() as session, self._send(session, envelope, anchor_mailbox, bearer=bearer) as response:
            if response.status_code == 401:
                raise DelegatedTokenRejected()
            _check_status(response)
            yield response

    def reachable(self) -> None:
        """Whether EWS answers at all, without credentials (oauth-obo readiness: the service holds no
        token of its own for EWS). Any answer but a 5xx, a 429 or a redirect means reachable.

        :raises TransientFailure: / :raises MailboxUnavailable: as :meth:`post`.
        """
        with (
            self._plain_session() as session,
            session.post(self.url, data=b"", allow_redirects=False, timeout=(self.timeout, self.timeout)) as response,
        ):
            if response.status_code >= 500 or response.status_code == 429 or 300 <= response.status_code < 400:
                _check_status(response)

    @contextmanager
    def _plain_session(self) -> Iterator[requests.Session]:
        """A session without credentials of its own from the pool, returned afterwards; ``requests``
        failures inside the block become this adapter's failure types, as in :meth:`post`."""
        session = self._plain.get()
        try:
            yield session
        except requests.exceptions.SSLError:
            raise MailboxUnavailable(TLS_FAILED) from None
        except requests.RequestException as exc:
            raise TransientFailure(f"connection to Exchange failed ({type(exc).__name__})") from None
        finally:
            self._plain.put(session)

    def _renewed(self, session: Any, renew: Callable[[Any], Any]) -> Any:
        """A new session (with a new token) in place of ``session``, which exchangelib closes.
        If the new one cannot be made now, the old one goes back so the pool keeps its size;
        the next rejection or expiry tries again."""
        try:
            return renew(session)
        except (OAuth2Error, requests.RequestException):
            return session

    def _session(self) -> Any:
        """A pooled session; creating one may fetch an OAuth token."""
        try:
            return self.protocol.get_session()
        except OAuth2Error as exc:
            raise MailboxUnavailable(
                f"The identity platform refused this service's application credentials ({exc.error}). "
                "An administrator should check ADDIN_TENANT_ID, ADDIN_CLIENT_ID, ADDIN_CLIENT_SECRET "
                "and ADDIN_AUTHORITY."
            ) from None
        except requests.RequestException as exc:
            raise TransientFailure(f"could not reach the token endpoint ({type(exc).__name__})") from None

    def _send(
        self, session: Any, envelope: bytes, anchor_mailbox: str | None, *, bearer: str | None = None
    ) -> requests.Response:
        headers = {"X-AnchorMailbox": anchor_mailbox} if anchor_mailbox else {}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        response: requests.Response = session.post(
            self.url,
            data=envelope,
            headers=headers,
            stream=True,
            allow_redirects=False,  # the endpoint comes from configuration only
            timeout=(self.timeout, self.timeout),
        )
        return response

    def close(self) -> None:
        """Close pooled connections."""
        self.protocol.close()
        self._plain.close()
