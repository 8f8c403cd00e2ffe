"""Notification emails as MIME bytes for SMTP: headers that cannot be injected, text + HTML, and the
reported message attached untouched.

**Headers.** Every header is written through :mod:`email.headerregistry` (``Address`` objects,
``policy.SMTP``). That alone is not enough on Python 3.11: the library decodes RFC 2047 encoded
words in the values it is given and writes what they decode to, so a display name such as
``=?utf-8?q?x=0D=0ABcc:_evil@example.com?=`` comes out as a raw ``Bcc:`` line (CVE-2024-6923, fixed
only in later Python releases). So values are first made inert — control characters become
spaces and ``=?`` (the start of an encoded word) becomes ``= ?`` — and the finished header block
is parsed back and must contain exactly the fields we set, each on its own logical line; anything
else raises :class:`HeaderInjection` and nothing is sent.

**The attached message.** The security team receives the stored ``message.eml`` as a
``message/rfc822`` part whose body is the stored bytes, byte for byte: the outer MIME is written
here by hand around those bytes, because the ``email`` package would parse and regenerate an
embedded message (refolding its headers). RFC 2046 §5.2.1 allows only the ``7bit``, ``8bit`` and
``binary`` transfer encodings for ``message/rfc822`` — never base64 or quoted-printable — so:

* lines all ending in CRLF, none longer than 998 octets, no NUL and only ASCII → ``7bit``;
* the same but with 8-bit octets, and the server advertises ``8BITMIME`` → ``8bit`` (sent with
  ``BODY=8BITMIME``);
* anything else (bare CR or LF, over-long lines, NUL; or 8-bit octets for a server without
  ``8BITMIME``) cannot travel as ``message/rfc822`` over SMTP without changing it (``binary``
  needs ``BINARYMIME``/``CHUNKING``, which smtplib cannot drive). It is then attached as
  ``application/octet-stream`` named ``reported-message.eml`` in base64: a different wrapper, but
  the decoded attachment is still exactly the stored bytes, which is what evidence requires, and
  SOC tools open ``.eml`` files. Re-encoding the message itself to make it 7-bit safe was ruled
  out: the copy would no longer match the evidence hash.
"""

from __future__ import annotations

import binascii
import email.policy
import functools
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.parser import BytesHeaderParser
from email.utils import format_datetime

from addin_service.notify.compose import one_line
from addin_service.notify.ports import Attachment, OutgoingMessage

FROM_DISPLAY_NAME = "Report Harassment"
FALLBACK_FILENAME = "reported-message.eml"
MAX_LINE = 998
_POLICY = email.policy.SMTP
# Header lines up to 120 octets (RFC 5322 allows 998): Python folds a value that does not fit by
# moving all of it to a continuation line, which some readers show with a leading space.
_HEAD_POLICY = email.policy.SMTP.clone(max_line_length=120)
_MESSAGE_ID = re.compile(r"<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+>")
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
_HEADER_LINE = re.compile(rb"([!-9;-~]+):")


class HeaderInjection(ValueError):
    """A header value would have produced a header we did not set; the message is not sent."""


def inert(value: str, limit: int = 200) -> str:
    """``value`` made safe for a header: one line, no encoded-word opener."""
    return one_line(value, limit).replace("=?", "= ?")


def rfc822_encoding(data: bytes) -> str | None:
    """The transfer encoding under which ``data`` travels unchanged as ``message/rfc822``:
    ``"7bit"``, ``"8bit"``, or None when neither is possible (see the module docstring)."""
    if b"\0" in data:
        return None
    body = data[:-2] if data.endswith(b"\r\n") else data
    lines = body.split(b"\r\n")
    for line in lines:
        if b"\r" in line or b"\n" in line or len(line) > MAX_LINE:
            return None
    return "7bit" if data.isascii() else "8bit"


def build_message(
    message: OutgoingMessage,
    *,
    eight_bit_ok: bool = True,
    from_display_name: str = FROM_DISPLAY_NAME,
    to_names: dict[str, str] | None = None,
    now: datetime | None = None,
) -> tuple[bytes, bool]:
    """The message as SMTP DATA bytes (CRLF line ends) and whether it needs ``BODY=8BITMIME``.

    :raises HeaderInjection: a header value would have produced an extra header.
    :raises ValueError: a malformed address or Message-ID.
    """
    for address in (message.from_address, *message.to):
        if not _ADDRESS.fullmatch(address):
            raise ValueError("not a plain email address")
    if not _MESSAGE_ID.fullmatch(message.message_id):
        raise ValueError("not a Message-ID of the form <local@domain>")
    names = to_names or {}
    # The values that vary, and could carry someone else's text, go through headerregistry; the
    # rest is either fixed (built once, the same way) or our own validated ASCII.
    head = EmailMessage(policy=_HEAD_POLICY)
    head["To"] = [Address(display_name=inert(names.get(a, ""), 80), addr_spec=a) for a in message.to]
    head["Subject"] = inert(message.subject, 110)
    varying = _split_head(head.as_bytes(policy=_HEAD_POLICY))[0]
    from_block, fixed_block, fixed_names = _fixed_headers(
        inert(from_display_name, 80), message.from_address, message.urgent
    )
    date = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    own = f"Date: {date}\r\nMessage-ID: {message.message_id}\r\n".encode("ascii")
    alternative = _alternative(message.text, message.html)
    eight_bit = False
    parts = [alternative]
    for attachment in message.attachments:
        part, needs_8bit = _attachment_part(attachment, eight_bit_ok)
        eight_bit = eight_bit or needs_8bit
        parts.append(part)
    if len(parts) == 1:
        body_head, _, body = alternative.partition(b"\r\n\r\n")
        content_type = body_head.decode("ascii").split(":", 1)[1].strip()
    else:
        boundary = _boundary(parts)
        content_type = f'multipart/mixed; boundary="{boundary}"'
        delimiter = b"\r\n--" + boundary.encode("ascii")
        body = b"This is a multi-part message in MIME format." + b"".join(delimiter + b"\r\n" + p for p in parts)
        body += delimiter + b"--\r\n"
    header_block = (
        from_block + varying + own + fixed_block + f"Content-Type: {content_type}\r\n".encode("ascii")
    )
    _verify_headers(header_block, ["From", "To", "Subject", "Date", "Message-ID", *fixed_names, "Content-Type"])
    return header_block + b"\r\n" + body, eight_bit


