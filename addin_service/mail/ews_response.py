"""A streaming reader for EWS SOAP responses (expat, no DTDs, no entities).

It is fed the HTTP body in large chunks and keeps only what the adapter needs: the server
version, a SOAP fault, each response message's class and code, and per item the facts the
capture records. ``MimeContent`` is base64-decoded on the fly into a caller's ``write`` function,
so memory stays flat whatever the size of the message. Character data is returned by expat with
entities resolved, so a header value served as ``a&#13;b`` arrives as ``"a\\rb"``, exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from xml.parsers import expat

from addin_service.mail.ews_base64 import Base64Error, Base64StreamDecoder
from addin_service.untrusted_numbers import decimal

_PREFIXES = {
    "http://schemas.xmlsoap.org/soap/envelope/": "s",
    "http://schemas.microsoft.com/exchange/services/2006/messages": "m",
    "http://schemas.microsoft.com/exchange/services/2006/types": "t",
    "http://schemas.microsoft.com/exchange/services/2006/errors": "e",
}
_PARSER_BUFFER = 64 * 1024
# Text kept outside MimeContent (headers, subject...). Far above any real message's header block.
_MAX_KEPT_TEXT = 32 * 1024 * 1024

_HEADER_VERSION = ("s:Envelope", "s:Header", "t:ServerVersionInfo")
_FAULT = ("s:Envelope", "s:Body", "s:Fault")
_ITEM_TEXT_FIELDS = {
    "t:Subject": "subject",
    "t:DateTimeReceived": "received_at",
    "t:Size": "size",
    "t:InternetMessageId": "internet_message_id",
}


class MalformedResponse(Exception):
    """The response is not a well-formed, DTD-free EWS SOAP response of the expected shape."""


@dataclass
class ItemFacts:
    """What one returned item said about itself, as returned."""

    item_id: str | None = None
    change_key: str | None = None
    subject: str | None = None
    received_at: str | None = None
    size: str | None = None
    internet_message_id: str | None = None
    sender: str | None = None
    from_address: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    has_mime: bool = False


@dataclass(frozen=True)
class AlternateId:
    id: str | None
    format: str | None
    mailbox: str | None


@dataclass
class ResponseMessage:
    """One ``<m:{Operation}ResponseMessage>``."""

    response_class: str | None
    code: str | None = None
    text: str | None = None
    back_off_ms: int | None = None
    items: list[ItemFacts] = field(default_factory=list)
    alternate_ids: list[AlternateId] = field(default_factory=list)


@dataclass
class SoapFault:
    code: str | None = None
    message: str | None = None
    back_off_ms: int | None = None


@dataclass
class EwsResponse:
    server_version: str | None = None
    fault: SoapFault | None = None
    messages: list[ResponseMessage] = field(default_factory=list)


def _forbid(what: str) -> Callable[..., None]:
    def handler(*_args: object) -> None:
        raise MalformedResponse(f"EWS responses must not contain {what}")

    return handler


def _refuse_external_entity(context: str, base: str | None, system_id: str | None, public_id: str | None) -> int:
    raise MalformedResponse("EWS responses must not refer to external entities")


def _is_back_off(tag: str, attrs: dict[str, str]) -> bool:
    return tag == "t:Value" and attrs.get("Name") == "BackOffMilliseconds"


def _milliseconds(value: str) -> int | None:
    return decimal(value, max_digits=12)


def _stripped(value: str) -> str:
    return value.strip()


def _setter(target: object, attribute: str, convert: Callable[[str], object] = str) -> Callable[[str], None]:
    """A function that stores converted text on ``target.attribute`` when the element ends."""

    def store(text: str) -> None:
        setattr(target, attribute, convert(text))

    return store


class EwsResponseReader:
    """Parse the response to ``operation`` incrementally; MIME bytes go to ``mime_write``.

    ``feed`` and ``close`` raise :class:`MalformedResponse` for anything that is not the expected
    XML, and let exceptions from ``mime_write`` (e.g. ``MessageTooLarge``) pass through untouched.
    """

    def __init__(self, operation: str, mime_write: Callable[[bytes], object] | None = None) -> None:
        self.result = EwsResponse()
        self._message_path = ("s:Envelope", "s:Body", f"m:{operation}Response", "m:ResponseMessages")
        self._message_tag = f"m:{operation}ResponseMessage"
        self._mime_write = mime_write
        self._decoder: Base64StreamDecoder | None = None
        self._mime_seen = False
        self._path: list[str] = []
        self._keep: Callable[[str], None] | None = None
        self._keep_depth = 0
        self._kept: list[str] = []
        self._kept_total = 0
        self._parser = expat.ParserCreate(namespace_separator=" ")
        self._parser.buffer_text = True
        self._parser.buffer_size = _PARSER_BUFFER
        self._parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self._parser.StartDoctypeDeclHandler = _forbid("a document type declaration")
        self._parser.EntityDeclHandler = _forbid("entity declarations")
        self._parser.ExternalEntityRefHandler = _refuse_external_entity
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._parser.CharacterDataHandler = self._chars

    @property
    def mime_bytes(self) -> int:
        """How many decoded MIME bytes have been passed to ``mime_write``."""
        return self._decoder.decoded if self._decoder is not None else 0

    def feed(self, data: bytes) -> None:
        try:
            self._parser.Parse(data, False)
        except expat.ExpatError as exc:
            raise MalformedResponse(f"not well-formed XML ({exc})") from None
        except Base64Error as exc:
            raise MalformedResponse(str(exc)) from None

    def close(self) -> EwsResponse:
        """Finish parsing and return what was read."""
        try:
            self._parser.Parse(b"", True)
        except expat.ExpatError as exc:
            raise MalformedResponse(f"incomplete XML ({exc})") from None
        return self.result

    # expat callbacks ----------------------------------------------------------------------------
    def _short(self, name: str) -> str:
        uri, _, local = name.rpartition(" ")
        if not uri:
            return local
        return f"{_PREFIXES.get(uri, '?')}:{local}"

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        tag = self._short(name)
        self._path.append(tag)
        path = tuple(self._path)
        depth = len(path)
        if path == _HEADER_VERSION:
            self._server_version(attrs)
        elif path[:3] == _FAULT:
            self._start_fault(path, attrs)
        elif depth >= 5 and path[:4] == self._message_path and path[4] == self._message_tag:
            self._start_in_message(path, attrs)

    def _end(self, name: str) -> None:
        depth = len(self._path)
        if self._decoder is not None and depth == 8 and self._path[-1] == "t:MimeContent":
            self._decoder.close()
        if self._keep is not None and depth == self._keep_depth:
            keep, self._keep = self._keep, None
            keep("".join(self._kept))
            self._kept.clear()
        self._path.pop()

    def _chars(self, data: str) -> None:
        if self._keep is not None:
            self._kept_total += len(data)
            if self._kept_total > _MAX_KEPT_TEXT:
                raise MalformedResponse("the response holds far more header text than any message has")
            self._kept.append(data)
        elif self._decoder is not None and len(self._path) == 8 and self._path[-1] == "t:MimeContent":
            self._decoder.feed(data)

    def _keep_text(self, store: Callable[[str], None]) -> None:
        self._keep, self._keep_depth = store, len(self._path)

    # what is kept -------------------------------------------------------------------------------
    def _server_version(self, attrs: dict[str, str]) -> None:
        parts = [attrs.get(k) for k in ("MajorVersion", "MinorVersion", "MajorBuildNumber", "MinorBuildNumber")]
        build = ".".join(p for p in parts if p is not None) or None
        name = attrs.get("Version")
        self.result.server_version = f"{name} ({build})" if name and build else (name or build)

    def _start_fault(self, path: tuple[str, ...], attrs: dict[str, str]) -> None:
        fault = self.result.fault
        if fault is None:
            fault = self.result.fault = SoapFault()
        # faultcode ("a:ErrorServerBusy") and faultstring come first; detail's ResponseCode and
        # Message, when present, are the precise versions and replace them.
        depth, tag = len(path), path[-1]
        if depth == 4 and tag == "faultcode":
            self._keep_text(_setter(fault, "code", lambda text: text.strip().rpartition(":")[2]))
        elif depth == 4 and tag == "faultstring":
            self._keep_text(_setter(fault, "message", _stripped))
        elif depth == 5 and path[3] == "detail" and tag == "e:ResponseCode":
            self._keep_text(_setter(fault, "code", _stripped))
        elif depth == 5 and path[3] == "detail" and tag == "e:Message":
            self._keep_text(_setter(fault, "message", _stripped))
        elif depth == 6 and path[4] == "t:MessageXml" and _is_back_off(tag, attrs):
            self._keep_text(_setter(fault, "back_off_ms", _milliseconds))

    def _start_in_message(self, path: tuple[str, ...], attrs: dict[str, str]) -> None:
        depth, tag = len(path), path[-1]
        if depth == 5:
            self.result.messages.append(ResponseMessage(response_class=attrs.get("ResponseClass")))
            return
        message = self.result.messages[-1]
        if depth == 6:
            if tag == "m:ResponseCode":
                self._keep_text(_setter(message, "code", _stripped))
            elif tag == "m:MessageText":
                self._keep_text(_setter(message, "text", _stripped))
            elif tag == "m:AlternateId":
                message.alternate_ids.append(AlternateId(attrs.get("Id"), attrs.get("Format"), attrs.get("Mailbox")))
        elif depth == 7 and path[5] == "m:MessageXml" and _is_back_off(tag, attrs):
            self._keep_text(_setter(message, "back_off_ms", _milliseconds))
        elif depth == 7 and path[5] == "m:Items":
            message.items.append(ItemFacts())
        elif depth >= 8 and path[5] == "m:Items" and message.items:
            self._start_in_item(path, attrs, message.items[-1])
        elif depth == 8 and path[5] == "m:RootFolder" and path[6] == "t:Items":
            message.items.append(ItemFacts())  # FindItem: items sit one level deeper
        elif depth >= 9 and path[5] == "m:RootFolder" and path[6] == "t:Items" and message.items:
            self._start_in_item(path[1:], attrs, message.items[-1])

    def _start_in_item(self, path: tuple[str, ...], attrs: dict[str, str], item: ItemFacts) -> None:
        depth, tag = len(path), path[-1]
        if depth == 8:
            if tag == "t:MimeContent":
                self._start_mime(item)
            elif tag == "t:ItemId":
                item.item_id, item.change_key = attrs.get("Id"), attrs.get("ChangeKey")
            elif tag in _ITEM_TEXT_FIELDS:
                self._keep_text(_setter(item, _ITEM_TEXT_FIELDS[tag]))
        elif depth == 9 and path[7] == "t:InternetMessageHeaders" and tag == "t:InternetMessageHeader":
            header_name = attrs.get("HeaderName", "")
            self._keep_text(lambda text: item.headers.append((header_name, text)))
        elif depth == 10 and path[7] in ("t:Sender", "t:From") and path[8] == "t:Mailbox" and tag == "t:EmailAddress":
            attribute = "sender" if path[7] == "t:Sender" else "from_address"
            self._keep_text(_setter(item, attribute, lambda text: text.strip() or None))

    def _start_mime(self, item: ItemFacts) -> None:
        if self._mime_seen:
            raise MalformedResponse("the response holds more than one MimeContent")
        self._mime_seen = item.has_mime = True
        if self._mime_write is not None:
            self._decoder = Base64StreamDecoder(self._mime_write)
