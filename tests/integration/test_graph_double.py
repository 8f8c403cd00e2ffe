"""The Graph double refuses what Graph refuses, in Graph's words, so the adapters cannot cheat."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from addin_service.demo.graph_server import GraphServer
from tests.fakes.graph import nasty_mime

ALEX = "alex@contoso.com"


@pytest.fixture
def server() -> Iterator[GraphServer]:
    with GraphServer() as running:
        running.state.add_user(ALEX, "Alex Wilber")
        running.state.add_user("security@contoso.com", "Security")
        yield running


def call(method: str, url: str, token: str | None, **kwargs: Any) -> requests.Response:
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, url, headers=headers, timeout=5, **kwargs)


def error_code(response: requests.Response) -> str:
    return str(response.json()["error"]["code"])


def test_translate_exchange_ids_does_not_accept_application_tokens(server: GraphServer) -> None:
    item = server.state.add_message(ALEX, nasty_mime())
    body = {"inputIds": [item.ews_id], "sourceIdType": "ewsId", "targetIdType": "restId"}

    answer = call("POST", f"{server.graph_url}/users/{ALEX}/translateExchangeIds", server.issue_token(), json=body)

    assert (answer.status_code, error_code(answer)) == (403, "ErrorAccessDenied")


def test_an_unknown_selected_property_is_a_bad_request(server: GraphServer) -> None:
    item = server.state.add_message(ALEX, nasty_mime())

    answer = call(
        "GET", f"{server.graph_url}/users/{ALEX}/messages/{item.rest_id}?$select=headers", server.issue_token()
    )

    assert (answer.status_code, error_code(answer)) == (400, "RequestBroker--ParseUri")


def test_headers_come_only_when_selected(server: GraphServer) -> None:
    item = server.state.add_message(ALEX, nasty_mime())
    url = f"{server.graph_url}/users/{ALEX}/messages/{item.rest_id}"

    plain = call("GET", url, server.issue_token()).json()
    selected = call("GET", f"{url}?$select=internetMessageHeaders", server.issue_token()).json()

    assert "internetMessageHeaders" not in plain
    assert selected["internetMessageHeaders"][0] == {"name": "Received", "value": item.headers[0][1]}
    assert selected["@odata.context"].endswith("/messages(internetMessageHeaders)/$entity")


def test_count_needs_eventual_consistency(server: GraphServer) -> None:
    answer = call("GET", f"{server.graph_url}/users?$filter=mail eq '{ALEX}'&$count=true", server.issue_token())

    assert (answer.status_code, error_code(answer)) == (400, "Request_BadRequest")


def test_sending_needs_the_mail_send_permission(server: GraphServer) -> None:
    token = server.issue_token(roles=["Mail.Read"])
    message = {"subject": "s", "toRecipients": [{"emailAddress": {"address": ALEX}}]}

    answer = call("POST", f"{server.graph_url}/users/security@contoso.com/sendMail", token, json={"message": message})

    assert (answer.status_code, error_code(answer)) == (403, "ErrorAccessDenied")
    assert server.sent == []


def test_custom_headers_must_start_with_x(server: GraphServer) -> None:
    message = {
        "subject": "s",
        "toRecipients": [{"emailAddress": {"address": ALEX}}],
        "internetMessageHeaders": [{"name": "Report-Id", "value": "1"}],
    }

    answer = call(
        "POST",
        f"{server.graph_url}/users/security@contoso.com/sendMail",
        server.issue_token(),
        json={"message": message},
    )

    assert (answer.status_code, error_code(answer)) == (400, "InvalidInternetMessageHeader")


def test_upload_urls_are_pre_authenticated_and_refuse_a_bearer_token(server: GraphServer) -> None:
    token = server.issue_token()
    draft = call("POST", f"{server.graph_url}/users/security@contoso.com/messages", token, json={"subject": "d"}).json()
    session = call(
        "POST",
        f"{server.graph_url}/users/security@contoso.com/messages/{draft['id']}/attachments/createUploadSession",
        token,
        json={"AttachmentItem": {"attachmentType": "file", "name": "a.bin", "size": 4 * 1024 * 1024}},
    ).json()
    chunk = b"\0" * 1024
    headers = {"Content-Type": "application/octet-stream", "Content-Range": f"bytes 0-1023/{4 * 1024 * 1024}"}

    with_token = call("PUT", session["uploadUrl"], token, data=chunk, headers=headers)
    without = call("PUT", session["uploadUrl"], None, data=chunk, headers=headers)

    assert with_token.status_code == 401
    assert without.status_code == 200 and without.json()["nextExpectedRanges"] == ["1024"]


def test_small_files_cannot_use_an_upload_session(server: GraphServer) -> None:
    token = server.issue_token()
    draft = call("POST", f"{server.graph_url}/users/security@contoso.com/messages", token, json={"subject": "d"}).json()

    answer = call(
        "POST",
        f"{server.graph_url}/users/security@contoso.com/messages/{draft['id']}/attachments/createUploadSession",
        token,
        json={"AttachmentItem": {"attachmentType": "file", "name": "a.bin", "size": 1024}},
    )

    assert (answer.status_code, error_code(answer)) == (400, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize")


def test_an_unknown_mailbox_is_an_invalid_user(server: GraphServer) -> None:
    answer = call("GET", f"{server.graph_url}/users/nobody@contoso.com/messages/AAMk", server.issue_token())

    assert (answer.status_code, error_code(answer)) == (404, "ErrorInvalidUser")
    assert answer.headers["request-id"] == answer.json()["error"]["innerError"]["request-id"]


def test_the_demo_seed_gives_ids_the_graph_adapter_can_capture(server: GraphServer) -> None:
    from addin_service.demo.ews_seed import DEMO_SUPERVISOR, DEMO_USER, sample_messages
    from addin_service.demo.graph_server import seed_demo
    from addin_service.mail.graph import GraphMailbox
    from addin_service.mail.ports import ItemRef
    from tests.fakes.graph import BytesSink, DoubleTokens, graph_settings

    ids = seed_demo(server)
    box = GraphMailbox(graph_settings(server.graph_url), DoubleTokens(server))
    sink = BytesSink()

    captured = box.capture(ItemRef(ids["01-external-threat"], DEMO_USER, DEMO_USER, user_token=DEMO_USER), sink)

    assert bytes(sink.data) == sample_messages()["01-external-threat"]
    assert captured.received_at is not None and captured.received_at.endswith("Z")
    manager = server.state.find_user(DEMO_USER)
    assert manager is not None and server.state.users[manager.manager_id or ""].mail == DEMO_SUPERVISOR
