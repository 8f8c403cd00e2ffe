"""EwsMailbox when Exchange throttles, fails, hangs or drops the connection (over real HTTP)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from addin_service.demo.ews_faults import Delay, DropConnection, HttpError, ServerBusy
from addin_service.demo.ews_server import EwsServer
from addin_service.errors import MailboxUnavailable
from addin_service.mail.ews import PARTIAL_DETAIL, EwsMailbox
from addin_service.mail.ews_connection import CREDENTIALS_REJECTED
from addin_service.mail.ports import ItemRef
from tests.fakes.ews import FAST_RETRY, REPORTER, SHARED, MemorySink, ews_server, ews_settings

__all__ = ["ews_server"]  # fixture used below

MIME = b"Subject: evidence\r\n\r\n" + b"0123456789abcdef" * 65536  # 1 MiB


class SleepRecorder:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def mailbox(ews_server: EwsServer, sleeps: SleepRecorder) -> Iterator[EwsMailbox]:
    box = EwsMailbox(ews_settings(ews_server, ews_timeout="1"), retry=FAST_RETRY, sleep=sleeps)
    yield box
    box.close()


@pytest.fixture
def item_id(ews_server: EwsServer) -> str:
    return ews_server.add_message(REPORTER, MIME)


def capture(mailbox: EwsMailbox, item_id: str, mailbox_address: str = REPORTER) -> MemorySink:
    sink = MemorySink()
    mailbox.capture(ItemRef(item_id, mailbox_address, REPORTER), sink)
    return sink


def test_throttling_is_waited_out_for_as_long_as_exchange_asks(
    ews_server: EwsServer, mailbox: EwsMailbox, item_id: str, sleeps: SleepRecorder
) -> None:
    ews_server.inject(ServerBusy(back_off_ms=120), operation="GetItem", times=2)
    assert capture(mailbox, item_id).data == MIME
    assert ews_server.count("GetItem") == 3
    assert len(sleeps.waits) == 2 and all(wait >= 0.12 for wait in sleeps.waits)


def test_throttling_longer_than_the_budget_is_unavailable_with_exchanges_back_off(
    ews_server: EwsServer, mailbox: EwsMailbox, item_id: str
) -> None:
    ews_server.inject(ServerBusy(back_off_ms=45_000), operation="GetItem", times=None)
    with pytest.raises(MailboxUnavailable) as raised:
        capture(mailbox, item_id)
    assert raised.value.retry_after == 45
    assert ews_server.count("GetItem") == 1


def test_throttling_that_never_ends_gives_up_after_bounded_attempts(
    ews_server: EwsServer, mailbox: EwsMailbox, item_id: str
) -> None:
    ews_server.inject(ServerBusy(back_off_ms=10), times=None)
    with pytest.raises(MailboxUnavailable) as raised:
        capture(mailbox, item_id)
    assert ews_server.count("GetItem") == FAST_RETRY.max_attempts
    assert raised.value.retry_after == 1


def test_server_errors_are_retried(ews_server: EwsServer, mailbox: EwsMailbox, item_id: str) -> None:
    ews_server.inject(HttpError(500), times=1)
    ews_server.inject(HttpError(502), times=1)
    assert capture(mailbox, item_id).data == MIME
    assert ews_server.count("GetItem") == 3


def test_an_unavailable_exchange_is_reported_with_its_retry_after(
    ews_server: EwsServer, mailbox: EwsMailbox, item_id: str
) -> None:
    ews_server.inject(HttpError(503, retry_after=7), times=None)
    with pytest.raises(MailboxUnavailable) as raised:
        capture(mailbox, item_id)
    assert raised.value.retry_after == 7


def test_a_response_slower_than_the_timeout_is_retried(
    ews_server: EwsServer, mailbox: EwsMailbox, item_id: str
) -> None:
    ews_server.inject(Delay(seconds=3), times=1)
    started = time.monotonic()
    assert capture(mailbox, item_id).data == MIME
    assert ews_server.count("GetItem") == 2
    assert time.monotonic() - started < 2.5


def test_a_connection_dropped_before_any_answer_is_retried(
    ews_server: EwsServer, mailbox: EwsMailbox, item_id: str
) -> None:
    ews_server.inject(DropConnection(), times=2)
    assert capture(mailbox, item_id).data == MIME
    assert ews_server.count("GetItem") == 3


def test_a_connection_dropped_before_the_mime_started_is_retried(
    ews_server: EwsServer, mailbox: EwsMailbox, item_id: str
) -> None:
    ews_server.inject(DropConnection(after_body_bytes=100), times=1)
    assert capture(mailbox, item_id).data == MIME


def test_a_connection_dropped_in_the_middle_of_the_mime_is_not_retried_into_the_same_sink(
    ews_server: EwsServer, mailbox: EwsMailbox, item_id: str
) -> None:
    ews_server.inject(DropConnection(after_body_bytes=300_000), times=1)
    sink = MemorySink()
    with pytest.raises(MailboxUnavailable) as raised:
        mailbox.capture(ItemRef(item_id, REPORTER, REPORTER), sink)
    assert raised.value.detail == PARTIAL_DETAIL
    assert 0 < len(sink.data) < len(MIME)
    assert ews_server.count("GetItem") == 1


def test_after_a_failure_the_next_capture_works(ews_server: EwsServer, mailbox: EwsMailbox, item_id: str) -> None:
    ews_server.inject(DropConnection(after_body_bytes=300_000), times=1)
    with pytest.raises(MailboxUnavailable):
        capture(mailbox, item_id)
    assert capture(mailbox, item_id).data == MIME


def test_throttled_convert_id_is_retried_too(ews_server: EwsServer, mailbox: EwsMailbox) -> None:
    ews_server.grant(SHARED, REPORTER)
    shared_item = ews_server.add_message(SHARED, MIME)
    ews_server.inject(ServerBusy(back_off_ms=10), operation="ConvertId", times=1)
    assert capture(mailbox, shared_item, SHARED).data == MIME
    assert ews_server.count("ConvertId") == 2


def test_wrong_service_credentials_are_unavailable_for_the_admin_and_not_retried(
    ews_server: EwsServer, item_id: str
) -> None:
    box = EwsMailbox(ews_settings(ews_server, ews_password="wrong"), retry=FAST_RETRY)
    with pytest.raises(MailboxUnavailable) as raised:
        capture(box, item_id)
    assert raised.value.detail == CREDENTIALS_REJECTED
    assert ews_server.count() == 1


def test_an_unreachable_exchange_is_unavailable() -> None:
    with EwsServer() as gone:
        url = gone.url
    box = EwsMailbox(ews_settings(url), retry=FAST_RETRY)
    with pytest.raises(MailboxUnavailable):
        capture(box, "AAMkAGI2VGhpcyBpcyBub3QgYW4gaXRlbQ==")
