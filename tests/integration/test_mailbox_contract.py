"""One contract for the Mailbox port, run against every implementation: the EWS adapter against the
EWS double, the Graph adapter against the Graph double, and the in-memory fake."""

from __future__ import annotations

import base64
import secrets

import pytest

from addin_service.errors import MessageNotFound, MessageTooLarge, NotYourMailbox
from tests.fakes.arrangements import ALEX, MIME, ROBIN, SHARED, Arrangement, ref
from tests.fakes.graph import BytesSink


def test_capture_streams_the_mime_byte_for_byte(arranged: Arrangement) -> None:
    item = arranged.add(ALEX, MIME)
    sink = BytesSink()
    arranged.mailbox.capture(ref(arranged, item), sink)
    assert bytes(sink.data) == MIME


def test_capture_returns_the_item_facts(arranged: Arrangement) -> None:
    item = arranged.add(ALEX, MIME)
    captured = arranged.mailbox.capture(ref(arranged, item), BytesSink())
    assert captured.internet_message_id == "<contract-1@fabrikam.example>"
    assert captured.adapter == arranged.mailbox.name
    assert captured.mime_source


def test_an_unknown_item_is_not_found(arranged: Arrangement) -> None:
    arranged.add(ALEX, MIME)
    missing = base64.b64encode(b"AAMk" + secrets.token_bytes(40)).decode()
    with pytest.raises(MessageNotFound):
        arranged.mailbox.capture(ref(arranged, missing), BytesSink())


def test_a_mailbox_the_reporter_cannot_read_is_refused(arranged: Arrangement) -> None:
    item = arranged.add(ROBIN, MIME)
    with pytest.raises(NotYourMailbox):
        arranged.mailbox.capture(ref(arranged, item, mailbox=ROBIN), BytesSink())


def test_a_shared_mailbox_the_reporter_may_read_is_captured(arranged: Arrangement) -> None:
    arranged.share(SHARED, ALEX)
    item = arranged.add(SHARED, MIME)
    sink = BytesSink()
    arranged.mailbox.capture(ref(arranged, item, mailbox=SHARED), sink)
    assert bytes(sink.data) == MIME


def test_a_sink_that_refuses_more_bytes_stops_the_capture(arranged: Arrangement) -> None:
    item = arranged.add(ALEX, MIME)
    with pytest.raises(MessageTooLarge):
        arranged.mailbox.capture(ref(arranged, item), BytesSink(limit=1000))


def test_check_passes_when_exchange_answers(arranged: Arrangement) -> None:
    arranged.mailbox.check()
