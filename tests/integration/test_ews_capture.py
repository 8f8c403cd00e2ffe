"""EwsMailbox against the EWS server double over real HTTP: what a capture preserves and who may capture."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from addin_service.demo.ews_server import EwsServer
from addin_service.errors import MessageNotFound, MessageTooLarge, NotYourMailbox
from addin_service.mail.ews import EwsMailbox
from addin_service.mail.ports import CapturedItem, ItemRef
from tests.fakes.ews import (
    COLLEAGUE,
    FAST_RETRY,
    REPORTER,
    SHARED,
    LimitedSink,
    MemorySink,
    ews_mailbox,
    ews_server,
    ews_settings,
)

__all__ = ["ews_mailbox", "ews_server"]  # fixtures used below

NASTY_MIME = {
    "eight-bit": b"Subject: caf\xe9 \xff\xfe\r\nX-8bit: \xc3\xa9t\xc3\xa9\r\n\r\n\x80\x81 \xc3\xa9 \xff\r\n",
    "nul-bytes": b"Subject: nul\r\n\r\nbefore\x00\x00after\x00",
    "mixed-line-endings": b"Subject: mixed\nX-A: 1\r\n 2\n\r\nline1\nline2\r\nline3\rline4",
    "long-folded-header": b"X-Long: "
    + b"\r\n ".join(b"%06d-abcdefghijklmnopqrstuvwxyz-0123456789" % n for n in range(4500))  # ~210 KB
    + b"\r\nSubject: long\r\n\r\nbody\r\n",
    "broken-mime": b'Content-Type: multipart/mixed; boundary="b"\r\nSubject broken\r\n--b\r\n<<>> &amp;',
    "one-byte": b"x",
    "headers-only": b"Subject: nothing else\r\n\r\n",
    "no-trailing-newline": b"Subject: t\r\n\r\nlast line",
}


def capture(
    mailbox: EwsMailbox, item_id: str, *, mailbox_address: str = REPORTER, reporter: str = REPORTER
) -> tuple[CapturedItem, MemorySink]:
    sink = MemorySink()
    return mailbox.capture(ItemRef(item_id, mailbox_address, reporter), sink), sink


@pytest.mark.parametrize("name", list(NASTY_MIME))
def test_mime_is_captured_byte_for_byte(ews_server: EwsServer, ews_mailbox: EwsMailbox, name: str) -> None:
    item_id = ews_server.add_message(REPORTER, NASTY_MIME[name])
    _, sink = capture(ews_mailbox, item_id)
    assert sink.data == NASTY_MIME[name]


def test_headers_are_exactly_those_exchange_served(ews_server: EwsServer, ews_mailbox: EwsMailbox) -> None:
    served = [
        ("Received", "from mx01 (10.0.4.21)\r\n by ex01; Mon, 12 Jan 2026 08:14:05 +0000"),
        ("X-Carriage", "a\rb\r\n\tc"),
        ("X-Escapes", "<tag attr=\"v\"> & 'quotes' \t tab"),
        ("Subject", "caf\u00e9 \U0001f600"),
        ("X-Empty", ""),
        ("X-Spaces", "  leading and trailing  "),
    ]
    item_id = ews_server.add_message(REPORTER, b"Subject: x\r\n\r\nbody", headers=served)
    captured, _ = capture(ews_mailbox, item_id)
    assert captured.headers == tuple(served)


def test_headers_derived_from_a_200_kb_folded_header_survive(ews_server: EwsServer, ews_mailbox: EwsMailbox) -> None:
    item_id = ews_server.add_message(REPORTER, NASTY_MIME["long-folded-header"])
    captured, _ = capture(ews_mailbox, item_id)
    assert captured.headers == ews_server.item(item_id).headers
    assert len(captured.headers[0][1]) > 200_000


def test_capture_records_the_facts_exchange_returned(ews_server: EwsServer, ews_mailbox: EwsMailbox) -> None:
    mime = (
        b"From: Dale <dale@example.net>\r\nSender: relay@example.net\r\nSubject: You were warned\r\n"
        b"Message-ID: <m1@example.net>\r\n\r\nbody"
    )
    item_id = ews_server.add_message(REPORTER, mime)
    stored = ews_server.item(item_id)
    captured, _ = capture(ews_mailbox, item_id)
    assert (captured.item_id, captured.change_key) == (item_id, stored.change_key)
    assert (captured.subject, captured.internet_message_id) == ("You were warned", "<m1@example.net>")
    assert (captured.from_address, captured.sender) == ("dale@example.net", "relay@example.net")
    assert (captured.received_at, captured.exchange_size) == (stored.received_at, len(mime))
    assert (captured.adapter, captured.mime_source) == ("ews", "ews-mimecontent")
    assert captured.server_version == "Exchange2016 (15.1.2507.6)"


def test_an_item_id_with_plus_slash_and_padding_is_sent_intact(ews_server: EwsServer, ews_mailbox: EwsMailbox) -> None:
    item_id = "AAMkAD+/+/" + "A" * 135 + "Q=="
    ews_server.add_message(REPORTER, b"Subject: ids\r\n\r\n", item_id=item_id)
    captured, sink = capture(ews_mailbox, item_id)
    assert captured.item_id == item_id and sink.data == b"Subject: ids\r\n\r\n"


def test_capture_impersonates_the_reporter_in_one_get_item(ews_server: EwsServer, ews_mailbox: EwsMailbox) -> None:
    item_id = ews_server.add_message(REPORTER, b"Subject: x\r\n\r\n")
    capture(ews_mailbox, item_id)
    [request] = ews_server.requests
    assert (request.operation, request.impersonated, request.username) == ("GetItem", REPORTER, "svc-addin")
    assert request.headers["X-AnchorMailbox"] == REPORTER


def test_another_users_item_is_not_your_mailbox(ews_server: EwsServer, ews_mailbox: EwsMailbox) -> None:
    item_id = ews_server.add_message(COLLEAGUE, b"Subject: private\r\n\r\n")
    with pytest.raises(NotYourMailbox):
        capture(ews_mailbox, item_id)


def test_claiming_someone_elses_mailbox_without_access_is_not_your_mailbox(
    ews_server: EwsServer, ews_mailbox: EwsMailbox
) -> None:
    item_id = ews_server.add_message(COLLEAGUE, b"Subject: private\r\n\r\n")
    with pytest.raises(NotYourMailbox):
        capture(ews_mailbox, item_id, mailbox_address=COLLEAGUE)


def test_an_item_in_a_shared_mailbox_the_reporter_may_read_is_captured(
    ews_server: EwsServer, ews_mailbox: EwsMailbox
) -> None:
    ews_server.grant(SHARED, REPORTER)
    item_id = ews_server.add_message(SHARED, b"Subject: shared\r\n\r\nbody")
    captured, sink = capture(ews_mailbox, item_id, mailbox_address=SHARED)
    assert sink.data == b"Subject: shared\r\n\r\nbody"
    assert [(r.operation, r.impersonated) for r in ews_server.requests] == [
        ("ConvertId", REPORTER),
        ("GetItem", REPORTER),
    ]


def test_an_item_that_is_not_in_the_named_mailbox_is_not_your_mailbox(
    ews_server: EwsServer, ews_mailbox: EwsMailbox
) -> None:
    ews_server.grant(SHARED, REPORTER)
    item_id = ews_server.add_message(REPORTER, b"Subject: mine\r\n\r\n")
    with pytest.raises(NotYourMailbox):
        capture(ews_mailbox, item_id, mailbox_address=SHARED)
    assert ews_server.count("GetItem") == 0


def test_an_unknown_item_is_not_found(ews_server: EwsServer, ews_mailbox: EwsMailbox) -> None:
    with pytest.raises(MessageNotFound):
        capture(ews_mailbox, "AAMkAGI2VGhpcyBpcyBub3QgYW4gaXRlbQ==")


def test_an_unknown_item_in_a_shared_mailbox_is_not_found(ews_server: EwsServer, ews_mailbox: EwsMailbox) -> None:
    ews_server.grant(SHARED, REPORTER)
    with pytest.raises(MessageNotFound):
        capture(ews_mailbox, "AAMkAGI2VGhpcyBpcyBub3QgYW4gaXRlbQ==", mailbox_address=SHARED)


@pytest.mark.parametrize("item_id", ["not base64!", "", "A" * 2000, "AAMk<x/>"])
def test_a_malformed_item_id_is_not_found_without_asking_exchange(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, item_id: str
) -> None:
    with pytest.raises(MessageNotFound):
        capture(ews_mailbox, item_id)
    assert ews_server.count() == 0


def test_an_id_exchange_finds_malformed_is_not_found(ews_server: EwsServer, ews_mailbox: EwsMailbox) -> None:
    with pytest.raises(MessageNotFound):
        capture(ews_mailbox, "AAMk=")


def test_a_reporter_without_a_mailbox_is_not_your_mailbox(ews_server: EwsServer, ews_mailbox: EwsMailbox) -> None:
    item_id = ews_server.add_message(REPORTER, b"Subject: x\r\n\r\n")
    with pytest.raises(NotYourMailbox):
        capture(ews_mailbox, item_id, mailbox_address="ghost@contoso.com", reporter="ghost@contoso.com")


def test_a_service_account_without_impersonation_rights_is_refused(ews_server: EwsServer) -> None:
    ews_server.add_account("svc-limited", "pw", can_impersonate=False)
    mailbox = EwsMailbox(ews_settings(ews_server, ews_username="svc-limited", ews_password="pw"), retry=FAST_RETRY)
    item_id = ews_server.add_message(REPORTER, b"Subject: x\r\n\r\n")
    with pytest.raises(NotYourMailbox):
        capture(mailbox, item_id)


def test_a_message_too_large_for_the_sink_passes_through_and_the_next_capture_works(
    ews_server: EwsServer, ews_mailbox: EwsMailbox
) -> None:
    big = ews_server.add_message(REPORTER, b"Subject: big\r\n\r\n" + b"x" * 2_000_000)
    small = ews_server.add_message(REPORTER, b"Subject: small\r\n\r\nok")
    with pytest.raises(MessageTooLarge):
        ews_mailbox.capture(ItemRef(big, REPORTER, REPORTER), LimitedSink(100_000))
    _, sink = capture(ews_mailbox, small)
    assert sink.data == b"Subject: small\r\n\r\nok"
    assert ews_server.count("GetItem") == 2


def test_concurrent_captures_each_get_their_own_message(ews_server: EwsServer, ews_mailbox: EwsMailbox) -> None:
    ids = [ews_server.add_message(REPORTER, b"Subject: %d\r\n\r\n" % n + os.urandom(300_000)) for n in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        captured = list(pool.map(lambda item_id: capture(ews_mailbox, item_id)[1].data, ids))
    assert captured == [ews_server.item(item_id).mime for item_id in ids]
