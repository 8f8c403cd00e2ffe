"""An in-memory Mailbox: the port's behaviour without a protocol, for use-case tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from addin_service.errors import MailboxUnavailable, MessageNotFound, NotYourMailbox
from addin_service.mail.ports import CapturedItem, ItemRef, MimeSink


@dataclass
class StoredItem:
    mailbox: str
    mime: bytes
    headers: tuple[tuple[str, str], ...]
    internet_message_id: str | None = None
    from_address: str | None = None


@dataclass
class InMemoryMailbox:
    """Items by id; ``delegates[mailbox]`` lists who else may read that mailbox."""

    name: str = "memory"
    items: dict[str, StoredItem] = field(default_factory=dict)
    delegates: dict[str, set[str]] = field(default_factory=dict)
    failures: list[Exception] = field(default_factory=list)
    captures: int = 0
    chunk_size: int = 64 * 1024

    def add(self, item_id: str, mailbox: str, mime: bytes, headers: tuple[tuple[str, str], ...] = (),
            internet_message_id: str | None = None, from_address: str | None = None) -> None:
        self.items[item_id] = StoredItem(mailbox.lower(), mime, headers, internet_message_id, from_address)

    def capture(self, ref: ItemRef, sink: MimeSink) -> CapturedItem:
        self.captures += 1
        if self.failures:
            raise self.failures.pop(0)
        item = self.items.get(ref.item_id)
        if item is None:
            raise MessageNotFound("That message is no longer in the mailbox.")
        if item.mailbox != ref.mailbox:
            raise NotYourMailbox("That message is not in the mailbox you named.")
        if ref.reporter != item.mailbox and ref.reporter not in self.delegates.get(item.mailbox, set()):
            raise NotYourMailbox("You can report only messages in a mailbox you own or have access to.")
        for start in range(0, len(item.mime), self.chunk_size):
            sink.write(item.mime[start : start + self.chunk_size])
        return CapturedItem(
            headers=item.headers,
            item_id=ref.item_id,
            change_key="CK-" + ref.item_id[:8],
            internet_message_id=item.internet_message_id,
            subject=None,
            sender=item.from_address,
            from_address=item.from_address,
            received_at="2026-11-25T09:00:00Z",
            exchange_size=len(item.mime),
            adapter=self.name,
            server_version=None,
            mime_source="memory",
        )

    def find_from_sender(self, ref: ItemRef, sender: str, limit: int) -> list[str]:
        if ref.reporter != ref.mailbox and ref.reporter not in self.delegates.get(ref.mailbox, set()):
            raise NotYourMailbox("You can report only messages in a mailbox you own or have access to.")
        found = [
            item_id
            for item_id, item in self.items.items()
            if item.mailbox == ref.mailbox
            and item_id != ref.item_id
            and (item.from_address or "").lower() == sender.lower()
        ]
        return found[:limit]

    def check(self) -> None:
        if self.failures and isinstance(self.failures[0], MailboxUnavailable):
            raise self.failures[0]
