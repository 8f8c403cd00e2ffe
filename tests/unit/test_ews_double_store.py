"""The EWS server double's own rules: headers as Exchange lists them, ids, XML escaping."""

from __future__ import annotations

import base64
import re
from xml.parsers import expat

import pytest

from addin_service.demo.ews_store import MailStore, check_headers, derive_headers, new_item_id
from addin_service.demo.ews_xml import xml_attr, xml_text


def test_headers_keep_names_and_folded_values_as_written() -> None:
    mime = b"Received: from a\r\n\tby b;\r\n Mon, 1 Jan 2026\r\nsUbJeCt:  two  spaces \r\n\r\nbody: text\r\n"
    assert derive_headers(mime) == [
        ("Received", "from a\r\n\tby b;\r\n Mon, 1 Jan 2026"),
        ("sUbJeCt", "two  spaces "),
    ]


def test_headers_keep_each_lines_own_line_ending_in_mixed_crlf_and_lf_messages() -> None:
    assert derive_headers(b"X-A: 1\n 2\r\n 3\nX-B: 4\n\nbody") == [("X-A", "1\n 2\r\n 3"), ("X-B", "4")]


def test_a_bare_carriage_return_inside_a_header_stays_in_its_value() -> None:
    assert derive_headers(b"X-Odd: a\rb\r\n\r\n") == [("X-Odd", "a\rb")]


def test_the_header_block_ends_at_a_line_that_is_not_a_header() -> None:
    assert derive_headers(b"Subject: x\r\nthis is body text\r\nX-Late: y\r\n") == [("Subject", "x")]


def test_a_message_without_a_header_block_has_no_headers() -> None:
    assert derive_headers(b"x") == []
    assert derive_headers(b"") == []


def test_a_last_header_without_a_line_ending_is_kept() -> None:
    assert derive_headers(b"Subject: end") == [("Subject", "end")]


def test_eight_bit_headers_are_decoded_as_utf8_or_else_latin1() -> None:
    assert derive_headers("Subject: caf\u00e9\r\n".encode()) == [("Subject", "caf\u00e9")]
    assert derive_headers(b"Subject: caf\xe9\r\n") == [("Subject", "caf\u00e9")]


def test_characters_xml_cannot_carry_become_replacement_characters() -> None:
    assert derive_headers(b"X-Nul: a\x00b\x01\r\n") == [("X-Nul", "a\ufffdb\ufffd")]


def test_explicit_headers_must_be_servable_unchanged() -> None:
    with pytest.raises(ValueError, match="XML"):
        check_headers([("X-Nul", "a\x00b")])
    with pytest.raises(ValueError, match="field name"):
        check_headers([("Bad Name", "v")])


def test_item_ids_look_like_exchange_ids() -> None:
    ids = {new_item_id("alex@contoso.com") for _ in range(50)}
    assert len(ids) == 50
    for item_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9+/]{146}==|[A-Za-z0-9+/]{147}=|[A-Za-z0-9+/]{148}", item_id)
        assert base64.b64decode(item_id, validate=True).startswith(b"\x00\x03\x24\x00")


def test_a_stored_message_derives_its_facts_from_its_headers() -> None:
    mime = (
        b"From: =?UTF-8?Q?Ren=C3=A9?= <rene@example.org>\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n"
        b"Message-ID: <m1@example.org>\r\n\r\nhello"
    )
    item = MailStore().add_message("Alex@Contoso.com", mime)
    assert (item.mailbox, item.subject, item.from_address, item.sender) == (
        "alex@contoso.com",
        "caf\u00e9",
        "rene@example.org",
        "rene@example.org",
    )
    assert item.internet_message_id == "<m1@example.org>"
    assert item.size == len(mime)


def _parse_text(text: str, attr: str) -> tuple[str, str]:
    result: dict[str, str] = {}
    parser = expat.ParserCreate()
    parser.StartElementHandler = lambda name, attrs: result.update(attr=attrs["a"])
    parser.CharacterDataHandler = lambda data: result.update(text=result.get("text", "") + data)
    parser.Parse(f'<e a="{attr}">{text}</e>'.encode(), True)
    return result.get("text", ""), result["attr"]


@pytest.mark.parametrize(
    "value",
    ["a\r\nb", "\r", "tab\there", "<&>\"'", "line\nfeed", "  lead and trail  ", "caf\u00e9 \U0001f600"],
)
def test_escaped_text_and_attributes_parse_back_to_exactly_the_same_string(value: str) -> None:
    assert _parse_text(xml_text(value), xml_attr(value)) == (value, value)
