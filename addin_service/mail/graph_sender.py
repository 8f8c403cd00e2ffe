"""Sending notifications through Microsoft Graph (``ADDIN_NOTIFY_TRANSPORT=graph``).

Uses an application token (``Mail.Send``, ideally limited to ``ADDIN_NOTIFY_FROM`` by an
application access policy): the outbox worker has no user to act for.

* Small messages: one ``POST /users/{from}/sendMail`` with the message as JSON and
  ``saveToSentItems: true``; attachments ride along as ``fileAttachment`` (base64). Graph takes
  at most 4 MB per request, so this path is used only while the whole JSON fits (a 413 falls
  back to the draft).
* Larger ones: a draft (``POST /users/{from}/messages``), each attachment under 3 MB whose JSON
  fits one request added with ``POST …/attachments``, each larger one through an upload session
  (``POST …/attachments/createUploadSession`` then ``PUT`` byte ranges of at most 3 MiB to the
  pre-authenticated ``uploadUrl``, with no ``Authorization`` header); when Graph refuses one way
  for the size (413, ``ErrorAttachmentSizeShouldNotBeLessThanMinimumSize``) the other is tried.
  Then ``POST /users/{from}/messages/{id}/send``. A range refused as already received (416: its
  answer was lost and it was sent again) discards the draft and the send is retried. A draft
  whose sending surely failed is deleted; one whose sending may have failed (5xx, connection
  lost) is deleted by ``already_sent`` when Sent Items shows it was not sent.

The body is sent as HTML only: Graph's JSON message has a single body, with no
``multipart/alternative`` text part (the plain text is used only when there is no HTML).
Attachments are ``fileAttachment`` even for ``message/rfc822``: an ``itemAttachment`` would need
the message rebuilt as Graph JSON, losing the original bytes, and upload sessions accept files only.

Each message carries ``internetMessageId`` = :attr:`OutgoingMessage.message_id` (settable while
a message is a draft, which a message being created is) and the same value in a named
single-value extended property, which ``already_sent`` looks for in Sent Items — so the check
works even if Exchange were to replace the Message-ID.

Outcomes: 202 → sent. 429, 408 and 5xx → :class:`DeliveryFailed` with ``retry_after``; other
4xx → permanent, except 401 and 403 (a token refused even after renewal, or a permission or
access policy missing — the service's own set-up, which an administrator can fix, so retried).
413, ``ErrorMessageSizeExceeded`` and ``ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize`` are
refusals for size: a file just under 3 MB whose base64 does not fit a 4 MB request while upload
sessions refuse it as too small, a message over the mailbox's maximum send size (35 MB by default),
a file over 150 MB. The worker then sends it without the attached copy.
Sends are never retried here on an uncertain outcome (5xx, connection lost): the outbox asks
``already_sent`` first.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any
from urllib.parse import urlsplit

import requests

from addin_service.errors import ServiceError
from addin_service.mail.graph_http import (
    GraphAppClient,
    GraphHttpError,
    GraphUnreachable,
    odata_quote,
)
from addin_service.notify.ports import Attachment, DeliveryFailed, OutgoingMessage
from addin_service.settings import is_loopback_host
from addin_service.untrusted_numbers import decimal

log = logging.getLogger(__name__)

# Graph: "If the file size is under 3 MB, do a single POST"; upload sessions for 3 MB to 150 MB.
SMALL_ATTACHMENT_LIMIT = 3 * 1024 * 1024
MAX_REQUEST_BYTES = 4 * 1024 * 1024 - 64 * 1024  # Graph's 4 MB request limit, with headroom
UPLOAD_CHUNK = 3 * 1024 * 1024  # "keep each byte range less than 4 MB"
UPLOAD_TOO_SMALL = "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize"  # createUploadSession, under "3 MB"
# Refusals for size: over the mailbox's maximum send size (35 MB by default), over 150 MB for a session.
TOO_LARGE_CODES = frozenset({"ErrorMessageSizeExceeded", "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize"})
NOTIFICATION_ID_PROPERTY = "String {7f1ed204-e136-4083-878e-ff3d96c335bf} Name ReportNotificationId"
SENT_ITEMS = "sentitems"
DRAFTS = "drafts"
CONFIG_RETRY_AFTER = 300  # seconds: a permission an administrator has to grant


class GraphSender(GraphAppClient):
    """:class:`~addin_service.notify.ports.Sender` over Microsoft Graph v1.0. Thread-safe."""

    name = "graph"

    # -- Sender port --------------------------------------------------------------------------

    def send(self, message: OutgoingMessage) -> None:
        """Hand ``message`` to Exchange Online from ``message.from_address``.

        :raises DeliveryFailed: ``permanent`` when Graph refused the message itself (4xx);
            otherwise with ``retry_after`` when Graph advised one.
        """
        payload: dict[str, Any] | None = None
        if all(len(a.data) < SMALL_ATTACHMENT_LIMIT for a in message.attachments):
            payload = {"message": self._message(message, message.attachments), "saveToSentItems": True}
            if not _fits_one_request(payload):
                payload = None  # too big for one request: go through a draft
        try:
            if payload is not None:
                try:
                    url = self._http.url("users", message.from_address, "sendMail")
                    self._call("POST", url, "sendMail", json_body=payload, idempotent=False).close()
                except GraphHttpError as exc:
                    if exc.status != 413:
                        raise
                    # Graph's "4 MB" counted smaller than ours: it sent nothing, so a draft may.
                    self._send_with_draft(message)
            else:
                self._send_with_draft(message)
        except (GraphHttpError, GraphUnreachable, ServiceError) as exc:
            raise _delivery_failed(exc) from None
        log.info("notification handed to graph", extra={"attachments": len(message.attachments)})

    def already_sent(self, message: OutgoingMessage) -> bool:
        """Does the sender's Sent Items hold a message tagged with ``message.message_id``? When it
        does not, drafts of it that an earlier, uncertain attempt left in Drafts are deleted first
        (each holds the reported message when it went to the security team); the next attempt
        makes its own.

        :raises DeliveryFailed: Graph could not be asked (answering False could send twice).
        """
        try:
            sent = self._tagged(message, SENT_ITEMS, "listSentItems", top=1)
        except (GraphHttpError, GraphUnreachable, ServiceError) as exc:
            raise _delivery_failed(exc, permanent_4xx=False) from None
        if sent:
            return True
        try:
            for draft_id in self._tagged(message, DRAFTS, "listDrafts", top=10):
                self._discard(message.from_address, draft_id)
        except (GraphHttpError, GraphUnreachable, ServiceError):
            log.warning("could not look for drafts an earlier attempt left")
        return False

    def _tagged(self, message: OutgoingMessage, folder: str, operation: str, *, top: int) -> list[str]:
        """Ids of the messages in ``folder`` tagged with ``message.message_id``."""
        match = (
            f"singleValueExtendedProperties/Any(ep: ep/id eq {odata_quote(NOTIFICATION_ID_PROPERTY)}"
            f" and ep/value eq {odata_quote(message.message_id)})"
        )
        query = {"$filter": match, "$select": "id,internetMessageId", "$top": str(top)}
        url = self._http.url("users", message.from_address, "mailFolders", folder, "messages", query=query)
        data = _json(self._call("GET", url, operation))
        found = data.get("value") if isinstance(data, dict) else None
        if not isinstance(found, list):
            return []
        return [str(m["id"]) for m in found if isinstance(m, dict) and m.get("id")]

    # -- the draft path -----------------------------------------------------------------------

    def _send_with_draft(self, message: OutgoingMessage) -> None:
        sender = message.from_address
        response = self._call(
            "POST",
            self._http.url("users", sender, "messages"),
            "createMessage",
            json_body=self._message(message, ()),
            idempotent=False,
        )
        draft = _json(response)
        draft_id = str(draft.get("id") or "")
        if not draft_id:
            raise GraphHttpError(502, "NoDraftId", "", operation="createMessage")
        try:
            for attachment in message.attachments:
                self._attach(sender, draft_id, attachment)
        except (GraphHttpError, GraphUnreachable, ServiceError):
            self._discard(sender, draft_id)
            raise
        try:
            send_url = self._http.url("users", sender, "messages", draft_id, "send")
            self._call("POST", send_url, "sendDraft", idempotent=False).close()
        except GraphHttpError as exc:
            if exc.status < 500:  # Graph surely did not send it: leave no draft behind.
                self._discard(sender, draft_id)
            raise

    def _attach(self, sender: str, draft_id: str, attachment: Attachment) -> None:
        """Attach in one request when it fits, else through an upload session. Graph documents the
        border only as "3 MB" for the file and "4 MB" for a request, and refuses an upload session
        for a file it deems small: when one way is refused for the size, the other is tried."""
        # Base64 only what may go in one request: a copy for an upload session can be 150 MB.
        body = _file_attachment(attachment) if len(attachment.data) < SMALL_ATTACHMENT_LIMIT else None
        in_one_request = body is not None and _fits_one_request(body)
        try:
            if body is not None and in_one_request:
                self._post_attachment(sender, draft_id, body)
            else:
                self._upload_attachment(sender, draft_id, attachment)
        except GraphHttpError as exc:
            if in_one_request and exc.status == 413:
                self._upload_attachment(sender, draft_id, attachment)
            elif not in_one_request and exc.code == UPLOAD_TOO_SMALL:
                self._post_attachment(sender, draft_id, body or _file_attachment(attachment))
            else:
                raise

    def _post_attachment(self, sender: str, draft_id: str, body: dict[str, Any]) -> None:
        url = self._http.url("users", sender, "messages", draft_id, "attachments")
        self._call("POST", url, "addAttachment", json_body=body, idempotent=False).close()

    def _upload_attachment(self, sender: str, draft_id: str, attachment: Attachment) -> None:
        url = self._http.url("users", sender, "messages", draft_id, "attachments", "createUploadSession")
        body = {
            "AttachmentItem": {
                "attachmentType": "file",
                "name": attachment.filename,
                "size": len(attachment.data),
                "contentType": attachment.content_type,
            }
        }
        session = _json(self._call("POST", url, "createUploadSession", json_body=body, idempotent=False))
        upload_url = session.get("uploadUrl")
        if not isinstance(upload_url, str) or not _acceptable_upload_url(upload_url):
            raise GraphHttpError(502, "InvalidUploadUrl", "", operation="createUploadSession")
        self._upload(upload_url, attachment.data, _next_start(session.get("nextExpectedRanges"), 0))

    def _upload(self, upload_url: str, data: bytes, start: int) -> None:
        """PUT ``data`` in ranges to the pre-authenticated ``upload_url`` (no Authorization header)."""
        total = len(data)
        while start < total:
            end = min(start + UPLOAD_CHUNK, total) - 1
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"bytes {start}-{end}/{total}",
            }
            response = self._http.request(
                "PUT",
                upload_url,
                bearer=None,
                operation="uploadRange",
                data=data[start : end + 1],
                headers=headers,
                ok=frozenset({200, 201}),
            )
            status = response.status_code
            state = _json(response) if status == 200 else {}
            if status == 201:
                return
            following = _next_start(state.get("nextExpectedRanges"), end + 1)
            if following <= start:
                raise GraphHttpError(502, "UploadNotAdvancing", "", operation="uploadRange")
            start = following
        raise GraphHttpError(502, "UploadNotCompleted", "", operation="uploadRange")

    def _discard(self, sender: str, draft_id: str) -> None:
        try:
            response = self._call("DELETE", self._http.url("users", sender, "messages", draft_id), "deleteMessage")
            response.close()
        except (GraphHttpError, GraphUnreachable, ServiceError):
            log.warning("an unsent notification draft could not be deleted")

    # -- helpers ------------------------------------------------------------------------------

    def _call(
        self, method: str, url: str, operation: str, *, json_body: Any = None, idempotent: bool = True
    ) -> requests.Response:
        return self._http.request(
            method, url, bearer=self._bearer, operation=operation, json_body=json_body, idempotent=idempotent
        )

    @staticmethod
    def _message(message: OutgoingMessage, attachments: tuple[Attachment, ...]) -> dict[str, Any]:
        body = (
            {"contentType": "HTML", "content": message.html}
            if message.html
            else {"contentType": "Text", "content": message.text}
        )
        graph_message: dict[str, Any] = {
            "subject": message.subject,
            "importance": "high" if message.urgent else "normal",
            "body": body,
            "toRecipients": [{"emailAddress": {"address": address}} for address in message.to],
            "internetMessageId": message.message_id,
            "singleValueExtendedProperties": [{"id": NOTIFICATION_ID_PROPERTY, "value": message.message_id}],
        }
        if attachments:
            graph_message["attachments"] = [_file_attachment(a) for a in attachments]
        return graph_message


def _upload_lost_its_place(exc: GraphHttpError) -> bool:
    """A byte range refused as already received: a range whose answer was lost was sent again.
    The draft is discarded; the next attempt uploads into a new one."""
    return exc.operation == "uploadRange" and exc.status == 416


def _fits_one_request(body: dict[str, Any]) -> bool:
    return len(json.dumps(body, ensure_ascii=False).encode("utf-8")) <= MAX_REQUEST_BYTES


def _file_attachment(attachment: Attachment) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "name": attachment.filename,
        "contentType": attachment.content_type,
        "contentBytes": base64.b64encode(attachment.data).decode("ascii"),
    }


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise GraphHttpError(502, "NotJson", "", operation="") from None
    finally:
        response.close()
    return data if isinstance(data, dict) else {}


def _next_start(ranges: Any, default: int) -> int:
    """The first byte Graph expects next, from ``nextExpectedRanges`` (``["2097152"]``, ``["0-"]``)."""
    if isinstance(ranges, list) and ranges and isinstance(ranges[0], str):
        head = decimal(ranges[0].split("-", 1)[0])
        if head is not None:
            return head
    return default


def _acceptable_upload_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname))


def _delivery_failed(exc: Exception, *, permanent_4xx: bool = True) -> DeliveryFailed:
    if isinstance(exc, GraphUnreachable):
        return DeliveryFailed(f"Graph could not be reached ({exc.reason}).", retry_after=exc.retry_after)
    if isinstance(exc, GraphHttpError):
        detail = f"Graph answered {exc.status} {exc.code or ''} to {exc.operation}.".replace("  ", " ")
        if exc.status == 403:
            # The application lacks a permission (Mail.Send, or Mail.ReadWrite for a large copy) or
            # an access policy leaves ADDIN_NOTIFY_FROM out: an administrator can fix that.
            log.error(
                "graph refused to send as ADDIN_NOTIFY_FROM", extra={"operation": exc.operation, "graph_code": exc.code}
            )
            return DeliveryFailed(
                detail + " Check the application's Graph permissions (Mail.Send; Mail.ReadWrite for copies "
                "over 3 MB) and its access policy for ADDIN_NOTIFY_FROM.",
                retry_after=CONFIG_RETRY_AFTER,
            )
        if exc.status in (401, 408, 429) or exc.status >= 500 or not permanent_4xx or _upload_lost_its_place(exc):
            return DeliveryFailed(detail, retry_after=exc.retry_after)
        log.error("graph refused a notification", extra={"status": exc.status, "graph_code": exc.code})
        return DeliveryFailed(detail, permanent=True, too_large=exc.status == 413 or exc.code in TOO_LARGE_CODES)
    retry_after = getattr(exc, "retry_after", None)
    return DeliveryFailed("No Graph token could be had for sending.", retry_after=retry_after)
