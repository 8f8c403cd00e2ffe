"""The EWS server double itself: it must behave like Exchange for the parts the service uses."""

from __future__ import annotations

import requests
from exchangelib import BASIC, IMPERSONATION, Account, Configuration, Credentials, Version
from exchangelib.fields import FieldPath
from exchangelib.items import Message
from exchangelib.properties import ItemId
from exchangelib.services import GetItem
from exchangelib.version import EXCHANGE_2016
from lxml import etree

from addin_service.demo.ews_faults import HttpError, ServerBusy
from addin_service.demo.ews_seed import DEMO_SUPERVISOR, DEMO_USER, sample_messages, seed_demo
from addin_service.demo.ews_server import EwsServer
from tests.fakes.ews import COLLEAGUE, REPORTER, SERVICE_PASSWORD, SERVICE_USER, ews_server

__all__ = ["ews_server"]  # fixture used below

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
FIELDS = ["item:MimeContent", "item:ItemId", "item:Subject", "item:InternetMessageHeaders", "message:From"]


def envelope(body: str, impersonate: str | None = None, identity: str = "PrimarySmtpAddress") -> bytes:
    header = '<t:RequestServerVersion Version="Exchange2016"/>'
    if impersonate is not None:
        header += (
            f"<t:ExchangeImpersonation><t:ConnectingSID><t:{identity}>{impersonate}</t:{identity}>"
            "</t:ConnectingSID></t:ExchangeImpersonation>"
        )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{S}" xmlns:m="{M}" xmlns:t="{T}">'
        f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def get_item_body(item_id: str, fields: list[str] = FIELDS) -> str:
    uris = "".join(f'<t:FieldURI FieldURI="{uri}"/>' for uri in reversed(fields))
    return (
        "<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>"
        f"<t:AdditionalProperties>{uris}</t:AdditionalProperties></m:ItemShape>"
        f'<m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds></m:GetItem>'
    )


def post(
    server: EwsServer, body: bytes, auth: tuple[str, str] | None = (SERVICE_USER, SERVICE_PASSWORD), **kw: object
) -> requests.Response:
    return requests.post(server.url, data=body, auth=auth, timeout=5, **kw)  # type: ignore[arg-type]


def xml(response: requests.Response) -> etree._Element:
    return etree.fromstring(response.content)


def test_every_answer_reports_the_server_version(ews_server: EwsServer) -> None:
    item_id = ews_server.add_message(REPORTER, b"Subject: x\r\n\r\n")
    ews_server.inject(ServerBusy(), times=1)
    answers = [post(ews_server, envelope(get_item_body(item_id), REPORTER)) for _ in range(2)]
    assert [a.status_code for a in answers] == [500, 200]
    for answer in answers:
        info = xml(answer).find(f"{{{S}}}Header/{{{T}}}ServerVersionInfo")
        assert info is not None and (info.get("MajorVersion"), info.get("Version")) == ("15", "Exchange2016")


def test_wrong_credentials_get_a_basic_challenge(ews_server: EwsServer) -> None:
    answer = post(ews_server, envelope("<m:GetServerTimeZones/>"), auth=(SERVICE_USER, "wrong"))
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Basic")


def test_bearer_tokens_are_refused_unless_enabled_and_then_recorded() -> None:
    headers = {"Authorization": "Bearer token-1"}
    with EwsServer() as closed:
        assert post(closed, envelope("<m:GetServerTimeZones/>"), auth=None, headers=headers).status_code == 401
    with EwsServer(accept_bearer=True) as server:
        assert post(server, envelope("<m:GetServerTimeZones/>"), auth=None, headers=headers).status_code == 200
        assert server.bearer_tokens == ["token-1"]
        assert server.requests[0].headers["Authorization"] == "Bearer"


def test_get_item_returns_the_asked_properties_in_schema_order(ews_server: EwsServer) -> None:
    item_id = ews_server.add_message(REPORTER, b"From: a@example.net\r\nSubject: order\r\n\r\nbody")
    answer = post(ews_server, envelope(get_item_body(item_id), REPORTER))
    message = xml(answer).find(f".//{{{T}}}Message")
    assert message is not None
    assert [etree.QName(child).localname for child in message] == [
        "MimeContent",
        "ItemId",
        "Subject",
        "InternetMessageHeaders",
        "From",
    ]
    assert message[0].get("CharacterSet") == "UTF-8"


def test_carriage_returns_in_headers_are_sent_as_character_references(ews_server: EwsServer) -> None:
    item_id = ews_server.add_message(REPORTER, b"", headers=[("X-Odd", "a\rb\r\n c")])
    answer = post(ews_server, envelope(get_item_body(item_id), REPORTER))
    assert b'HeaderName="X-Odd">a&#13;b&#13;\n c</t:InternetMessageHeader>' in answer.content


def test_impersonation_by_principal_name_or_smtp_address_is_honoured(ews_server: EwsServer) -> None:
    item_id = ews_server.add_message(REPORTER, b"Subject: x\r\n\r\n")
    for identity in ("PrincipalName", "SmtpAddress"):
        answer = post(ews_server, envelope(get_item_body(item_id), REPORTER, identity))
        assert b'ResponseClass="Success"' in answer.content


def test_reading_another_users_mailbox_is_access_denied(ews_server: EwsServer) -> None:
    item_id = ews_server.add_message(COLLEAGUE, b"Subject: x\r\n\r\n")
    answer = post(ews_server, envelope(get_item_body(item_id), REPORTER))
    assert answer.status_code == 200 and b"<m:ResponseCode>ErrorAccessDenied</m:ResponseCode>" in answer.content


