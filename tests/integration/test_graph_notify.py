"""GraphDirectory and GraphSender over real HTTP against the Graph double."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from addin_service.demo.graph_server import GraphServer, service_unavailable, throttled
from addin_service.mail.graph_directory import GraphDirectory
from addin_service.mail.graph_sender import NOTIFICATION_ID_PROPERTY, GraphSender
from addin_service.notify.ports import Attachment, DeliveryFailed, DirectoryUnavailable, OutgoingMessage
from addin_service.notify.worker import without_copy
from tests.fakes.graph import DoubleTokens, graph_settings, nasty_mime

ALEX = "alex@contoso.com"
SARA = "sara.davis@contoso.com"
PATTI = "patti@contoso.com"
CEO = "ceo@contoso.com"
SECURITY = "security@contoso.com"


@pytest.fixture
def server() -> Iterator[GraphServer]:
    with GraphServer() as running:
        state = running.state
        state.add_user(CEO, "Chief Executive")
        state.add_user(PATTI, "Patti Fernandez", manager=CEO)
        state.add_user(SARA, "Sara Davis", manager=PATTI, aliases=["sara@contoso.com", "SaraD@contoso.onmicrosoft.com"])
        state.add_user(ALEX, "Alex Wilber", manager=SARA, upn="alexw@contoso.onmicrosoft.com")
        state.add_user(SECURITY, "Security team")
        yield running


def notification(*attachments: Attachment, message_id: str = "<R-1.sara@contoso.com>") -> OutgoingMessage:
    return OutgoingMessage(
        message_id=message_id,
        from_address=SECURITY,
        to=(SARA,),
        subject="Harassment report HR-2026-7K3M9Q2X",
        text="A report was filed.",
        html="<p>A report was filed.</p>",
        urgent=True,
        attachments=attachments,
    )


def test_the_manager_chain_is_read_level_by_level(server: GraphServer) -> None:
    chain = GraphDirectory(graph_settings(server.graph_url), DoubleTokens(server)).manager_chain(ALEX)

    assert [p.address for p in chain] == [SARA, PATTI, CEO]
    assert chain[0].aliases == {"sara@contoso.com", "sarad@contoso.onmicrosoft.com"}
    assert server.operations() == ["getManager"] * 3  # depth 3: the CEO's manager is not asked


def test_a_person_is_found_by_alias_and_by_upn(server: GraphServer) -> None:
    directory = GraphDirectory(graph_settings(server.graph_url), DoubleTokens(server))

    by_alias = directory.person("SARA@contoso.com")
    by_upn = directory.person("alexw@contoso.onmicrosoft.com")

    assert by_alias is not None and by_alias.address == SARA
    assert by_upn is not None and by_upn.address == ALEX
    assert directory.person("nobody@contoso.com") is None


def test_a_directory_that_stays_busy_is_unavailable(server: GraphServer) -> None:
    server.faults.add(service_unavailable(retry_after=5), operation="getManager", times=None)

    with pytest.raises(DirectoryUnavailable):
        GraphDirectory(graph_settings(server.graph_url, exchange_max_wait="1"), DoubleTokens(server)).manager_chain(
            ALEX
        )


def test_a_notification_is_sent_and_then_found_in_sent_items(server: GraphServer) -> None:
    sender = GraphSender(graph_settings(server.graph_url), DoubleTokens(server))
    message = notification(Attachment("reported.eml", "message/rfc822", nasty_mime()))

    assert not sender.already_sent(message)
    sender.send(message)

    (sent,) = server.sent
    assert sent.via == "sendMail" and sent.save_to_sent_items
    assert sent.message["importance"] == "high"
    assert sent.message["internetMessageId"] == "<R-1.sara@contoso.com>"
    assert sent.attachments == (("reported.eml", "message/rfc822", nasty_mime()),)
    assert sender.already_sent(message)
    assert not sender.already_sent(notification(message_id="<R-1.patti@contoso.com>"))


def test_a_5_mb_attachment_goes_through_an_upload_session(server: GraphServer) -> None:
    big = base64.b64encode(bytes(range(256)) * 15_000)[: 5 * 1024 * 1024]
    sender = GraphSender(graph_settings(server.graph_url), DoubleTokens(server))
    message = notification(Attachment("reported.eml", "message/rfc822", big))

    sender.send(message)

    (sent,) = server.sent
    assert sent.via == "draft"
    assert sent.attachments == (("reported.eml", "message/rfc822", big),)
    (upload,) = server.uploads.values()
    assert upload.completed and upload.put_with_authorization == 0
    assert all(end - start + 1 <= 4 * 1024 * 1024 for start, end in upload.ranges)
    assert server.operations() == ["createMessage", "createUploadSession", "uploadRange", "uploadRange", "sendDraft"]
    assert {"id": NOTIFICATION_ID_PROPERTY, "value": message.message_id} in sent.message[
        "singleValueExtendedProperties"
    ]
    assert sender.already_sent(message)


def test_a_copy_graph_takes_neither_way_is_refused_for_its_size_and_the_notice_goes_without_it(
    server: GraphServer,
) -> None:
    """Just under 3 MiB, its base64 overflows a 4 MB request and upload sessions refuse it as too
    small: the notification was dead, and the security team never told."""
    copy = Attachment("reported.eml", "message/rfc822", b"m" * (3 * 1024 * 1024 - 40))
    sender = GraphSender(graph_settings(server.graph_url), DoubleTokens(server))
    message = notification(copy)

    with pytest.raises(DeliveryFailed) as caught:
        sender.send(message)
    assert caught.value.permanent and caught.value.too_large
    assert server.sent == []
    assert [m for m in server.state.messages.values() if m.folder == "drafts"] == []

    sender.send(without_copy(message, "HR-2026-7K3M9Q2X", "R-0123456789ABCDEF"))

    (sent,) = server.sent
    assert sent.attachments == ()
    assert "HR-2026-7K3M9Q2X" in sent.message["body"]["content"]
    assert sender.already_sent(message)


def test_a_draft_left_by_a_send_that_may_have_failed_is_deleted_before_the_next_attempt(server: GraphServer) -> None:
    """A 5xx answering the draft's send leaves it in Drafts, holding the reported message."""
    big = base64.b64encode(bytes(range(256)) * 15_000)[: 5 * 1024 * 1024]
    sender = GraphSender(graph_settings(server.graph_url, exchange_max_wait="1"), DoubleTokens(server))
    message = notification(Attachment("reported.eml", "message/rfc822", big))
    server.faults.add(service_unavailable(retry_after=1), operation="sendDraft", times=None)
    with pytest.raises(DeliveryFailed):
        sender.send(message)
    drafts = [m for m in server.state.messages.values() if m.folder == "drafts"]
    assert len(drafts) == 1
    server.faults.clear()

    assert not sender.already_sent(message)
    sender.send(message)

    assert [m for m in server.state.messages.values() if m.folder == "drafts"] == []
    (sent,) = server.sent
    assert sent.attachments == (("reported.eml", "message/rfc822", big),)


def test_throttled_sending_is_waited_out_when_graph_says_it_is_short(server: GraphServer) -> None:
    server.faults.add(throttled(retry_after=1), operation="sendMail", times=1)

    GraphSender(graph_settings(server.graph_url), DoubleTokens(server)).send(notification())

    assert len(server.sent) == 1


def test_an_unknown_recipient_is_a_permanent_failure(server: GraphServer) -> None:
    message = OutgoingMessage(
        message_id="<R-2@contoso.com>", from_address=SECURITY, to=("not-an-address",), subject="s", text="t", html="h"
    )

    with pytest.raises(DeliveryFailed) as raised:
        GraphSender(graph_settings(server.graph_url), DoubleTokens(server)).send(message)

    assert raised.value.permanent
    assert server.sent == []
