"""Ports for telling people: the directory (who is whose manager) and the mail sender."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from addin_service.errors import ServiceError


class DirectoryUnavailable(ServiceError):
    """The directory could not be asked; routing falls back and records why."""

    status = 503
    title = "Directory unavailable"
    type_slug = "directory-unavailable"


class DeliveryFailed(ServiceError):
    """A notification could not be handed over. ``permanent`` failures are not retried;
    ``too_large``: the mail system refused the message for its size (its attachments, in practice)."""

    status = 503
    title = "Delivery failed"
    type_slug = "delivery-failed"

    def __init__(
        self, detail: str, *, permanent: bool = False, retry_after: float | None = None, too_large: bool = False
    ) -> None:
        super().__init__(detail)
        self.permanent = permanent
        self.retry_after = retry_after
        self.too_large = too_large


@dataclass(frozen=True)
class Person:
    address: str  # primary SMTP address, lower-case
    display_name: str = ""
    aliases: frozenset[str] = field(default_factory=frozenset)  # other SMTP/proxy addresses, lower-case


class Directory(Protocol):
    name: str

    def person(self, address: str) -> Person | None:
        """The person with this address (primary or alias), or None if unknown.

        :raises DirectoryUnavailable: the directory cannot be reached.
        """
        ...

    def manager_chain(self, address: str, depth: int = 3) -> list[Person]:
        """The person's manager, the manager's manager, ... up to ``depth`` levels (may be empty).

        :raises DirectoryUnavailable: the directory cannot be reached.
        """
        ...


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # e.g. "message/rfc822"
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class OutgoingMessage:
    """A notification, ready to send. ``message_id`` is deterministic per (report, recipient)
    so an uncertain send can be checked for in Sent Items before sending again."""

    message_id: str  # "<...@...>"
    from_address: str
    to: tuple[str, ...]
    subject: str
    text: str = field(repr=False)
    html: str = field(repr=False)
    urgent: bool = False
    attachments: tuple[Attachment, ...] = ()


class Sender(Protocol):
    name: str

    def send(self, message: OutgoingMessage) -> None:
        """Hand the message to the mail system.

        :raises DeliveryFailed: with ``permanent`` set when retrying cannot help.
        """
        ...

    def already_sent(self, message: OutgoingMessage) -> bool:
        """After an uncertain send: does the sender's Sent Items already hold ``message_id``?

        Transports that cannot know (SMTP) return False.
        """
        ...
