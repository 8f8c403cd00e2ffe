"""The streaming EWS response reader (addin_service.mail.ews_response)."""

from __future__ import annotations

import base64

import pytest

from addin_service.errors import MessageTooLarge
from addin_service.mail.ews_response import EwsResponse, EwsResponseReader, MalformedResponse

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"

MIME = b"Received: from a\r\n by b\r\nSubject: hi\r\n\r\n\x00\xff body\n"
VERSION_HEADER = (
    f'<s:Header><h:ServerVersionInfo xmlns:h="{T}" MajorVersion="15" MinorVersion="2" '
    'MajorBuildNumber="1118" MinorBuildNumber="7" Version="Exchange2016"/></s:Header>'
)


def get_item_response(item: str, *, header: str = VERSION_HEADER) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{S}">{header}<s:Body>'
        f'<m:GetItemResponse xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages>'
        '<m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
        f"<m:Items>{item}</m:Items></m:GetItemResponseMessage></m:ResponseMessages></m:GetItemResponse>"
        "</s:Body></s:Envelope>"
    ).encode()


MESSAGE = (
    '<t:Message><t:MimeContent CharacterSet="UTF-8">'
    + base64.b64encode(MIME).decode()
    + '</t:MimeContent><t:ItemId Id="AAMk+/Q=" ChangeKey="CQAA+/=="/>'
    "<t:Subject>Re: &lt;you&gt; &amp; me</t:Subject>"
    "<t:DateTimeReceived>2026-01-12T08:14:05Z</t:DateTimeReceived><t:Size>1234</t:Size>"
    "<t:InternetMessageHeaders>"
    '<t:InternetMessageHeader HeaderName="Received">from a&#13;\n by b</t:InternetMessageHeader>'
    '<t:InternetMessageHeader HeaderName="X-Odd">a&#xD;b\tc &lt;d&gt;</t:InternetMessageHeader>'
    '<t:InternetMessageHeader HeaderName="X-Empty"></t:InternetMessageHeader>'
    "</t:InternetMessageHeaders>"
    "<t:Sender><t:Mailbox><t:Name>S</t:Name><t:EmailAddress>sender@example.net</t:EmailAddress></t:Mailbox></t:Sender>"
    "<t:From><t:Mailbox><t:EmailAddress>from@example.net</t:EmailAddress></t:Mailbox></t:From>"
    "<t:InternetMessageId>&lt;id@example.net&gt;</t:InternetMessageId>"
    "</t:Message>"
)


def read(body: bytes, operation: str = "GetItem", chunk: int = 65536) -> tuple[EwsResponse, bytes]:
    out: list[bytes] = []
    reader = EwsResponseReader(operation, out.append)
    for start in range(0, len(body), chunk):
        reader.feed(body[start : start + chunk])
    return reader.close(), b"".join(out)


def test_mime_content_is_decoded_into_the_writer_exactly() -> None:
    _, mime = read(get_item_response(MESSAGE))
    assert mime == MIME


def test_feeding_one_byte_at_a_time_gives_the_same_result() -> None:
    whole = read(get_item_response(MESSAGE))
    assert read(get_item_response(MESSAGE), chunk=1) == whole


def test_headers_keep_carriage_returns_folding_tabs_and_escaped_characters() -> None:
    response, _ = read(get_item_response(MESSAGE))
    assert response.messages[0].items[0].headers == [
        ("Received", "from a\r\n by b"),
        ("X-Odd", "a\rb\tc <d>"),
        ("X-Empty", ""),
    ]


def test_item_facts_are_read_as_returned() -> None:
    response, _ = read(get_item_response(MESSAGE))
    item = response.messages[0].items[0]
    assert (item.item_id, item.change_key) == ("AAMk+/Q=", "CQAA+/==")
    assert item.subject == "Re: <you> & me"
    assert (item.received_at, item.size) == ("2026-01-12T08:14:05Z", "1234")
    assert (item.sender, item.from_address) == ("sender@example.net", "from@example.net")
    assert item.internet_message_id == "<id@example.net>"
    assert item.has_mime


def test_server_version_comes_from_the_soap_header() -> None:
    response, _ = read(get_item_response(MESSAGE))
    assert response.server_version == "Exchange2016 (15.2.1118.7)"


def test_namespace_prefixes_other_than_the_usual_ones_are_understood() -> None:
    body = get_item_response(MESSAGE).replace(b"t:", b"types:").replace(b"xmlns:t=", b"xmlns:types=")
    response, mime = read(body)
    assert mime == MIME
    assert response.messages[0].items[0].subject == "Re: <you> & me"


