"""The EWS server double's state: accounts, mailboxes, items and who may read what.

Item ids and change keys look like Exchange's (base64 of an opaque binary structure, so '+', '/'
and '=' appear). Transport headers are derived from the MIME header block the way Exchange lists
them in ``InternetMessageHeaders``: name and value as in the message, folded values kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.utils import parseaddr

from addin_service.demo.ews_xml import is_xml_representable, replace_unrepresentable

_LINE = re.compile(rb"[^\n]*\n|[^\n]+")
_HEADER_NAME = re.compile(r"[!-9;-~]+")


@dataclass(frozen=True)
class Account:
    """Someone who can sign in to the double (basic auth)."""

    username: str
    password: str = field(repr=False)
    can_impersonate: bool = False
    mailbox: str | None = None  # the account's own mailbox, used when it does not impersonate


@dataclass(frozen=True)
class StoredItem:
    """One message in a mailbox, with the facts GetItem can return."""

    item_id: str
    change_key: str
    mailbox: str
    mime: bytes = field(repr=False)
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    subject: str | None
    from_address: str | None
    sender: str | None
    internet_message_id: str | None
    received_at: str

    @property
    def size(self) -> int:
        return len(self.mime)

    @property
    def id_bytes(self) -> bytes:
        return base64.b64decode(self.item_id)


@dataclass(frozen=True)
class DirectoryEntry:
    """Someone in the global address list: primary address, display name and proxy addresses."""

    address: str
    display_name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class SentAttachment:
    name: str
    content_type: str
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class SentMessage:
    """A message a mailbox sent with CreateItem, as kept in its Sent Items."""

    item_id: str
    change_key: str
    mailbox: str
    internet_message_id: str
    subject: str
    body: str = field(repr=False)
    body_type: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    importance: str
    attachments: tuple[SentAttachment, ...]
    sent_at: str


def default_display_name(address: str) -> str:
    """``morgan.lee@contoso.com`` → ``Morgan Lee``: how the double names people nobody described."""
    local = address.split("@", 1)[0]
    return " ".join(part.capitalize() for part in re.split(r"[._-]+", local) if part) or address


def derive_headers(mime: bytes) -> list[tuple[str, str]]:
    """List the header block of ``mime`` as Exchange does: each field's name as written and its
    value with folding (line breaks, CR or CRLF, and indentation) kept; only the whitespace after
    the colon and the final line break are dropped. The block ends at the first empty line or the
    first line that is neither a field nor a continuation. Characters XML cannot carry become U+FFFD.
    """
    fields: list[list[bytes]] = []
    for match in _LINE.finditer(mime):
        line = match.group()
        if line in (b"\n", b"\r\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
            continue
        if b":" not in line:
            break
        fields.append([line])
    headers: list[tuple[str, str]] = []
    for lines in fields:
        raw = b"".join(lines)
        raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
        name, _, value = _decode(raw).partition(":")
        headers.append((replace_unrepresentable(name), replace_unrepresentable(value.lstrip(" \t"))))
    return headers


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def check_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Validate explicitly given headers: names must be RFC 5322 field names and every character
    must be representable in XML, so that what the double stores is exactly what it serves.

    :raises ValueError: a header the double could not serve unchanged.
    """
    checked = []
    for name, value in headers:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"not a header field name: {name!r}")
        if not is_xml_representable(value):
            raise ValueError(f"header {name} holds characters XML cannot carry")
        checked.append((name, value))
    return tuple(checked)


