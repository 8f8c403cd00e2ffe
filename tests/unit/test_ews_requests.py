"""The SOAP requests the EWS adapter sends (addin_service.mail.ews_requests)."""

from __future__ import annotations

import pytest
from lxml import etree

from addin_service.mail import ews_requests
from addin_service.mail.ews_connection import EwsConnection
from tests.fakes.ews import ews_settings

S = "{http://schemas.xmlsoap.org/soap/envelope/}"
M = "{http://schemas.microsoft.com/exchange/services/2006/messages}"
T = "{http://schemas.microsoft.com/exchange/services/2006/types}"
ITEM_ID = "AAMkAGI2+/Tk0ZmVkLTg2ZjctNGE1NS04NDcwLWRmY2JjZDVlYjUzNwBGAAAAAAC7PbYWuYz3Qa/A6Nz+Q6n8BwA="


def connection() -> EwsConnection:
    return EwsConnection(ews_settings("https://mail.contoso.com/EWS/Exchange.asmx", ews_version="Exchange2016"))


def parse(envelope: bytes) -> etree._Element:
    return etree.fromstring(envelope, parser=etree.XMLParser(resolve_entities=False, no_network=True))


def get_item() -> etree._Element:
    c = connection()
    return parse(ews_requests.get_item(c.protocol, c.version(), item_id=ITEM_ID, impersonate="alex@contoso.com"))


def test_get_item_impersonates_the_reporter() -> None:
    sid = get_item().find(f"{S}Header/{T}ExchangeImpersonation/{T}ConnectingSID")
    assert sid is not None and sid.findtext(f"{T}PrimarySmtpAddress") == "alex@contoso.com"


def test_get_item_names_the_pinned_server_version() -> None:
    version = get_item().find(f"{S}Header/{T}RequestServerVersion")
    assert version is not None and version.get("Version") == "Exchange2016"


def test_get_item_sends_the_item_id_unchanged() -> None:
    ids = get_item().findall(f"{S}Body/{M}GetItem/{M}ItemIds/{T}ItemId")
    assert [element.get("Id") for element in ids] == [ITEM_ID]


def test_get_item_asks_for_mime_headers_and_capture_facts_in_one_call() -> None:
    shape = get_item().find(f"{S}Body/{M}GetItem/{M}ItemShape")
    assert shape is not None and shape.findtext(f"{T}BaseShape") == "IdOnly"
    uris = {uri.get("FieldURI") for uri in shape.iter(f"{T}FieldURI")}
    assert uris == {
        "item:MimeContent",
        "item:InternetMessageHeaders",
        "item:Subject",
        "item:DateTimeReceived",
        "item:Size",
        "message:Sender",
        "message:From",
        "message:InternetMessageId",
    }


def test_convert_id_asks_which_mailbox_holds_the_item_as_the_reporter() -> None:
    c = connection()
    envelope = parse(
        ews_requests.convert_id(
            c.protocol,
            c.version(),
            item_id=ITEM_ID,
            mailbox="hr-cases@contoso.com",
            impersonate="alex@contoso.com",
        )
    )
    convert = envelope.find(f"{S}Body/{M}ConvertId")
    assert convert is not None and convert.get("DestinationFormat") == "EwsId"
    source = convert.find(f"{M}SourceIds/{T}AlternateId")
    assert source is not None
    assert (source.get("Format"), source.get("Id"), source.get("Mailbox")) == (
        "EwsId",
        ITEM_ID,
        "hr-cases@contoso.com",
    )
    sid = envelope.find(f"{S}Header/{T}ExchangeImpersonation/{T}ConnectingSID/{T}PrimarySmtpAddress")
    assert sid is not None and sid.text == "alex@contoso.com"


def test_the_readiness_probe_impersonates_nobody() -> None:
    c = connection()
    envelope = parse(ews_requests.server_time_zones(c.protocol, c.version()))
    assert envelope.find(f"{S}Header/{T}ExchangeImpersonation") is None
    assert envelope.find(f"{S}Body/{M}GetServerTimeZones") is not None


@pytest.mark.parametrize("version", ["Exchange2010_SP2", "Exchange2016", "15.2.1118.7"])
@pytest.mark.parametrize(
    ("item_id", "reporter"),
    [
        (ITEM_ID, "alex@contoso.com"),
        ("AAMkAGI2VGhpcyBpcyBhbiBpdGVtIGlk", "o'brien+hr@contoso.com"),
        (ITEM_ID, "Zoë.Müller@contoso.com"),
        (ITEM_ID, "a&b<c>@contoso.com"),
        ("not an <id> & more", "alex@contoso.com"),
        (ITEM_ID, None),  # oauth-obo: the reporter's own token, no impersonation
        ("not an <id> & more", None),
    ],
)
def test_get_item_is_byte_for_byte_what_exchangelib_builds(version: str, item_id: str, reporter: str | None) -> None:
    # The envelope is built by exchangelib once per version and reused; every call must still
    # send exactly the bytes exchangelib would have built for it.
    c = EwsConnection(ews_settings("https://mail.contoso.com/EWS/Exchange.asmx", ews_version=version))
    v = c.version()
    for _ in range(2):  # the first call builds the template, the second reuses it
        envelope = ews_requests.get_item(c.protocol, v, item_id=item_id, impersonate=reporter)
        assert envelope == ews_requests._build_get_item(c.protocol, v, item_id, reporter)


def test_get_item_as_the_token_holder_impersonates_nobody() -> None:
    c = connection()
    envelope = parse(ews_requests.get_item(c.protocol, c.version(), item_id=ITEM_ID, impersonate=None))
    assert envelope.find(f"{S}Header/{T}ExchangeImpersonation") is None
    [item_id] = envelope.findall(f"{S}Body/{M}GetItem/{M}ItemIds/{T}ItemId")
    assert item_id.get("Id") == ITEM_ID
