"""A Microsoft Graph double: real HTTP on 127.0.0.1 speaking the v1.0 JSON shapes the adapters use.

It lets the demo and the tests run the real Graph adapters (``mail/graph*.py``) end to end, with
no tenant. It serves, under ``/v1.0``:

* ``POST /users/{id}/translateExchangeIds`` (ewsId, restId, restImmutableEntryId),
* ``GET /users/{id}/messages/{id}`` with ``$select`` (``internetMessageHeaders`` only when
  selected, as in Graph) and ``GET …/$value`` streaming the stored MIME in chunks (a message can
  be a generator, so a 100 MB message costs no memory here either),
* ``GET /users/{id}``, ``GET /users?$filter=…`` (mail, userPrincipalName, proxyAddresses),
  ``GET /users/{id}/manager`` and ``/contacts/{id}/manager``,
* ``POST /users/{id}/sendMail``, drafts (``POST /users/{id}/messages``), attachments, upload
  sessions (``createUploadSession`` and the pre-authenticated ``PUT`` ranges), ``…/send``,
  ``DELETE`` of a draft, and Sent Items searched by extended property or internetMessageId,
* ``GET /v1.0/`` (the service document, no token needed) for readiness probes.

Every other call needs ``Authorization: Bearer``. A token is accepted when the double issued it
(:meth:`GraphServer.issue_token`, bound to a user with scopes or to the application), when
``verify_token`` (for instance :func:`jwt_verifier` over the Entra double's keys) accepts it, or —
in ``lenient`` mode only — when it is any non-empty string (treated as the application). A
delegated caller reaches only their own mailbox and those they are a delegate of (then needing a
``.Shared`` scope), as in Exchange Online; the application reaches every mailbox unless
``GraphState.app_mailboxes`` limits it (an application access policy). Scopes (``scp``) and
roles are checked when the token carries them; translateExchangeIds refuses application tokens,
as Graph v1.0 documents.

Errors have Graph's shape ``{"error": {"code", "message", "innerError": {"date", "request-id",
"client-request-id"}}}`` with a ``request-id`` header. :attr:`GraphServer.faults` injects 429 with
``Retry-After``, 503, 504, 404, 403, 401, delays and connections dropped mid-body.
:attr:`GraphServer.requests`, :attr:`GraphServer.sent` and :attr:`GraphServer.uploads` record what
clients did (never a token).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import jwt
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from addin_service.demo.tls import ThrowawayTls

log = logging.getLogger(__name__)

API_VERSION = "v1.0"
VALUE_CHUNK = 64 * 1024
SMALL_ATTACHMENT_LIMIT = 3 * 1024 * 1024
MAX_UPLOAD_SIZE = 150 * 1024 * 1024
MAX_RANGE_BYTES = 4 * 1024 * 1024
MAX_REQUEST_BYTES = 4 * 1024 * 1024
ID_FORMATS = ("entryId", "ewsId", "immutableEntryId", "restId", "restImmutableEntryId")
_REST_ID = re.compile(r"^[A-Za-z0-9_=-]+$")
_EWS_ID = re.compile(r"^[A-Za-z0-9+/=]+$")
_MESSAGE_ID = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_PROPERTIES = frozenset(
    _words(
        "id internetMessageHeaders internetMessageId subject from sender receivedDateTime sentDateTime "
        "createdDateTime lastModifiedDateTime changeKey toRecipients ccRecipients bccRecipients replyTo "
        "body bodyPreview importance isDraft isRead hasAttachments parentFolderId conversationId webLink "
        "categories flag inferenceClassification uniqueBody"
    )
)
_DEFAULT_MESSAGE_PROPERTIES = sorted(
    _PROPERTIES - {"internetMessageHeaders", "uniqueBody", "id", "flag", "inferenceClassification"}
)
_USER_PROPERTIES = frozenset(
    _words(
        "id displayName givenName surname jobTitle mail userPrincipalName proxyAddresses officeLocation "
        "mobilePhone businessPhones preferredLanguage"
    )
)
_DEFAULT_USER_PROPERTIES = _words(
    "businessPhones displayName givenName jobTitle mail mobilePhone officeLocation preferredLanguage "
    "surname userPrincipalName id"
)


# ---------------------------------------------------------------------------------------------
# Faults


@dataclass(frozen=True)
class GraphFault:
    """An error answer in Graph's shape, optionally with ``Retry-After`` (seconds)."""

    status: int
    code: str
    message: str
    retry_after: int | None = None


