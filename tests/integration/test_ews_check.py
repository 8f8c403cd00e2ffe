"""EwsMailbox.check(): the readiness probe behind /readyz, against the EWS double."""

from __future__ import annotations

import pytest

from addin_service.demo.ews_faults import ServerBusy
from addin_service.demo.ews_server import EwsServer
from addin_service.errors import MailboxUnavailable
from addin_service.mail.ews import EwsMailbox
from addin_service.mail.ews_connection import CREDENTIALS_REJECTED
from tests.fakes.ews import FAST_RETRY, ews_server, ews_settings

__all__ = ["ews_server"]  # fixture used below


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def probe(server: EwsServer, clock: Clock | None = None, **settings: str) -> EwsMailbox:
    return EwsMailbox(ews_settings(server, **settings), retry=FAST_RETRY, clock=clock or Clock(), check_ttl=10)


def test_a_healthy_exchange_passes_with_one_cheap_call_that_reads_no_mailbox(ews_server: EwsServer) -> None:
    probe(ews_server).check()
    [request] = ews_server.requests
    assert (request.operation, request.impersonated) == ("GetServerTimeZones", None)


def test_the_answer_is_reused_for_ten_seconds(ews_server: EwsServer) -> None:
    clock = Clock()
    mailbox = probe(ews_server, clock)
    mailbox.check()
    clock.now += 9.9
    mailbox.check()
    assert ews_server.count() == 1
    clock.now += 0.2
    mailbox.check()
    assert ews_server.count() == 2


def test_a_failure_is_reported_and_remembered_for_ten_seconds(ews_server: EwsServer) -> None:
    clock = Clock()
    mailbox = probe(ews_server, clock)
    ews_server.inject(ServerBusy(back_off_ms=20_000), times=1)
    for _ in range(2):
        with pytest.raises(MailboxUnavailable) as raised:
            mailbox.check()
        assert raised.value.retry_after == 20
    assert ews_server.count() == 1
    clock.now += 10
    mailbox.check()


def test_rejected_service_credentials_fail_the_probe_with_a_message_for_the_admin(ews_server: EwsServer) -> None:
    with pytest.raises(MailboxUnavailable) as raised:
        probe(ews_server, ews_password="wrong").check()
    assert raised.value.detail == CREDENTIALS_REJECTED


def test_an_unreachable_exchange_fails_the_probe() -> None:
    with EwsServer() as gone:
        url = gone.url
    with pytest.raises(MailboxUnavailable):
        EwsMailbox(ews_settings(url), retry=FAST_RETRY).check()
