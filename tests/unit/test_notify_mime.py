"""The notification as MIME: headers nobody can inject into, both parts, the evidence untouched."""

from __future__ import annotations

import base64
import email.policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from addin_service.notify.mime import build_message, inert, rfc822_encoding
from addin_service.notify.ports import Attachment, OutgoingMessage
from tests.fakes.smtp import raw_attachment

EVIL_NAMES = [
    "Evil\r\nBcc: victim@example.com",
    "Evil\nBcc: victim@example.com",
    "Evil\rBcc: victim@example.com",
    "=?utf-8?q?x=0D=0ABcc:_victim@example.com?=",
    "=?utf-8?b?eA0KQmNjOiB2aWN0aW1AZXhhbXBsZS5jb20=?=",
    "Evil\u2028Bcc: victim@example.com",
    "Evil\x00Bcc: victim@example.com",
]
EIGHT_BIT_EML = (
    b"From: Ren\xc3\xa9 <rene@example.org>\r\nTo: alex@contoso.com\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
    b"Message-ID: <x@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\nJe sais o\xc3\xb9 tu habites.\r\n.\r\n..dots\r\n"
)


def message(
    *attachments: Attachment, subject: str = "Harassment report HR-2026-7K3M9Q2X", urgent: bool = False
) -> OutgoingMessage:
    return OutgoingMessage(
        message_id="<R-0123456789ABCDEF.security.0123456789abcdef@contoso.com>",
        from_address="report-harassment@contoso.com",
        to=("security@contoso.com",),
        subject=subject,
        text="A report was filed.\nCase HR-2026-7K3M9Q2X.\n",
        html="<p>A report was filed. Case <strong>HR-2026-7K3M9Q2X</strong>.</p>",
        urgent=urgent,
        attachments=attachments,
    )


def parse(data: bytes) -> EmailMessage:
    parsed = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    return parsed


def header_names(data: bytes) -> list[str]:
    return [name.lower() for name in parse(data)]


@pytest.mark.parametrize("name", EVIL_NAMES)
def test_a_display_name_cannot_add_a_header(name: str) -> None:
    data, _ = build_message(message(), to_names={"security@contoso.com": name})

    assert "bcc" not in header_names(data)
    assert parse(data).get_all("To") is not None and len(parse(data).get_all("To") or []) == 1
    assert parse(data)["To"].addresses[0].addr_spec == "security@contoso.com"


@pytest.mark.parametrize("subject", EVIL_NAMES)
def test_a_subject_cannot_add_a_header(subject: str) -> None:
    data, _ = build_message(message(subject=subject))

    assert "bcc" not in header_names(data)
    assert header_names(data).count("subject") == 1
    assert str(parse(data)["Subject"]) == inert(subject)  # kept as inert visible text


@pytest.mark.parametrize("address", ["a@b.com\r\nBcc: c@d.com", "Name <a@b.com>", "a@b.com, c@d.com", ""])
def test_a_malformed_recipient_is_refused(address: str) -> None:
    bad = OutgoingMessage(
        message_id="<a.b@contoso.com>", from_address="n@contoso.com", to=(address,), subject="s", text="t", html="h"
    )

    with pytest.raises(ValueError):
        build_message(bad)


def test_a_malformed_message_id_is_refused() -> None:
    bad = OutgoingMessage(
        message_id="<a@b.com>\r\nBcc: c@d.com", from_address="n@contoso.com", to=("a@b.com",), subject="s",
        text="t", html="h",
    )

    with pytest.raises(ValueError):
        build_message(bad)


def test_inert_text_loses_line_breaks_and_encoded_word_openers() -> None:
    assert inert("a\r\nb\u2028c =?utf-8?q?x?=") == "a b c = ?utf-8?q?x?="


def test_the_reader_gets_plain_text_and_html() -> None:
    data, _ = build_message(message())
    parsed = parse(data)

    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n") == "A report was filed.\nCase HR-2026-7K3M9Q2X.\n"
    assert "<strong>HR-2026-7K3M9Q2X</strong>" in html.get_content()
    assert parsed["Message-ID"] == "<R-0123456789ABCDEF.security.0123456789abcdef@contoso.com>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["From"].addresses[0].display_name == "Report Harassment"


def test_an_urgent_message_has_high_importance() -> None:
    parsed = parse(build_message(message(urgent=True))[0])

    assert parsed["Importance"] == "high"
    assert parsed["X-Priority"] == "1"


def test_a_normal_message_has_no_importance_header() -> None:
    assert "importance" not in header_names(build_message(message())[0])


def test_a_7bit_message_is_attached_as_message_rfc822_byte_for_byte() -> None:
    eml = b"From: a@example.net\r\nTo: alex@contoso.com\r\nSubject: hi\r\n\r\nStop.\r\n.\r\n--boundary-lookalike\r\n"
    data, eight_bit = build_message(message(Attachment("reported.eml", "message/rfc822", eml)))

    part = list(parse(data).iter_attachments())[0]
    assert part.get_content_type() == "message/rfc822"
    assert part["Content-Transfer-Encoding"] == "7bit"
    assert raw_attachment(data) == eml
    assert not eight_bit


def test_an_8bit_message_goes_as_8bit_when_the_server_takes_8bitmime() -> None:
    data, eight_bit = build_message(message(Attachment("reported.eml", "message/rfc822", EIGHT_BIT_EML)))

    assert eight_bit
    assert raw_attachment(data) == EIGHT_BIT_EML
    assert list(parse(data).iter_attachments())[0]["Content-Transfer-Encoding"] == "8bit"


def test_an_8bit_message_without_8bitmime_is_attached_as_an_eml_file_that_decodes_to_the_same_bytes() -> None:
    data, eight_bit = build_message(
        message(Attachment("reported.eml", "message/rfc822", EIGHT_BIT_EML)), eight_bit_ok=False
    )

    part = list(parse(data).iter_attachments())[0]
    assert not eight_bit
    assert data.isascii()
    assert part.get_content_type() == "application/octet-stream"
    assert part.get_filename() == "reported.eml"
    assert part.get_content() == EIGHT_BIT_EML


@pytest.mark.parametrize(
    "eml",
    [
        b"From: a@example.net\nSubject: bare LF\n\nbody\n",
        b"From: a@example.net\r\nSubject: bare CR\r\n\r\nbo\rdy\r\n",
        b"From: a@example.net\r\n\r\n" + b"x" * 999 + b"\r\n",
        b"From: a@example.net\r\n\r\nnul \x00 byte\r\n",
    ],
)
def test_a_message_that_cannot_travel_as_rfc822_still_arrives_byte_identical(eml: bytes) -> None:
    data, _ = build_message(message(Attachment("reported.eml", "message/rfc822", eml)))

    part = list(parse(data).iter_attachments())[0]
    assert rfc822_encoding(eml) is None
    assert part.get_content_type() == "application/octet-stream"
    assert part["Content-Transfer-Encoding"] == "base64"
    assert base64.b64decode(raw_attachment(data)) == eml


def test_the_transfer_encoding_is_decided_by_the_bytes() -> None:
    assert rfc822_encoding(b"A: b\r\n\r\nc\r\n") == "7bit"
    assert rfc822_encoding(b"A: b\r\n\r\nc") == "7bit"  # no final line break is fine
    assert rfc822_encoding(b"A: b\r\n\r\n\xc3\xa9\r\n") == "8bit"
    assert rfc822_encoding(b"A: b\r\n\r\n" + b"x" * 998 + b"\r\n") == "7bit"
    assert rfc822_encoding(b"A: b\n\nc\n") is None