@functools.lru_cache(maxsize=64)
def _fixed_headers(from_display_name: str, from_address: str, urgent: bool) -> tuple[bytes, bytes, tuple[str, ...]]:
    """The From line and the headers every notification carries, folded once per sender."""
    sender = EmailMessage(policy=_HEAD_POLICY)
    sender["From"] = Address(display_name=from_display_name, addr_spec=from_address)
    fixed = EmailMessage(policy=_HEAD_POLICY)
    fixed["MIME-Version"] = "1.0"
    fixed["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this message
    fixed["X-Auto-Response-Suppress"] = "All"  # the same, for Exchange and Outlook
    if urgent:
        fixed["Importance"] = "high"
        fixed["X-Priority"] = "1"
        fixed["Priority"] = "urgent"
    return (
        _split_head(sender.as_bytes(policy=_HEAD_POLICY))[0],
        _split_head(fixed.as_bytes(policy=_HEAD_POLICY))[0],
        tuple(name for name, _ in fixed.items()),
    )


def _alternative(text: str, html: str) -> bytes:
    """``multipart/alternative`` (headers and body) of the plain text and the HTML, both UTF-8 in
    quoted-printable (7-bit, lines ≤ 76), written directly: our own text, so there is nothing to
    parse — and it is several times faster than the ``email`` generator when a backlog drains."""
    bodies = [_quoted_printable(text), _quoted_printable(html)]
    boundary = _boundary(bodies)
    parts = b"".join(
        b"--" + boundary.encode("ascii") + b"\r\n"
        + f'Content-Type: text/{subtype}; charset="utf-8"\r\n'.encode("ascii")
        + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        + body + b"\r\n"
        for subtype, body in zip(("plain", "html"), bodies, strict=True)
    )
    return (
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode("ascii")
        + parts + b"--" + boundary.encode("ascii") + b"--\r\n"
    )


def _quoted_printable(text: str) -> bytes:
    normal = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(normal, quotetabs=False, istext=True).replace(b"\n", b"\r\n")


def _attachment_part(attachment: Attachment, eight_bit_ok: bool) -> tuple[bytes, bool]:
    """One attachment as a MIME part (headers + body, no trailing CRLF) and whether it is 8bit."""
    filename = inert(attachment.filename, 100) or FALLBACK_FILENAME
    if attachment.content_type.lower() == "message/rfc822":
        encoding = rfc822_encoding(attachment.data)
        if encoding == "7bit" or (encoding == "8bit" and eight_bit_ok):
            # The stored bytes go in exactly as they are. A final CRLF stays part of the body: the
            # CRLF before the next boundary belongs to that boundary (RFC 2046 §5.1.1).
            headers = _part_headers("message/rfc822", filename, encoding)
            return headers + b"\r\n" + attachment.data, encoding == "8bit"
        content_type, filename = "application/octet-stream", _eml_name(filename)
    else:
        content_type = attachment.content_type
    part = MIMEPart(policy=_POLICY)
    maintype, _, subtype = content_type.partition("/")
    part.set_content(attachment.data, maintype=maintype, subtype=subtype or "octet-stream", cte="base64")
    part.add_header("Content-Disposition", "attachment", filename=filename)
    data = part.as_bytes(policy=_POLICY)
    return (data[:-2] if data.endswith(b"\r\n") else data), False


def _part_headers(content_type: str, filename: str, encoding: str) -> bytes:
    part = MIMEPart(policy=_POLICY)
    part["Content-Type"] = content_type
    part.add_header("Content-Disposition", "attachment", filename=filename)
    part["Content-Transfer-Encoding"] = encoding
    # Folded field by field: a message/rfc822 part without a parsed payload cannot be generated.
    return b"".join(_POLICY.fold_binary(name, value) for name, value in part.items())


def _eml_name(filename: str) -> str:
    return filename if filename.lower().endswith(".eml") else FALLBACK_FILENAME


def _boundary(parts: Iterable[bytes]) -> str:
    """A boundary that occurs in none of the parts (RFC 2046 requires it)."""
    blobs = list(parts)
    while True:
        candidate = "=_rh_" + secrets.token_hex(16)
        marker = b"--" + candidate.encode("ascii")
        if not any(marker in blob for blob in blobs):
            return candidate


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    """(header lines each ending in CRLF, body) of a generated message or part."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return raw if raw.endswith(b"\r\n") else raw + b"\r\n", b""
    return head + b"\r\n", body


def _verify_headers(raw: bytes, expected: list[str]) -> None:
    """Parse the header block back: exactly ``expected`` fields, in order, each a logical line.

    :raises HeaderInjection: a field we did not set, or a physical line that is neither a field
        we set nor a folded continuation.
    """
    head = _split_head(raw)[0]
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t"):
            continue
        match = _HEADER_LINE.match(line)
        if match is None:
            raise HeaderInjection("a generated header line is malformed")
    parsed = BytesHeaderParser(policy=email.policy.compat32).parsebytes(head + b"\r\n")
    names = [name.lower() for name in parsed]
    if names != [name.lower() for name in expected]:
        raise HeaderInjection("the generated headers differ from the ones set")
