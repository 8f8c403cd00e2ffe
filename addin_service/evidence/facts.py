"""Facts read from a stored message's header block, for ``metadata.json`` and routing.

Only the header block is read (up to the first blank line, at most 1 MiB) and parsed with the
standard library's forgiving ``compat32`` policy. The input is hostile by nature: whatever is
wrong with it (broken MIME, 8-bit bytes, NULs, mixed line endings, enormous folded headers) is
recorded in ``parse_errors`` and never raised, so filing a report never fails on parsing.
"""

from __future__ import annotations

import os
import re
from datetime import UTC
from email import policy
from email.header import Header, decode_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import IO, Any

HEADER_BLOCK_LIMIT = 1024 * 1024
_FOLD = re.compile(r"(?:\r\n|\n|\r)(?=[ \t])")
_SINGLE = (
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
)
_ADDRESS_HEADERS = {"from": "From", "sender": "Sender", "reply_to": "Reply-To", "to": "To", "cc": "Cc"}
_TEXT_HEADERS = {"subject": "Subject", "date": "Date"}
_ID_HEADERS = {"message_id": "Message-ID", "in_reply_to": "In-Reply-To", "references": "References"}
_MAX_ERRORS = 50


def message_facts(
    source: str | os.PathLike[str] | IO[bytes], *, limit: int = HEADER_BLOCK_LIMIT
) -> dict[str, Any]:
    """Parse the header block of a message file (path) or binary stream (from its position).

    Returns display values with RFC 2047 words decoded (``from``, ``sender``, ``reply_to``,
    ``to``, ``cc``, ``subject``), the raw ``date`` and ``date_utc`` (ISO 8601 Z, or None),
    ``message_id``, ``in_reply_to``, ``references``, ``content_type``, ``has_attachments`` (a
    guess: multipart/mixed), the parsed ``addresses`` per address header with ``from_address``
    and ``sender_address`` (first of each), ``header_count`` and ``parse_errors``.

    :raises OSError: only when ``source`` is a path that cannot be opened or read.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fh:
            block, truncated = _header_block(fh, limit)
    else:
        block, truncated = _header_block(source, limit)
    try:
        return _facts(block, truncated, limit)
    except Exception as exc:  # noqa: BLE001 - the sender wrote these bytes: never a reason not to file
        return _unparsed(type(exc).__name__)


def _unparsed(error: str) -> dict[str, Any]:
    """The facts of a header block the parser failed on: none, and why."""
    facts: dict[str, Any] = dict.fromkeys((*_ADDRESS_HEADERS, *_TEXT_HEADERS, *_ID_HEADERS))
    facts.update(
        header_count=0,
        addresses={key: [] for key in _ADDRESS_HEADERS},
        from_address=None,
        sender_address=None,
        date_utc=None,
        content_type=None,
        has_attachments=False,
        parse_errors=[f"the header block could not be parsed ({error}); the message is stored as received"],
    )
    return facts


def _header_block(stream: IO[bytes], limit: int) -> tuple[bytes, bool]:
    """Bytes up to (not including) the first blank line; True if the limit cut it short."""
    block = bytearray()
    while True:
        line = stream.readline(limit - len(block) + 1)
        if not line or line in (b"\n", b"\r\n"):
            return bytes(block), False
        if len(block) + len(line) > limit:
            block += line[: limit - len(block)]
            return bytes(block), True
        block += line


def _facts(block: bytes, truncated: bool, limit: int) -> dict[str, Any]:
    errors = _byte_level_problems(block)
    if truncated:
        errors.append(f"the header block is longer than {limit} bytes; the rest was not read")
    message = BytesHeaderParser(policy=policy.compat32).parsebytes(block)
    errors += [_describe_defect(defect) for defect in message.defects]
    raw = _raw_headers(message)
    errors += [
        f"{name} appears {len(raw[name.lower()])} times"
        for name in _SINGLE
        if len(raw.get(name.lower(), [])) > 1
    ]
    if not raw:
        errors.append("no header fields were found")
    facts: dict[str, Any] = {"header_count": sum(len(values) for values in raw.values())}
    addresses: dict[str, list[str]] = {}
    for key, name in _ADDRESS_HEADERS.items():
        value = _first(raw, name)
        facts[key] = None if value is None else _display(name, value, errors)
        addresses[key] = [] if value is None else _addresses(name, value, errors)
    facts["addresses"] = addresses
    facts["from_address"] = addresses["from"][0] if addresses["from"] else None
    facts["sender_address"] = addresses["sender"][0] if addresses["sender"] else None
    for key, name in _TEXT_HEADERS.items():
        value = _first(raw, name)
        facts[key] = None if value is None else _display(name, value, errors)
    for key, name in _ID_HEADERS.items():
        value = _first(raw, name)
        facts[key] = None if value is None else _unfold(_text(value)).strip()
    facts["date_utc"] = _date_utc(facts["date"], errors)
    facts["content_type"], facts["has_attachments"] = _content_type(message, raw, errors)
    facts["parse_errors"] = errors[:_MAX_ERRORS] + (
        [f"{len(errors) - _MAX_ERRORS} more problems were not listed"] if len(errors) > _MAX_ERRORS else []
    )
    return facts


def _byte_level_problems(block: bytes) -> list[str]:
    problems: list[str] = []
    if b"\x00" in block:
        problems.append("the header block contains NUL bytes")
    if any(byte >= 0x80 for byte in block):
        problems.append("the header block contains 8-bit bytes (read as UTF-8 for display)")
    crlf = block.count(b"\r\n")
    bare_lf = block.count(b"\n") - crlf
    bare_cr = block.count(b"\r") - crlf
    if crlf and bare_lf:
        problems.append("the header block mixes CRLF and LF line endings")
    if bare_cr:
        problems.append("the header block contains CR characters without LF")
    return problems


def _describe_defect(defect: Exception) -> str:
    text = str(defect).strip()
    name = type(defect).__name__
    return f"{name}: {text[:200]}" if text and text != name else name


def _raw_headers(message: Message) -> dict[str, list[str]]:
    """Header values exactly as parsed (8-bit bytes kept as surrogate escapes), by lower-case name."""
    raw: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        raw.setdefault(name.strip().lower(), []).append(value if isinstance(value, str) else str(value))
    return raw


def _first(raw: dict[str, list[str]], name: str) -> str | None:
    values = raw.get(name.lower())
    return values[0] if values else None


def _text(value: str) -> str:
    """Undo the parser's surrogate escapes and read the bytes as UTF-8 (bad bytes become U+FFFD)."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _unfold(value: str) -> str:
    return _FOLD.sub("", value)