@dataclass(frozen=True)
class Delay:
    """Answer normally, but only after ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class DropConnection:
    """For ``getMimeContent``: send the headers and ``after_bytes`` of the MIME, then hang up."""

    after_bytes: int = 0


Fault = GraphFault | Delay | DropConnection


def throttled(retry_after: int = 1) -> GraphFault:
    """Graph's 429 for Outlook resources."""
    return GraphFault(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", retry_after)


def service_unavailable(retry_after: int | None = None) -> GraphFault:
    return GraphFault(503, "serviceNotAvailable", "The service is temporarily unavailable.", retry_after)


def gateway_timeout() -> GraphFault:
    return GraphFault(504, "UnknownError", "")


def item_not_found() -> GraphFault:
    return GraphFault(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def access_denied() -> GraphFault:
    return GraphFault(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def token_expired() -> GraphFault:
    return GraphFault(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")


@dataclass
class _QueuedFault:
    fault: Fault
    operation: str | None
    remaining: int | None


class FaultQueue:
    """Faults waiting for matching requests, first added first served. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_QueuedFault] = []

    def add(self, fault: Fault, *, operation: str | None = None, times: int | None = 1) -> None:
        """Apply ``fault`` to the next ``times`` requests (None: all) for ``operation`` (None: any).

        Operations: serviceRoot, translateExchangeIds, getMessage, getMimeContent, getUser,
        listUsers, getManager, sendMail, createMessage, addAttachment, createUploadSession,
        uploadRange, sendDraft, deleteMessage, listMessages.
        """
        with self._lock:
            self._queue.append(_QueuedFault(fault, operation, times))

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def take(self, operation: str) -> Fault | None:
        with self._lock:
            for queued in self._queue:
                if queued.operation in (None, operation):
                    if queued.remaining is not None:
                        queued.remaining -= 1
                        if queued.remaining <= 0:
                            self._queue.remove(queued)
                    return queued.fault
        return None


# ---------------------------------------------------------------------------------------------
# Directory and mailboxes


@dataclass
class GraphUser:
    """A user (or, with ``kind="contact"``, an organisational contact) and their mailbox rights."""

    id: str
    user_principal_name: str
    display_name: str
    mail: str | None
    proxy_addresses: list[str]
    manager_id: str | None = None
    kind: str = "user"
    delegates: set[str] = field(default_factory=set)  # lower-case addresses of who may read the mailbox

    def addresses(self) -> set[str]:
        found = {self.user_principal_name.lower()}
        if self.mail:
            found.add(self.mail.lower())
        found.update(p[5:].lower() for p in self.proxy_addresses if p[:5].lower() == "smtp:")
        return found

    def json(self, select: Iterable[str]) -> dict[str, Any]:
        values: dict[str, Any] = {
            "id": self.id,
            "displayName": self.display_name,
            "givenName": self.display_name.split(" ")[0] if self.display_name else None,
            "surname": self.display_name.split(" ")[-1] if self.display_name else None,
            "jobTitle": None,
            "mail": self.mail,
            "userPrincipalName": self.user_principal_name if self.kind == "user" else None,
            "proxyAddresses": list(self.proxy_addresses),
            "officeLocation": None,
            "mobilePhone": None,
            "businessPhones": [],
            "preferredLanguage": "en-US",
        }
        return {name: values.get(name) for name in select}


@dataclass
class GraphMessage:
    """A message in a mailbox folder: the MIME Exchange would generate, its headers and facts."""

    rest_id: str
    immutable_id: str
    owner_id: str
    folder: str
    size: int
    chunks: Callable[[], Iterator[bytes]]
    headers: list[tuple[str, str]]
    internet_message_id: str | None
    subject: str | None
    from_address: str | None
    from_name: str | None
    sender_address: str | None
    received: str
    change_key: str
    is_draft: bool = False
    body: dict[str, Any] = field(default_factory=lambda: {"contentType": "html", "content": ""})
    to: list[dict[str, Any]] = field(default_factory=list)
    importance: str = "normal"
    attachments: list[dict[str, Any]] = field(default_factory=list)
    extended: dict[str, str] = field(default_factory=dict)

    @property
    def ews_id(self) -> str:
        return self.rest_id.replace("-", "/").replace("_", "+")

    def json(self, select: Iterable[str]) -> dict[str, Any]:
        def recipient(address: str | None, name: str | None) -> dict[str, Any] | None:
            if address is None:
                return None
            return {"emailAddress": {"name": name or address, "address": address}}

        values: dict[str, Any] = {
            "id": self.rest_id,
            "createdDateTime": self.received,
            "lastModifiedDateTime": self.received,
            "changeKey": self.change_key,
            "categories": [],
            "receivedDateTime": self.received,
            "sentDateTime": self.received,
            "hasAttachments": bool(self.attachments),
            "internetMessageId": self.internet_message_id,
            "subject": self.subject,
            "bodyPreview": "",
            "importance": self.importance,
            "parentFolderId": self.folder,
            "conversationId": "AAQkAD" + self.rest_id[6:30],
            "isRead": False,
            "isDraft": self.is_draft,
            "webLink": f"https://outlook.office365.com/owa/?ItemID={quote(self.rest_id, safe='')}&exvsurl=1",
            "body": self.body,
            "uniqueBody": self.body,
            "sender": recipient(self.sender_address, self.from_name),
            "from": recipient(self.from_address, self.from_name),
            "toRecipients": self.to,
            "ccRecipients": [],
            "bccRecipients": [],
            "replyTo": [],
            "flag": {"flagStatus": "notFlagged"},
            "inferenceClassification": "focused",
            "internetMessageHeaders": [{"name": n, "value": v} for n, v in self.headers],
        }
        return {name: values.get(name) for name in select}


def headers_of(mime_head: bytes) -> list[tuple[str, str]]:
    """Transport headers from a MIME header block, unfolded, in order (what Graph would return)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        if separator in mime_head:
            mime_head = mime_head.split(separator, 1)[0]
            break
    text = mime_head.decode("utf-8", errors="replace")
    headers: list[tuple[str, str]] = []
    for line in re.split(r"\r?\n", text):
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + line)
        elif ":" in line:
            name, value = line.split(":", 1)
            headers.append((name.strip(), value.strip()))
    return headers


class GraphState:
    """Users, contacts and mailboxes of the double's tenant. Thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, GraphUser] = {}
        self.messages: dict[str, GraphMessage] = {}
        self.app_mailboxes: set[str] | None = None  # an application access policy, by address
        self._counter = 0

    def add_user(
        self,
        address: str,
        display_name: str = "",
        *,
        upn: str | None = None,
        aliases: Iterable[str] = (),
        manager: str | None = None,
        delegates: Iterable[str] = (),
        kind: str = "user",
    ) -> GraphUser:
        """Add a user (or contact) whose primary SMTP address is ``address``; ``manager`` is an
        address of a user added before."""
        with self.lock:
            user_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"graph-double:{address.lower()}"))
            proxies = [f"SMTP:{address}"] + [f"smtp:{alias}" for alias in aliases]
            boss = self.find_user(manager) if manager else None
            if manager and boss is None:
                raise KeyError(manager)
            manager_id = boss.id if boss is not None else None
            user = GraphUser(
                id=user_id,
                user_principal_name=upn or address,
                display_name=display_name or address.split("@")[0],
                mail=address,
                proxy_addresses=proxies,
                manager_id=manager_id,
                kind=kind,
                delegates={d.lower() for d in delegates},
            )
            self.users[user_id] = user
            return user

    def set_manager(self, address: str, manager: str | None) -> None:
        with self.lock:
            user = self.find_user(address)
            if user is None:
                raise KeyError(address)
            found = self.find_user(manager) if manager else None
            user.manager_id = found.id if found else None

    def find_user(self, key: str | None) -> GraphUser | None:
        """A user by id, UPN, mail or SMTP proxy address (case-insensitive)."""
        if not key:
            return None
        key = key.lower()
        with self.lock:
            if key in self.users:
                return self.users[key]
            for user in self.users.values():
                if key == user.id or key in user.addresses():
                    return user
        return None

    def add_message(
        self,
        mailbox: str,
        mime: bytes | None = None,
        *,
        chunks: Callable[[], Iterator[bytes]] | None = None,
        size: int | None = None,
        headers: Iterable[tuple[str, str]] | None = None,
        internet_message_id: str | None = None,
        subject: str | None = None,
        from_address: str | None = None,
        from_name: str | None = None,
        sender_address: str | None = None,
        received: str | None = None,
        folder: str = "inbox",
    ) -> GraphMessage:
        """Store a message in ``mailbox``: ``mime`` bytes, or ``chunks`` (a factory of byte
        iterators) with its ``size``. Headers default to the MIME's own header block."""
        owner = self.find_user(mailbox)
        if owner is None:
            raise KeyError(mailbox)
        if mime is not None:
            data = mime

            def from_bytes() -> Iterator[bytes]:
                for start in range(0, len(data), VALUE_CHUNK):
                    yield data[start : start + VALUE_CHUNK]

            chunks, size = from_bytes, len(mime)
        if chunks is None or size is None:
            raise ValueError("give mime, or chunks and size")
        if headers is None:
            head = b""
            for piece in chunks():
                head += piece
                if b"\r\n\r\n" in head or b"\n\n" in head or len(head) > 1024 * 1024:
                    break
            headers = headers_of(head)
        header_list = list(headers)

        def header(name: str) -> str | None:
            return next((v for n, v in header_list if n.lower() == name.lower()), None)

        with self.lock:
            self._counter += 1
            rest_id, immutable_id = self._new_ids(owner.id, self._counter)
            message = GraphMessage(
                rest_id=rest_id,
                immutable_id=immutable_id,
                owner_id=owner.id,
                folder=folder,
                size=size,
                chunks=chunks,
                headers=header_list,
                internet_message_id=internet_message_id or header("Message-ID"),
                subject=subject if subject is not None else header("Subject"),
                from_address=from_address or _address_in(header("From")),
                from_name=from_name,
                sender_address=sender_address or from_address or _address_in(header("Sender") or header("From")),
                received=received or _now(),
                change_key=base64.b64encode(hashlib.sha256(rest_id.encode()).digest()[:20]).decode(),
            )
            self.messages[rest_id] = message
            return message

    def find_message(self, owner: GraphUser, message_id: str) -> GraphMessage | None:
        with self.lock:
            message = self.messages.get(message_id)
            if message is None:
                message = next((m for m in self.messages.values() if m.immutable_id == message_id), None)
            if message is None or message.owner_id != owner.id:
                return None
            return message

    def messages_in(self, owner: GraphUser, folder: str) -> list[GraphMessage]:
        """The messages of one folder, or of every folder when ``folder`` is empty."""
        with self.lock:
            return [
                m for m in self.messages.values() if m.owner_id == owner.id and folder in ("", m.folder)
            ]

    def _new_ids(self, owner_id: str, counter: int) -> tuple[str, str]:
        digest = hashlib.sha256(f"{owner_id}:{counter}".encode()).digest()
        # Bytes chosen so the EWS form holds both '+' and '/', which the REST form spells '-', '_'.
        raw = b"\x00\x03\x24" + digest[:24] + b"\xfb\xef\xbe\xff\xff\xff\x00"
        # Graph's REST id is the EWS id (standard base64) with '/' as '-' and '+' as '_', which is
        # what Outlook's convertToRestId does; it is not the RFC 4648 URL-safe alphabet.
        rest_id = base64.b64encode(raw).decode().replace("/", "-").replace("+", "_")
        immutable = base64.urlsafe_b64encode(b"\x00\x00\x00\x00" + digest[8:32] + b"\x46\x00").decode()
        return rest_id, immutable

    def new_draft_id(self, owner_id: str) -> tuple[str, str]:
        with self.lock:
            self._counter += 1
            return self._new_ids(owner_id, self._counter)


def _address_in(value: str | None) -> str | None:
    if not value:
        return None
    match = re.search(r"<([^<>\s]+@[^<>\s]+)>", value) or re.search(r"([^\s<>\"]+@[^\s<>\"]+)", value)
    return match.group(1) if match else None


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------
# Callers and records


@dataclass(frozen=True)
class GraphCaller:
    """Who a token stands for: a user with delegated ``scopes``, or (``user`` None) the application
    with ``roles``. None means "not known" (lenient mode): nothing is checked against it."""

    user: str | None = None
    scopes: frozenset[str] | None = None
    roles: frozenset[str] | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    operation: str
    authorized: bool  # an Authorization header was present (its value is never kept)
    headers: Mapping[str, str]  # Content-Type, Content-Range, ConsistencyLevel, Accept, Prefer
    body_size: int


@dataclass(frozen=True)
class SentMessage:
    """A message Graph accepted for delivery: by ``sendMail`` or by sending a draft."""

    sender: str
    via: str  # "sendMail" or "draft"
    message: Mapping[str, Any]  # the Graph message JSON as the client sent it (drafts: as stored)
    save_to_sent_items: bool
    attachments: tuple[tuple[str, str, bytes], ...]  # (name, contentType, bytes), decoded


@dataclass
class UploadSession:
    id: str
    auth_token: str
    owner_id: str
    message_id: str
    name: str
    content_type: str
    size: int
    received: bytearray = field(default_factory=bytearray)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    completed: bool = False
    put_with_authorization: int = 0


def jwt_verifier(
    jwks: Mapping[str, Any], *, issuer: str, audience: str | None = None
) -> Callable[[str], Mapping[str, Any]]:
    """A ``verify_token`` that accepts only JWTs signed by one of ``jwks`` and issued by ``issuer``.

    :raises jwt.PyJWTError: from the returned function, for any token it refuses.
    """
    keys = jwt.PyJWKSet.from_dict(dict(jwks))

    def verify(token: str) -> Mapping[str, Any]:
        kid = jwt.get_unverified_header(token).get("kid")
        key = next((k for k in keys.keys if k.key_id == kid), None)
        if key is None:
            raise jwt.InvalidKeyError("unknown key id")
        return dict(
            jwt.decode(
                token,
                key.key,
                algorithms=["RS256", "ES256"],
                issuer=issuer,
                audience=audience,
                options={"verify_aud": audience is not None},
                leeway=60,
            )
        )

    return verify


# ---------------------------------------------------------------------------------------------
# The HTTP server


class _GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class _QuietHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def log(self, type: str, message: str, *args: Any) -> None:
        """Stay quiet: tests and the demo have their own logs."""

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        """A dropped connection (a client gone, or a fault injected mid-body) ends keep-alive."""
        self.close_connection = True


_RULES = [
    Rule("/v1.0/", endpoint="serviceRoot", methods=["GET"]),
    Rule("/v1.0/users", endpoint="listUsers", methods=["GET"]),
    Rule("/v1.0/users/<user>", endpoint="getUser", methods=["GET"]),
    Rule("/v1.0/users/<user>/manager", endpoint="getManager", methods=["GET"]),
    Rule("/v1.0/contacts/<user>/manager", endpoint="getContactManager", methods=["GET"]),
    Rule("/v1.0/users/<user>/translateExchangeIds", endpoint="translateExchangeIds", methods=["POST"]),
    Rule("/v1.0/users/<user>/sendMail", endpoint="sendMail", methods=["POST"]),
    Rule("/v1.0/users/<user>/messages", endpoint="createMessage", methods=["POST"]),
    Rule("/v1.0/users/<user>/messages/<message>", endpoint="getMessage", methods=["GET"]),
    Rule("/v1.0/users/<user>/messages/<message>", endpoint="deleteMessage", methods=["DELETE"]),
    Rule("/v1.0/users/<user>/messages/<message>/$value", endpoint="getMimeContent", methods=["GET"]),
    Rule("/v1.0/users/<user>/messages/<message>/send", endpoint="sendDraft", methods=["POST"]),
    Rule("/v1.0/users/<user>/messages/<message>/attachments", endpoint="addAttachment", methods=["POST"]),
    Rule(
        "/v1.0/users/<user>/messages/<message>/attachments/createUploadSession",
        endpoint="createUploadSession",
        methods=["POST"],
    ),
    Rule("/v1.0/users/<user>/mailFolders/<folder>/messages", endpoint="listMessages", methods=["GET"]),
    Rule("/v1.0/users/<user>/messages", endpoint="listAllMessages", methods=["GET"]),
    Rule("/upload/<session>", endpoint="uploadRange", methods=["PUT", "DELETE"]),
]


class GraphServer:
    """The Graph double on ``127.0.0.1``; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ThrowawayTls | None = None,
        verify_token: Callable[[str], Mapping[str, Any]] | None = None,
        lenient: bool = False,
        state: GraphState | None = None,
    ) -> None:
        self.state = state or GraphState()
        self.faults = FaultQueue()
        self.requests: list[RecordedRequest] = []
        self.sent: list[SentMessage] = []
        self.uploads: dict[str, UploadSession] = {}
        self._host = host
        self._port = port
        self._tls = tls
        self.verify_token = verify_token  # may be set after start, once the issuer's keys exist
        self._lenient = lenient
        self._tokens: dict[str, GraphCaller] = {}
        self._lock = threading.Lock()
        self._urls = Map([rule.empty() for rule in _RULES], strict_slashes=False, merge_slashes=False)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> GraphServer:
        context = self._tls.server_context() if self._tls is not None else None
        self._server = make_server(
            self._host,
            self._port,
            self._wsgi,
            threaded=True,
            request_handler=_QuietHandler,
            ssl_context=context,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="graph-double", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> GraphServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Graph double is not running")
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{self._host}:{self._server.server_port}"

    @property
    def graph_url(self) -> str:
        """What ``ADDIN_GRAPH_URL`` should be set to."""
        return f"{self.root_url}/{API_VERSION}"

    # -- tokens -------------------------------------------------------------------------------

    def issue_token(
        self, user: str | None = None, scopes: Iterable[str] | None = None, roles: Iterable[str] | None = None
    ) -> str:
        """An opaque token for ``user`` (delegated, with ``scopes`` such as ``Mail.Read``) or, with
        no user, for the application (with ``roles`` such as ``Mail.Send``). Scopes or roles left
        out are not checked."""
        token = "graph-double." + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = GraphCaller(
                user=user.lower() if user else None,
                scopes=frozenset(scopes) if scopes is not None else None,
                roles=frozenset(roles) if roles is not None else None,
            )
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def _caller(self, request: Request) -> GraphCaller:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", _www_authenticate())
        token = token.strip()
        with self._lock:
            known = self._tokens.get(token)
        if known is not None:
            return known
        if self.verify_token is not None:
            try:
                claims = self.verify_token(token)
            except Exception:  # any refusal is a 401, as in Graph
                raise _GraphError(
                    401, "InvalidAuthenticationToken", "Access token validation failure.", _www_authenticate()
                ) from None
            if "scp" in claims:
                user = str(claims.get("preferred_username") or claims.get("upn") or "").lower()
                return GraphCaller(user=user or None, scopes=frozenset(str(claims["scp"]).split()))
            roles = claims.get("roles")
            return GraphCaller(roles=frozenset(str(r) for r in roles) if isinstance(roles, list) else frozenset())
        if self._lenient:
            return GraphCaller()
        raise _GraphError(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.", _www_authenticate())

    # -- WSGI ---------------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        request_id = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        try:
            adapter = self._urls.bind_to_environ(environ)
            try:
                operation, args = adapter.match()
            except NotFound:
                raise _GraphError(400, "BadRequest", f"Resource not found for the segment '{request.path}'.") from None
            except MethodNotAllowed:
                raise _GraphError(405, "Request_BadRequest", "The requested method is not allowed.") from None
            operation = str(operation)
            self._record(request, operation)
            fault = self.faults.take(operation)
            if isinstance(fault, Delay):
                time.sleep(fault.seconds)
            elif isinstance(fault, GraphFault):
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                if fault.status == 401:
                    headers.update(_www_authenticate())
                raise _GraphError(fault.status, fault.code, fault.message, headers)
            handler = getattr(self, "_op_" + operation)
            drop = fault if isinstance(fault, DropConnection) else None
            response: Response = handler(request, drop=drop, **args)
        except _GraphError as error:
            response = _error_response(error, request_id, client_request_id)
        except Exception:
            log.exception("the Graph double failed on a request")
            failure = _GraphError(500, "generalException", "An unspecified error has occurred.")
            response = _error_response(failure, request_id, client_request_id)
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = client_request_id
        return response(environ, start_response)

    def _record(self, request: Request, operation: str) -> None:
        kept = {
            name: value
            for name, value in request.headers.items()
            if name.lower() in ("content-type", "content-range", "consistencylevel", "accept", "prefer")
        }
        entry = RecordedRequest(
            method=request.method,
            path=request.path,
            query=request.query_string.decode("latin-1"),
            operation=operation,
            authorized="Authorization" in request.headers,
            headers=kept,
            body_size=request.content_length or 0,
        )
        with self._lock:
            self.requests.append(entry)

    def sent_items(self, mailbox: str | None = None) -> list[GraphMessage]:
        """The messages in Sent Items (of ``mailbox``, or of every mailbox), oldest first: what
        ``sendMail`` with ``saveToSentItems`` and sent drafts left there."""
        owner = self.state.find_user(mailbox) if mailbox else None
        if mailbox and owner is None:
            return []
        with self.state.lock:
            return [
                m
                for m in self.state.messages.values()
                if m.folder == "sentitems" and (owner is None or m.owner_id == owner.id)
            ]

    def operations(self) -> list[str]:
        """The operations requested so far, in order."""
        with self._lock:
            return [r.operation for r in self.requests]

    # -- helpers for handlers -----------------------------------------------------------------

    def _base(self, request: Request) -> str:
        return f"{request.host_url.rstrip('/')}/{API_VERSION}"

    def _mailbox(self, request: Request, key: str, *, scope: str = "Mail.Read") -> tuple[GraphUser, GraphCaller]:
        """The mailbox ``key`` names, if this caller may use it."""
        caller = self._caller(request)
        owner = self.state.find_user(key)
        if owner is None or owner.kind != "user":
            raise _GraphError(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
        if caller.user is None:
            if caller.roles is not None and not (caller.roles & _acceptable_roles(scope)):
                raise _GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
            allowed = self.state.app_mailboxes
            if allowed is not None and not (owner.addresses() & {a.lower() for a in allowed}):
                raise _GraphError(
                    403,
                    "ErrorAccessDenied",
                    "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
                )
            return owner, caller
        own = caller.user in owner.addresses()
        if not own and not (owner.delegates & (self._caller_addresses(caller) | {caller.user})):
            raise _GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        if caller.scopes is not None and not (caller.scopes & _acceptable_scopes(scope, own=own)):
            raise _GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        return owner, caller

    def _directory_caller(self, request: Request) -> GraphCaller:
        """A caller allowed to read other people's directory entries (User.ReadBasic.All and up)."""
        caller = self._caller(request)
        granted = caller.scopes if caller.user is not None else caller.roles
        wanted = {"User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All", "Directory.Read.All"}
        if granted is not None and not (granted & wanted):
            raise _GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
        return caller

    def _caller_addresses(self, caller: GraphCaller) -> set[str]:
        user = self.state.find_user(caller.user)
        return user.addresses() if user else set()

    def _directory_user(self, request: Request, key: str) -> GraphUser:
        self._directory_caller(request)
        user = self.state.find_user(key)
        if user is None or user.kind != "user":
            raise _GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.",
            )
        return user

    def _message(self, owner: GraphUser, message_id: str) -> GraphMessage:
        if not _REST_ID.match(message_id):
            raise _GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
        message = self.state.find_message(owner, message_id)
        if message is None:
            raise _GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return message

    # -- operations ---------------------------------------------------------------------------

    def _op_serviceRoot(self, request: Request, drop: DropConnection | None) -> Response:
        base = self._base(request)
        sets = ["users", "contacts", "groups", "me", "organization"]
        return _json(
            {
                "@odata.context": f"{base}/$metadata",
                "value": [
                    {"name": name, "kind": "Singleton" if name == "me" else "EntitySet", "url": name} for name in sets
                ],
            }
        )

    def _op_translateExchangeIds(self, request: Request, drop: DropConnection | None, user: str) -> Response:
        owner, caller = self._mailbox(request, user, scope="User.ReadBasic.All")
        if caller.user is None:  # "Application: Not supported." (user: translateExchangeIds, v1.0)
            raise _GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        body = _body(request)
        inputs, source, target = body.get("inputIds"), body.get("sourceIdType"), body.get("targetIdType")
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs) or not inputs:
            raise _GraphError(400, "ErrorInvalidParameter", "The value of the parameter 'InputIds' is empty.")
        if len(inputs) > 1000:
            raise _GraphError(400, "ErrorInvalidParameter", "The parameter 'InputIds' exceeds the maximum of 1000.")
        for name, value in (("sourceIdType", source), ("targetIdType", target)):
            if value not in ID_FORMATS:
                raise _GraphError(400, "BadRequest", f"The parameter '{name}' has an invalid value.")
        results = []
        for source_id in inputs:
            target_id, error = self._translate(owner, source_id, str(source), str(target))
            entry: dict[str, Any] = {"sourceId": source_id}
            if target_id is not None:
                entry["targetId"] = target_id
            else:
                entry["errorDetails"] = {
                    "code": error,
                    "message": "Id is malformed."
                    if error.endswith("Malformed")
                    else "The specified object was not found in the store.",
                }
            results.append(entry)
        base = self._base(request)
        return _json(
            {
                "@odata.context": f"{base}/$metadata#Collection(microsoft.graph.convertIdResult)",
                "value": results,
            }
        )

    def _translate(self, owner: GraphUser, source_id: str, source: str, target: str) -> tuple[str | None, str]:
        if source == "ewsId":
            if not _EWS_ID.match(source_id) or not _valid_base64(source_id):
                return None, "ErrorInvalidIdMalformed"
            rest = source_id.replace("/", "-").replace("+", "_")
        elif source == "restId":
            if not _REST_ID.match(source_id) or not _valid_base64(source_id.replace("-", "/").replace("_", "+")):
                return None, "ErrorInvalidIdMalformed"
            rest = source_id
        elif source == "restImmutableEntryId":
            found = self.state.find_message(owner, source_id)
            if found is None:
                return None, "ErrorItemNotFound"
            rest = found.rest_id
        else:
            return None, "ErrorInvalidIdMalformed"  # binary MAPI formats are not modelled here
        if target == "restId":
            return rest, ""
        if target == "ewsId":
            return rest.replace("-", "/").replace("_", "+"), ""
        message = self.state.find_message(owner, rest)
        if message is None:
            return None, "ErrorItemNotFound"
        if target == "restImmutableEntryId":
            return message.immutable_id, ""
        return None, "ErrorInvalidIdMalformed"

    def _op_getMessage(self, request: Request, drop: DropConnection | None, user: str, message: str) -> Response:
        owner, _ = self._mailbox(request, user)
        found = self._message(owner, message)
        select = _select(request, _PROPERTIES, "microsoft.graph.message")
        fields = select or _DEFAULT_MESSAGE_PROPERTIES
        base = self._base(request)
        context = f"{base}/$metadata#users('{quote(user, safe='@')}')/messages"
        context += f"({','.join(select)})/$entity" if select else "/$entity"
        body = {"@odata.context": context, "@odata.etag": f'W/"{found.change_key}"', "id": found.rest_id}
        body.update(found.json([f for f in fields if f != "id"]))
        return _json(body)

    def _op_getMimeContent(self, request: Request, drop: DropConnection | None, user: str, message: str) -> Response:
        owner, _ = self._mailbox(request, user)
        found = self._message(owner, message)
        limit = drop.after_bytes if drop is not None else None

        def body() -> Iterator[bytes]:
            sent = 0
            for chunk in found.chunks():
                if limit is not None and sent + len(chunk) >= limit:
                    yield chunk[: limit - sent]
                    raise ConnectionAbortedError("fault injected: connection dropped")
                sent += len(chunk)
                yield chunk

        response = Response(body(), status=200, content_type="text/plain", direct_passthrough=True)
        response.headers["Content-Length"] = str(found.size)
        return response

    def _op_getUser(self, request: Request, drop: DropConnection | None, user: str) -> Response:
        found = self._directory_user(request, user)
        select = _select(request, _USER_PROPERTIES, "microsoft.graph.user")
        base = self._base(request)
        context = f"{base}/$metadata#users" + (f"({','.join(select)})" if select else "") + "/$entity"
        return _json({"@odata.context": context, **found.json(select or _DEFAULT_USER_PROPERTIES)})

    def _op_getManager(self, request: Request, drop: DropConnection | None, user: str) -> Response:
        return self._manager_of(request, self._directory_user(request, user))

    def _op_getContactManager(self, request: Request, drop: DropConnection | None, user: str) -> Response:
        self._directory_caller(request)
        contact = self.state.find_user(user)
        if contact is None or contact.kind != "contact":
            raise _GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{user}' does not exist or one of its queried reference-property objects are not present.",
            )
        return self._manager_of(request, contact)

    def _manager_of(self, request: Request, user: GraphUser) -> Response:
        manager = self.state.users.get(user.manager_id or "")
        if manager is None:
            raise _GraphError(
                404,
                "Request_ResourceNotFound",
                "Resource 'manager' does not exist or one of its queried reference-property objects are not present.",
            )
        select = _select(request, _USER_PROPERTIES, "microsoft.graph.directoryObject")
        kind = "#microsoft.graph.orgContact" if manager.kind == "contact" else "#microsoft.graph.user"
        body = {
            "@odata.context": f"{self._base(request)}/$metadata#directoryObjects/$entity",
            "@odata.type": kind,
        }
        body.update(manager.json(select or _DEFAULT_USER_PROPERTIES))
        return _json(body)

    def _op_listUsers(self, request: Request, drop: DropConnection | None) -> Response:
        self._directory_caller(request)
        count = request.args.get("$count", "").lower() == "true"
        if count and request.headers.get("ConsistencyLevel", "").lower() != "eventual":
            raise _GraphError(400, "Request_BadRequest", "$count is not currently supported.")
        predicates = _user_filter(request.args.get("$filter", ""))
        select = _select(request, _USER_PROPERTIES, "microsoft.graph.user")
        with self.state.lock:
            users = [u for u in self.state.users.values() if u.kind == "user" and any(p(u) for p in predicates)]
        base = self._base(request)
        body: dict[str, Any] = {
            "@odata.context": f"{base}/$metadata#users" + (f"({','.join(select)})" if select else "")
        }
        if count:
            body["@odata.count"] = len(users)
        body["value"] = [u.json(select or _DEFAULT_USER_PROPERTIES) for u in users]
        return _json(body)

    def _op_sendMail(self, request: Request, drop: DropConnection | None, user: str) -> Response:
        owner, _ = self._mailbox(request, user, scope="Mail.Send")
        _check_size(request)
        body = _body(request)
        message = body.get("message")
        if not isinstance(message, dict):
            raise _GraphError(400, "ErrorInvalidRequest", "The message is missing.")
        save = body.get("saveToSentItems", True)
        if not isinstance(save, bool):
            raise _GraphError(400, "BadRequest", "Cannot convert the literal to the expected type 'Edm.Boolean'.")
        attachments = tuple(_validate_message(message, with_attachments=True))
        if save:
            self._store_sent(owner, message, attachments)
        with self._lock:
            self.sent.append(
                SentMessage(owner.mail or owner.user_principal_name, "sendMail", message, save, attachments)
            )
        return Response(status=202)

    def _op_createMessage(self, request: Request, drop: DropConnection | None, user: str) -> Response:
        owner, _ = self._mailbox(request, user, scope="Mail.ReadWrite")
        _check_size(request)
        message = _body(request)
        attachments = tuple(_validate_message(message, with_attachments=True, draft=True))
        stored = self._store(owner, message, attachments, folder="drafts", draft=True)
        base = self._base(request)
        body = {
            "@odata.context": f"{base}/$metadata#users('{quote(user, safe='@')}')/messages/$entity",
            "@odata.etag": f'W/"{stored.change_key}"',
            "id": stored.rest_id,
        }
        body.update(stored.json([p for p in _DEFAULT_MESSAGE_PROPERTIES if p != "id"]))
        return _json(body, status=201)

    def _op_addAttachment(self, request: Request, drop: DropConnection | None, user: str, message: str) -> Response:
        owner, _ = self._mailbox(request, user, scope="Mail.ReadWrite")
        _check_size(request)
        draft = self._message(owner, message)
        attachment = _body(request)
        name, content_type, data = _file_attachment(attachment)
        if len(data) >= SMALL_ATTACHMENT_LIMIT:
            raise _GraphError(
                413,
                "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize",
                "Attachments of 3 MB or more need an upload session.",
            )
        attachment_id = draft.rest_id + base64.urlsafe_b64encode(secrets.token_bytes(12)).decode()
        with self.state.lock:
            draft.attachments.append({"id": attachment_id, "name": name, "contentType": content_type, "data": data})
        base = self._base(request)
        return _json(
            {
                "@odata.context": f"{base}/$metadata#users('{quote(user, safe='@')}')"
                f"/messages('{draft.rest_id}')/attachments/$entity",
                "@odata.type": "#microsoft.graph.fileAttachment",
                "id": attachment_id,
                "name": name,
                "contentType": content_type,
                "size": len(data),
                "isInline": False,
            },
            status=201,
        )

    def _op_createUploadSession(
        self, request: Request, drop: DropConnection | None, user: str, message: str
    ) -> Response:
        owner, _ = self._mailbox(request, user, scope="Mail.ReadWrite")
        draft = self._message(owner, message)
        body = _body(request)
        item = body.get("AttachmentItem", body.get("attachmentItem"))
        if not isinstance(item, dict):
            raise _GraphError(400, "ErrorInvalidParameter", "The parameter 'AttachmentItem' is missing.")
        if item.get("attachmentType") != "file":
            raise _GraphError(400, "ErrorInvalidParameter", "Only file attachments can be uploaded in a session.")
        size, name = item.get("size"), item.get("name")
        if not isinstance(size, int) or not isinstance(name, str) or not name:
            raise _GraphError(400, "ErrorInvalidParameter", "The attachment's name and size are required.")
        if size < SMALL_ATTACHMENT_LIMIT:
            raise _GraphError(
                400,
                "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
                "Attachment size should not be less than 3 MB.",
            )
        if size > MAX_UPLOAD_SIZE:
            raise _GraphError(
                400,
                "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize",
                "Attachment size should not be greater than 150 MB.",
            )
        session = UploadSession(
            id=secrets.token_urlsafe(16),
            auth_token=secrets.token_urlsafe(24),
            owner_id=owner.id,
            message_id=draft.rest_id,
            name=name,
            content_type=str(item.get("contentType") or "application/octet-stream"),
            size=size,
        )
        with self._lock:
            self.uploads[session.id] = session
        expires = (datetime.now(UTC) + timedelta(minutes=15)).isoformat().replace("+00:00", "Z")
        upload_url = f"{request.host_url.rstrip('/')}/upload/{session.id}?authtoken={session.auth_token}"
        return _json(
            {
                "@odata.context": f"{self._base(request)}/$metadata#microsoft.graph.uploadSession",
                "uploadUrl": upload_url,
                "expirationDateTime": expires,
                "nextExpectedRanges": ["0-"],
            },
            status=201,
        )

    def _op_uploadRange(self, request: Request, drop: DropConnection | None, session: str) -> Response:
        with self._lock:
            upload = self.uploads.get(session)
        if upload is None or request.args.get("authtoken") != upload.auth_token:
            raise _GraphError(404, "ErrorItemNotFound", "The upload session was not found or has expired.")
        if "Authorization" in request.headers:
            upload.put_with_authorization += 1
            raise _GraphError(
                401,
                "InvalidAudience",
                "The upload URL is pre-authenticated; do not send an Authorization header.",
            )
        if request.method == "DELETE":
            with self._lock:
                self.uploads.pop(session, None)
            return Response(status=204)
        if request.headers.get("Content-Type", "").split(";")[0].strip() != "application/octet-stream":
            raise _GraphError(415, "UnsupportedMediaType", "Specify Content-Type: application/octet-stream.")
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", request.headers.get("Content-Range", ""))
        data = request.get_data(cache=False)
        if match is None:
            raise _GraphError(400, "invalidRange", "The Content-Range header is missing or malformed.")
        start, end, total = (int(g) for g in match.groups())
        if total != upload.size or end < start or end >= total or end - start + 1 != len(data):
            raise _GraphError(400, "invalidRange", "The Content-Range does not match the body or the session.")
        if request.content_length != len(data):
            raise _GraphError(400, "invalidRange", "Content-Length does not match the body.")
        if len(data) > MAX_RANGE_BYTES:
            raise _GraphError(413, "maxFragmentLengthExceeded", "Upload at most 4 MB in one request.")
        if start != len(upload.received):
            raise _GraphError(416, "invalidRange", "Uploaded fragment overlaps with existing data.")
        upload.received.extend(data)
        upload.ranges.append((start, end))
        expires = (datetime.now(UTC) + timedelta(minutes=15)).isoformat().replace("+00:00", "Z")
        if len(upload.received) < upload.size:
            return _json(
                {
                    "@odata.context": f"{request.host_url.rstrip('/')}/api/v2.0/$metadata"
                    "#Users/Messages/AttachmentSessions/$entity",
                    "ExpirationDateTime": expires,
                    "nextExpectedRanges": [str(len(upload.received))],
                }
            )
        upload.completed = True
        owner = self.state.users[upload.owner_id]
        draft = self.state.find_message(owner, upload.message_id)
        attachment_id = upload.message_id + base64.urlsafe_b64encode(secrets.token_bytes(12)).decode()
        if draft is not None:
            with self.state.lock:
                draft.attachments.append(
                    {
                        "id": attachment_id,
                        "name": upload.name,
                        "contentType": upload.content_type,
                        "data": bytes(upload.received),
                    }
                )
        response = Response(status=201)
        response.headers["Location"] = (
            f"{request.host_url.rstrip('/')}/api/v2.0/Users('{owner.id}')/Messages('{upload.message_id}')"
            f"/Attachments('{attachment_id}')"
        )
        return response

    def _op_sendDraft(self, request: Request, drop: DropConnection | None, user: str, message: str) -> Response:
        owner, _ = self._mailbox(request, user, scope="Mail.Send")
        draft = self._message(owner, message)
        if not draft.is_draft:
            raise _GraphError(400, "ErrorInvalidOperation", "Only drafts can be sent.")
        if not draft.to:
            raise _GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
        with self.state.lock:
            draft.is_draft = False
            draft.folder = "sentitems"
            attachments = tuple((a["name"], a["contentType"], a["data"]) for a in draft.attachments)
            stored = dict(draft.json(["subject", "body", "importance", "toRecipients", "internetMessageId"]))
            stored["singleValueExtendedProperties"] = [{"id": k, "value": v} for k, v in draft.extended.items()]
        with self._lock:
            self.sent.append(SentMessage(owner.mail or owner.user_principal_name, "draft", stored, True, attachments))
        return Response(status=202)

    def _op_deleteMessage(self, request: Request, drop: DropConnection | None, user: str, message: str) -> Response:
        owner, _ = self._mailbox(request, user, scope="Mail.ReadWrite")
        found = self._message(owner, message)
        with self.state.lock:
            self.state.messages.pop(found.rest_id, None)
        return Response(status=204)

    def _op_listAllMessages(self, request: Request, drop: DropConnection | None, user: str) -> Response:
        """``GET /users/{id}/messages``: every folder of the mailbox (drafts included, as Graph does)."""
        return self._op_listMessages(request, drop, user, "")

    def _op_listMessages(self, request: Request, drop: DropConnection | None, user: str, folder: str) -> Response:
        owner, _ = self._mailbox(request, user)
        folder_name = folder.lower()
        if folder_name not in ("", "inbox", "sentitems", "drafts", "deleteditems", "archive", "junkemail"):
            raise _GraphError(404, "ErrorInvalidIdMalformed", "Id is malformed.")
        predicate = _message_filter(request.args.get("$filter", ""))
        select = _select(request, _PROPERTIES, "microsoft.graph.message")
        top = request.args.get("$top", "10")
        if not top.isdigit() or int(top) > 1000:
            raise _GraphError(400, "ErrorInvalidUrlQuery", "The value of $top is not valid.")
        found = [m for m in self.state.messages_in(owner, folder_name) if predicate(m)][: int(top)]
        base = self._base(request)
        context = f"{base}/$metadata#users('{quote(user, safe='@')}')"
        context += f"/mailFolders('{folder}')/messages" if folder else "/messages"
        context += f"({','.join(select)})" if select else ""
        fields = select or _DEFAULT_MESSAGE_PROPERTIES
        value = []
        for message in found:
            entry = {"@odata.etag": f'W/"{message.change_key}"', "id": message.rest_id}
            entry.update(message.json([f for f in fields if f != "id"]))
            value.append(entry)
        return _json({"@odata.context": context, "value": value})

    # -- storage of sent and draft messages ---------------------------------------------------

    def _store_sent(
        self, owner: GraphUser, message: Mapping[str, Any], attachments: tuple[tuple[str, str, bytes], ...]
    ) -> None:
        self._store(owner, message, attachments, folder="sentitems", draft=False)

    def _store(
        self,
        owner: GraphUser,
        message: Mapping[str, Any],
        attachments: tuple[tuple[str, str, bytes], ...],
        *,
        folder: str,
        draft: bool,
    ) -> GraphMessage:
        rest_id, immutable_id = self.state.new_draft_id(owner.id)
        internet_id = message.get("internetMessageId") or f"<{rest_id[8:28]}@graph-double.invalid>"
        stored = GraphMessage(
            rest_id=rest_id,
            immutable_id=immutable_id,
            owner_id=owner.id,
            folder=folder,
            size=0,
            chunks=lambda: iter(()),
            headers=[(h["name"], h["value"]) for h in message.get("internetMessageHeaders") or []],
            internet_message_id=str(internet_id),
            subject=message.get("subject"),
            from_address=owner.mail,
            from_name=owner.display_name,
            sender_address=owner.mail,
            received=_now(),
            change_key=base64.b64encode(hashlib.sha256(rest_id.encode()).digest()[:20]).decode(),
            is_draft=draft,
            body=dict(message.get("body") or {"contentType": "text", "content": ""}),
            to=list(message.get("toRecipients") or []),
            importance=str(message.get("importance") or "normal").lower(),
            attachments=[
                {"id": str(i), "name": n, "contentType": c, "data": d} for i, (n, c, d) in enumerate(attachments)
            ],
            extended={p["id"]: p["value"] for p in message.get("singleValueExtendedProperties") or []},
        )
        with self.state.lock:
            self.state.messages[rest_id] = stored
        return stored


