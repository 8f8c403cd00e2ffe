"""EWS operations the server double answers, one handler each, registered by name.

Adding an operation (ResolveNames, CreateItem, FindItem...) means writing one function that takes
the request context and the operation's element and returns the response parts, decorated with
``@operation("Name")``. Handlers raise :class:`EwsFault` for request-level errors (a SOAP fault)
and return error response messages for per-item errors, as Exchange does.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from addin_service.demo.ews_store import (
    DirectoryEntry,
    MailStore,
    SentAttachment,
    SentMessage,
    StoredItem,
    is_well_formed_id,
    new_change_key,
    new_item_id,
)
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
    "ErrorInvalidRecipients": "At least one recipient isn't valid.",
    "ErrorFolderNotFound": "The specified folder could not be found in the store.",
    "ErrorMessageSizeExceeded": "The message exceeds the maximum supported size.",
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


# ResolveNames -------------------------------------------------------------------------------------


def _contact(entry: DirectoryEntry, ctx: OperationContext, full_shape: bool) -> str:
    """The ``Contact`` of a resolution, shaped like an Active Directory contact."""
    addresses = [f"SMTP:{entry.address}", *(f"smtp:{alias}" for alias in entry.aliases)][:3]
    email_entries = "".join(
        f'<t:Entry Key="EmailAddress{index}">{xml_text(value)}</t:Entry>'
        for index, value in enumerate(addresses, start=1)
    )
    manager = ctx.store.manager_of(entry.address)
    manager_entry = ctx.store.person(manager) if manager else None
    parts = [
        "<t:Contact>",
        f"<t:DisplayName>{xml_text(entry.display_name)}</t:DisplayName>",
        f"<t:EmailAddresses>{email_entries}</t:EmailAddresses>",
        "<t:ContactSource>ActiveDirectory</t:ContactSource>",
    ]
    if manager_entry is not None:
        parts.append(f"<t:Manager>{xml_text(manager_entry.display_name)}</t:Manager>")
        if full_shape and ctx.store.returns_manager_mailbox:
            parts.append(
                "<t:ManagerMailbox>"
                + _mailbox_element(manager_entry)
                + "</t:ManagerMailbox>"
            )
    parts.append("</t:Contact>")
    return "".join(parts)


def _mailbox_element(entry: DirectoryEntry) -> str:
    return (
        f"<t:Mailbox><t:Name>{xml_text(entry.display_name)}</t:Name>"
        f"<t:EmailAddress>{xml_text(entry.address)}</t:EmailAddress>"
        "<t:RoutingType>SMTP</t:RoutingType><t:MailboxType>Mailbox</t:MailboxType></t:Mailbox>"
    )


@operation("ResolveNames")
def resolve_names(ctx: OperationContext, op: etree._Element) -> Parts:
    """Resolve each ``UnresolvedEntry`` against the directory (every mailbox is in it). Exact
    addresses (``smtp:`` prefix optional) match primary and proxy addresses; anything else matches
    display names and addresses by prefix. Several matches are a Warning
    (``ErrorNameResolutionMultipleResults``), none an Error (``ErrorNameResolutionNoResults``).
    ``ManagerMailbox`` is returned only for ``ContactDataShape="AllProperties"``, as by Exchange 2010
    SP2 and later (``store.returns_manager_mailbox = False`` imitates older servers)."""
    entries = [elem.text or "" for elem in op.iterfind(_m("UnresolvedEntry"))]
    if not entries:
        raise EwsFault("ErrorInvalidRequest", "ResolveNames needs an UnresolvedEntry.")
    full = op.get("ReturnFullContactData", "false").lower() in ("true", "1")
    all_properties = op.get("ContactDataShape") == "AllProperties"
    messages: list[Parts] = []
    for unresolved in entries:
        found = ctx.store.resolve(unresolved)
        if not found:
            text = (
                '<m:ResolveNamesResponseMessage ResponseClass="Error">'
                "<m:MessageText>No results were found.</m:MessageText>"
                "<m:ResponseCode>ErrorNameResolutionNoResults</m:ResponseCode>"
                "<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>"
                "</m:ResolveNamesResponseMessage>"
            )
            messages.append([text.encode()])
            continue
        resolutions = "".join(
            "<t:Resolution>"
            + _mailbox_element(entry)
            + (_contact(entry, ctx, all_properties) if full else "")
            + "</t:Resolution>"
            for entry in found
        )
        result_set = (
            f'<m:ResolutionSet TotalItemsInView="{len(found)}" IncludesLastItemInRange="true">'
            f"{resolutions}</m:ResolutionSet>"
        )
        if len(found) == 1:
            head = '<m:ResolveNamesResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
        else:
            head = (
                '<m:ResolveNamesResponseMessage ResponseClass="Warning">'
                "<m:MessageText>Multiple results were found.</m:MessageText>"
                "<m:ResponseCode>ErrorNameResolutionMultipleResults</m:ResponseCode>"
                "<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>"
            )
        messages.append([(head + result_set + "</m:ResolveNamesResponseMessage>").encode()])
    return _response("ResolveNames", messages)


# CreateItem (send) ---------------------------------------------------------------------------------


def _addresses(message: etree._Element, tag: str) -> tuple[str, ...]:
    return tuple(
        (mailbox.findtext(_t("EmailAddress")) or "").strip().lower()
        for mailbox in message.iterfind(f"{_t(tag)}/{_t('Mailbox')}")
    )


def _saved_folder_owner(ctx: OperationContext, op: etree._Element) -> str | None:
    """The mailbox whose Sent Items receives the copy; only Sent Items is supported.

    :raises EwsFault: another folder, or no impersonated user to send as.
    """
    if ctx.acting_user is None:
        raise EwsFault("ErrorNonExistentMailbox", "Send as a mailbox: impersonate its owner.")
    folder = op.find(f"{_m('SavedItemFolderId')}/{_t('DistinguishedFolderId')}")
    if folder is None:
        return ctx.acting_user
    if folder.get("Id") != "sentitems":
        raise EwsFault("ErrorInvalidRequest", "The double saves sent copies in sentitems only.")
    owner = (folder.findtext(f"{_t('Mailbox')}/{_t('EmailAddress')}") or ctx.acting_user).strip().lower()
    return owner


@operation("CreateItem")
def create_item(ctx: OperationContext, op: etree._Element) -> Parts:
    """Send messages (``SendAndSaveCopy`` or ``SendOnly``) as the impersonated user, keeping a copy in
    their Sent Items with the ``InternetMessageId`` the request set (or a new one). Records what a
    recipient would receive: subject, body, recipients, importance and attachments."""
    disposition = op.get("MessageDisposition", "")
    if disposition not in ("SendAndSaveCopy", "SendOnly"):
        raise EwsFault("ErrorInvalidRequest", "The double only sends (SendAndSaveCopy or SendOnly).")
    owner = _saved_folder_owner(ctx, op) if disposition == "SendAndSaveCopy" else ctx.acting_user
    if owner is None or not ctx.store.may_read(ctx.acting_user, owner):
        raise EwsFault("ErrorAccessDenied")
    items = op.find(_m("Items"))
    if items is None or not len(items):
        raise EwsFault("ErrorInvalidRequest", "CreateItem needs Items.")
    messages = []
    for message in items.iterfind(_t("Message")):
        to, cc, bcc = (_addresses(message, tag) for tag in ("ToRecipients", "CcRecipients", "BccRecipients"))
        recipients = (*to, *cc, *bcc)
        if not recipients or any("@" not in r or ctx.store.is_rejected(r) for r in recipients):
            messages.append(_error("CreateItem", "ErrorInvalidRecipients", "<m:Items/>"))
            continue
        body = message.find(_t("Body"))
        attachments = tuple(
            SentAttachment(
                name=attachment.findtext(_t("Name")) or "",
                content_type=attachment.findtext(_t("ContentType")) or "application/octet-stream",
                content=base64.b64decode(attachment.findtext(_t("Content")) or ""),
            )
            for attachment in message.iterfind(f"{_t('Attachments')}/{_t('FileAttachment')}")
        )
        limit = ctx.store.max_send_bytes
        if limit is not None and len(etree.tostring(message)) > limit:  # the XML, base64 and all, as MIME would be
            messages.append(_error("CreateItem", "ErrorMessageSizeExceeded", "<m:Items/>"))
            continue
        internet_id = (message.findtext(_t("InternetMessageId")) or "").strip()
        ctx.store.record_sent(
            SentMessage(
                item_id=new_item_id(owner),
                change_key=new_change_key(),
                mailbox=owner,
                internet_message_id=internet_id or f"<{secrets.token_hex(12)}@ews-double.invalid>",
                subject=message.findtext(_t("Subject")) or "",
                body=body.text or "" if body is not None else "",
                body_type=body.get("BodyType", "Text") if body is not None else "Text",
                to=to,
                cc=cc,
                bcc=bcc,
                importance=message.findtext(_t("Importance")) or "Normal",
                attachments=attachments,
                sent_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        )
        messages.append(_success("CreateItem", [b"<m:Items/>"]))
    return _response("CreateItem", messages)


# FindItem (Sent Items) -----------------------------------------------------------------------------

_MESSAGE_ID_URI = "message:InternetMessageId"


def _restriction_value(op: etree._Element) -> str | None:
    """The Message-ID of an ``IsEqualTo message:InternetMessageId`` restriction (None: no restriction).

    :raises EwsFault: any other restriction (the double supports only this one).
    """
    restriction = op.find(_m("Restriction"))
    if restriction is None:
        return None
    equal = restriction.find(_t("IsEqualTo"))
    uri = equal.find(_t("FieldURI")) if equal is not None else None
    constant = equal.find(f"{_t('FieldURIOrConstant')}/{_t('Constant')}") if equal is not None else None
    if uri is None or uri.get("FieldURI") != _MESSAGE_ID_URI or constant is None:
        raise EwsFault("ErrorInvalidRequest", "The double restricts FindItem by InternetMessageId only.")
    return str(constant.get("Value", ""))


_FROM_URI = "message:From"
_RECEIVED_FOLDERS = ("inbox", "junkemail", "deleteditems")


def _from_contains(op: etree._Element) -> str | None:
    """The value of a ``Contains message:From`` restriction, or None if the restriction is another."""
    restriction = op.find(_m("Restriction"))
    contains = restriction.find(_t("Contains")) if restriction is not None else None
    uri = contains.find(_t("FieldURI")) if contains is not None else None
    constant = contains.find(_t("Constant")) if contains is not None else None
    if uri is None or uri.get("FieldURI") != _FROM_URI or constant is None:
        return None
    return str(constant.get("Value", ""))


def _find_received(ctx: OperationContext, folder: etree._Element, op: etree._Element, limit: int) -> Parts:
    """FindItem in a received-mail folder with ``Contains message:From`` (the double's Inbox holds
    everything received; Junk Email and Deleted Items are empty)."""
    owner = (folder.findtext(f"{_t('Mailbox')}/{_t('EmailAddress')}") or ctx.acting_user or "").strip().lower()
    if not owner or not ctx.store.may_read(ctx.acting_user, owner):
        return _error("FindItem", "ErrorAccessDenied")
    needle = _from_contains(op)
    if needle is None:
        raise EwsFault("ErrorInvalidRequest", "The double restricts received mail by Contains message:From only.")
    found = []
    if folder.get("Id") == "inbox":
        found = [i for i in ctx.store.received(owner) if needle.lower() in (i.from_address or "").lower()]
    page = found[:limit]
    items = "".join(
        "<t:Message>"
        f'<t:ItemId Id="{xml_attr(i.item_id)}" ChangeKey="{xml_attr(i.change_key)}"/>'
        f"<t:From><t:Mailbox><t:EmailAddress>{xml_text(i.from_address or '')}</t:EmailAddress></t:Mailbox></t:From>"
        "</t:Message>"
        for i in page
    )
    last = len(page) >= len(found)
    root = (
        f'<m:RootFolder IndexedPagingOffset="{len(page)}" TotalItemsInView="{len(found)}" '
        f'IncludesLastItemInRange="{"true" if last else "false"}"><t:Items>{items}</t:Items></m:RootFolder>'
    )
    return _success("FindItem", [root.encode()])


@operation("FindItem")
def find_item(ctx: OperationContext, op: etree._Element) -> Parts:
    """Find messages: in Sent Items (optionally by ``InternetMessageId``), or in received-mail
    folders by ``Contains message:From``."""
    view = op.find(_m("IndexedPageItemView"))
    limit = int(view.get("MaxEntriesReturned", "1000")) if view is not None else 1000
    offset = int(view.get("Offset", "0")) if view is not None else 0
    folders = op.find(_m("ParentFolderIds"))
    if folders is None or not len(folders):
        raise EwsFault("ErrorInvalidRequest", "FindItem needs ParentFolderIds.")
    messages: list[Parts] = []
    for folder in folders:
        if etree.QName(folder).localname == "DistinguishedFolderId" and folder.get("Id") in _RECEIVED_FOLDERS:
            messages.append(_find_received(ctx, folder, op, limit))
            continue
        if etree.QName(folder).localname != "DistinguishedFolderId" or folder.get("Id") != "sentitems":
            messages.append(_error("FindItem", "ErrorFolderNotFound"))
            continue
        wanted = _restriction_value(op)
        owner = (folder.findtext(f"{_t('Mailbox')}/{_t('EmailAddress')}") or ctx.acting_user or "").strip().lower()
        if not owner or not ctx.store.may_read(ctx.acting_user, owner):
            messages.append(_error("FindItem", "ErrorAccessDenied"))
            continue
        found = [
            m for m in ctx.store.sent_items(owner) if wanted is None or m.internet_message_id == wanted.strip()
        ]
        page = found[offset : offset + limit]
        items = "".join(
            "<t:Message>"
            f'<t:ItemId Id="{xml_attr(m.item_id)}" ChangeKey="{xml_attr(m.change_key)}"/>'
            f"<t:Subject>{xml_text(m.subject)}</t:Subject>"
            f"<t:InternetMessageId>{xml_text(m.internet_message_id)}</t:InternetMessageId>"
            "</t:Message>"
            for m in page
        )
        last = offset + len(page) >= len(found)
        root = (
            f'<m:RootFolder IndexedPagingOffset="{offset + len(page)}" TotalItemsInView="{len(found)}" '
            f'IncludesLastItemInRange="{"true" if last else "false"}"><t:Items>{items}</t:Items></m:RootFolder>'
        )
        messages.append(_success("FindItem", [root.encode()]))
    return _response("FindItem", messages)
