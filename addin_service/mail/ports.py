"""The mailbox port: what the use cases need from Exchange, whatever the protocol.

Adapters (``mail/ews.py``, ``mail/graph.py``, the in-memory fake in ``tests/fakes``) implement
:class:`Mailbox` and translate their protocol's errors into ``addin_service.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

# An item id as the client may send it: EWS ids are base64 ('+', '/'); REST ids are the same
# bytes in URL-safe form ('-', '_'), the form Outlook mobile and the REST/Graph APIs use.
ITEM_ID_MAX_LENGTH = 1024
# When Exchange answers for the item but gives no MIME (or an empty one): said alike by every adapter.
NO_MIME_DETAIL = (
    "Exchange returned the message without its MIME content, so it could not be preserved. Nothing was filed."
)


def canonical_item_id(item_id: str, id_format: str) -> str:
    """Return the EWS form of ``item_id`` so that one item has one canonical id.

    Outlook's ``convertToEwsId`` is exactly this mapping; EWS ``ConvertId`` has no REST format,
    so the conversion is done here rather than on the server.
    """
    if id_format == "rest":
        return item_id.replace("-", "/").replace("_", "+")
    return item_id


@dataclass(frozen=True)
class ItemRef:
    """Which item to capture, in whose mailbox, with whose rights."""

    item_id: str  # canonical (EWS-format) id
    mailbox: str  # SMTP address of the mailbox that holds the item
    reporter: str  # SMTP address / UPN of the caller; their rights apply
    user_token: str | None = field(default=None, repr=False)  # for on-behalf-of modes; never logged


@dataclass(frozen=True)
class CapturedItem:
    """Facts Exchange returned alongside the MIME, exactly as returned."""

    headers: tuple[tuple[str, str], ...]  # transport headers, in order, values as returned
    item_id: str
    change_key: str | None
    internet_message_id: str | None
    subject: str | None
    sender: str | None  # Sender mailbox address as Exchange reports it
    from_address: str | None  # From mailbox address as Exchange reports it
    received_at: str | None  # UTC ISO 8601 with Z, as Exchange reports DateTimeReceived
    exchange_size: int | None  # the item's Size property, when returned
    adapter: str  # e.g. "ews" or "graph"
    server_version: str | None  # e.g. "Exchange2019 (15.2.1118.7)"
    mime_source: str  # "ews-mimecontent" (as stored) or "graph-value" (MIME Exchange generated)


class MimeSink(Protocol):
    """Where an adapter streams the decoded MIME bytes. ``write`` may raise MessageTooLarge."""

    def write(self, data: bytes, /) -> int: ...


class Mailbox(Protocol):
    """Read access to Exchange for capture."""

    name: str

    def capture(self, ref: ItemRef, sink: MimeSink) -> CapturedItem:
        """Stream the item's MIME into ``sink`` and return its transport headers and facts.

        Never modifies, moves or deletes the item.

        :raises MessageNotFound: the item does not exist for this user.
        :raises NotYourMailbox: the reporter may not read that mailbox or item.
        :raises MailboxUnavailable: Exchange is down, timing out or still throttling after retries.
        :raises MessageTooLarge: raised by the sink and passed through.
        """
        ...

    def find_from_sender(self, ref: ItemRef, sender: str, limit: int) -> list[str]:
        """Other messages from ``sender`` in ``ref.mailbox``, as the reporter may see them: their
        canonical (EWS-format) ids, at most ``limit``, never ``ref.item_id`` itself.

        For "also save my other messages from this sender". Read-only: nothing is moved.

        :raises NotYourMailbox: the reporter may not read that mailbox.
        :raises MailboxUnavailable: Exchange is down, timing out or still throttling after retries.
        """
        ...

    def check(self) -> None:
        """Cheap reachability probe for ``/readyz``.

        :raises MailboxUnavailable: Exchange cannot be reached.
        """
        ...
