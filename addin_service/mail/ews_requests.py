"""The SOAP requests the EWS adapter sends, built with exchangelib's own XML helpers.

exchangelib writes the envelope (``RequestServerVersion``, the ``ExchangeImpersonation`` header
with the impersonated user's ``ConnectingSID``) and the payloads exactly as its own services do,
so the only thing this module adds is *which* properties to ask for. Ids are passed as
``ItemId``/``AlternateId`` objects: exchangelib iterates a bare string id character by character.
"""

from __future__ import annotations

import re
from typing import Any

from exchangelib.account import Identity
from exchangelib.ewsdatetime import EWSTimeZone
from exchangelib.fields import FieldPath
from exchangelib.items import ID_ONLY, Message
from exchangelib.properties import EWS_ID, AlternateId, ItemId
from exchangelib.services import ConvertId, GetServerTimeZones
from exchangelib.services.common import EWSService, item_ids_element, shape_element
from exchangelib.util import create_element

# The facts a capture records, by exchangelib field name (item:MimeContent, item:InternetMessageHeaders...).
CAPTURE_FIELDS = (
    "mime_content",
    "headers",
    "subject",
    "datetime_received",
    "size",
    "sender",
    "author",
    "message_id",
)


class _Envelope(EWSService):  # type: ignore[misc]  # exchangelib is untyped
    """exchangelib's envelope writer (``EWSService.wrap``) with an impersonated identity of our choice."""

    SERVICE_NAME = "Envelope"

    def __init__(self, protocol: Any, impersonate: str | None) -> None:
        super().__init__(protocol=protocol)
        self._identity = Identity(primary_smtp_address=impersonate) if impersonate else None

    @property
    def _account_to_impersonate(self) -> Any:
        return self._identity

    @property
    def _timezone(self) -> None:
        return None


def _wrap(protocol: Any, payload: Any, api_version: str, impersonate: str | None) -> bytes:
    envelope: bytes = _Envelope(protocol, impersonate).wrap(content=payload, api_version=api_version)
    return envelope


def _build_get_item(protocol: Any, version: Any, item_id: str, impersonate: str | None) -> bytes:
    fields = [FieldPath(field=Message.get_field_by_fieldname(name)) for name in CAPTURE_FIELDS]
    payload = create_element("m:GetItem")
    payload.append(shape_element("m:ItemShape", ID_ONLY, fields, version))
    payload.append(item_ids_element([ItemId(id=item_id)], version))
    return _wrap(protocol, payload, version.api_version, impersonate)


# Values that XML serialisation leaves exactly as they are (no escaping, no character references),
# so splicing them into an envelope built once by exchangelib gives the bytes it would build.
_PLAIN_ID = re.compile(r"[A-Za-z0-9+/=]+")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%*+/=?^_`{|}~@-]+")
_ADDRESS_MARK = "impersonated.0f6e1c2a@mark.invalid"
_ID_MARK = "ItemIdMark0f6e1c2a"
# (version, impersonating) -> the GetItem envelope cut at its marks: the impersonated address (when
# impersonating) and the item id, in the order they stand in the envelope.
_GET_ITEM_TEMPLATES: dict[tuple[Any, bool], list[bytes]] = {}


def get_item(protocol: Any, version: Any, *, item_id: str, impersonate: str | None) -> bytes:
    """GetItem for one item: MIME, transport headers and capture facts, as ``impersonate`` (or, when
    None, as whoever the request's credentials belong to: the reporter's own delegated token).

    Building the envelope with exchangelib costs a few hundred microseconds per capture; it is built
    once per server version and only the address and the id are put in for each call.
    """
    if not _PLAIN_ID.fullmatch(item_id) or (impersonate is not None and not _PLAIN_ADDRESS.fullmatch(impersonate)):
        return _build_get_item(protocol, version, item_id, impersonate)
    address_mark = _ADDRESS_MARK if impersonate is not None else None
    key = (version, address_mark is not None)
    pieces = _GET_ITEM_TEMPLATES.get(key)
    if pieces is None:
        envelope = _build_get_item(protocol, version, _ID_MARK, address_mark)
        marks = "|".join(re.escape(mark) for mark in (address_mark, _ID_MARK) if mark)
        pieces = _GET_ITEM_TEMPLATES[key] = re.split(marks.encode(), envelope)
    values = [value.encode() for value in (impersonate, item_id) if value is not None]
    spliced = [pieces[0]]
    for value, piece in zip(values, pieces[1:], strict=True):
        spliced += (value, piece)
    return b"".join(spliced)


def convert_id(protocol: Any, version: Any, *, item_id: str, mailbox: str, impersonate: str | None) -> bytes:
    """ConvertId EwsId → EwsId, whose answer names the mailbox that really holds the item."""
    payload = ConvertId(protocol=protocol).get_payload(
        items=[AlternateId(id=item_id, format=EWS_ID, mailbox=mailbox)], destination_format=EWS_ID
    )
    return _wrap(protocol, payload, version.api_version, impersonate)


def server_time_zones(protocol: Any, version: Any) -> bytes:
    """GetServerTimeZones for UTC only: a small authenticated call that touches no mailbox."""
    payload = GetServerTimeZones(protocol=protocol).get_payload(
        timezones=[EWSTimeZone("UTC")], return_full_timezone_data=False
    )
    return _wrap(protocol, payload, version.api_version, None)


# Where a reporter's other messages from one sender may be: received, filtered as junk, or deleted.
RELATED_FOLDERS = ("inbox", "junkemail", "deleteditems")


def find_from_sender(
    protocol: Any, version: Any, *, mailbox: str, folder: str, sender: str, limit: int, impersonate: str | None
) -> bytes:
    """FindItem in one folder of ``mailbox`` for messages whose From contains ``sender``.

    EWS compares From loosely (display name and address), so the answer is a superset: the caller
    keeps only exact address matches, which is why From is asked for alongside the id.
    """
    payload = create_element("m:FindItem", attrs={"Traversal": "Shallow"})
    fields = [FieldPath(field=Message.get_field_by_fieldname("author"))]
    payload.append(shape_element("m:ItemShape", ID_ONLY, fields, version))
    payload.append(
        create_element(
            "m:IndexedPageItemView", attrs={"MaxEntriesReturned": str(limit), "Offset": "0", "BasePoint": "Beginning"}
        )
    )
    restriction = create_element("m:Restriction")
    contains = create_element(
        "t:Contains", attrs={"ContainmentMode": "Substring", "ContainmentComparison": "IgnoreCase"}
    )
    contains.append(create_element("t:FieldURI", attrs={"FieldURI": "message:From"}))
    contains.append(create_element("t:Constant", attrs={"Value": sender}))
    restriction.append(contains)
    payload.append(restriction)
    parents = create_element("m:ParentFolderIds")
    folder_id = create_element("t:DistinguishedFolderId", attrs={"Id": folder})
    owner = create_element("t:Mailbox")
    address = create_element("t:EmailAddress")
    address.text = mailbox
    owner.append(address)
    folder_id.append(owner)
    parents.append(folder_id)
    payload.append(parents)
    return _wrap(protocol, payload, version.api_version, impersonate)
