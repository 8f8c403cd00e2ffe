"""The service's own small error hierarchy.

Adapters catch library exceptions (exchangelib, requests, SQLAlchemy, OS errors) and raise
these; the API maps them to ``application/problem+json`` in one place (``api/problems.py``).
Every error carries the HTTP status it maps to and a calm sentence that says what to do.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error the service reports to a caller."""

    status: int = 500
    title: str = "Internal error"
    type_slug: str = "internal"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title


class ConfigError(ServiceError):
    """A bad or missing ``ADDIN_*`` variable. The message starts with the variable's name."""

    title = "Configuration error"
    type_slug = "config"

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class InvalidRequest(ServiceError):
    """Well-formed but invalid input; ``errors`` maps field names to messages."""

    status = 400
    title = "Invalid request"
    type_slug = "validation"

    def __init__(self, detail: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or {}


class Unauthenticated(ServiceError):
    """No token, or one that fails validation. ``error`` is the RFC 6750 error code."""

    status = 401
    title = "Sign-in required"
    type_slug = "unauthenticated"

    def __init__(self, detail: str, error: str = "invalid_token") -> None:
        super().__init__(detail)
        self.error = error


class NotYourMailbox(ServiceError):
    """The caller may not read this mailbox or this item."""

    status = 403
    title = "Not allowed"
    type_slug = "forbidden"


class MessageNotFound(ServiceError):
    """Exchange has no such item (deleted, moved, or the id is wrong)."""

    status = 404
    title = "Message not found"
    type_slug = "not-found"


class ReportNotFound(ServiceError):
    status = 404
    title = "Report not found"
    type_slug = "not-found"


class IdempotencyKeyReused(ServiceError):
    """The ``Idempotency-Key`` was already used for a different request."""

    status = 422
    title = "Idempotency key reused"
    type_slug = "idempotency-key-reused"


class MessageTooLarge(ServiceError):
    """The message is larger than ``ADDIN_MAX_MESSAGE_BYTES``."""

    status = 413
    title = "Message too large"
    type_slug = "too-large"

    def __init__(self, limit: int, size: int | None = None) -> None:
        what = f"{size} bytes" if size is not None else "more bytes than allowed"
        super().__init__(
            f"The message is {what}; this service accepts at most {limit} bytes. "
            "Nothing was filed. Ask your administrator to raise ADDIN_MAX_MESSAGE_BYTES "
            "or to preserve the message another way."
        )
        self.limit = limit
        self.size = size


class RateLimited(ServiceError):
    """This service's own per-caller rate limit."""

    status = 429
    title = "Too many reports"
    type_slug = "rate-limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many reports in a short time. Try again in {retry_after} seconds.")
        self.retry_after = retry_after


class Unavailable(ServiceError):
    """A dependency is down or still throttling after bounded retries; try again later."""

    status = 503
    title = "Service temporarily unavailable"
    type_slug = "unavailable"

    def __init__(self, detail: str, retry_after: int = 30) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))


class MailboxUnavailable(Unavailable):
    """Exchange or Graph is down, timing out or throttling."""

    title = "Exchange unavailable"
    type_slug = "exchange-unavailable"


class EvidenceStoreUnavailable(Unavailable):
    """The evidence store cannot be written (disk full, unwritable, bucket down)."""

    title = "Evidence store unavailable"
    type_slug = "evidence-unavailable"


class DatabaseUnavailable(Unavailable):
    title = "Database unavailable"
    type_slug = "database-unavailable"

    def __init__(self, detail: str, retry_after: int = 30, *, reason: str | None = None) -> None:
        super().__init__(detail, retry_after)
        self.reason = reason  # why, for an administrator (the CLI, the log); never shown to a caller


class ReportInProgress(Unavailable):
    """Another request for the same report is being filed right now."""

    title = "Report in progress"
    type_slug = "in-progress"
