"""An Exchange Web Services server double: real EWS SOAP over real HTTP on 127.0.0.1.

``addin-service demo`` runs it as the demo mailbox server and the tests run the real
:class:`~addin_service.mail.ews.EwsMailbox` against it. It speaks the parts of EWS the service
uses (see :mod:`addin_service.demo.ews_operations`), enforces basic auth, OAuth bearer tokens
(application tokens that impersonate, or a user's delegated ``EWS.AccessAsUser.All`` token that
acts as that user), ``ExchangeImpersonation`` and mailbox rights like Exchange, reports
``ServerVersionInfo`` on every response, streams large ``MimeContent`` without copying it, and
can be told to misbehave (:mod:`addin_service.demo.ews_faults`).

Usage::

    with EwsServer(username="svc", password="pw") as server:
        item_id = server.add_message("alex@contoso.com", mime_bytes)
        ... point ADDIN_EWS_URL at server.url ...
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from lxml import etree

from addin_service.demo.ews_faults import Delay, DropConnection, Fault, FaultQueue, HttpError, ServerBusy
from addin_service.demo.ews_operations import OPERATIONS, EwsFault, OperationContext
from addin_service.demo.ews_seed import seed_demo
from addin_service.demo.ews_store import Account, MailStore, SentMessage, StoredItem
from addin_service.demo.ews_xml import SOAP_NS, TYPES_NS, Body, ServerVersion, envelope, fault

__all__ = ["EWS_PATH", "EwsServer", "RecordedRequest", "seed_demo"]

EWS_PATH = "/EWS/Exchange.asmx"
_MAX_REQUEST_BYTES = 256 * 1024 * 1024
_IDENTITY_FIELDS = ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName")
_OAUTH_APP = Account(username="(oauth application)", password="", can_impersonate=True)
DELEGATED_EWS_SCOPE = "EWS.AccessAsUser.All"
APP_EWS_ROLE = "full_access_as_app"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the double saw it. The Authorization header is kept as its scheme only."""

    operation: str | None
    headers: dict[str, str] = field(repr=False)
    username: str | None  # basic-auth user name, when basic auth was used
    bearer_token: str | None = field(repr=False)  # OAuth bearer token, when one was sent
    impersonated: str | None  # the ConnectingSID value of ExchangeImpersonation, if any
    requested_version: str | None  # RequestServerVersion/@Version


@dataclass(frozen=True)
class _ParsedRequest:
    operation: str | None
    element: etree._Element | None
    impersonated: str | None
    requested_version: str | None


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


def _parse(body: bytes) -> _ParsedRequest | None:
    """Find the operation, impersonation and version in a SOAP request; None if it is not SOAP."""
    try:
        root = etree.fromstring(body, parser=_safe_parser())
    except etree.XMLSyntaxError:
        return None
    if root.getroottree().docinfo.doctype or root.tag != f"{{{SOAP_NS}}}Envelope":
        return None
    soap_body = root.find(f"{{{SOAP_NS}}}Body")
    if soap_body is None or not len(soap_body):
        return None
    op = soap_body[0]
    header = root.find(f"{{{SOAP_NS}}}Header")
    impersonated = version = None
    if header is not None:
        requested = header.find(f"{{{TYPES_NS}}}RequestServerVersion")
        version = requested.get("Version") if requested is not None else None
        sid = header.find(f"{{{TYPES_NS}}}ExchangeImpersonation/{{{TYPES_NS}}}ConnectingSID")
        if sid is not None:
            for name in _IDENTITY_FIELDS:
                value = sid.findtext(f"{{{TYPES_NS}}}{name}")
                if value:
                    impersonated = value.strip()
                    break
            else:
                impersonated = ""
    return _ParsedRequest(etree.QName(op).localname, op, impersonated, version)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers, envelope and MimeContent go out as separate writes; with Nagle's algorithm on, the
    # last short segment waits for the client's delayed ACK (40 ms on Linux). Exchange does not.
    disable_nagle_algorithm = True
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        """Stay quiet: requests carry addresses and ids, and the double's caller has its own records."""

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        self.server.double._serve(self)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_plain(405, b"EWS accepts POST only.")

    def send_plain(self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_body(self, status: int, body: Body, *, drop_after: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = 0
        for chunk in body.chunks():
            if drop_after is not None and sent + len(chunk) >= drop_after:
                self.wfile.write(chunk[: drop_after - sent])
                self.drop()
                return
            self.wfile.write(chunk)
            sent += len(chunk)

    def drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], double: EwsServer) -> None:
        super().__init__(address, _Handler)
        self.double = double

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Socket errors are normal here (a client that timed out, a connection the double dropped
        on purpose); anything else is kept in :attr:`EwsServer.errors` so tests fail on a broken double."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        if exc is not None:
            self.double._record_error(exc)