# ---------------------------------------------------------------------------------------------
# Request parsing and validation


def _acceptable_scopes(scope: str, *, own: bool) -> set[str]:
    """Delegated scopes that grant ``scope`` on one's own mailbox, or on someone else's."""
    if scope.startswith("User."):
        broad = {"User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All"}
        return broad | {"User.Read", "User.ReadWrite"} if own else broad
    wider = scope.replace(".Read", ".ReadWrite")
    shared = {scope + ".Shared", wider + ".Shared"}
    return shared | {scope, wider} if own else shared


def _acceptable_roles(scope: str) -> set[str]:
    """Application permissions that grant what the delegated ``scope`` names."""
    if scope.startswith("User."):
        return {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All"}
    return {scope, scope.replace(".Read", ".ReadWrite")}


def _www_authenticate() -> dict[str, str]:
    return {
        "WWW-Authenticate": 'Bearer realm="", '
        'authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
        'client_id="00000003-0000-0000-c000-000000000000"'
    }


def _error_response(error: _GraphError, request_id: str, client_request_id: str) -> Response:
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "innerError": {
                "date": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", ""),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }
    response = _json(body, status=error.status)
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


_JSON_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"


def _json(body: Any, status: int = 200) -> Response:
    data = json.dumps(body).encode("utf-8")
    return Response(
        data,
        status=status,
        content_type=_JSON_TYPE,
    )


def _body(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise _GraphError(415, "UnsupportedMediaType", "Content-Type must be application/json.")
    try:
        data = json.loads(request.get_data(cache=True) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise _GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
    if not isinstance(data, dict):
        raise _GraphError(400, "BadRequest", "Unable to read JSON request payload.")
    return data


def _check_size(request: Request) -> None:
    if (request.content_length or 0) > MAX_REQUEST_BYTES:
        raise _GraphError(413, "RequestEntityTooLarge", "The request is larger than 4 MB.")


def _select(request: Request, known: frozenset[str], type_name: str) -> list[str]:
    raw = request.args.get("$select", "")
    fields = [f.strip() for f in raw.split(",") if f.strip()]
    for name in fields:
        if name not in known:
            raise _GraphError(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{name}' on type '{type_name}'.",
            )
    return fields


def _validate_message(
    message: Mapping[str, Any], *, with_attachments: bool, draft: bool = False
) -> Iterator[tuple[str, str, bytes]]:
    recipients = message.get("toRecipients") or []
    if not draft and not recipients:
        raise _GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
    for recipient in recipients:
        address = recipient.get("emailAddress", {}).get("address") if isinstance(recipient, dict) else None
        if not isinstance(address, str) or "@" not in address:
            raise _GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
    body = message.get("body")
    if body is not None and (
        not isinstance(body, dict) or str(body.get("contentType", "")).lower() not in ("text", "html")
    ):
        raise _GraphError(400, "BadRequest", "Invalid body content type.")
    importance = message.get("importance")
    if importance is not None and str(importance).lower() not in ("low", "normal", "high"):
        raise _GraphError(400, "BadRequest", f"Requested value '{importance}' was not found.")
    internet_id = message.get("internetMessageId")
    if internet_id is not None and (not isinstance(internet_id, str) or not _MESSAGE_ID.match(internet_id)):
        raise _GraphError(400, "ErrorInvalidInternetMessageId", "The internet message id is not valid.")
    for header in message.get("internetMessageHeaders") or []:
        name = header.get("name", "") if isinstance(header, dict) else ""
        if not str(name).lower().startswith("x-"):
            raise _GraphError(
                400,
                "InvalidInternetMessageHeader",
                f"The internet message header name '{name}' should start with 'x-' or 'X-'.",
            )
    for prop in message.get("singleValueExtendedProperties") or []:
        if not isinstance(prop, dict) or not isinstance(prop.get("id"), str) or not isinstance(prop.get("value"), str):
            raise _GraphError(400, "ErrorInvalidExtendedProperty", "The extended property is not valid.")
    if with_attachments:
        for attachment in message.get("attachments") or []:
            yield _file_attachment(attachment)


def _file_attachment(attachment: Any) -> tuple[str, str, bytes]:
    if not isinstance(attachment, dict) or attachment.get("@odata.type") != "#microsoft.graph.fileAttachment":
        raise _GraphError(400, "ErrorInvalidAttachment", "Only fileAttachment is modelled by this double.")
    name, content_type, content = (
        attachment.get("name"),
        attachment.get("contentType"),
        attachment.get("contentBytes"),
    )
    if not isinstance(name, str) or not isinstance(content, str):
        raise _GraphError(400, "ErrorInvalidAttachment", "A file attachment needs a name and contentBytes.")
    try:
        data = base64.b64decode(content, validate=True)
    except ValueError:
        raise _GraphError(400, "ErrorInvalidAttachment", "contentBytes is not valid base64.") from None
    return name, str(content_type or "application/octet-stream"), data


def _valid_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return True


def _odata_strings(text: str) -> str:
    return text.replace("''", "'")


_USER_CLAUSES: list[tuple[re.Pattern[str], Callable[[GraphUser, str], bool]]] = [
    (re.compile(r"^mail eq '((?:[^']|'')*)'$", re.I), lambda u, v: (u.mail or "").lower() == v.lower()),
    (
        re.compile(r"^userPrincipalName eq '((?:[^']|'')*)'$", re.I),
        lambda u, v: u.user_principal_name.lower() == v.lower(),
    ),
    (
        re.compile(r"^proxyAddresses/any\((\w+):\s*\1 eq '((?:[^']|'')*)'\)$", re.I),
        lambda u, v: v.lower() in (p.lower() for p in u.proxy_addresses),
    ),
]


def _bound(test: Callable[[GraphUser, str], bool], value: str) -> Callable[[GraphUser], bool]:
    return lambda user: test(user, value)


def _user_filter(text: str) -> list[Callable[[GraphUser], bool]]:
    """Predicates for ``a or b or c`` over mail, userPrincipalName and proxyAddresses/any(...)."""
    if not text.strip():
        return [lambda _u: True]
    predicates: list[Callable[[GraphUser], bool]] = []
    for clause in re.split(r"\s+or\s+(?=(?:[^']*'[^']*')*[^']*$)", text.strip()):
        for pattern, test in _USER_CLAUSES:
            match = pattern.match(clause.strip())
            if match:
                predicates.append(_bound(test, _odata_strings(match.groups()[-1])))
                break
        else:
            raise _GraphError(400, "Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified.")
    return predicates


_EXTENDED_FILTER = re.compile(
    r"^singleValueExtendedProperties/Any\((\w+):\s*\1/id eq '((?:[^']|'')*)'"
    r" and \1/value eq '((?:[^']|'')*)'\)$",
    re.I,
)
_INTERNET_ID_FILTER = re.compile(r"^internetMessageId eq '((?:[^']|'')*)'$", re.I)
_FROM_FILTER = re.compile(r"^from/emailAddress/address eq '((?:[^']|'')*)'$", re.I)


def _message_filter(text: str) -> Callable[[GraphMessage], bool]:
    text = text.strip()
    if not text:
        return lambda _m: True
    match = _EXTENDED_FILTER.match(text)
    if match:
        prop, value = _odata_strings(match.group(2)), _odata_strings(match.group(3))
        # Graph: the property name is matched case-sensitively, the value case-insensitively.
        return lambda m: m.extended.get(prop, "").lower() == value.lower() and prop in m.extended
    match = _INTERNET_ID_FILTER.match(text)
    if match:
        wanted = _odata_strings(match.group(1))
        return lambda m: (m.internet_message_id or "") == wanted
    match = _FROM_FILTER.match(text)
    if match:
        sender = _odata_strings(match.group(1)).lower()
        return lambda m: (m.from_address or "").lower() == sender
    raise _GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")


# ---------------------------------------------------------------------------------------------
# Demo data


def seed_demo(server: GraphServer) -> dict[str, str]:
    """The EWS demo's people and sample messages, in the Graph double: the same directory (names
    and managers, so ``/manager`` finds the supervisor and the next level up), the mailbox the
    notifications are sent from, and the sample messages in the demo user's inbox.

    :returns: the EWS-format id of each sample message by name (what Outlook desktop sends).
    """
    from email.parser import BytesHeaderParser
    from email.utils import parsedate_to_datetime

    from addin_service.demo.ews_seed import DEMO_NOTIFY_FROM, DEMO_PEOPLE, DEMO_USER, sample_messages

    state = server.state
    for address, name, _manager in DEMO_PEOPLE:
        if state.find_user(address) is None:
            state.add_user(address, name)
    for address, _name, manager in DEMO_PEOPLE:
        state.set_manager(address, manager)
    if state.find_user(DEMO_NOTIFY_FROM) is None:
        state.add_user(DEMO_NOTIFY_FROM, "Report Harassment")
    ids: dict[str, str] = {}
    for name, mime in sample_messages().items():
        date = BytesHeaderParser().parsebytes(mime)["Date"]
        received = parsedate_to_datetime(str(date)).astimezone(UTC) + timedelta(seconds=7)
        item = state.add_message(DEMO_USER, mime, received=received.isoformat().replace("+00:00", "Z"))
        ids[name] = item.ews_id
    return ids
