"""GraphMailbox over real HTTP against the Graph double: bytes, ids, throttling, tokens, rights."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from addin_service.demo.graph_server import (
    DropConnection,
    GraphServer,
    access_denied,
    throttled,
    token_expired,
)
from addin_service.demo.tls import make_throwaway_tls
from addin_service.errors import MailboxUnavailable, MessageNotFound, MessageTooLarge, NotYourMailbox
from addin_service.mail.graph import GraphMailbox
from addin_service.mail.ports import ItemRef, canonical_item_id
from tests.fakes.graph import BytesSink, DoubleTokens, graph_settings, nasty_mime

ALEX = "alex@contoso.com"
ROBIN = "robin@contoso.com"
SHARED = "hr-intake@contoso.com"


@pytest.fixture
def server() -> Iterator[GraphServer]:
    with GraphServer() as running:
        running.state.add_user(ALEX, "Alex Wilber")
        running.state.add_user(ROBIN, "Robin Kline")
        running.state.add_user(SHARED, "HR intake", delegates=[ALEX])
        yield running


def mailbox_for(server: GraphServer, tokens: DoubleTokens | None = None, **env: str) -> GraphMailbox:
    return GraphMailbox(graph_settings(server.graph_url, **env), tokens or DoubleTokens(server))


def ref(item_id: str, mailbox: str = ALEX, reporter: str = ALEX) -> ItemRef:
    # DoubleTokens treats the user assertion as the user's address.
    return ItemRef(item_id=item_id, mailbox=mailbox, reporter=reporter, user_token=reporter)


def test_nasty_mime_is_captured_byte_for_byte(server: GraphServer) -> None:
    item = server.state.add_message(ALEX, nasty_mime())
    sink = BytesSink()

    captured = mailbox_for(server).capture(ref(item.ews_id), sink)

    assert bytes(sink.data) == nasty_mime()
    assert list(captured.headers) == item.headers
    assert captured.headers[0][0] == "Received"
    assert captured.internet_message_id == "<nasty-1@evil.example>"
    assert captured.from_address == "eloise@evil.example"
    assert captured.change_key == item.change_key
    assert captured.mime_source == "graph-value"


def test_the_rest_and_ews_forms_of_an_id_reach_the_same_item(server: GraphServer) -> None:
    server.state.add_message(ALEX, b"Subject: decoy\r\n\r\nnot this one")
    item = server.state.add_message(ALEX, nasty_mime())
    assert "/" in item.ews_id and "+" in item.ews_id and item.ews_id != item.rest_id
    box = mailbox_for(server)

    from_desktop = BytesSink()
    box.capture(ref(canonical_item_id(item.ews_id, "ews")), from_desktop)
    from_mobile = BytesSink()
    box.capture(ref(canonical_item_id(item.rest_id, "rest")), from_mobile)

    assert bytes(from_desktop.data) == bytes(from_mobile.data) == nasty_mime()
    assert server.operations().count("translateExchangeIds") == 1  # the same canonical id, cached


def test_graphs_translation_agrees_with_outlooks_conversion(server: GraphServer) -> None:
    item = server.state.add_message(ALEX, nasty_mime())
    token = server.issue_token(user=ALEX, scopes=["User.ReadBasic.All"])

    answer = requests.post(
        f"{server.graph_url}/users/{ALEX}/translateExchangeIds",
        json={"inputIds": [item.rest_id], "sourceIdType": "restId", "targetIdType": "ewsId"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )

    assert answer.status_code == 200
    assert answer.json()["value"] == [{"sourceId": item.rest_id, "targetId": canonical_item_id(item.rest_id, "rest")}]


def test_throttling_is_waited_out_and_the_capture_succeeds(server: GraphServer) -> None:
    item = server.state.add_message(ALEX, nasty_mime())
    server.faults.add(throttled(retry_after=1), operation="getMimeContent", times=1)
    sink = BytesSink()

    started = time.monotonic()
    mailbox_for(server).capture(ref(item.ews_id), sink)

    assert time.monotonic() - started >= 1.0
    assert bytes(sink.data) == nasty_mime()
    assert server.operations().count("getMimeContent") == 2


def test_throttling_that_does_not_end_is_mailbox_unavailable_within_the_allowed_wait(server: GraphServer) -> None:
    item = server.state.add_message(ALEX, nasty_mime())
    server.faults.add(throttled(retry_after=1), operation="getMimeContent", times=None)

    started = time.monotonic()
    with pytest.raises(MailboxUnavailable) as raised:
        mailbox_for(server, exchange_max_wait="2").capture(ref(item.ews_id), BytesSink())

    assert time.monotonic() - started < 2.5
    assert raised.value.retry_after == 1
    assert server.operations().count("getMimeContent") == 2


def test_an_expired_token_is_renewed_once_and_the_capture_succeeds(server: GraphServer) -> None:
    item = server.state.add_message(ALEX, nasty_mime())
    server.faults.add(token_expired(), operation="translateExchangeIds", times=1)
    tokens = DoubleTokens(server)
    sink = BytesSink()

    mailbox_for(server, tokens).capture(ref(item.ews_id), sink)

    assert len(tokens.forgotten) == 1
    assert bytes(sink.data) == nasty_mime()


def test_a_reporter_cannot_capture_from_someone_elses_mailbox(server: GraphServer) -> None:
    item = server.state.add_message(ROBIN, nasty_mime())

    with pytest.raises(NotYourMailbox):
        mailbox_for(server).capture(ref(item.ews_id, mailbox=ROBIN, reporter=ALEX), BytesSink())


def test_a_delegate_captures_from_the_shared_mailbox_with_the_shared_scope(server: GraphServer) -> None:
    item = server.state.add_message(SHARED, nasty_mime())
    tokens = DoubleTokens(server)
    sink = BytesSink()

    mailbox_for(server, tokens).capture(ref(item.ews_id, mailbox=SHARED, reporter=ALEX), sink)

    assert bytes(sink.data) == nasty_mime()
    assert {scopes for _, scopes in tokens.delegated_calls} == {("Mail.Read", "Mail.Read.Shared", "User.ReadBasic.All")}


def test_app_mode_refuses_a_reporter_who_is_not_the_owner(server: GraphServer) -> None:
    item = server.state.add_message(ROBIN, nasty_mime())

    with pytest.raises(NotYourMailbox):
        mailbox_for(server, graph_auth="app").capture(ref(item.ews_id, mailbox=ROBIN, reporter=ALEX), BytesSink())

    assert "getMimeContent" not in server.operations()


def test_app_mode_captures_the_owners_message_without_translate(server: GraphServer) -> None:
    item = server.state.add_message(ALEX, nasty_mime())
    sink = BytesSink()

    mailbox_for(server, graph_auth="app").capture(ref(item.ews_id), sink)

    assert bytes(sink.data) == nasty_mime()
    assert "translateExchangeIds" not in server.operations()


def test_a_deleted_message_is_message_not_found(server: GraphServer) -> None:
    item = server.state.add_message(ALEX, nasty_mime())
    with server.state.lock:
        del server.state.messages[item.rest_id]

    with pytest.raises(MessageNotFound):
        mailbox_for(server).capture(ref(item.ews_id), BytesSink())


def test_access_denied_by_exchange_is_not_your_mailbox(server: GraphServer) -> None:
    item = server.state.add_message(ALEX, nasty_mime())
    server.faults.add(access_denied(), operation="getMimeContent")
    server.faults.add(access_denied(), operation="getMessage")

    with pytest.raises(NotYourMailbox):
        mailbox_for(server).capture(ref(item.ews_id), BytesSink())


def test_a_download_cut_short_is_unavailable_and_never_looks_complete(server: GraphServer) -> None:
    item = server.state.add_message(ALEX, nasty_mime())
    server.faults.add(DropConnection(after_bytes=70_000), operation="getMimeContent")
    sink = BytesSink()

    with pytest.raises(MailboxUnavailable):
        mailbox_for(server).capture(ref(item.ews_id), sink)

    assert len(sink.data) <= 70_000


def test_the_size_limit_stops_the_download(server: GraphServer) -> None:
    item = server.state.add_message(ALEX, nasty_mime())

    with pytest.raises(MessageTooLarge):
        mailbox_for(server, max_message_bytes="10000").capture(ref(item.ews_id), BytesSink())


def test_capture_works_over_tls_with_a_trusted_throwaway_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tls = make_throwaway_tls(tmp_path)
    # As an administrator would trust a private CA: requests honours REQUESTS_CA_BUNDLE over
    # a session's own ``verify``.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_bundle_path))
    with GraphServer(tls=tls) as server:
        server.state.add_user(ALEX)
        item = server.state.add_message(ALEX, nasty_mime())
        box = GraphMailbox(graph_settings(server.graph_url), DoubleTokens(server))
        sink = BytesSink()

        box.capture(ref(item.ews_id), sink)
        box.check()
        assert server.graph_url.startswith("https://")

    assert bytes(sink.data) == nasty_mime()


def test_an_untrusted_certificate_fails_at_once_without_retrying(tmp_path: Path) -> None:
    tls = make_throwaway_tls(tmp_path)
    with GraphServer(tls=tls) as server:
        server.state.add_user(ALEX)
        item = server.state.add_message(ALEX, nasty_mime())

        started = time.monotonic()
        with pytest.raises(MailboxUnavailable):
            mailbox_for(server).capture(ref(item.ews_id), BytesSink())

    assert time.monotonic() - started < 2


def test_check_passes_against_a_running_graph_and_fails_when_it_is_gone() -> None:
    with GraphServer() as server:
        settings = graph_settings(server.graph_url)
        mailbox_for(server).check()
    with pytest.raises(MailboxUnavailable):
        GraphMailbox(settings, DoubleTokens(server)).check()


def test_the_double_refuses_requests_without_a_token(server: GraphServer) -> None:
    answer = requests.get(f"{server.graph_url}/users/{ALEX}/messages/x", timeout=5)

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert set(answer.json()["error"]["innerError"]) == {"date", "request-id", "client-request-id"}