def _first(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r", "")


def _address(value: str | None) -> str | None:
    if value is None:
        return None
    address = parseaddr(_unfold(value))[1]
    return address or None


def _subject(value: str | None) -> str | None:
    if value is None:
        return None
    unfolded = _unfold(value).strip()
    try:
        return str(make_header(decode_header(unfolded)))
    except (ValueError, LookupError, UnicodeDecodeError):
        return unfolded


def new_item_id(mailbox: str) -> str:
    """An id shaped like an Exchange ``EwsId``: a store prefix, the mailbox's GUID, random entry bytes."""
    mailbox_guid = hashlib.sha256(mailbox.encode()).digest()[:16]
    raw = b"\x00\x03\x24\x00" + mailbox_guid + b"\x00\x46\x00\x00" + secrets.token_bytes(86)
    return base64.b64encode(raw).decode("ascii")


def new_change_key() -> str:
    return base64.b64encode(b"\x0f\x00\x00\x00\x16\x00\x00\x00" + secrets.token_bytes(20)).decode("ascii")


def is_well_formed_id(item_id: str) -> bool:
    """An EwsId is non-empty standard base64; anything else is ``ErrorInvalidIdMalformed``."""
    if not item_id:
        return False
    try:
        base64.b64decode(item_id, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


class MailStore:
    """Thread-safe in-memory mailboxes. Addresses compare case-insensitively."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] = {}
        self._mailboxes: set[str] = set()
        self._items: dict[str, StoredItem] = {}
        self._delegates: dict[str, set[str]] = {}
        self._managers: dict[str, str] = {}
        self._people: dict[str, DirectoryEntry] = {}
        self._sent: list[SentMessage] = []
        self._rejected_recipients: set[str] = set()
        self.returns_manager_mailbox = True  # False: behave like Exchange before 2010 SP2 (name only)
        # A mailbox's MaxSendSize: CreateItem of a larger message fails with ErrorMessageSizeExceeded.
        self.max_send_bytes: int | None = None

    # accounts and mailboxes -------------------------------------------------------------------
    def add_account(self, account: Account) -> None:
        with self._lock:
            self._accounts[account.username.lower()] = account
            if account.mailbox:
                self._mailboxes.add(account.mailbox.lower())

    def account(self, username: str, password: str) -> Account | None:
        """The account these credentials sign in to, or None."""
        with self._lock:
            account = self._accounts.get(username.lower())
        if account is None or not secrets.compare_digest(account.password.encode(), password.encode()):
            return None
        return account

    def add_mailbox(self, address: str) -> None:
        with self._lock:
            self._mailboxes.add(address.lower())

    def has_mailbox(self, address: str) -> bool:
        with self._lock:
            return address.lower() in self._mailboxes

    def grant(self, owner: str, delegate: str) -> None:
        """Let ``delegate`` read ``owner``'s mailbox (full access / shared mailbox member)."""
        with self._lock:
            self._mailboxes.update((owner.lower(), delegate.lower()))
            self._delegates.setdefault(owner.lower(), set()).add(delegate.lower())

    def may_read(self, user: str | None, mailbox: str) -> bool:
        if user is None:
            return False
        with self._lock:
            return user.lower() == mailbox.lower() or user.lower() in self._delegates.get(mailbox.lower(), set())

    def set_manager(self, user: str, manager: str) -> None:
        """Record ``user``'s manager in the directory (served by directory operations)."""
        with self._lock:
            self._managers[user.lower()] = manager.lower()

    def manager_of(self, user: str) -> str | None:
        with self._lock:
            return self._managers.get(user.lower())

    # directory ------------------------------------------------------------------------------------
    def add_person(
        self,
        address: str,
        display_name: str | None = None,
        *,
        aliases: Iterable[str] = (),
        manager: str | None = None,
    ) -> DirectoryEntry:
        """Describe someone in the directory (their mailbox is created too); optionally their manager."""
        entry = DirectoryEntry(
            address.lower(),
            display_name if display_name is not None else default_display_name(address),
            tuple(a.lower() for a in aliases),
        )
        with self._lock:
            self._people[entry.address] = entry
            self._mailboxes.add(entry.address)
            if manager is not None:
                self._managers[entry.address] = manager.lower()
        return entry

    def person(self, address: str) -> DirectoryEntry | None:
        """The directory entry whose primary address or alias is ``address``. Every mailbox is in the
        directory; one nobody described gets a name made from its address."""
        wanted = address.lower()
        with self._lock:
            for entry in self._people.values():
                if wanted == entry.address or wanted in entry.aliases:
                    return entry
            known = wanted in self._mailboxes or wanted in self._managers.values() or wanted in self._managers
        return DirectoryEntry(wanted, default_display_name(wanted)) if known else None

    def resolve(self, unresolved: str) -> list[DirectoryEntry]:
        """What ResolveNames finds for ``unresolved``: an exact address (``smtp:`` prefix optional),
        else everyone whose display name or address starts with it (ambiguous name resolution)."""
        text = unresolved.strip()
        address = text[5:] if text.lower().startswith("smtp:") else text
        if "@" in address:
            found = self.person(address)
            return [found] if found is not None else []
        if not text:
            return []
        with self._lock:
            everyone = {m: self._people.get(m) for m in (self._mailboxes | set(self._people))}
        entries = [entry or DirectoryEntry(m, default_display_name(m)) for m, entry in everyone.items()]
        needle = text.lower()
        return sorted(
            (e for e in entries if e.display_name.lower().startswith(needle) or e.address.startswith(needle)),
            key=lambda e: e.address,
        )

    # sending --------------------------------------------------------------------------------------
    def reject_recipient(self, address: str) -> None:
        """CreateItem to this address fails with ``ErrorInvalidRecipients`` (a permanent failure)."""
        with self._lock:
            self._rejected_recipients.add(address.lower())

    def is_rejected(self, address: str) -> bool:
        with self._lock:
            return address.lower() in self._rejected_recipients

    def record_sent(self, message: SentMessage) -> None:
        with self._lock:
            self._sent.append(message)

    def sent_items(self, mailbox: str | None = None) -> list[SentMessage]:
        """Everything sent (by ``mailbox``, or by anyone), oldest first."""
        with self._lock:
            return [m for m in self._sent if mailbox is None or m.mailbox == mailbox.lower()]

    # items ------------------------------------------------------------------------------------
    def add_message(
        self,
        mailbox: str,
        mime: bytes,
        headers: Iterable[tuple[str, str]] | None = None,
        *,
        item_id: str | None = None,
        received_at: datetime | None = None,
    ) -> StoredItem:
        """Store a message; headers default to :func:`derive_headers` of ``mime``.

        :raises ValueError: a malformed or duplicate ``item_id`` or unservable headers.
        """
        if item_id is not None and not is_well_formed_id(item_id):
            raise ValueError("item_id must be standard base64, as EWS ids are")
        served = tuple(derive_headers(mime)) if headers is None else check_headers(headers)
        when = (received_at or datetime.now(UTC)).astimezone(UTC)
        item = StoredItem(
            item_id=item_id or new_item_id(mailbox.lower()),
            change_key=new_change_key(),
            mailbox=mailbox.lower(),
            mime=mime,
            headers=served,
            subject=_subject(_first(served, "subject")),
            from_address=_address(_first(served, "from")),
            sender=_address(_first(served, "sender") or _first(served, "from")),
            internet_message_id=(_first(served, "message-id") or "").strip() or None,
            received_at=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        with self._lock:
            if item.item_id in self._items:
                raise ValueError("an item with this id already exists")
            self._mailboxes.add(item.mailbox)
            self._items[item.item_id] = item
        return item

    def item(self, item_id: str) -> StoredItem | None:
        with self._lock:
            return self._items.get(item_id)

    def received(self, mailbox: str) -> list[StoredItem]:
        """The messages in ``mailbox`` (the double keeps every received message in its Inbox)."""
        with self._lock:
            return [i for i in self._items.values() if i.mailbox == mailbox.lower()]
