"""EWS response codes become this service's errors (addin_service.mail.ews_codes)."""

from __future__ import annotations

import pytest

from addin_service.errors import MailboxUnavailable, MessageNotFound, NotYourMailbox
from addin_service.mail.ews_codes import failure_for
from addin_service.mail.ews_retry import TransientFailure


@pytest.mark.parametrize("code", ["ErrorItemNotFound", "ErrorInvalidIdMalformed", "ErrorInvalidIdEmpty"])
def test_a_missing_or_malformed_item_is_message_not_found(code: str) -> None:
    assert isinstance(failure_for(code), MessageNotFound)


@pytest.mark.parametrize(
    "code", ["ErrorAccessDenied", "ErrorImpersonateUserDenied", "ErrorNonExistentMailbox", "ErrorNotDelegate"]
)
def test_refused_access_is_not_your_mailbox(code: str) -> None:
    assert isinstance(failure_for(code), NotYourMailbox)


@pytest.mark.parametrize("code", ["ErrorServerBusy", "ErrorInternalServerTransientError", "ErrorTimeoutExpired"])
def test_throttling_and_transient_server_trouble_are_retried(code: str) -> None:
    failure = failure_for(code)
    assert isinstance(failure, TransientFailure) and failure.retryable


def test_back_off_milliseconds_become_seconds() -> None:
    failure = failure_for("ErrorServerBusy", back_off_ms=2500)
    assert isinstance(failure, TransientFailure) and failure.back_off == 2.5


def test_a_wrong_schema_version_asks_the_admin_to_pin_the_version() -> None:
    failure = failure_for("ErrorInvalidServerVersion")
    assert isinstance(failure, MailboxUnavailable) and "ADDIN_EWS_VERSION" in failure.detail


def test_a_message_exchange_cannot_export_is_unavailable_and_not_retried() -> None:
    failure = failure_for("ErrorMimeContentConversionFailed")
    assert isinstance(failure, MailboxUnavailable) and not isinstance(failure, TransientFailure)


def test_an_unknown_code_is_unavailable_and_named() -> None:
    failure = failure_for("ErrorSomethingNew")
    assert isinstance(failure, MailboxUnavailable) and "ErrorSomethingNew" in failure.detail
