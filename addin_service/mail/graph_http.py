"""Microsoft Graph over HTTP: URLs, bearer tokens, bounded retries and Graph's error bodies.

Every Graph adapter (mailbox, directory, sender) talks through :class:`GraphHttp`, so the rules
live in one place:

* URLs are built from ``ADDIN_GRAPH_URL`` only, never from a request (no SSRF); path segments are
  percent-encoded and OData query options keep their literal ``$`` (``$select``, ``$filter``).
* A 401 makes the token be forgotten and the request sent once more with a fresh token.
* 429, 502, 503 and 504 are retried after ``Retry-After`` as long as the total stays within
  ``max_wait`` seconds, but never sooner than the exponential backoff (0.5 s, 1 s, 2 s ... 8 s):
  as the EWS retrier does, so a ``Retry-After: 0`` or a date already past cannot make the loop
  resend back to back. Connection failures and timeouts wait the backoff alone. Requests
  that are not idempotent (sending mail) are retried only when Graph surely did not act on them:
  a 429, or a connection that was never established.
* Anything else comes back as :class:`GraphHttpError` carrying Graph's error ``code`` from the
  ``{"error": {"code", "message", "innerError"}}`` body; network failures after retries as
  :class:`GraphUnreachable`. Adapters translate both into the service's own errors.

Logs carry the operation, status, Graph error code and ``request-id``; never a token or a body.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
import urllib3

from addin_service.mail.graph_tokens import GraphTokens, TokenSource
from addin_service.settings import Settings
from addin_service.untrusted_numbers import retry_after_seconds

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MIN_BACKOFF = 0.5
MAX_BACKOFF = 8.0
# Characters left as they are in query values: OData needs its quotes, parentheses, commas,
# colons and slashes readable; everything else (spaces, '+', '<', '>', '=', '&', '#') is encoded.
_QUERY_SAFE = "$'(),:/@"
_PATH_SAFE = "@=$"


class GraphHttpError(Exception):
    """Graph answered with an error status (after any retries)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        request_id: str | None = None,
        retry_after: int | None = None,
        operation: str = "",
    ) -> None:
        super().__init__(f"{operation}: HTTP {status} {code}")
        self.status = status
        self.code = code
        self.message = message  # developer-facing text from Graph; not for users, not logged
        self.request_id = request_id
        self.retry_after = retry_after
        self.operation = operation


class GraphUnreachable(Exception):
    """Graph could not be reached (connection refused, reset, timed out) after retries."""

    def __init__(self, reason: str, *, retry_after: int, operation: str = "") -> None:
        super().__init__(f"{operation}: {reason}")
        self.reason = reason
        self.retry_after = retry_after
        self.operation = operation


@dataclass(frozen=True)
class Bearer:
    """Where a request gets its token, and how to report that Graph refused it."""

    get: Callable[[], str]
    forget: Callable[[str], None]


def odata_quote(value: str) -> str:
    """``value`` as an OData string literal: single-quoted, inner quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def query_string(params: Mapping[str, str]) -> str:
    """Encode OData query options, keeping ``$`` in names and OData punctuation in values."""
    return "&".join(f"{quote(name, safe='$')}={quote(value, safe=_QUERY_SAFE)}" for name, value in params.items())


def parse_error(response: requests.Response, operation: str) -> GraphHttpError:
    """Read Graph's error body (if any) from ``response`` and close it."""
    code, message = "", ""
    request_id = response.headers.get("request-id")
    try:
        body = response.json() if response.content else None
    except (ValueError, requests.RequestException):
        body = None
    finally:
        response.close()
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = str(error.get("code") or "")
        message = str(error.get("message") or "")
        inner = error.get("innerError") or error.get("innererror")
        if isinstance(inner, dict) and not request_id:
            value = inner.get("request-id")
            request_id = str(value) if value else None
    return GraphHttpError(
        response.status_code,
        code,
        message,
        request_id=request_id,
        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        operation=operation,
    )