def test_a_delegate_may_read_the_owners_mailbox(ews_server: EwsServer) -> None:
    ews_server.grant(COLLEAGUE, REPORTER)
    item_id = ews_server.add_message(COLLEAGUE, b"Subject: x\r\n\r\n")
    answer = post(ews_server, envelope(get_item_body(item_id), REPORTER))
    assert b'ResponseClass="Success"' in answer.content


def test_an_account_without_the_impersonation_role_is_refused(ews_server: EwsServer) -> None:
    ews_server.add_account("clerk", "pw")
    answer = post(ews_server, envelope("<m:GetServerTimeZones/>", REPORTER), auth=("clerk", "pw"))
    assert answer.status_code == 500 and b"a:ErrorImpersonateUserDenied" in answer.content


def test_impersonating_someone_without_a_mailbox_is_refused(ews_server: EwsServer) -> None:
    answer = post(ews_server, envelope("<m:GetServerTimeZones/>", "ghost@contoso.com"))
    assert answer.status_code == 500 and b"a:ErrorNonExistentMailbox" in answer.content


def test_unknown_and_malformed_ids_are_told_apart(ews_server: EwsServer) -> None:
    unknown = post(ews_server, envelope(get_item_body("AAMkAGI2VGhpcyBpcyBub3QgYW4gaXRlbQ=="), REPORTER))
    malformed = post(ews_server, envelope(get_item_body("not-an-id!"), REPORTER))
    assert b"<m:ResponseCode>ErrorItemNotFound</m:ResponseCode>" in unknown.content
    assert b"<m:ResponseCode>ErrorInvalidIdMalformed</m:ResponseCode>" in malformed.content


def test_convert_id_names_the_mailbox_that_holds_the_item(ews_server: EwsServer) -> None:
    item_id = ews_server.add_message(COLLEAGUE, b"Subject: x\r\n\r\n")
    body = (
        '<m:ConvertId DestinationFormat="EwsId"><m:SourceIds>'
        f'<t:AlternateId Format="EwsId" Id="{item_id}" Mailbox="{REPORTER}"/></m:SourceIds></m:ConvertId>'
    )
    alternate = xml(post(ews_server, envelope(body, REPORTER))).find(f".//{{{M}}}AlternateId")
    assert alternate is not None and (alternate.get("Id"), alternate.get("Mailbox")) == (item_id, COLLEAGUE)


def test_an_unknown_operation_is_a_fault(ews_server: EwsServer) -> None:
    answer = post(ews_server, envelope("<m:EmptyFolder/>", REPORTER))
    assert answer.status_code == 500 and b"a:ErrorInvalidRequest" in answer.content


def test_a_request_with_a_document_type_declaration_is_refused(ews_server: EwsServer) -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY x "boom">]>' + envelope("<m:GetServerTimeZones/>")[38:]
    answer = post(ews_server, body)
    assert answer.status_code == 500 and b"ErrorSchemaValidation" in answer.content


def test_only_the_ews_path_answers(ews_server: EwsServer) -> None:
    wrong = requests.post(ews_server.url.replace("/EWS/", "/OWA/"), data=b"", timeout=5)
    assert wrong.status_code == 404
    assert requests.get(ews_server.url, timeout=5).status_code == 405


def test_faults_apply_to_their_operation_the_given_number_of_times(ews_server: EwsServer) -> None:
    ews_server.inject(HttpError(503), operation="GetItem", times=2)
    probe = envelope("<m:GetServerTimeZones/>")
    get = envelope(get_item_body("AAMkAGI2VGhpcyBpcyBub3QgYW4gaXRlbQ=="), REPORTER)
    statuses = [post(ews_server, body).status_code for body in (probe, get, get, get)]
    assert statuses == [200, 503, 503, 200]
    assert (ews_server.count("GetItem"), ews_server.count("GetServerTimeZones"), ews_server.count()) == (3, 1, 4)


def test_exchangelib_itself_reads_mime_and_headers_from_the_double(ews_server: EwsServer) -> None:
    mime = b"Received: from a\r\n by b\r\nSubject: caf\xc3\xa9\r\n\r\n\x00\xff body"
    item_id = ews_server.add_message(REPORTER, mime)
    config = Configuration(
        credentials=Credentials(SERVICE_USER, SERVICE_PASSWORD),
        service_endpoint=ews_server.url,
        auth_type=BASIC,
        version=Version(build=EXCHANGE_2016),
    )
    account = Account(REPORTER, access_type=IMPERSONATION, config=config, autodiscover=False)
    fields = [FieldPath(field=Message.get_field_by_fieldname(name)) for name in ("mime_content", "headers", "subject")]
    [message] = GetItem(account=account).call(items=[ItemId(id=item_id)], additional_fields=fields, shape="IdOnly")
    assert message.mime_content == mime
    assert [(h.name, h.value) for h in message.headers] == [("Received", "from a\r\n by b"), ("Subject", "caf\u00e9")]
    assert message.subject == "caf\u00e9"


def test_seed_demo_fills_the_demo_mailbox_with_the_sample_messages(ews_server: EwsServer) -> None:
    ids = seed_demo(ews_server)
    samples = sample_messages()
    assert list(ids) == list(samples) and len(ids) == 6
    for name, item_id in ids.items():
        item = ews_server.item(item_id)
        assert (item.mailbox, item.mime) == (DEMO_USER, samples[name])
    assert ews_server.store.manager_of(DEMO_USER) == DEMO_SUPERVISOR
    assert ews_server.item(ids["03-supervisor"]).from_address == DEMO_SUPERVISOR
