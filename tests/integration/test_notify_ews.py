"""EwsDirectory and EwsSender (exchangelib) against the EWS double over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from addin_service.demo.ews_faults import Delay, DropConnection, ServerBusy
from addin_service.demo.ews_server import EwsServer
from addin_service.demo.ews_store import SentMessage
from addin_service.errors import ConfigError
from addin_service.mail.ews_directory import EwsDirectory
from addin_service.mail.ews_sender import EwsSender
from addin_service.notify.ports import Attachment, DeliveryFailed, DirectoryUnavailable, OutgoingMessage
from tests.fakes.ews import ews_server, ews_settings  # noqa: F401 - the fixture

NOTIFY_FROM = "report-harassment@contoso.com"
ALEX = "alex@contoso.com"
MORGAN = "morgan@contoso.com"
SAM = "sam@contoso.com"
CEO = "ceo@contoso.com"
REPORTED = b"From: x@example.net\r\nTo: alex@contoso.com\r\nSubject: threat\r\n\r\nI know where you live.\r\n"


@pytest.fixture
def directory_server(ews_server: EwsServer) -> EwsServer:  # noqa: F811 - the imported fixture
    ews_server.add_person(ALEX, "Alex Wilber", manager=MORGAN, aliases=["a.wilber@contoso.com"])
    ews_server.add_person(MORGAN, "Morgan Lee", manager=SAM, aliases=["m.lee@contoso.com", "mlee@contoso.net"])
    ews_server.add_person(SAM, "Sam Okafor", manager=CEO)
    ews_server.add_person(CEO, "Dana Chief")
    ews_server.add_mailbox(NOTIFY_FROM)
    return ews_server


@pytest.fixture
def directory(directory_server: EwsServer) -> Iterator[EwsDirectory]:
    made = EwsDirectory(ews_settings(directory_server))
    yield made
    made.close()


@pytest.fixture
def sender(directory_server: EwsServer) -> Iterator[EwsSender]:
    made = EwsSender(ews_settings(directory_server, notify_from=NOTIFY_FROM, ews_timeout="2"))
    yield made
    made.close()


def notification(*attachments: Attachment, to: str = "security@contoso.com", message_id: str = "<R-1.s.1@contoso.com>"
                 ) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=message_id,
        from_address=NOTIFY_FROM,
        to=(to,),
        subject="[URGENT] Harassment report HR-2026-7K3M9Q2X: external sender",
        text="Case HR-2026-7K3M9Q2X.",
        html="<p>Case <b>HR-2026-7K3M9Q2X</b>.</p>",
        urgent=True,
        attachments=attachments,
    )


# -- directory ---------------------------------------------------------------------------------


def test_the_manager_chain_comes_from_resolve_names(directory: EwsDirectory, directory_server: EwsServer) -> None:
    chain = directory.manager_chain(ALEX)

    assert [p.address for p in chain] == [MORGAN, SAM, CEO]
    assert chain[0].display_name == "Morgan Lee"
    assert chain[0].aliases == {"m.lee@contoso.com", "mlee@contoso.net"}
    assert {r.operation for r in directory_server.requests} == {"ResolveNames"}
    assert all(r.impersonated is None for r in directory_server.requests)


def test_a_chain_stops_at_the_requested_depth(directory: EwsDirectory) -> None:
    assert [p.address for p in directory.manager_chain(ALEX, depth=1)] == [MORGAN]


def test_older_servers_name_the_manager_which_is_resolved_in_turn(
    directory: EwsDirectory, directory_server: EwsServer
) -> None:
    directory_server.store.returns_manager_mailbox = False

    assert [p.address for p in directory.manager_chain(ALEX)] == [MORGAN, SAM, CEO]


def test_an_ambiguous_manager_name_ends_the_chain_rather_than_guess(
    directory: EwsDirectory, directory_server: EwsServer
) -> None:
    directory_server.store.returns_manager_mailbox = False
    directory_server.add_person("morgan.lee2@contoso.com", "Morgan Lee")

    assert directory.manager_chain(ALEX) == []


def test_a_person_is_found_by_an_alias(directory: EwsDirectory) -> None:
    found = directory.person("M.Lee@contoso.com")

    assert found is not None and found.address == MORGAN


def test_someone_unknown_is_none_and_has_no_chain(directory: EwsDirectory) -> None:
    assert directory.person("nobody@contoso.com") is None
    assert directory.manager_chain("nobody@contoso.com") == []


def test_a_loop_in_the_directory_ends_the_chain(directory: EwsDirectory, directory_server: EwsServer) -> None:
    directory_server.store.set_manager(CEO, MORGAN)

    assert [p.address for p in directory.manager_chain(ALEX, depth=5)] == [MORGAN, SAM, CEO]


def test_a_directory_that_is_down_is_unavailable(directory: EwsDirectory, directory_server: EwsServer) -> None:
    directory_server.inject(ServerBusy(back_off_ms=100), operation="ResolveNames", times=None)

    with pytest.raises(DirectoryUnavailable):
        directory.manager_chain(ALEX)


def test_answers_are_remembered_briefly(directory: EwsDirectory, directory_server: EwsServer) -> None:
    directory.manager_chain(ALEX)
    asked = directory_server.count("ResolveNames")
    directory.manager_chain(ALEX)

    assert directory_server.count("ResolveNames") == asked


# -- sender ------------------------------------------------------------------------------------


def only_sent(server: EwsServer) -> SentMessage:
    [sent] = server.sent_items(NOTIFY_FROM)
    return sent


def test_a_notification_is_sent_as_notify_from_and_kept_in_sent_items(
    sender: EwsSender, directory_server: EwsServer
) -> None:
    sender.send(notification(Attachment("reported-message.eml", "message/rfc822", REPORTED)))

    sent = only_sent(directory_server)
    assert sent.to == ("security@contoso.com",)
    assert sent.internet_message_id == "<R-1.s.1@contoso.com>"
    assert sent.subject == "[URGENT] Harassment report HR-2026-7K3M9Q2X: external sender"
    assert sent.importance == "High"
    assert sent.body_type == "HTML" and "<b>HR-2026-7K3M9Q2X</b>" in sent.body
    [attached] = sent.attachments
    assert (attached.name, attached.content_type, attached.content) == (
        "reported-message.eml", "message/rfc822", REPORTED
    )
    [create] = [r for r in directory_server.requests if r.operation == "CreateItem"]
    assert create.impersonated == NOTIFY_FROM


def test_already_sent_looks_in_sent_items_by_message_id(sender: EwsSender, directory_server: EwsServer) -> None:
    first, other = notification(), notification(message_id="<R-2.s.2@contoso.com>")
    assert not sender.already_sent(first)

    sender.send(first)

    assert sender.already_sent(first)
    assert not sender.already_sent(other)
    assert directory_server.count("GetFolder") == 0  # the folder is never resolved first


def test_an_answer_lost_after_the_send_is_found_in_sent_items(sender: EwsSender, directory_server: EwsServer) -> None:
    directory_server.inject(DropConnection(after_body_bytes=10), operation="CreateItem")

    with pytest.raises(DeliveryFailed) as caught:
        sender.send(notification())

    assert not caught.value.permanent
    assert sender.already_sent(notification())  # so the worker will not send it again


def test_a_slow_exchange_times_out_as_a_retryable_failure(sender: EwsSender, directory_server: EwsServer) -> None:
    directory_server.inject(Delay(seconds=4, after_dispatch=True), operation="CreateItem")

    with pytest.raises(DeliveryFailed) as caught:
        sender.send(notification())

    assert not caught.value.permanent
    assert len(directory_server.sent_items(NOTIFY_FROM)) == 1


def test_a_refused_recipient_is_permanent(sender: EwsSender, directory_server: EwsServer) -> None:
    directory_server.store.reject_recipient("gone@contoso.com")

    with pytest.raises(DeliveryFailed) as caught:
        sender.send(notification(to="gone@contoso.com"))

    assert caught.value.permanent
    assert directory_server.sent_items() == []


def test_a_message_over_the_send_size_is_refused_for_its_size(sender: EwsSender, directory_server: EwsServer) -> None:
    directory_server.store.max_send_bytes = 20_000
    copy = Attachment("reported-message.eml", "message/rfc822", b"From: x@example.net\r\n\r\n" + b"v" * 30_000)

    with pytest.raises(DeliveryFailed) as caught:
        sender.send(notification(copy))

    assert caught.value.permanent and caught.value.too_large
    assert directory_server.sent_items() == []
    sender.send(notification())  # the same message without the copy goes
    assert len(directory_server.sent_items()) == 1


def test_throttling_is_retried_after_exchanges_back_off(sender: EwsSender, directory_server: EwsServer) -> None:
    directory_server.inject(ServerBusy(back_off_ms=7000), operation="CreateItem")

    with pytest.raises(DeliveryFailed) as caught:
        sender.send(notification())

    assert not caught.value.permanent
    assert caught.value.retry_after == 7


def test_impersonation_refused_is_a_retryable_configuration_problem(directory_server: EwsServer) -> None:
    directory_server.add_account("no-impersonation", "pw", can_impersonate=False)
    settings = ews_settings(directory_server, notify_from=NOTIFY_FROM, ews_username="no-impersonation",
                            ews_password="pw")
    limited = EwsSender(settings)
    try:
        with pytest.raises(DeliveryFailed) as caught:
            limited.send(notification())
    finally:
        limited.close()

    assert not caught.value.permanent
    assert "ADDIN_NOTIFY_FROM" in caught.value.detail


def test_the_sender_needs_notify_from(directory_server: EwsServer) -> None:
    with pytest.raises(ConfigError, match="^ADDIN_NOTIFY_FROM"):
        EwsSender(ews_settings(directory_server))


# -- the double's own contract -------------------------------------------------------------------


def test_the_double_refuses_to_send_without_impersonation(directory_server: EwsServer) -> None:
    made = EwsSender(ews_settings(directory_server, notify_from=NOTIFY_FROM))
    made._account.access_type = "delegate"  # no ExchangeImpersonation header: nobody to send as
    try:
        with pytest.raises(DeliveryFailed) as caught:
            made.send(notification())
    finally:
        made.close()

    assert "ErrorNonExistentMailbox" in caught.value.detail
    assert directory_server.sent_items() == []