def test_a_server_busy_fault_carries_its_back_off() -> None:
    body = (
        f'<s:Envelope xmlns:s="{S}"><s:Body><s:Fault>'
        f'<faultcode xmlns:a="{T}">a:ErrorServerBusy</faultcode>'
        '<faultstring xml:lang="en-US">The server cannot service this request right now.</faultstring>'
        f'<detail><e:ResponseCode xmlns:e="{E}">ErrorServerBusy</e:ResponseCode>'
        f'<e:Message xmlns:e="{E}">The server cannot service this request right now.</e:Message>'
        f'<t:MessageXml xmlns:t="{T}"><t:Value Name="Policy">EWS</t:Value>'
        '<t:Value Name="BackOffMilliseconds">2500</t:Value></t:MessageXml>'
        "</detail></s:Fault></s:Body></s:Envelope>"
    ).encode()
    response, _ = read(body)
    assert response.fault is not None
    assert (response.fault.code, response.fault.back_off_ms) == ("ErrorServerBusy", 2500)


def test_a_fault_without_detail_is_named_by_its_faultcode() -> None:
    body = (
        f'<s:Envelope xmlns:s="{S}"><s:Body><s:Fault>'
        f'<faultcode xmlns:a="{T}">a:ErrorNonExistentMailbox</faultcode>'
        "<faultstring>No mailbox.</faultstring></s:Fault></s:Body></s:Envelope>"
    ).encode()
    response, _ = read(body)
    assert response.fault is not None and response.fault.code == "ErrorNonExistentMailbox"


def test_an_error_response_message_keeps_code_text_and_back_off() -> None:
    body = (
        f'<s:Envelope xmlns:s="{S}"><s:Body>'
        f'<m:GetItemResponse xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages>'
        '<m:GetItemResponseMessage ResponseClass="Error"><m:MessageText>Busy.</m:MessageText>'
        "<m:ResponseCode>ErrorServerBusy</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>"
        '<m:MessageXml><t:Value Name="BackOffMilliseconds">800</t:Value></m:MessageXml><m:Items/>'
        "</m:GetItemResponseMessage></m:ResponseMessages></m:GetItemResponse></s:Body></s:Envelope>"
    ).encode()
    response, _ = read(body)
    message = response.messages[0]
    assert (message.response_class, message.code, message.text, message.back_off_ms) == (
        "Error",
        "ErrorServerBusy",
        "Busy.",
        800,
    )
    assert message.items == []


def test_convert_id_answers_name_the_mailbox() -> None:
    body = (
        f'<s:Envelope xmlns:s="{S}"><s:Body>'
        f'<m:ConvertIdResponse xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages>'
        '<m:ConvertIdResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
        '<m:AlternateId xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="t:AlternateIdType" '
        'Format="EwsId" Id="AAMk" Mailbox="hr-cases@contoso.com"/>'
        "</m:ConvertIdResponseMessage></m:ResponseMessages></m:ConvertIdResponse></s:Body></s:Envelope>"
    ).encode()
    response, _ = read(body, "ConvertId")
    assert [a.mailbox for a in response.messages[0].alternate_ids] == ["hr-cases@contoso.com"]


def test_a_document_type_declaration_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><lolz>&lol2;</lolz>'
    )
    with pytest.raises(MalformedResponse):
        read(bomb)


def test_an_undeclared_entity_is_refused() -> None:
    with pytest.raises(MalformedResponse):
        read(get_item_response(MESSAGE.replace("&amp;", "&secret;")))


def test_a_truncated_response_is_malformed() -> None:
    with pytest.raises(MalformedResponse):
        read(get_item_response(MESSAGE)[:-40])


def test_invalid_base64_in_mime_content_is_malformed() -> None:
    with pytest.raises(MalformedResponse):
        read(get_item_response(MESSAGE.replace('CharacterSet="UTF-8">', 'CharacterSet="UTF-8">*')))


def test_two_mime_contents_are_malformed() -> None:
    with pytest.raises(MalformedResponse):
        read(get_item_response(MESSAGE + MESSAGE))


def test_an_error_from_the_mime_writer_passes_through_untouched() -> None:
    def refuse(data: bytes) -> None:
        raise MessageTooLarge(10)

    reader = EwsResponseReader("GetItem", refuse)
    with pytest.raises(MessageTooLarge):
        reader.feed(get_item_response(MESSAGE))


def test_mime_content_is_skipped_when_nobody_wants_it() -> None:
    reader = EwsResponseReader("GetItem")
    reader.feed(get_item_response(MESSAGE))
    assert reader.close().messages[0].items[0].has_mime
    assert reader.mime_bytes == 0
