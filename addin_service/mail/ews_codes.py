"""EWS response codes → this service's errors. One table, used for SOAP faults and for
per-item response messages alike (Exchange reports the same code either way)."""

from __future__ import annotations

from addin_service.errors import MailboxUnavailable, MessageNotFound, NotYourMailbox, ServiceError
from addin_service.mail.ews_retry import TransientFailure
from addin_service.untrusted_numbers import bounded_wait

NOT_FOUND = frozenset(
    {
        "ErrorItemNotFound",
        "ErrorInvalidIdMalformed",
        "ErrorInvalidIdMalformedEwsLegacyIdFormat",
        "ErrorInvalidIdEmpty",
        "ErrorInvalidIdXml",
        "ErrorInvalidIdNotAnItemAttachmentId",
        "ErrorInvalidIdStoreObjectIdTooLong",
        "ErrorInvalidIdMonikerTooLong",
        "ErrorInvalidStoreId",
    }
)
NOT_YOURS = frozenset(
    {
        "ErrorAccessDenied",
        "ErrorImpersonateUserDenied",
        "ErrorImpersonationDenied",
        "ErrorNonExistentMailbox",
        "ErrorNotDelegate",
    }
)
TRANSIENT = frozenset(
    {
        "ErrorServerBusy",
        "ErrorInternalServerTransientError",
        "ErrorInternalServerError",
        "ErrorTimeoutExpired",
        "ErrorTooManyObjectsOpened",
        "ErrorMailboxStoreUnavailable",
        "ErrorConnectionFailed",
        "ErrorConnectionFailedTransientError",
        "ErrorExceededConnectionCount",
        "ErrorMailboxMoveInProgress",
        "ErrorMailboxFailover",
    }
)
WRONG_VERSION = frozenset(
    {"ErrorInvalidServerVersion", "ErrorIncorrectSchemaVersion", "ErrorInvalidSchemaVersionForMailboxVersion"}
)
CANNOT_EXPORT = frozenset(
    {
        "ErrorItemCorrupt",
        "ErrorCorruptData",
        "ErrorMimeContentConversionFailed",
        "ErrorUnsupportedMimeConversion",
    }
)

NOT_FOUND_DETAIL = (
    "Exchange could not find this message. It may have been moved or deleted; open it again in "
    "Outlook and report it from there."
)
NOT_YOURS_DETAIL = (
    "Exchange did not let this service read that message on your behalf. You can report messages "
    "from your own mailbox and from mailboxes you have been given access to."
)


def failure_for(code: str | None, back_off_ms: int | None = None) -> ServiceError | TransientFailure:
    """The exception that stands for EWS response code ``code`` (never a raw library error)."""
    if code in NOT_FOUND:
        return MessageNotFound(NOT_FOUND_DETAIL)
    if code in NOT_YOURS:
        return NotYourMailbox(NOT_YOURS_DETAIL)
    if code in TRANSIENT:
        back_off = bounded_wait(back_off_ms / 1000) if back_off_ms is not None else None
        return TransientFailure(f"Exchange answered {code}", back_off=back_off)
    if code in WRONG_VERSION:
        return MailboxUnavailable(
            f"Exchange did not accept the EWS version this service asked for ({code}). An administrator "
            "should set ADDIN_EWS_VERSION to the server's version (for example Exchange2016)."
        )
    if code in CANNOT_EXPORT:
        return MailboxUnavailable(
            f"Exchange could not export this message ({code}). Nothing was filed; ask your administrator "
            "or the security team to preserve it another way."
        )
    return MailboxUnavailable(f"Exchange refused the request ({code or 'no response code'}). Nothing was filed.")
