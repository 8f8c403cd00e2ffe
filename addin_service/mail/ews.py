"""``EwsMailbox``: capture a reported message from Exchange Server over EWS, streaming.

One ``GetItem`` fetches ``MimeContent``, ``InternetMessageHeaders`` and the capture facts while
impersonating the reporter, so Exchange itself enforces what the reporter may read. With
``ADDIN_EWS_AUTH=oauth-obo`` nobody is impersonated: the reporter's add-in token is exchanged
(on behalf of) for a delegated ``EWS.AccessAsUser.All`` token and the requests carry that, so the
service can read only what the reporter can. When the item is said to be in another mailbox
(delegate or shared), ``ConvertId`` first tells which mailbox really holds it. The response is
read in 64 KiB chunks and parsed incrementally; the MIME is base64-decoded straight into the
evidence sink, so memory stays flat for a 100 MB message.

Every failure leaves as an ``addin_service.errors`` type; no exchangelib or requests exception
escapes. See ``docs/exchangelib-streaming.md`` for why the response is not read by exchangelib.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from addin_service.errors import MailboxUnavailable, MessageNotFound, NotYourMailbox, ServiceError, Unauthenticated
from addin_service.mail import ews_requests
from addin_service.mail.download import DownloadFailed, body_chunks
from addin_service.mail.ews_codes import NOT_FOUND_DETAIL, NOT_YOURS_DETAIL, failure_for
from addin_service.mail.ews_connection import (
    DEFAULT_MAX_CONNECTIONS,
    READ_CHUNK,
    DelegatedTokenRejected,
    EwsConnection,
    ews_resource,
)
from addin_service.mail.ews_response import EwsResponse, EwsResponseReader, MalformedResponse, ResponseMessage
from addin_service.mail.ews_retry import Retrier, RetryPolicy, TransientFailure
from addin_service.mail.graph_tokens import GraphTokens, TokenSource
from addin_service.mail.ports import ITEM_ID_MAX_LENGTH, NO_MIME_DETAIL, CapturedItem, ItemRef, MimeSink
from addin_service.settings import Settings
from addin_service.untrusted_numbers import decimal

T = TypeVar("T")

log = logging.getLogger("addin_service.mail.ews")

CHECK_TTL_SECONDS = 10.0
_EWS_ID = re.compile(r"[A-Za-z0-9+/]+={0,2}")
DELEGATED_SCOPES = ("EWS.AccessAsUser.All",)
SIGN_IN_AGAIN = (
    "Exchange did not accept your sign-in for reading this message. Close the add-in, open it again and retry."
)
UNREADABLE_DETAIL = (
    "Exchange's answer could not be read (something between the service and Exchange may be answering "
    "in its place), so the message could not be preserved yet. Nothing was filed. Please try again in a "
    "few minutes."
)
PARTIAL_DETAIL = (
    "Exchange failed while the message was being copied, so the copy may be incomplete. "
    "Nothing was filed. Please try again."
)


class _CountingSink:
    """Passes MIME bytes on and remembers whether any were written (then a retry would duplicate them)."""

    def __init__(self, sink: MimeSink) -> None:
        self._sink = sink
        self.written = 0

    def write(self, data: bytes, /) -> int:
        written = self._sink.write(data)
        self.written += len(data)
        return written


def _only_message(response: EwsResponse, operation: str) -> ResponseMessage:
    if len(response.messages) != 1:
        raise TransientFailure(f"{operation} answered with {len(response.messages)} response messages")
    return response.messages[0]


def _raise_unless_success(message: ResponseMessage) -> None:
    if message.response_class == "Success" and message.code == "NoError":
        return
    raise failure_for(message.code, message.back_off_ms)


class EwsMailbox:
    """The EWS implementation of :class:`~addin_service.mail.ports.Mailbox`.

    Built once per process from settings (endpoint, auth, version pin, timeout, retry budget);
    thread-safe, with a pool of authenticated sessions.

    :param retry: / :param sleep: / :param clock: / :param jitter: the retry policy and its time
        sources, injectable so tests need not wait.
    :param tokens: (oauth-obo) where delegated EWS tokens come from; default msal against
        ``ADDIN_AUTHORITY`` for the EWS host of ``ADDIN_EWS_URL``.
    :raises ConfigError: missing endpoint, unsupported auth mode or bad ``ADDIN_EWS_VERSION``.
    """

    name = "ews"

    def __init__(
        self,
        settings: Settings,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float, float], float] | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        check_ttl: float = CHECK_TTL_SECONDS,
        tokens: TokenSource | None = None,
    ) -> None:
        self._connection = EwsConnection(settings, max_connections=max_connections)
        self._tokens: TokenSource | None = None
        if self._connection.delegated:
            self._tokens = tokens or GraphTokens(settings, resource=ews_resource(self._connection.url))
        policy = retry or RetryPolicy(max_wait=settings.exchange_max_wait)
        retrier_kwargs: dict[str, Any] = {"sleep": sleep, "clock": clock}
        if jitter is not None:
            retrier_kwargs["jitter"] = jitter
        self._retrier = Retrier(policy, **retrier_kwargs)
        self._clock = clock
        self._check_ttl = check_ttl
        self._check_lock = threading.Lock()
        self._checked_at: float | None = None
        self._check_failure: MailboxUnavailable | None = None

    # capture --------------------------------------------------------------------------------------
    def capture(self, ref: ItemRef, sink: MimeSink) -> CapturedItem:
        """Stream the item's MIME into ``sink`` and return its transport headers and facts.

        Never modifies, moves or deletes the item.

        :raises MessageNotFound: the item does not exist for this user (or the id is malformed).
        :raises NotYourMailbox: the reporter may not read that mailbox or item, or the item is not in
            the mailbox the client named.
        :raises MailboxUnavailable: Exchange is down, timing out or still throttling after retries, or
            refuses this service's credentials.
        :raises MessageTooLarge: raised by the sink and passed through.
        """
        if len(ref.item_id) > ITEM_ID_MAX_LENGTH or not _EWS_ID.fullmatch(ref.item_id):
            raise MessageNotFound(NOT_FOUND_DETAIL)
        started = self._clock()
        deadline = self._retrier.deadline()
        if ref.mailbox.casefold() != ref.reporter.casefold():
            holder = self._as_reporter(
                ref,
                lambda bearer: self._retrier.run(
                    lambda: self._mailbox_holding(ref, bearer), what="ConvertId", deadline=deadline
                ),
            )
            if holder.casefold() != ref.mailbox.casefold():
                raise NotYourMailbox(NOT_YOURS_DETAIL)
        counting = _CountingSink(sink)
        captured = self._as_reporter(
            ref,
            lambda bearer: self._retrier.run(
                lambda: self._get_item(ref, counting, bearer), what="GetItem", deadline=deadline
            ),
        )
        log.info("EWS capture done: %d bytes in %.2f s", counting.written, self._clock() - started)
        return captured

    def _as_reporter(self, ref: ItemRef, attempt: Callable[[str | None], T]) -> T:
        """Run ``attempt`` with the reporter's rights: ``attempt(None)`` when the service impersonates,
        else with a delegated token; a token Exchange rejects is dropped and a fresh one tried once.

        :raises Unauthenticated: no add-in token, or Exchange rejected a fresh delegated token too.
        """
        if self._tokens is None:
            return attempt(None)
        token = self._delegated_token(ref)
        try:
            return attempt(token)
        except DelegatedTokenRejected:
            self._tokens.forget(token)
        try:
            return attempt(self._delegated_token(ref))
        except DelegatedTokenRejected:
            log.warning("EWS rejected a fresh delegated token", extra={"event": "ews.delegated_token_rejected"})
            raise Unauthenticated(SIGN_IN_AGAIN) from None

    def _delegated_token(self, ref: ItemRef) -> str:
        assert self._tokens is not None
        if not ref.user_token:
            raise Unauthenticated(SIGN_IN_AGAIN)
        return self._tokens.delegated_token(ref.user_token, DELEGATED_SCOPES)

    def _impersonated(self, ref: ItemRef) -> str | None:
        """Whom the envelope impersonates: the reporter, or nobody when the token is theirs."""
        return None if self._tokens is not None else ref.reporter

    def _mailbox_holding(self, ref: ItemRef, bearer: str | None) -> str:
        """Which mailbox holds the item, according to Exchange (ConvertId, as the reporter)."""
        version = self._connection.version()
        envelope = ews_requests.convert_id(
            self._connection.protocol,
            version,
            item_id=ref.item_id,
            mailbox=ref.mailbox,
            impersonate=self._impersonated(ref),
        )
        message = _only_message(self._call(envelope, "ConvertId", anchor=ref.reporter, bearer=bearer), "ConvertId")
        _raise_unless_success(message)
        mailboxes = [alternate.mailbox for alternate in message.alternate_ids if alternate.mailbox]
        if len(mailboxes) != 1:
            raise TransientFailure("ConvertId answered without the item's mailbox")
        return mailboxes[0]

    def _get_item(self, ref: ItemRef, sink: _CountingSink, bearer: str | None) -> CapturedItem:
        if sink.written:
            # Every way of trying again (the retrier, a fresh delegated token) comes through here; an
            # attempt after bytes reached the evidence would append a second copy to the first.
            raise TransientFailure("GetItem: not retried after a partial copy", detail=PARTIAL_DETAIL, retryable=False)
        version = self._connection.version()
        envelope = ews_requests.get_item(
            self._connection.protocol, version, item_id=ref.item_id, impersonate=self._impersonated(ref)
        )
        try:
            response = self._call(envelope, "GetItem", anchor=ref.reporter, mime_write=sink.write, bearer=bearer)
            # An answer can stream MIME and still fail (a Warning such as ErrorServerBusy, a second
            # response message): once bytes are written, no failure may be retried.
            message = _only_message(response, "GetItem")
            _raise_unless_success(message)
        except TransientFailure as failure:
            if sink.written:
                raise TransientFailure(failure.reason, detail=PARTIAL_DETAIL, retryable=False) from None
            raise
        if len(message.items) != 1 or not message.items[0].has_mime or not sink.written:
            raise MailboxUnavailable(NO_MIME_DETAIL)
        item = message.items[0]
        size = item.size.strip() if item.size else ""
        return CapturedItem(
            headers=tuple(item.headers),
            item_id=item.item_id or ref.item_id,
            change_key=item.change_key,
            internet_message_id=item.internet_message_id,
            subject=item.subject,
            sender=item.sender,
            from_address=item.from_address,
            received_at=item.received_at,
            exchange_size=decimal(size),
            adapter=self.name,
            server_version=response.server_version or f"{version.api_version} ({version.build})",
            mime_source="ews-mimecontent",
        )

    def _call(
        self,
        envelope: bytes,
        operation: str,
        *,
        anchor: str | None,
        mime_write: Callable[[bytes], object] | None = None,
        bearer: str | None = None,
    ) -> EwsResponse:
        """POST ``envelope`` and parse the answer while it streams in; raise for a SOAP fault.

        ``ADDIN_EWS_TIMEOUT`` bounds each read; the whole answer must come within the waiting budget
        (``ADDIN_EXCHANGE_MAX_WAIT``), extended by the bytes received at a floor rate, so that an
        Exchange sending a byte at a time cannot hold a report (and a server thread) for hours.
        """
        reader = EwsResponseReader(operation, mime_write)
        deadline = self._clock() + self._retrier.policy.max_wait
        try:
            with self._connection.post(envelope, anchor_mailbox=anchor, bearer=bearer) as response:
                for chunk in body_chunks(response, chunk_size=READ_CHUNK, deadline=deadline, clock=self._clock):
                    reader.feed(chunk)
                result = reader.close()
        except MalformedResponse as exc:
            raise TransientFailure(f"{operation}: malformed response ({exc})", detail=UNREADABLE_DETAIL) from None
        except DownloadFailed as exc:
            raise TransientFailure(f"{operation}: the answer did not arrive whole ({exc.reason})") from None
        if result.fault is not None:
            raise failure_for(result.fault.code, result.fault.back_off_ms)
        return result

    # related messages -----------------------------------------------------------------------------
    def find_from_sender(self, ref: ItemRef, sender: str, limit: int) -> list[str]:
        """Other messages from ``sender`` in the Inbox, Junk Email and Deleted Items of
        ``ref.mailbox``, found as the reporter (so Exchange enforces their rights).

        EWS matches From loosely; only exact address matches are kept.

        :raises NotYourMailbox: the reporter may not read that mailbox.
        :raises MailboxUnavailable: Exchange is down, timing out or throttling beyond the budget.
        """
        wanted = sender.strip().casefold()
        deadline = self._retrier.deadline()
        found: list[str] = []

        def search(folder: str, bearer: str | None) -> ResponseMessage:
            find = functools.partial(self._find_in, ref, folder, sender, limit, bearer)
            return self._retrier.run(find, what="FindItem", deadline=deadline)

        for folder in ews_requests.RELATED_FOLDERS:
            message = self._as_reporter(ref, functools.partial(search, folder))
            if message.code == "ErrorFolderNotFound":
                continue
            _raise_unless_success(message)
            for item in message.items:
                exact = (item.from_address or "").strip().casefold() == wanted
                if exact and item.item_id and item.item_id != ref.item_id and item.item_id not in found:
                    found.append(item.item_id)
            if len(found) >= limit:
                break
        return found[:limit]

    def _find_in(self, ref: ItemRef, folder: str, sender: str, limit: int, bearer: str | None) -> ResponseMessage:
        envelope = ews_requests.find_from_sender(
            self._connection.protocol,
            self._connection.version(),
            mailbox=ref.mailbox,
            folder=folder,
            sender=sender,
            limit=limit + 1,
            impersonate=self._impersonated(ref),
        )
        return _only_message(self._call(envelope, "FindItem", anchor=ref.reporter, bearer=bearer), "FindItem")

    # readiness ------------------------------------------------------------------------------------
    def check(self) -> None:
        """Cheap authenticated call (GetServerTimeZones), its outcome cached for ``check_ttl`` seconds;
        with oauth-obo an unauthenticated request that EWS must answer (401 counts as an answer).

        :raises MailboxUnavailable: Exchange cannot be reached or refuses this service.
        """
        with self._check_lock:
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._check_ttl:
                self._check_failure = self._probe()
                self._checked_at = now
            failure = self._check_failure
        if failure is not None:
            raise MailboxUnavailable(failure.detail, retry_after=failure.retry_after)

    def _probe(self) -> MailboxUnavailable | None:
        try:
            if self._tokens is not None:
                # oauth-obo: only the reporters have tokens EWS must accept for reading mail.
                self._connection.reachable()
                return None
            version = self._connection.version()
            envelope = ews_requests.server_time_zones(self._connection.protocol, version)
            _raise_unless_success(_only_message(self._call(envelope, "GetServerTimeZones", anchor=None), "probe"))
        except TransientFailure as failure:
            return MailboxUnavailable(failure.detail, retry_after=self._retrier.policy.retry_after(failure))
        except MailboxUnavailable as exc:
            return exc
        except ServiceError as exc:
            return MailboxUnavailable(f"Exchange refused the readiness probe ({type(exc).__name__}).")
        return None

    def close(self) -> None:
        """Release pooled connections (the app calls this on shutdown)."""
        self._connection.close()
