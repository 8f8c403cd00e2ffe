"""Demo data for the EWS server double: a reporter, her supervisor and six sample messages.

The messages (``addin_service/demo/messages/*.eml``) are fictional and plain: a threat from an
external sender that fails SPF/DMARC, harassment from an internal colleague, a message from the
reporter's supervisor, a spoofed message that claims to be from the supervisor, a benign newsletter,
and unwanted contact with an attachment and 8-bit, non-ASCII text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from addin_service.demo.ews_server import EwsServer

DEMO_USER = "alex@contoso.com"
DEMO_SUPERVISOR = "morgan@contoso.com"
DEMO_SKIP_LEVEL = "sam.okafor@contoso.com"
DEMO_NOTIFY_FROM = "report-harassment@contoso.com"

# The demo directory, shared by the EWS and the Graph doubles: (address, display name, manager).
# Routing finds real names and the next level up: the supervisor's own messages (and the spoofed
# one) go to the skip-level manager.
DEMO_PEOPLE: tuple[tuple[str, str, str | None], ...] = (
    (DEMO_USER, "Alex Rivera", DEMO_SUPERVISOR),
    (DEMO_SUPERVISOR, "Morgan Blake", DEMO_SKIP_LEVEL),
    (DEMO_SKIP_LEVEL, "Sam Okafor", None),
    ("riley.chen@contoso.com", "Riley Chen", DEMO_SUPERVISOR),
)


def sample_messages() -> dict[str, bytes]:
    """The sample messages by name (file name without ``.eml``), in file-name order, as raw bytes."""
    folder = resources.files("addin_service.demo").joinpath("messages")
    files = sorted((entry for entry in folder.iterdir() if entry.name.endswith(".eml")), key=lambda e: e.name)
    return {entry.name.removesuffix(".eml"): entry.read_bytes() for entry in files}


def _received_at(mime: bytes) -> datetime:
    """A few seconds after the message's own Date, so the demo mailbox reads like a real one."""
    date = BytesHeaderParser().parsebytes(mime)["Date"]
    return parsedate_to_datetime(str(date)).astimezone(UTC) + timedelta(seconds=7)


def seed_demo(server: EwsServer) -> dict[str, str]:
    """Create the demo mailboxes and load the sample messages into the demo user's mailbox.

    :returns: the item id of each sample message, by name (e.g. ``"01-external-threat"``).
    """
    server.add_mailbox(DEMO_USER)
    server.add_mailbox(DEMO_SUPERVISOR)
    server.store.set_manager(DEMO_USER, DEMO_SUPERVISOR)
    for address, name, manager in DEMO_PEOPLE:  # the directory ResolveNames serves
        server.add_person(address, name, manager=manager)
    server.add_mailbox(DEMO_NOTIFY_FROM)  # sends the notifications (ADDIN_NOTIFY_TRANSPORT=ews)
    return {
        name: server.add_message(DEMO_USER, mime, received_at=_received_at(mime))
        for name, mime in sample_messages().items()
    }