class EwsServer:
    """The EWS server double. Start it, add accounts and messages, point the service at :attr:`url`.

    :param username: / :param password: the service account the server accepts (basic auth).
    :param can_impersonate: whether that account holds the ApplicationImpersonation role.
    :param accept_bearer: also accept any ``Authorization: Bearer`` token as an OAuth application
        allowed to impersonate (the tokens are recorded in :attr:`bearer_tokens`).
    :param verify_token: check bearer tokens instead (for instance ``jwt_verifier`` over the Entra
        double's keys): a token with ``scp`` holding ``EWS.AccessAsUser.All`` acts as its
        ``preferred_username``/``upn`` without impersonation rights, one with the
        ``full_access_as_app`` role is the application; any other is refused (401).
    """

    def __init__(
        self,
        *,
        username: str = "svc-addin",
        password: str = "demo-password",  # noqa: S107 - a test double's well-known credential
        can_impersonate: bool = True,
        accept_bearer: bool = False,
        verify_token: Callable[[str], Mapping[str, Any]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        version: ServerVersion | None = None,
    ) -> None:
        self.store = MailStore()
        self.faults = FaultQueue()
        self.version = version or ServerVersion()
        self.accept_bearer = accept_bearer
        self.verify_token = verify_token
        self.username = username
        self.password = password
        self.store.add_account(Account(username, password, can_impersonate=can_impersonate))
        self._address = (host, port)
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._revoked: set[str] = set()
        self._errors: list[BaseException] = []

    # lifecycle --------------------------------------------------------------------------------
    def start(self) -> EwsServer:
        """Listen on a free port (or the given one) and serve in a background thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HttpServer(self._address, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="ews-double", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Delayed responses are abandoned."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> EwsServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The EWS endpoint, e.g. ``http://127.0.0.1:PORT/EWS/Exchange.asmx``."""
        if self._httpd is None:
            raise RuntimeError("the EWS double is not running; call start()")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{EWS_PATH}"

    # arranging --------------------------------------------------------------------------------
    def add_account(
        self, username: str, password: str, *, can_impersonate: bool = False, mailbox: str | None = None
    ) -> None:
        """Another account that can sign in; ``mailbox`` is whose rights it has without impersonation."""
        self.store.add_account(Account(username, password, can_impersonate=can_impersonate, mailbox=mailbox))

    def add_mailbox(self, address: str) -> None:
        """A mailbox with no messages (so it can be impersonated)."""
        self.store.add_mailbox(address)

    def add_message(
        self,
        mailbox: str,
        mime: bytes,
        headers: list[tuple[str, str]] | None = None,
        *,
        item_id: str | None = None,
        received_at: datetime | None = None,
    ) -> str:
        """Put a message in ``mailbox`` and return its item id.

        :param headers: the ``InternetMessageHeaders`` to serve; None derives them from ``mime``'s
            header block exactly as Exchange lists them (name and value as written, folding kept).
        :param item_id: a specific EwsId (standard base64), e.g. one containing '+' and '/'.
        :raises ValueError: a malformed or duplicate id, or headers XML cannot carry.
        """
        return self.store.add_message(mailbox, mime, headers, item_id=item_id, received_at=received_at).item_id

    def add_person(
        self,
        address: str,
        display_name: str | None = None,
        *,
        aliases: Iterable[str] = (),
        manager: str | None = None,
    ) -> None:
        """Describe someone in the directory ResolveNames serves (their mailbox is created too)."""
        self.store.add_person(address, display_name, aliases=aliases, manager=manager)

    def sent_items(self, mailbox: str | None = None) -> list[SentMessage]:
        """Messages sent with CreateItem (by ``mailbox``, or by anyone), oldest first."""
        return self.store.sent_items(mailbox)

    def grant(self, owner: str, delegate: str) -> None:
        """Give ``delegate`` read access to ``owner``'s mailbox (delegate or shared mailbox)."""
        self.store.grant(owner, delegate)

    def item(self, item_id: str) -> StoredItem:
        """The stored item (what the double serves for it). :raises KeyError: unknown id."""
        found = self.store.item(item_id)
        if found is None:
            raise KeyError(item_id)
        return found

    def revoke_token(self, token: str) -> None:
        """Refuse this bearer token from now on (HTTP 401), as Exchange does once a token is revoked."""
        with self._lock:
            self._revoked.add(token)

    def inject(self, fault_: Fault, *, operation: str | None = None, times: int | None = 1) -> None:
        """Misbehave on the next ``times`` requests (None: all) for ``operation`` (None: any)."""
        self.faults.add(fault_, operation=operation, times=times)

    # observing --------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def count(self, operation: str | None = None) -> int:
        """How many requests arrived (for ``operation``, or in total), including failed ones."""
        return sum(1 for r in self.requests if operation is None or r.operation == operation)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    @property
    def bearer_tokens(self) -> list[str]:
        return [r.bearer_token for r in self.requests if r.bearer_token is not None]

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected exceptions inside the double (a bug in it, not a client problem)."""
        with self._lock:
            return list(self._errors)

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)

    # serving ----------------------------------------------------------------------------------
    def _serve(self, handler: _Handler) -> None:
        if handler.path.split("?", 1)[0].lower() != EWS_PATH.lower():
            handler.send_plain(404, b"Not found.")
            return
        length = int(handler.headers.get("Content-Length") or 0)
        if length > _MAX_REQUEST_BYTES:
            handler.send_plain(413, b"Request too large.")
            handler.close_connection = True
            return
        parsed = _parse(handler.rfile.read(length)) or _ParsedRequest(None, None, None, None)
        authorization = handler.headers.get("Authorization", "")
        account, basic_user, token = self._authenticate(authorization)
        self._record(handler, parsed, authorization, basic_user, token)
        if account is None:
            challenge = [("WWW-Authenticate", 'Basic realm="EWS double"')]
            if self.accept_bearer or self.verify_token is not None:
                challenge.append(("WWW-Authenticate", "Bearer"))
            handler.send_plain(401, b"401 - Unauthorized: Access is denied due to invalid credentials.", challenge)
            return
        if parsed.element is None or parsed.operation is None:
            handler.send_body(
                500, fault(self.version, "ErrorSchemaValidation", "The request failed schema validation.")
            )
            return
        injected = self.faults.take(parsed.operation)
        if isinstance(injected, Delay) and injected.after_dispatch:
            status, response = self._dispatch(account, parsed)
            if self._stopping.wait(injected.seconds):
                return
            handler.send_body(status, response)
            return
        if injected is not None and self._misbehave(handler, injected):
            return
        status, response = self._dispatch(account, parsed)
        drop_after = injected.after_body_bytes if isinstance(injected, DropConnection) else None
        handler.send_body(status, response, drop_after=drop_after)

    def _record(
        self,
        handler: _Handler,
        parsed: _ParsedRequest,
        authorization: str,
        basic_user: str | None,
        token: str | None,
    ) -> None:
        headers = {name: value for name, value in handler.headers.items() if name.lower() != "authorization"}
        if authorization:
            headers["Authorization"] = authorization.split(" ", 1)[0]
        request = RecordedRequest(
            parsed.operation, headers, basic_user, token, parsed.impersonated, parsed.requested_version
        )
        with self._lock:
            self._requests.append(request)

    def _authenticate(self, authorization: str) -> tuple[Account | None, str | None, str | None]:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                username, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None, None, None
            return self.store.account(username, password), username, None
        if scheme.lower() == "bearer" and credentials.strip():
            token = credentials.strip()
            with self._lock:
                revoked = token in self._revoked
            if revoked:
                return None, None, token
            if self.verify_token is not None:
                return self._bearer_account(token), None, token
            return (_OAUTH_APP if self.accept_bearer else None), None, token
        return None, None, None

    def _bearer_account(self, token: str) -> Account | None:
        """Who a verified token is: a user acting as themselves, the application, or nobody."""
        assert self.verify_token is not None
        try:
            claims = self.verify_token(token)
        except Exception:  # any refusal is a 401, as in Exchange
            return None
        if "scp" in claims:
            user = str(claims.get("preferred_username") or claims.get("upn") or "").lower()
            if user and DELEGATED_EWS_SCOPE in str(claims["scp"]).split():
                return Account(username=user, password="", mailbox=user)
            return None
        roles = claims.get("roles")
        return _OAUTH_APP if isinstance(roles, list) and APP_EWS_ROLE in roles else None

    def _misbehave(self, handler: _Handler, injected: Fault) -> bool:
        """Apply an injected fault; True when the request has been fully answered (or dropped)."""
        if isinstance(injected, ServerBusy):
            values = [("BackOffMilliseconds", str(injected.back_off_ms))]
            handler.send_body(500, fault(self.version, "ErrorServerBusy", injected.message, values))
            return True
        if isinstance(injected, HttpError):
            extra = [("Retry-After", str(injected.retry_after))] if injected.retry_after is not None else []
            handler.send_plain(injected.status, injected.body, extra)
            return True
        if isinstance(injected, DropConnection):
            if injected.after_body_bytes is None:
                handler.drop()
                return True
            return False
        self._stopping.wait(injected.seconds)
        return self._stopping.is_set()

    def _dispatch(self, account: Account, parsed: _ParsedRequest) -> tuple[int, Body]:
        assert parsed.element is not None and parsed.operation is not None
        try:
            acting_user = self._acting_user(account, parsed.impersonated)
            operation = OPERATIONS.get(parsed.operation)
            if operation is None:
                raise EwsFault("ErrorInvalidRequest", f"The operation {parsed.operation} is not supported.")
            parts = operation(OperationContext(self.store, acting_user, self.version), parsed.element)
        except EwsFault as exc:
            return 500, fault(self.version, exc.code, exc.message, exc.values)
        return 200, envelope(self.version, parts)

    def _acting_user(self, account: Account, impersonated: str | None) -> str | None:
        """Whose mailbox rights apply: the impersonated user's, or the account's own."""
        if impersonated is None:
            return account.mailbox
        if not account.can_impersonate:
            raise EwsFault("ErrorImpersonateUserDenied")
        if not impersonated or not self.store.has_mailbox(impersonated):
            raise EwsFault("ErrorNonExistentMailbox")
        return impersonated.lower()
