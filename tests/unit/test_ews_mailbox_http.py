"""EwsMailbox's handling of HTTP and SOAP shapes the EWS double does not produce, via ``responses``."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import requests
import responses

from addin_service.errors import MailboxUnavailable, MessageNotFound
from addin_service.mail.ews import EwsMailbox
from addin_service.mail.ports import ItemRef
from tests.fakes.ews import FAST_RETRY, REPORTER, MemorySink, ews_settings

URL = "https://mail.contoso.com/EWS/Exchange.asmx"
ITEM_ID = "AAMkAGI2VGhpcyBpcyBhbiBpdGVtIGlk"
MIME = b"Subject: hello\r\n\r\nbody"
S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
XML = {"content_type": "text/xml; charset=utf-8"}


def get_item_answer(response_class: str, code: str, content: str = "", message_xml: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{S}"><s:Body>'
        f'<m:GetItemResponse xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages>'
        f'<m:GetItemResponseMessage ResponseClass="{response_class}"><m:ResponseCode>{code}</m:ResponseCode>'
        f"{message_xml}<m:Items>{content}</m:Items></m:GetItemResponseMessage>"
        "</m:ResponseMessages></m:GetItemResponse></s:Body></s:Envelope>"
    )


SUCCESS = get_item_answer(
    "Success",
    "NoError",
    f'<t:Message><t:MimeContent CharacterSet="UTF-8">{base64.b64encode(MIME).decode()}</t:MimeContent>'
    f'<t:ItemId Id="{ITEM_ID}" ChangeKey="CQAAAA=="/></t:Message>',
)


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def mailbox() -> EwsMailbox:
    return EwsMailbox(ews_settings(URL), retry=FAST_RETRY, sleep=lambda seconds: None)


def capture(mailbox: EwsMailbox) -> MemorySink:
    sink = MemorySink()
    mailbox.capture(ItemRef(ITEM_ID, REPORTER, REPORTER), sink)
    return sink


def test_a_redirect_is_not_followed(http: responses.RequestsMock, mailbox: EwsMailbox) -> None:
    http.post(URL, status=302, headers={"Location": "https://evil.example/EWS/Exchange.asmx"})
    with pytest.raises(MailboxUnavailable, match="ADDIN_EWS_URL"):
        capture(mailbox)
    assert len(http.calls) == 1


def test_a_wrong_endpoint_is_unavailable_for_the_admin_and_not_retried(
    http: responses.RequestsMock, mailbox: EwsMailbox
) -> None:
    http.post(URL, status=404, body="<html>not found</html>", content_type="text/html")
    with pytest.raises(MailboxUnavailable, match="ADDIN_EWS_URL"):
        capture(mailbox)
    assert len(http.calls) == 1


def test_throttling_inside_the_response_message_is_retried(http: responses.RequestsMock, mailbox: EwsMailbox) -> None:
    busy = get_item_answer(
        "Error",
        "ErrorServerBusy",
        message_xml='<m:MessageXml><t:Value Name="BackOffMilliseconds">5</t:Value></m:MessageXml>',
    )
    http.post(URL, body=busy, **XML)
    http.post(URL, body=SUCCESS, **XML)
    assert capture(mailbox).data == MIME
    assert len(http.calls) == 2


def test_a_429_with_retry_after_is_unavailable_with_that_retry_after(
    http: responses.RequestsMock, mailbox: EwsMailbox
) -> None:
    http.post(URL, status=429, headers={"Retry-After": "120"})
    with pytest.raises(MailboxUnavailable) as raised:
        capture(mailbox)
    assert raised.value.retry_after == 120


def test_garbage_instead_of_xml_is_retried_then_unavailable(http: responses.RequestsMock, mailbox: EwsMailbox) -> None:
    http.post(URL, body="<html><body>Proxy error</body>", content_type="text/xml")
    with pytest.raises(MailboxUnavailable) as raised:
        capture(mailbox)
    assert len(http.calls) == FAST_RETRY.max_attempts
    assert "could not be read" in str(raised.value)  # not "busy": it is not throttling


def test_a_connection_error_is_retried(http: responses.RequestsMock, mailbox: EwsMailbox) -> None:
    http.post(URL, body=requests.ConnectionError("reset"))
    http.post(URL, body=SUCCESS, **XML)
    assert capture(mailbox).data == MIME


def test_a_message_exchange_cannot_export_is_unavailable_without_retry(
    http: responses.RequestsMock, mailbox: EwsMailbox
) -> None:
    http.post(URL, body=get_item_answer("Error", "ErrorMimeContentConversionFailed"), **XML)
    with pytest.raises(MailboxUnavailable, match="could not export"):
        capture(mailbox)
    assert len(http.calls) == 1


def test_a_success_without_mime_content_is_unavailable(http: responses.RequestsMock, mailbox: EwsMailbox) -> None:
    http.post(
        URL, body=get_item_answer("Success", "NoError", f'<t:Message><t:ItemId Id="{ITEM_ID}"/></t:Message>'), **XML
    )
    with pytest.raises(MailboxUnavailable, match="without its MIME content"):
        capture(mailbox)


def test_a_schema_version_exchange_refuses_asks_the_admin_to_pin_one(
    http: responses.RequestsMock, mailbox: EwsMailbox
) -> None:
    http.post(URL, body=get_item_answer("Error", "ErrorInvalidServerVersion"), **XML)
    with pytest.raises(MailboxUnavailable, match="ADDIN_EWS_VERSION"):
        capture(mailbox)


def test_a_not_found_item_is_not_found(http: responses.RequestsMock, mailbox: EwsMailbox) -> None:
    http.post(URL, body=get_item_answer("Error", "ErrorItemNotFound"), **XML)
    with pytest.raises(MessageNotFound):
        capture(mailbox)


def test_an_empty_mime_content_is_unavailable(http: responses.RequestsMock, mailbox: EwsMailbox) -> None:
    empty = get_item_answer(
        "Success", "NoError", f'<t:Message><t:MimeContent CharacterSet="UTF-8"/><t:ItemId Id="{ITEM_ID}"/></t:Message>'
    )
    http.post(URL, body=empty, **XML)
    with pytest.raises(MailboxUnavailable, match="without its MIME content"):
        capture(mailbox)


SUCCESS_MESSAGE = SUCCESS.split("<m:ResponseMessages>")[1].split("</m:ResponseMessages>")[0]
MESSAGE_WITH_MIME = (
    f'<t:Message><t:MimeContent CharacterSet="UTF-8">{base64.b64encode(MIME).decode()}</t:MimeContent>'
    f'<t:ItemId Id="{ITEM_ID}" ChangeKey="CQAAAA=="/></t:Message>'
)


@pytest.mark.parametrize(
    "first_answer",
    [
        pytest.param(
            get_item_answer(
                "Warning",
                "ErrorServerBusy",
                MESSAGE_WITH_MIME,
                message_xml='<m:MessageXml><t:Value Name="BackOffMilliseconds">5</t:Value></m:MessageXml>',
            ),
            id="throttled-after-the-mime",
        ),
        pytest.param(SUCCESS.replace(SUCCESS_MESSAGE, SUCCESS_MESSAGE * 2), id="two-response-messages"),
    ],
)
def test_an_answer_that_streamed_mime_and_then_failed_is_not_retried_into_the_same_sink(
    http: responses.RequestsMock, mailbox: EwsMailbox, first_answer: str
) -> None:
    http.post(URL, body=first_answer, **XML)
    http.post(URL, body=SUCCESS, **XML)
    sink = MemorySink()
    with pytest.raises(MailboxUnavailable, match="may be incomplete"):
        mailbox.capture(ItemRef(ITEM_ID, REPORTER, REPORTER), sink)
    assert len(http.calls) == 1
    assert sink.data == MIME  # what the one answer streamed; the package holding it is thrown away
