"""One place that turns errors into ``application/problem+json`` (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, json, request
from werkzeug.exceptions import HTTPException

from addin_service.errors import (
    ConfigError,
    InvalidRequest,
    RateLimited,
    ServiceError,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger("addin_service.api")
PROBLEM_JSON = "application/problem+json"
MAX_INSTANCE = 256  # characters of the request path a problem repeats

INTERNAL_DETAIL = (
    "Something went wrong on our side and nothing was filed. Please try again; "
    "if it keeps happening, tell your IT help desk and quote the request id."
)

_HTTP_DETAIL = {
    400: "The request could not be read. Send a JSON object as described in /openapi.json.",
    404: "There is nothing at this address.",
    405: "This address does not accept that method.",
    413: "The request body is too large.",
    415: "Send the body as application/json.",
}


class UnsupportedMediaType(ServiceError):
    """A body the service would have to guess at: not ``application/json``, or in a content coding
    (gzip...) it does not decode. ``headers`` go out with the 415 (RFC 7694: ``Accept-Encoding``)."""

    status = 415
    title = "Unsupported media type"
    type_slug = "unsupported-media-type"

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.headers = headers or {}


def shown_text(text: str, limit: int) -> str:
    """Text from a request, fit to send back: lone surrogates and control characters replaced,
    at most ``limit`` characters."""
    shown = "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF or not ch.isprintable() else ch for ch in text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "\u2026"


def problem(
    status: int,
    title: str,
    detail: str,
    slug: str,
    *,
    errors: dict[str, list[str]] | None = None,
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:report-harassment:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": shown_text(request.path, MAX_INSTANCE) if request else "",
        "request_id": getattr(g, "request_id", ""),
    }
    if errors:
        body["errors"] = errors
    if retry_after is not None:
        body["retry_after"] = retry_after
    body.update(extra or {})
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_service_error(exc: ServiceError) -> Response:
    headers: dict[str, str] = {}
    retry_after: int | None = None
    errors: dict[str, list[str]] | None = None
    if isinstance(exc, Unavailable | RateLimited):
        retry_after = exc.retry_after
    elif isinstance(exc, Unauthenticated):
        challenge = 'Bearer realm="report-harassment"'
        if exc.error:
            challenge += f', error="{exc.error}"'
        headers["WWW-Authenticate"] = challenge
    elif isinstance(exc, InvalidRequest):
        errors = exc.errors
    elif isinstance(exc, UnsupportedMediaType):
        headers.update(exc.headers)
    return problem(
        exc.status,
        exc.title,
        exc.detail,
        exc.type_slug,
        errors=errors,
        retry_after=retry_after,
        headers=headers,
    )


def register(app: Flask) -> None:
    """Install the error handlers. Every error leaves as problem+json, never as HTML."""

    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Response:
        if isinstance(exc, ConfigError):
            # Its detail names a variable and often a path: for the administrator, not the caller.
            log.error(
                "configuration problem",
                extra={"event": "request.config_error", "variable": exc.variable, "detail": exc.detail},
            )
            return problem(500, "Internal error", INTERNAL_DETAIL, "internal")
        if exc.status >= 500:
            log.warning(
                "request failed",
                extra={"event": "request.failed", "status": exc.status, "kind": exc.type_slug},
            )
        return from_service_error(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        detail = _HTTP_DETAIL.get(status, exc.description or "")
        # A 405 must say which methods the address does accept (RFC 9110); werkzeug knows them.
        allow = {name: value for name, value in exc.get_headers() if name.lower() == "allow"}
        return problem(status, exc.name, detail, f"http-{status}", headers=allow)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error", extra={"event": "request.crashed"})
        return problem(500, "Internal error", INTERNAL_DETAIL, "internal")
