"""Sending notifications through Exchange Server over EWS (``ADDIN_NOTIFY_TRANSPORT=ews``).

The service account impersonates ``ADDIN_NOTIFY_FROM`` (ApplicationImpersonation, as for capture)
and creates each notification with exchangelib's ``Message.send_and_save()``: one ``CreateItem``
with ``MessageDisposition="SendAndSaveCopy"`` and ``SavedItemFolderId`` = that mailbox's Sent Items,
so Exchange sends the message *and* keeps the proof. The item carries ``InternetMessageId`` =
:attr:`OutgoingMessage.message_id` (settable until an item is sent), which is what
:meth:`EwsSender.already_sent` looks for (``FindItem`` on Sent Items, restricted to that id) after a
send whose outcome is unknown — a connection lost after the request went out.

The body is HTML (an EWS item has one body; Exchange writes the text alternative itself). The
security team's copy of the reported message travels as a ``FileAttachment`` of type
``message/rfc822`` whose content is the stored bytes; Exchange builds the outgoing MIME, so the
transfer encoding on the wire is Exchange's choice, while the attachment stored in Sent Items is
byte-identical to the evidence. Display names are not sent at all: recipients are plain addresses.

Outcomes: success → sent. ``ErrorServerBusy`` (with its back-off), timeouts, connection trouble and
other transient errors → retry. The recipients or the message refused (``ErrorInvalidRecipients``,
``ErrorMessageSizeExceeded``...) → permanent. Impersonation or send-as refused, or a missing
``ADDIN_NOTIFY_FROM`` mailbox → retried, because an administrator can fix them.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from exchangelib import IMPERSONATION, Account, FileAttachment, HTMLBody, Mailbox, Message
from exchangelib.errors import (
    ErrorInvalidRecipients,
    ErrorMessageSizeExceeded,
    ErrorServerBusy,
    EWSError,
    UnauthorizedError,
)
from exchangelib.ewsdatetime import UTC
from exchangelib.fields import FieldPath
from exchangelib.folders import SHALLOW, Root, SentItems
from exchangelib.items import ID_ONLY
from exchangelib.properties import DistinguishedFolderId
from exchangelib.restriction import Q, Restriction
from exchangelib.services import FindItem
from oauthlib.oauth2 import OAuth2Error

from addin_service.errors import ConfigError, ServiceError
from addin_service.mail.ews_connection import EwsConnection
from addin_service.mail.ews_retry import TransientFailure
from addin_service.notify.compose import one_line
from addin_service.notify.ports import DeliveryFailed, OutgoingMessage
from addin_service.settings import Settings
from addin_service.untrusted_numbers import bounded_wait

log = logging.getLogger("addin_service.mail.ews_sender")

CONFIG_RETRY_AFTER = 300
_PERMANENT = (ErrorInvalidRecipients, ErrorMessageSizeExceeded)
_PERMANENT_CODES = frozenset(
    {
        "ErrorInvalidRecipients",
        "ErrorMessageSizeExceeded",
        "ErrorInvalidSmtpAddress",
        "ErrorSchemaValidation",
        "ErrorInvalidPropertySet",
        "ErrorInvalidInternetHeaderChildNodes",
    }
)
_CONFIG_CODES = frozenset(
    {
        "ErrorAccessDenied",
        "ErrorImpersonateUserDenied",
        "ErrorImpersonationDenied",
        "ErrorNonExistentMailbox",
        "ErrorSendAsDenied",
        "ErrorNotDelegate",
    }
)


class EwsSender:
    """:class:`~addin_service.notify.ports.Sender` over EWS. Thread-safe.

    :raises ConfigError: ``ADDIN_NOTIFY_FROM`` is not set, or the EWS settings are incomplete.
    """

    name = "ews"

    def __init__(self, settings: Settings, *, connection: EwsConnection | None = None) -> None:
        if not settings.notify_from:
            raise ConfigError("ADDIN_NOTIFY_FROM", "is required to send notifications through Exchange (EWS)")
        self._from = settings.notify_from
        self._connection = connection or EwsConnection(settings)
        self._account = Account(
            primary_smtp_address=self._from,
            access_type=IMPERSONATION,
            config=self._connection.protocol.config,
            autodiscover=False,
            default_timezone=UTC,
            locale="en_US",
        )
        # The account talks through the adapter's own protocol (its timeout, its session pool and its
        # large-chunk response reading), not a second one exchangelib would create.
        self._account.protocol = self._connection.protocol
        self._sent_items = SentItems(
            root=Root(account=self._account),
            _distinguished_id=DistinguishedFolderId(id=SentItems.DISTINGUISHED_FOLDER_ID, mailbox=Mailbox(
                email_address=self._from
            )),
        )

    def send(self, message: OutgoingMessage) -> None:
        """CreateItem with SendAndSaveCopy, as ``ADDIN_NOTIFY_FROM``.

        :raises DeliveryFailed: ``permanent`` when Exchange refused the message or its recipients.
        """
        if message.from_address.lower() != self._from:
            raise DeliveryFailed("The notification's sender is not ADDIN_NOTIFY_FROM.", permanent=True)
        item = Message(
            account=self._account,
            folder=self._sent_items,
            subject=one_line(message.subject, 250),
            body=HTMLBody(message.html),
            to_recipients=[Mailbox(email_address=address) for address in message.to],
            importance="High" if message.urgent else "Normal",
            message_id=message.message_id,
            attachments=[
                FileAttachment(name=one_line(a.filename, 100), content=a.data, content_type=a.content_type)
                for a in message.attachments
            ],
        )
        try:
            self._connection.version()
            item.send_and_save()
        except Exception as exc:  # noqa: BLE001 - every failure is translated at this boundary
            raise _delivery_failed(exc) from None
        log.info("notification handed to exchange", extra={"attachments": len(message.attachments)})

    def already_sent(self, message: OutgoingMessage) -> bool:
        """Does ``ADDIN_NOTIFY_FROM``'s Sent Items hold an item with this ``InternetMessageId``?

        :raises DeliveryFailed: Exchange could not be asked (answering False could send twice).
        """
        try:
            self._connection.version()
            found = list(self._find_in_sent_items(message.message_id))
        except Exception as exc:  # noqa: BLE001 - every failure is translated at this boundary
            failure = _delivery_failed(exc)
            raise DeliveryFailed(failure.detail, retry_after=failure.retry_after) from None
        for result in found:
            if isinstance(result, Exception):
                raise DeliveryFailed("Exchange could not search Sent Items.") from None
        return bool(found)

    def _find_in_sent_items(self, message_id: str) -> Any:
        """FindItem on Sent Items restricted to ``message:InternetMessageId``, through exchangelib's
        service directly: its QuerySet would first resolve the folder with GetFolder requests."""
        folders = [self._sent_items]
        return FindItem(account=self._account, page_size=1).call(
            folders=folders,
            additional_fields={FieldPath(field=Message.get_field_by_fieldname("message_id"))},
            restriction=Restriction(Q(message_id=message_id), folders=folders, applies_to=Restriction.ITEMS),
            order_fields=None,
            shape=ID_ONLY,
            query_string=None,
            depth=SHALLOW,
            calendar_view=None,
            max_items=1,
            offset=0,
        )

    def close(self) -> None:
        """Release pooled connections."""
        self._connection.close()


def _delivery_failed(exc: BaseException) -> DeliveryFailed:
    code = type(exc).__name__
    if isinstance(exc, _PERMANENT) or code in _PERMANENT_CODES:
        log.error("exchange refused a notification", extra={"ews_code": code})
        too_large = isinstance(exc, ErrorMessageSizeExceeded) or code == "ErrorMessageSizeExceeded"
        return DeliveryFailed(f"Exchange refused the notification ({code}).", permanent=True, too_large=too_large)
    if isinstance(exc, UnauthorizedError) or code in _CONFIG_CODES:
        log.error("exchange refused to send as ADDIN_NOTIFY_FROM", extra={"ews_code": code})
        return DeliveryFailed(
            f"Exchange did not let this service send as ADDIN_NOTIFY_FROM ({code}); an administrator should "
            "check the service account's impersonation rights and the mailbox.",
            retry_after=CONFIG_RETRY_AFTER,
        )
    if isinstance(exc, ErrorServerBusy):
        back_off: Any = getattr(exc, "back_off", None)
        seconds = bounded_wait(back_off) if isinstance(back_off, int | float) else None
        return DeliveryFailed("Exchange is busy (ErrorServerBusy).", retry_after=seconds)
    if isinstance(exc, TransientFailure):
        return DeliveryFailed(exc.detail, retry_after=bounded_wait(exc.back_off))
    if isinstance(exc, EWSError | requests.RequestException | OAuth2Error | OSError | ServiceError):
        return DeliveryFailed(f"Exchange could not be reached or failed ({code}).")
    log.error("unexpected failure while sending through exchange", extra={"error": code})
    return DeliveryFailed(f"Sending through Exchange failed unexpectedly ({code}).")
