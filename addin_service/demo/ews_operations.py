"""EWS operations the server double answers, one handler each, registered by name.

Adding an operation (ResolveNames, CreateItem, FindItem...) means writing one function that takes
the request context and the operation's element and returns the response parts, decorated with
``@operation("Name")``. Handlers raise :class:`EwsFault` for request-level errors (a SOAP fault)
and return error response messages for per-item errors, as Exchange does.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lxml import etree

from addin_service.demo.ews_store import MailStore, StoredItem, is_well_formed_id
from addin_service.demo.ews_xml import (
    MESSAGES_NS,
    TYPES_NS,
    XSI_NS,
    Base64Part,
    ServerVersion,
    replace_unrepresentable,
    xml_attr,
    xml_text,
)

Parts = list[bytes | Base64Part]

ERROR_TEXT = {
    "ErrorAccessDenied": "Access is denied. Check credentials and try again.",
    "ErrorImpersonateUserDenied": "The account does not have permission to impersonate the requested user.",
    "ErrorInvalidIdMalformed": "Id is malformed.",
    "ErrorInvalidRequest": "The request is invalid.",
    "ErrorItemNotFound": "The specified object was not found in the store.",
    "ErrorNonExistentMailbox": "The SMTP address has no mailbox associated with it.",
    "ErrorUnsupportedTypeForConversion": "The id format is not supported for conversion.",
}


class EwsFault(Exception):
    """A request-level error, answered as a SOAP fault with HTTP 500."""

    def __init__(self, code: str, message: str | None = None, values: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(code)
        self.code = code
        self.message = message or ERROR_TEXT.get(code, code)
        self.values = tuple(values)


@dataclass(frozen=True)
class OperationContext:
    """What a handler needs: the store, whose rights apply, and the version to report."""

    store: MailStore
    acting_user: str | None
    version: ServerVersion


Handler = Callable[[OperationContext, etree._Element], Parts]
OPERATIONS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    """Register a handler for the EWS operation ``name``."""

    def register(handler: Handler) -> Handler:
        OPERATIONS[name] = handler
        return handler

    return register


def _t(name: str) -> str:
    return f"{{{TYPES_NS}}}{name}"


def _m(name: str) -> str:
    return f"{{{MESSAGES_NS}}}{name}"


def _response(op: str, messages: Sequence[Parts]) -> Parts:
    parts: Parts = [f'<m:{op}Response xmlns:m="{MESSAGES_NS}" xmlns:t="{TYPES_NS}"><m:ResponseMessages>'.encode()]
    for message in messages:
        parts.extend(message)
    parts.append(f"</m:ResponseMessages></m:{op}Response>".encode())
    return parts


def _success(op: str, payload: Parts) -> Parts:
    head = f'<m:{op}ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
    return [head.encode(), *payload, f"</m:{op}ResponseMessage>".encode()]


def _error(op: str, code: str, trailer: str = "") -> Parts:
    text = (
        f'<m:{op}ResponseMessage ResponseClass="Error">'
        f"<m:MessageText>{xml_text(ERROR_TEXT.get(code, code))}</m:MessageText>"
        f"<m:ResponseCode>{code}</m:ResponseCode>"
        "<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>"
        f"{trailer}</m:{op}ResponseMessage>"
    )
    return [text.encode()]


# GetItem ------------------------------------------------------------------------------------------

# Message properties the double can return, in the EWS schema order of MessageType.
_FIELD_ORDER = (
    "item:MimeContent",
    "item:ItemId",
    "item:Subject",
    "item:DateTimeReceived",
    "item:Size",
    "item:InternetMessageHeaders",
    "message:Sender",
    "message:From",
    "message:InternetMessageId",
)
_BASE_SHAPES = {
    "IdOnly": {"item:ItemId"},
    "Default": {"item:ItemId", "item:Subject", "message:From"},
    "AllProperties": set(_FIELD_ORDER) - {"item:MimeContent"},
}


def _requested_fields(op: etree._Element) -> set[str]:
    shape = op.find(_m("ItemShape"))
    if shape is None:
        raise EwsFault("ErrorInvalidRequest", "GetItem needs an ItemShape.")
    base = (shape.findtext(_t("BaseShape")) or "").strip()
    if base not in _BASE_SHAPES:
        raise EwsFault("ErrorInvalidRequest", f"Unknown BaseShape {base!r}.")
    fields = set(_BASE_SHAPES[base])
    for uri in shape.iterfind(f"{_t('AdditionalProperties')}/{_t('FieldURI')}"):
        fields.add(uri.get("FieldURI", ""))
    return fields


def _mailbox(tag: str, address: str | None) -> str:
    if address is None:
        return ""
    return (
        f"<t:{tag}><t:Mailbox><t:EmailAddress>{xml_text(replace_unrepresentable(address))}</t:EmailAddress>"
        f"<t:RoutingType>SMTP</t:RoutingType><t:MailboxType>OneOff</t:MailboxType></t:Mailbox></t:{tag}>"
    )


def _optional(tag: str, value: str | None) -> str:
    return "" if value is None else f"<t:{tag}>{xml_text(replace_unrepresentable(value))}</t:{tag}>"


def _item_id(item: StoredItem) -> str:
    return f'<t:ItemId Id="{xml_attr(item.item_id)}" ChangeKey="{xml_attr(item.change_key)}"/>'


def _header(name: str, value: str) -> str:
    return f'<t:InternetMessageHeader HeaderName="{xml_attr(name)}">{xml_text(value)}</t:InternetMessageHeader>'


def _message(item: StoredItem, fields: set[str]) -> Parts:
    parts: Parts = [b"<t:Message>"]
    for uri in _FIELD_ORDER:
        if uri not in fields:
            continue
        if uri == "item:MimeContent":
            parts += [b'<t:MimeContent CharacterSet="UTF-8">', Base64Part(item.mime), b"</t:MimeContent>"]
            continue
        text = {
            "item:ItemId": _item_id(item),
            "item:Subject": _optional("Subject", item.subject),
            "item:DateTimeReceived": _optional("DateTimeReceived", item.received_at),
            "item:Size": _optional("Size", str(item.size)),
            "item:InternetMessageHeaders": "<t:InternetMessageHeaders>"
            + "".join(_header(name, value) for name, value in item.headers)
            + "</t:InternetMessageHeaders>",
            "message:Sender": _mailbox("Sender", item.sender),
            "message:From": _mailbox("From", item.from_address),
            "message:InternetMessageId": _optional("InternetMessageId", item.internet_message_id),
        }[uri]
        parts.append(text.encode())
    parts.append(b"</t:Message>")
    return parts


def _readable_item(ctx: OperationContext, item_id: str) -> StoredItem | str:
    """The item, or the EWS error code explaining why this user cannot have it."""
    if not is_well_formed_id(item_id):
        return "ErrorInvalidIdMalformed"
    item = ctx.store.item(item_id)
    if item is None:
        return "ErrorItemNotFound"
    if not ctx.store.may_read(ctx.acting_user, item.mailbox):
        return "ErrorAccessDenied"
    return item


@operation("GetItem")
def get_item(ctx: OperationContext, op: etree._Element) -> Parts:
    fields = _requested_fields(op)
    ids = op.find(_m("ItemIds"))
    if ids is None or not len(ids):
        raise EwsFault("ErrorInvalidRequest", "GetItem needs at least one ItemId.")
    messages = []
    for item_id in ids.iterfind(_t("ItemId")):
        found = _readable_item(ctx, item_id.get("Id", ""))
        if isinstance(found, str):
            messages.append(_error("GetItem", found, "<m:Items/>"))
        else:
            messages.append(_success("GetItem", [b"<m:Items>", *_message(found, fields), b"</m:Items>"]))
    return _response("GetItem", messages)


# ConvertId ----------------------------------------------------------------------------------------

_ID_CONVERSIONS: dict[str, Callable[[StoredItem], str]] = {
    "EwsId": lambda item: item.item_id,
    "EntryId": lambda item: base64.b64encode(item.id_bytes).decode("ascii"),
    "HexEntryId": lambda item: item.id_bytes.hex().upper(),
}


@operation("ConvertId")
def convert_id(ctx: OperationContext, op: etree._Element) -> Parts:
    """Convert EwsIds; the answer's ``Mailbox`` names the mailbox that holds the item. Like Exchange,
    conversion reads no item content, so it checks no mailbox rights."""
    destination = op.get("DestinationFormat", "")
    sources = op.find(_m("SourceIds"))
    if sources is None or not len(sources):
        raise EwsFault("ErrorInvalidRequest", "ConvertId needs SourceIds.")
    messages = []
    for source in sources:
        source_id = source.get("Id", "")
        if source.get("Format") != "EwsId" or destination not in _ID_CONVERSIONS:
            messages.append(_error("ConvertId", "ErrorUnsupportedTypeForConversion"))
            continue
        if not is_well_formed_id(source_id):
            messages.append(_error("ConvertId", "ErrorInvalidIdMalformed"))
            continue
        item = ctx.store.item(source_id)
        if item is None:
            messages.append(_error("ConvertId", "ErrorItemNotFound"))
            continue
        converted = _ID_CONVERSIONS[destination](item)
        alternate = (
            f'<m:AlternateId xmlns:xsi="{XSI_NS}" xsi:type="t:AlternateIdType" '
            f'Format="{destination}" Id="{xml_attr(converted)}" Mailbox="{xml_attr(item.mailbox)}"/>'
        )
        messages.append(_success("ConvertId", [alternate.encode()]))
    return _response("ConvertId", messages)


# GetServerTimeZones -------------------------------------------------------------------------------

_TIME_ZONES = {
    "UTC": "(UTC) Coordinated Universal Time",
    "GMT Standard Time": "(UTC+00:00) Dublin, Edinburgh, Lisbon, London",
    "W. Europe Standard Time": "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna",
    "Eastern Standard Time": "(UTC-05:00) Eastern Time (US & Canada)",
    "Pacific Standard Time": "(UTC-08:00) Pacific Time (US & Canada)",
}


@operation("GetServerTimeZones")
def get_server_time_zones(ctx: OperationContext, op: etree._Element) -> Parts:
    """Names of the requested (or all) time zones: a cheap authenticated call for readiness probes."""
    wanted = [elem.text or "" for elem in op.iterfind(f"{_m('Ids')}/{_t('Id')}")] or list(_TIME_ZONES)
    definitions = "".join(
        f'<t:TimeZoneDefinition Id="{xml_attr(zone)}" Name="{xml_attr(_TIME_ZONES[zone])}"/>'
        for zone in wanted
        if zone in _TIME_ZONES
    )
    payload = f"<m:TimeZoneDefinitions>{definitions}</m:TimeZoneDefinitions>".encode()
    return _response("GetServerTimeZones", [_success("GetServerTimeZones", [payload])])