def _display(name: str, value: str, errors: list[str]) -> str:
    """The value as a person should read it: unfolded, RFC 2047 encoded words decoded."""
    text = _unfold(_text(value)).strip()
    if "=?" not in text:
        return text
    try:
        header = Header()
        for part, charset in decode_header(text):
            if isinstance(part, str):
                header.append(part)
            elif charset is None:
                header.append(part.decode("raw-unicode-escape"))
            else:
                try:
                    header.append(part.decode(charset, "replace"), "utf-8")
                except LookupError:
                    errors.append(f"{name}: unknown character set {charset!r}")
                    header.append(part.decode("utf-8", "replace"), "utf-8")
        return str(header).strip()
    except Exception:  # hostile input must never stop a report; the raw value is kept instead
        errors.append(f"{name}: encoded words could not be decoded")
        return text


def _addresses(name: str, value: str, errors: list[str]) -> list[str]:
    try:
        pairs = getaddresses([_unfold(_text(value))])
    except Exception:  # as above: record, never raise
        errors.append(f"{name}: addresses could not be parsed")
        return []
    found = [address for _, address in pairs if address and "@" in address]
    if not found:
        errors.append(f"{name}: no address could be read")
    return found


_YEAR = re.compile(r"\b\d{1,2}\s+[A-Za-z]{3}\s+(\d{2,})(?!\d)")


def _rfc5322_year(date: str) -> int | None:
    """The year as RFC 5322 section 4.3 reads it, where the standard library reads it otherwise:
    it takes any year below 100 as two digits ("0001" as 2001) and splits two-digit years at 68,
    not at 50; three-digit years are 1900 + the number."""
    match = _YEAR.search(date)
    if match is None:
        return None
    digits = match.group(1)
    year = int(digits)
    if len(digits) == 2:
        return year + (2000 if year < 50 else 1900)
    if len(digits) == 3:
        return year + 1900
    return year


def _date_utc(date: str | None, errors: list[str]) -> str | None:
    if not date:
        return None
    try:
        parsed = parsedate_to_datetime(date)
        year = _rfc5322_year(date)
        if year is not None and year != parsed.year:
            parsed = parsed.replace(year=year)
        if parsed.tzinfo is None:
            errors.append("Date: no time zone (read as UTC)")
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")
    except (TypeError, ValueError, IndexError, OverflowError):  # e.g. 31 Dec 9999 23:59 -0100 is past year 9999
        errors.append("Date: not a date this parser understands")
        return None


def _content_type(message: Message, raw: dict[str, list[str]], errors: list[str]) -> tuple[str, bool]:
    try:
        content_type = message.get_content_type()
        boundary = message.get_param("boundary") if content_type.startswith("multipart/") else ""
    except Exception:  # as above: record, never raise
        errors.append("Content-Type: could not be parsed")
        return "text/plain", False
    if (
        "content-type" in raw
        and content_type == "text/plain"
        and "text/plain" not in _text(raw["content-type"][0]).lower()
    ):
        errors.append("Content-Type: not understood; read as text/plain")
    if content_type.startswith("multipart/") and not boundary:
        errors.append("Content-Type: multipart without a boundary")
    return content_type, content_type == "multipart/mixed"