def _never_connected(exc: requests.RequestException) -> bool:
    """True when the request surely never reached Graph (so even a send may be retried)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


class GraphHttp:
    """Authenticated, retrying requests to one Graph endpoint. Thread-safe if the session is."""

    def __init__(
        self,
        base_url: str,
        session: requests.Session,
        *,
        max_wait: float,
        read_timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.max_wait = max_wait
        self.timeout = (CONNECT_TIMEOUT, read_timeout)
        self._sleep = sleep
        self._clock = clock

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        session: requests.Session | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> GraphHttp:
        """The client every Graph adapter uses: ``ADDIN_GRAPH_URL``, the shared retry budget
        ``ADDIN_EXCHANGE_MAX_WAIT`` and the read timeout."""
        return cls(
            settings.graph_url,
            session if session is not None else requests.Session(),
            max_wait=settings.exchange_max_wait,
            read_timeout=settings.ews_timeout,
            sleep=sleep,
            clock=clock,
        )

    def url(self, *segments: str, query: Mapping[str, str] | None = None) -> str:
        """``{graph_url}/seg1/seg2...?query`` with each segment percent-encoded."""
        path = "/".join(quote(segment, safe=_PATH_SAFE) for segment in segments)
        url = f"{self.base_url}/{path}"
        if query:
            url += "?" + query_string(query)
        return url

    def request(
        self,
        method: str,
        url: str,
        *,
        bearer: Bearer | None,
        operation: str,
        json_body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        idempotent: bool = True,
        ok: frozenset[int] | None = None,
        abort: threading.Event | None = None,
        deadline: float | None = None,
    ) -> requests.Response:
        """Send one Graph request, retrying as the module describes; return a successful response.

        A streamed response must be closed by the caller. ``deadline`` (on this object's clock)
        lets several requests share one waiting budget.

        :raises GraphHttpError: Graph answered with an error status, or kept throttling.
        :raises GraphUnreachable: Graph could not be reached within ``max_wait``, or ``abort``
            was set (the caller no longer needs the answer).
        :raises Unauthenticated, MailboxUnavailable: from the token source.
        """
        own = self._clock() + self.max_wait
        deadline = own if deadline is None else min(own, deadline)
        attempt = 0
        refreshed = False
        body = data if json_body is None else json.dumps(json_body, ensure_ascii=False).encode("utf-8")
        while True:
            if abort is not None and abort.is_set():
                raise GraphUnreachable("abandoned", retry_after=1, operation=operation)
            send_headers = {"Accept": "application/json"}
            if json_body is not None:
                send_headers["Content-Type"] = "application/json"
            send_headers.update(headers or {})
            token = ""
            if bearer is not None:
                token = bearer.get()
                send_headers["Authorization"] = f"Bearer {token}"
            try:
                response = self.session.request(
                    method,
                    url,
                    data=body,
                    headers=send_headers,
                    stream=stream,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.exceptions.SSLError:
                # An untrusted or mismatched certificate will not fix itself by retrying.
                log.error("graph TLS verification failed; check ADDIN_GRAPH_URL and REQUESTS_CA_BUNDLE")
                raise GraphUnreachable("TLS verification failed", retry_after=60, operation=operation) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                delay = self._backoff(attempt)
                retryable = idempotent or _never_connected(exc)
                if not retryable or not self._may_wait(delay, deadline):
                    raise self._unreachable(type(exc).__name__, operation, delay) from None
            else:
                status = response.status_code
                if (ok is not None and status in ok) or (ok is None and 200 <= status < 300):
                    return response
                if status == 401 and bearer is not None and not refreshed:
                    response.close()
                    bearer.forget(token)
                    refreshed = True
                    log.info("graph refused the token; trying once with a new one", extra={"operation": operation})
                    continue
                if status in RETRY_STATUSES and (idempotent or status == 429):
                    error = parse_error(response, operation)
                    # Wait as long as Graph asked, but never less than the backoff: a "0" (or
                    # a past date) must not turn the budget into a burst of requests.
                    delay = max(self._backoff(attempt), float(error.retry_after or 0))
                    if not self._may_wait(delay, deadline):
                        if not error.retry_after:
                            error.retry_after = max(1, int(delay + 0.999))
                        log.warning(
                            "graph still busy; giving up",
                            extra={
                                "operation": operation,
                                "status": status,
                                "graph_code": error.code,
                                "graph_request_id": error.request_id,
                                "retry_after": error.retry_after,
                            },
                        )
                        raise error
                    log.info(
                        "graph busy; waiting before retrying",
                        extra={
                            "operation": operation,
                            "status": status,
                            "graph_code": error.code,
                            "wait": delay,
                        },
                    )
                else:
                    error = parse_error(response, operation)
                    log.log(
                        logging.DEBUG if status == 404 else logging.INFO,
                        "graph error",
                        extra={
                            "operation": operation,
                            "status": status,
                            "graph_code": error.code,
                            "graph_request_id": error.request_id,
                        },
                    )
                    raise error
            self._sleep(delay)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        """The least wait before retry number ``attempt + 1``: 0.5 s doubling, at most 8 s."""
        return float(min(MAX_BACKOFF, MIN_BACKOFF * (2**attempt)))

    def deadline(self) -> float:
        """A deadline ``max_wait`` seconds from now, for requests that share one budget."""
        return self._clock() + self.max_wait

    def _may_wait(self, delay: float, deadline: float) -> bool:
        return self._clock() + delay <= deadline

    def _unreachable(self, reason: str, operation: str, delay: float) -> GraphUnreachable:
        log.warning("graph unreachable", extra={"operation": operation, "reason": reason})
        return GraphUnreachable(reason, retry_after=max(5, int(delay + 0.999)), operation=operation)


class GraphAppClient:
    """What the adapters that call Graph as this application (directory, sender) share: the
    application token from ``tokens`` (default: :class:`GraphTokens` from settings) and the one
    HTTP client built from settings."""

    def __init__(
        self,
        settings: Settings,
        tokens: TokenSource | None = None,
        session: requests.Session | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens: TokenSource = tokens if tokens is not None else GraphTokens(settings)
        self._http = GraphHttp.from_settings(settings, session, sleep=sleep, clock=clock)
        self._bearer = Bearer(get=self._tokens.app_token, forget=self._tokens.forget)
