"""GraphSender against recorded-shape payloads: the JSON it sends and how failures are reported."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
import requests
import responses

from addin_service.mail.graph_sender import CONFIG_RETRY_AFTER, NOTIFICATION_ID_PROPERTY, UPLOAD_CHUNK, GraphSender
from addin_service.notify.ports import Attachment, DeliveryFailed, OutgoingMessage
from tests.fakes.graph import FakeTime, StaticTokens, fixture, graph_settings

GRAPH = "https://graph.microsoft.com/v1.0"
SECURITY = "security@contoso.com"
SEND_MAIL = f"{GRAPH}/users/{SECURITY}/sendMail"
DRAFTS = f"{GRAPH}/users/{SECURITY}/messages"
DRAFT_ID = "AAMkADI5MAAIT3drCAAA="
UPLOAD_URL = fixture("upload_session.json")["uploadUrl"]


def message(*attachments: Attachment, urgent: bool = False) -> OutgoingMessage:
    return OutgoingMessage(
        message_id="<report-R-1.sara@contoso.com>",
        from_address=SECURITY,
        to=("sara.davis@contoso.com", "pattif@contoso.com"),
        subject="Harassment report HR-2026-7K3M9Q2X",
        text="A report was filed.",
        html="<p>A report was filed.</p>",
        urgent=urgent,
        attachments=attachments,
    )


@pytest.fixture
def graph() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def sender(tokens: StaticTokens | None = None, **env: str) -> GraphSender:
    time = FakeTime()
    return GraphSender(graph_settings(GRAPH, **env), tokens or StaticTokens(), sleep=time.sleep, clock=time.clock)


def body_of(call: responses.Call) -> dict[str, object]:
    return dict(json.loads(call.request.body or b""))


def test_a_notification_is_sent_with_send_mail_as_graph_json(graph: responses.RequestsMock) -> None:
    graph.add(responses.POST, SEND_MAIL, status=202)

    sender().send(message())

    (call,) = graph.calls
    assert call.request.headers["Authorization"] == "Bearer app-token-1"
    assert call.request.headers["Content-Type"] == "application/json"
    assert body_of(call) == {
        "message": {
            "subject": "Harassment report HR-2026-7K3M9Q2X",
            "importance": "normal",
            "body": {"contentType": "HTML", "content": "<p>A report was filed.</p>"},
            "toRecipients": [
                {"emailAddress": {"address": "sara.davis@contoso.com"}},
                {"emailAddress": {"address": "pattif@contoso.com"}},
            ],
            "internetMessageId": "<report-R-1.sara@contoso.com>",
            "singleValueExtendedProperties": [
                {"id": NOTIFICATION_ID_PROPERTY, "value": "<report-R-1.sara@contoso.com>"}
            ],
        },
        "saveToSentItems": True,
    }


def test_an_urgent_notification_has_high_importance(graph: responses.RequestsMock) -> None:
    graph.add(responses.POST, SEND_MAIL, status=202)

    sender().send(message(urgent=True))

    assert body_of(graph.calls[0])["message"]["importance"] == "high"  # type: ignore[index]


def test_small_attachments_travel_inside_send_mail(graph: responses.RequestsMock) -> None:
    graph.add(responses.POST, SEND_MAIL, status=202)
    original = b"From: eloise@evil.example\r\n\r\n\x00\xff"

    sender().send(message(Attachment("reported.eml", "message/rfc822", original)))

    (call,) = graph.calls
    assert body_of(call)["message"]["attachments"] == [  # type: ignore[index]
        {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": "reported.eml",
            "contentType": "message/rfc822",
            "contentBytes": base64.b64encode(original).decode(),
        }
    ]


def test_refused_recipients_are_a_permanent_failure(graph: responses.RequestsMock) -> None:
    graph.add(responses.POST, SEND_MAIL, status=400, json=fixture("error_invalid_recipients.json"))

    with pytest.raises(DeliveryFailed) as raised:
        sender().send(message())

    assert raised.value.permanent
    assert "ErrorInvalidRecipients" in raised.value.detail
    assert "nobody@" not in raised.value.detail


def test_throttling_beyond_the_allowed_wait_is_retried_later_as_graph_advises(
    graph: responses.RequestsMock,
) -> None:
    graph.add(
        responses.POST, SEND_MAIL, status=429, json=fixture("error_throttled.json"), headers={"Retry-After": "120"}
    )

    with pytest.raises(DeliveryFailed) as raised:
        sender().send(message())

    assert not raised.value.permanent
    assert raised.value.retry_after == 120


def test_a_server_error_is_not_retried_here_because_the_mail_may_have_gone(graph: responses.RequestsMock) -> None:
    graph.add(responses.POST, SEND_MAIL, status=503, json=fixture("error_service_unavailable.json"))

    with pytest.raises(DeliveryFailed) as raised:
        sender().send(message())

    assert not raised.value.permanent
    assert len(graph.calls) == 1


def test_a_connection_lost_mid_send_is_not_retried_here(graph: responses.RequestsMock) -> None:
    graph.add(responses.POST, SEND_MAIL, body=requests.ConnectionError("connection reset by peer"))

    with pytest.raises(DeliveryFailed) as raised:
        sender().send(message())

    assert not raised.value.permanent
    assert len(graph.calls) == 1


def test_a_token_refused_twice_is_retried_later_not_dropped(graph: responses.RequestsMock) -> None:
    graph.add(responses.POST, SEND_MAIL, status=401, json=fixture("error_token_expired.json"))

    with pytest.raises(DeliveryFailed) as raised:
        sender().send(message())

    assert not raised.value.permanent
    assert len(graph.calls) == 2


def test_a_missing_permission_is_retried_after_the_admin_had_time_to_grant_it(graph: responses.RequestsMock) -> None:
    """A large copy needs Mail.ReadWrite for its draft; without it the security team must still be
    told once the permission is granted, not find the notification given up."""
    graph.add(responses.POST, DRAFTS, status=403, json=fixture("error_access_denied.json"))

    with pytest.raises(DeliveryFailed) as raised:
        sender().send(message(Attachment("reported.eml", "message/rfc822", b"x" * (4 * 1024 * 1024))))

    assert not raised.value.permanent
    assert raised.value.retry_after == CONFIG_RETRY_AFTER
    assert "Mail.ReadWrite" in raised.value.detail


def test_a_large_attachment_goes_through_a_draft_and_an_upload_session(graph: responses.RequestsMock) -> None:
    data = bytes(range(256)) * (5 * 1024 * 4)  # 5 MiB
    graph.add(responses.POST, DRAFTS, status=201, json=fixture("draft_created.json"))
    graph.add(
        responses.POST,
        f"{DRAFTS}/{DRAFT_ID}/attachments/createUploadSession",
        status=201,
        json=fixture("upload_session.json"),
    )
    graph.add(
        responses.PUT,
        UPLOAD_URL,
        status=200,
        json={"ExpirationDateTime": "2026-11-25T09:15:30Z", "nextExpectedRanges": [str(UPLOAD_CHUNK)]},
    )
    graph.add(responses.PUT, UPLOAD_URL, status=201, headers={"Location": "https://outlook.office.com/x"})
    graph.add(responses.POST, f"{DRAFTS}/{DRAFT_ID}/send", status=202)

    sender().send(message(Attachment("reported.eml", "message/rfc822", data)))

    methods = [(c.request.method, (c.request.url or "").split("?")[0]) for c in graph.calls]
    assert methods == [
        ("POST", DRAFTS),
        ("POST", f"{DRAFTS}/{DRAFT_ID}/attachments/createUploadSession"),
        ("PUT", UPLOAD_URL.split("?")[0]),
        ("PUT", UPLOAD_URL.split("?")[0]),
        ("POST", f"{DRAFTS}/{DRAFT_ID}/send"),
    ]
    draft = body_of(graph.calls[0])
    assert "attachments" not in draft
    assert draft["internetMessageId"] == "<report-R-1.sara@contoso.com>"
    assert body_of(graph.calls[1]) == {
        "AttachmentItem": {
            "attachmentType": "file",
            "name": "reported.eml",
            "size": len(data),
            "contentType": "message/rfc822",
        }
    }
    puts = [c for c in graph.calls if c.request.method == "PUT"]
    assert [p.request.headers["Content-Range"] for p in puts] == [
        f"bytes 0-{UPLOAD_CHUNK - 1}/{len(data)}",
        f"bytes {UPLOAD_CHUNK}-{len(data) - 1}/{len(data)}",
    ]
    assert all(p.request.headers["Content-Type"] == "application/octet-stream" for p in puts)
    assert all("Authorization" not in p.request.headers for p in puts)
    assert b"".join(p.request.body for p in puts) == data  # type: ignore[misc]


def test_a_draft_whose_upload_was_refused_is_deleted(graph: responses.RequestsMock) -> None:
    graph.add(responses.POST, DRAFTS, status=201, json=fixture("draft_created.json"))
    graph.add(
        responses.POST,
        f"{DRAFTS}/{DRAFT_ID}/attachments/createUploadSession",
        status=400,
        json={"error": {"code": "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize", "message": "too big"}},
    )
    graph.add(responses.DELETE, f"{DRAFTS}/{DRAFT_ID}", status=204)

    with pytest.raises(DeliveryFailed) as raised:
        sender().send(message(Attachment("huge.bin", "application/octet-stream", b"\0" * (4 * 1024 * 1024))))

    assert raised.value.permanent
    assert raised.value.too_large
    assert graph.calls[-1].request.method == "DELETE"


TOO_LARGE = {"error": {"code": "RequestEntityTooLarge", "message": "The request is larger than 4 MB."}}
UPLOAD_TOO_SMALL = {
    "error": {
        "code": "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
        "message": "Attachment size should not be less than 3 MB.",
    }
}


def calls_of(graph: responses.RequestsMock) -> list[tuple[str, str]]:
    return [(c.request.method or "", (c.request.url or "").split("?")[0].removeprefix(GRAPH)) for c in graph.calls]


def test_send_mail_refused_as_too_large_goes_through_a_draft(graph: responses.RequestsMock) -> None:
    # Graph's "4 MB" may count smaller than the JSON size this sender allows itself.
    graph.add(responses.POST, SEND_MAIL, status=413, json=TOO_LARGE)
    graph.add(responses.POST, DRAFTS, status=201, json=fixture("draft_created.json"))
    graph.add(responses.POST, f"{DRAFTS}/{DRAFT_ID}/attachments", status=201, json={"id": "att"})
    graph.add(responses.POST, f"{DRAFTS}/{DRAFT_ID}/send", status=202)

    sender().send(message(Attachment("reported.eml", "message/rfc822", b"x" * 2_000_000)))

    draft = f"/users/{SECURITY}/messages/{DRAFT_ID}"
    assert calls_of(graph) == [
        ("POST", f"/users/{SECURITY}/sendMail"),
        ("POST", f"/users/{SECURITY}/messages"),
        ("POST", f"{draft}/attachments"),
        ("POST", f"{draft}/send"),
    ]


def test_an_attachment_too_large_for_one_request_is_uploaded_instead(graph: responses.RequestsMock) -> None:
    data = b"y" * 2_900_000  # under "3 MB", but Graph refuses the request that carries it
    graph.add(responses.POST, DRAFTS, status=201, json=fixture("draft_created.json"))
    graph.add(responses.POST, f"{DRAFTS}/{DRAFT_ID}/attachments", status=413, json=TOO_LARGE)
    graph.add(
        responses.POST,
        f"{DRAFTS}/{DRAFT_ID}/attachments/createUploadSession",
        status=201,
        json=fixture("upload_session.json"),
    )
    graph.add(responses.PUT, UPLOAD_URL, status=201, headers={"Location": "https://outlook.office.com/x"})
    graph.add(responses.POST, f"{DRAFTS}/{DRAFT_ID}/send", status=202)

    # Two attachments: the small one alone would fit sendMail, together they need a draft.
    sender().send(message(Attachment("a.eml", "message/rfc822", data), Attachment("b.eml", "message/rfc822", data)))

    puts = [c for c in graph.calls if c.request.method == "PUT"]
    assert [p.request.body for p in puts] == [data, data]
    assert calls_of(graph)[-1] == ("POST", f"/users/{SECURITY}/messages/{DRAFT_ID}/send")


def test_an_attachment_graph_deems_too_small_for_an_upload_session_is_posted(graph: responses.RequestsMock) -> None:
    data = b"z" * (3 * 1024 * 1024 - 10)  # its JSON is over 4 MiB - 64 KiB, so this sender tries a session
    graph.add(responses.POST, DRAFTS, status=201, json=fixture("draft_created.json"))
    graph.add(
        responses.POST, f"{DRAFTS}/{DRAFT_ID}/attachments/createUploadSession", status=400, json=UPLOAD_TOO_SMALL
    )
    graph.add(responses.POST, f"{DRAFTS}/{DRAFT_ID}/attachments", status=201, json={"id": "att"})
    graph.add(responses.POST, f"{DRAFTS}/{DRAFT_ID}/send", status=202)

    sender().send(message(Attachment("reported.eml", "message/rfc822", data)))

    posted = [c for c in graph.calls if (c.request.url or "").endswith("/attachments")]
    assert base64.b64decode(body_of(posted[0])["contentBytes"]) == data  # type: ignore[arg-type]
    assert calls_of(graph)[-1] == ("POST", f"/users/{SECURITY}/messages/{DRAFT_ID}/send")


def test_a_file_refused_both_ways_for_its_size_is_a_refusal_for_size(graph: responses.RequestsMock) -> None:
    """Just under 3 MiB: its base64 overflows Graph's 4 MB request, and Graph deems it too small for an
    upload session. The worker then sends the notice without it (see the worker's tests)."""
    data = b"w" * (3 * 1024 * 1024 - 50)
    graph.add(responses.POST, DRAFTS, status=201, json=fixture("draft_created.json"))
    graph.add(
        responses.POST, f"{DRAFTS}/{DRAFT_ID}/attachments/createUploadSession", status=400, json=UPLOAD_TOO_SMALL
    )
    graph.add(responses.POST, f"{DRAFTS}/{DRAFT_ID}/attachments", status=413, json=TOO_LARGE)
    graph.add(responses.DELETE, f"{DRAFTS}/{DRAFT_ID}", status=204)

    with pytest.raises(DeliveryFailed) as raised:
        sender().send(message(Attachment("reported.eml", "message/rfc822", data)))

    assert raised.value.permanent and raised.value.too_large
    assert calls_of(graph)[-1] == ("DELETE", f"/users/{SECURITY}/messages/{DRAFT_ID}")


def test_a_message_over_the_mailboxs_send_size_is_a_refusal_for_size(graph: responses.RequestsMock) -> None:
    data = b"v" * (5 * 1024 * 1024)
    graph.add(responses.POST, DRAFTS, status=201, json=fixture("draft_created.json"))
    graph.add(
        responses.POST,
        f"{DRAFTS}/{DRAFT_ID}/attachments/createUploadSession",
        status=201,
        json=fixture("upload_session.json"),
    )
    graph.add(responses.PUT, UPLOAD_URL, status=200, json={"nextExpectedRanges": [f"{3 * 1024 * 1024}-"]})
    graph.add(responses.PUT, UPLOAD_URL, status=201)
    graph.add(
        responses.POST,
        f"{DRAFTS}/{DRAFT_ID}/send",
        status=400,
        json={"error": {"code": "ErrorMessageSizeExceeded", "message": "The message exceeds the maximum size."}},
    )
    graph.add(responses.DELETE, f"{DRAFTS}/{DRAFT_ID}", status=204)

    with pytest.raises(DeliveryFailed) as raised:
        sender().send(message(Attachment("reported.eml", "message/rfc822", data)))

    assert raised.value.permanent and raised.value.too_large


def test_a_refusal_not_about_size_is_not_one_for_size(graph: responses.RequestsMock) -> None:
    graph.add(
        responses.POST,
        SEND_MAIL,
        status=400,
        json={"error": {"code": "ErrorInvalidRecipients", "message": "At least one recipient is not valid."}},
    )

    with pytest.raises(DeliveryFailed) as raised:
        sender().send(message())

    assert raised.value.permanent and not raised.value.too_large


def test_a_range_whose_answer_was_lost_is_retried_later_in_a_new_draft(graph: responses.RequestsMock) -> None:
    # The first PUT was stored but its answer lost; sent again, Graph says it already has it.
    data = b"\1" * (4 * 1024 * 1024)
    graph.add(responses.POST, DRAFTS, status=201, json=fixture("draft_created.json"))
    graph.add(
        responses.POST,
        f"{DRAFTS}/{DRAFT_ID}/attachments/createUploadSession",
        status=201,
        json=fixture("upload_session.json"),
    )
    graph.add(responses.PUT, UPLOAD_URL, body=requests.ConnectionError("reset after the server stored it"))
    graph.add(
        responses.PUT,
        UPLOAD_URL,
        status=416,
        json={"error": {"code": "invalidRange", "message": "Uploaded fragment overlaps with existing data."}},
    )
    graph.add(responses.DELETE, f"{DRAFTS}/{DRAFT_ID}", status=204)

    with pytest.raises(DeliveryFailed) as raised:
        sender().send(message(Attachment("reported.eml", "message/rfc822", data)))

    assert not raised.value.permanent  # the security team still gets it, on the next attempt
    assert calls_of(graph)[-1] == ("DELETE", f"/users/{SECURITY}/messages/{DRAFT_ID}")


def test_already_sent_looks_for_the_notification_id_in_sent_items(graph: responses.RequestsMock) -> None:
    graph.add(
        responses.GET, f"{GRAPH}/users/{SECURITY}/mailFolders/sentitems/messages", json=fixture("sent_items_found.json")
    )

    assert sender().already_sent(message())

    query = unquote((graph.calls[0].request.url or "").split("?", 1)[1])
    assert query == (
        f"$filter=singleValueExtendedProperties/Any(ep: ep/id eq '{NOTIFICATION_ID_PROPERTY}' "
        "and ep/value eq '<report-R-1.sara@contoso.com>')&$select=id,internetMessageId&$top=1"
    )


def test_not_in_sent_items_means_not_sent(graph: responses.RequestsMock) -> None:
    graph.add(
        responses.GET, f"{GRAPH}/users/{SECURITY}/mailFolders/sentitems/messages", json=fixture("sent_items_empty.json")
    )

    assert not sender().already_sent(message())


def test_drafts_an_uncertain_attempt_left_are_deleted_when_it_was_not_sent(graph: responses.RequestsMock) -> None:
    graph.add(
        responses.GET, f"{GRAPH}/users/{SECURITY}/mailFolders/sentitems/messages", json=fixture("sent_items_empty.json")
    )
    graph.add(
        responses.GET,
        f"{GRAPH}/users/{SECURITY}/mailFolders/drafts/messages",
        json={"value": [{"id": "AAMkDRAFT1="}, {"id": "AAMkDRAFT2="}]},
    )
    for draft in ("AAMkDRAFT1=", "AAMkDRAFT2="):
        graph.add(responses.DELETE, f"{DRAFTS}/{draft}", status=204)

    assert not sender().already_sent(message())

    listed = unquote((graph.calls[1].request.url or "").split("?", 1)[1])
    assert listed.startswith(f"$filter=singleValueExtendedProperties/Any(ep: ep/id eq '{NOTIFICATION_ID_PROPERTY}' ")
    assert [(c.request.method, unquote(c.request.url or "")) for c in graph.calls[2:]] == [
        ("DELETE", f"{DRAFTS}/AAMkDRAFT1="), ("DELETE", f"{DRAFTS}/AAMkDRAFT2="),
    ]


def test_drafts_that_cannot_be_listed_do_not_change_the_answer(graph: responses.RequestsMock) -> None:
    graph.add(
        responses.GET, f"{GRAPH}/users/{SECURITY}/mailFolders/sentitems/messages", json=fixture("sent_items_empty.json")
    )
    graph.add(
        responses.GET, f"{GRAPH}/users/{SECURITY}/mailFolders/drafts/messages", status=403,
        json=fixture("error_access_denied.json"),
    )

    assert not sender().already_sent(message())


def test_already_sent_does_not_guess_when_graph_cannot_be_asked(graph: responses.RequestsMock) -> None:
    graph.add(
        responses.GET,
        f"{GRAPH}/users/{SECURITY}/mailFolders/sentitems/messages",
        status=403,
        json=fixture("error_access_denied.json"),
    )

    with pytest.raises(DeliveryFailed) as raised:
        sender().already_sent(message())

    assert not raised.value.permanent
