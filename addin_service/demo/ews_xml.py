"""XML writing for the EWS server double: escaping, SOAP envelopes, faults and streamed bodies.

Responses are assembled as a list of parts so that a 100 MB ``MimeContent`` is base64-encoded
chunk by chunk while it is sent, with an exact ``Content-Length`` known up front.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MESSAGES_NS = "http://schemas.microsoft.com/exchange/services/2006/messages"
TYPES_NS = "http://schemas.microsoft.com/exchange/services/2006/types"
ERRORS_NS = "http://schemas.microsoft.com/exchange/services/2006/errors"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XSD_NS = "http://www.w3.org/2001/XMLSchema"

# Characters XML 1.0 cannot carry at all, not even as character references.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|[\ud800-\udfff]")
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#9;"}
)
# Raw MIME bytes per encoded chunk: a multiple of 3 so chunks concatenate into one valid base64 text.
_RAW_CHUNK = 3 * 64 * 1024


def is_xml_representable(value: str) -> bool:
    """True when every character of ``value`` can appear in an XML 1.0 document."""
    return _XML_ILLEGAL.search(value) is None


def replace_unrepresentable(value: str) -> str:
    """Replace characters XML 1.0 cannot carry with U+FFFD, as a server must before sending."""
    return _XML_ILLEGAL.sub("\ufffd", value)


def xml_text(value: str) -> str:
    """Escape element text so that an XML parser returns ``value`` exactly (CR survives as ``&#13;``)."""
    return value.translate(_TEXT_ESCAPES)


def xml_attr(value: str) -> str:
    """Escape an attribute value so that attribute-value normalisation leaves it unchanged."""
    return value.translate(_ATTR_ESCAPES)


@dataclass(frozen=True)
class ServerVersion:
    """What the double reports in every ``ServerVersionInfo`` header."""

    major: int = 15
    minor: int = 1
    major_build: int = 2507
    minor_build: int = 6
    api_version: str = "Exchange2016"

    @property
    def build(self) -> str:
        return f"{self.major}.{self.minor}.{self.major_build}.{self.minor_build}"


@dataclass(frozen=True)
class Base64Part:
    """Bytes sent base64-encoded, produced lazily in chunks."""

    data: bytes

    def __len__(self) -> int:
        return 4 * ((len(self.data) + 2) // 3)

    def chunks(self) -> Iterator[bytes]:
        view = memoryview(self.data)
        for start in range(0, len(view), _RAW_CHUNK):
            yield base64.b64encode(view[start : start + _RAW_CHUNK])


@dataclass(frozen=True)
class Body:
    """A response body as parts; its length is known before anything is sent."""

    parts: Sequence[bytes | Base64Part]

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def chunks(self) -> Iterator[bytes]:
        for part in self.parts:
            if isinstance(part, Base64Part):
                yield from part.chunks()
            elif part:
                yield part


def _server_version_header(version: ServerVersion) -> str:
    return (
        "<s:Header>"
        f'<h:ServerVersionInfo MajorVersion="{version.major}" MinorVersion="{version.minor}" '
        f'MajorBuildNumber="{version.major_build}" MinorBuildNumber="{version.minor_build}" '
        f'Version="{xml_attr(version.api_version)}" xmlns:h="{TYPES_NS}" xmlns="{TYPES_NS}" '
        f'xmlns:xsi="{XSI_NS}" xmlns:xsd="{XSD_NS}"/>'
        "</s:Header>"
    )


def envelope(version: ServerVersion, body_parts: Sequence[bytes | Base64Part]) -> Body:
    """Wrap operation response parts in a SOAP envelope with a ``ServerVersionInfo`` header."""
    head = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{SOAP_NS}">'
        f"{_server_version_header(version)}"
        f'<s:Body xmlns:xsi="{XSI_NS}" xmlns:xsd="{XSD_NS}">'
    ).encode()
    return Body([head, *body_parts, b"</s:Body></s:Envelope>"])


def fault(version: ServerVersion, code: str, message: str, values: Sequence[tuple[str, str]] = ()) -> Body:
    """A SOAP fault the way Exchange sends one (HTTP 500), e.g. ``ErrorServerBusy`` with
    ``BackOffMilliseconds`` in ``MessageXml``."""
    message_xml = ""
    if values:
        inner = "".join(f'<t:Value Name="{xml_attr(name)}">{xml_text(value)}</t:Value>' for name, value in values)
        message_xml = f'<t:MessageXml xmlns:t="{TYPES_NS}">{inner}</t:MessageXml>'
    text = (
        "<s:Fault>"
        f'<faultcode xmlns:a="{TYPES_NS}">a:{xml_text(code)}</faultcode>'
        f'<faultstring xml:lang="en-US">{xml_text(message)}</faultstring>'
        "<detail>"
        f'<e:ResponseCode xmlns:e="{ERRORS_NS}">{xml_text(code)}</e:ResponseCode>'
        f'<e:Message xmlns:e="{ERRORS_NS}">{xml_text(message)}</e:Message>'
        f"{message_xml}"
        "</detail>"
        "</s:Fault>"
    )
    return envelope(version, [text.encode()])
