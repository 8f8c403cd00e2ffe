"""find_from_sender: the reporter's other messages from one sender, on every Mailbox implementation."""

from __future__ import annotations

import pytest

from addin_service.errors import NotYourMailbox
from tests.fakes.arrangements import ALEX, ROBIN, Arrangement, ref

SAM = "sam@fabrikam.example"


def mime(sender: str, n: int) -> bytes:
    return (
        f"From: Someone <{sender}>\r\nTo: {ALEX}\r\nSubject: m{n}\r\nMessage-ID: <r{n}@x>\r\n\r\nbody {n}\r\n".encode()
    )


def add(arranged: Arrangement, mailbox: str, sender: str, n: int) -> str:
    item = arranged.add(mailbox, mime(sender, n))
    fake = getattr(arranged.mailbox, "items", None)
    if fake is not None:  # the in-memory fake does not parse MIME; tell it who sent what
        fake[item].from_address = sender
    return item


def test_other_messages_from_the_sender_are_found(arranged: Arrangement) -> None:
    reported = add(arranged, ALEX, SAM, 1)
    others = {add(arranged, ALEX, SAM, 2), add(arranged, ALEX, SAM, 3)}
    add(arranged, ALEX, "someone.else@fabrikam.example", 4)
    assert set(arranged.mailbox.find_from_sender(ref(arranged, reported), SAM, 10)) == others


def test_an_address_that_merely_contains_the_sender_is_not_a_match(arranged: Arrangement) -> None:
    reported = add(arranged, ALEX, SAM, 1)
    add(arranged, ALEX, "jim" + SAM, 2)
    assert arranged.mailbox.find_from_sender(ref(arranged, reported), SAM, 10) == []


def test_the_limit_is_respected(arranged: Arrangement) -> None:
    reported = add(arranged, ALEX, SAM, 1)
    for n in range(2, 7):
        add(arranged, ALEX, SAM, n)
    assert len(arranged.mailbox.find_from_sender(ref(arranged, reported), SAM, 3)) == 3


def test_another_users_mailbox_is_refused(arranged: Arrangement) -> None:
    reported = add(arranged, ROBIN, SAM, 1)
    with pytest.raises(NotYourMailbox):
        arranged.mailbox.find_from_sender(ref(arranged, reported, mailbox=ROBIN), SAM, 10)
