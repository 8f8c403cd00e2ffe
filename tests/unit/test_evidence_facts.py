"""message_facts: display facts from the header block; broken input is recorded, never raised."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from addin_service.evidence.facts import message_facts

GOOD = (
    b"From: =?utf-8?q?Doe=2C_Jane?= <jane@example.net>\r\n"
    b"Sender: relay@example.net\r\n"
    b'To: reporter@contoso.com, "Second" <second@contoso.com>\r\n'
    b"Cc: boss@contoso.com\r\n"
    b"Subject: =?utf-8?b?R3LDvMOfZQ==?= from =?iso-8859-1?q?J=FCrgen?=\r\n"
    b"Date: Tue, 25 Nov 2026 10:00:00 +0100\r\n"
    b"Message-ID: <threat-1@example.net>\r\n"
    b"In-Reply-To: <earlier@contoso.com>\r\n"
    b"References: <first@contoso.com>\r\n <earlier@contoso.com>\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
)


def facts_of(data: bytes) -> dict[str, Any]:
    return message_facts(io.BytesIO(data))


def test_display_values_have_encoded_words_decoded() -> None:
    facts = facts_of(GOOD)
    assert facts["from"] == "Doe, Jane <jane@example.net>"
    assert facts["subject"] == "Grüße from Jürgen"


def test_addresses_are_parsed_before_decoding_so_commas_in_names_do_not_split_them() -> None:
    facts = facts_of(GOOD)
    assert facts["addresses"] == {
        "from": ["jane@example.net"],
        "sender": ["relay@example.net"],
        "reply_to": [],
        "to": ["reporter@contoso.com", "second@contoso.com"],
        "cc": ["boss@contoso.com"],
    }
    assert (facts["from_address"], facts["sender_address"]) == ("jane@example.net", "relay@example.net")


def test_date_is_kept_as_given_and_converted_to_utc() -> None:
    facts = facts_of(GOOD)
    assert facts["date"] == "Tue, 25 Nov 2026 10:00:00 +0100"
    assert facts["date_utc"] == "2026-11-25T09:00:00Z"


@pytest.mark.parametrize(
    ("date", "utc"),
    [
        ("Mon, 1 Jan 0001 10:00:00 +0000", "0001-01-01T10:00:00Z"),  # the standard library says 2001
        ("1 Jan 0099 10:00:00 +0000", "0099-01-01T10:00:00Z"),
        ("Sat, 1 Jan 55 10:00:00 +0000", "1955-01-01T10:00:00Z"),  # RFC 5322 4.3: 50-99 are 19xx
        ("1 Jan 49 10:00:00 +0000", "2049-01-01T10:00:00Z"),
        ("1 Jan 101 10:00:00 +0000", "2001-01-01T10:00:00Z"),  # three digits: 1900 + the number
        ("25 Nov 2026 10:00:00 +0100", "2026-11-25T09:00:00Z"),
    ],
)
def test_the_year_is_read_as_rfc_5322_says(date: str, utc: str) -> None:
    facts = facts_of(f"From: x@example.net\r\nDate: {date}\r\n\r\n".encode())

    assert facts["date_utc"] == utc


def test_a_year_one_date_east_of_greenwich_is_recorded_not_raised() -> None:
    facts = facts_of(b"From: x@example.net\r\nDate: 1 Jan 0001 00:30:00 +0100\r\n\r\n")

    assert facts["date_utc"] is None
    assert "Date: not a date this parser understands" in facts["parse_errors"]


@pytest.mark.parametrize("date", ["Fri, 31 Dec 9999 23:59:59 -0100", "31 Dec 9999 23:59:59 -0001"])
def test_a_date_past_the_last_year_python_knows_is_recorded_not_raised(date: str) -> None:
    """A sender chooses the Date header: it must never make their message impossible to report."""
    facts = facts_of(f"From: x@example.net\r\nDate: {date}\r\n\r\n".encode())

    assert facts["date"] == date and facts["date_utc"] is None
    assert "Date: not a date this parser understands" in facts["parse_errors"]
    assert facts["from_address"] == "x@example.net"


def test_a_parser_failure_gives_empty_facts_that_say_why(monkeypatch: pytest.MonkeyPatch) -> None:
    import addin_service.evidence.facts as module

    def broken(*_: object) -> object:
        raise RuntimeError("a parser bug")

    usual_keys = set(facts_of(GOOD))
    monkeypatch.setattr(module, "_raw_headers", broken)

    facts = facts_of(GOOD)

    assert set(facts) == usual_keys  # metadata.json keeps its shape
    assert facts["from_address"] is None and facts["addresses"]["from"] == []
    assert facts["parse_errors"] == [
        "the header block could not be parsed (RuntimeError); the message is stored as received"
    ]


def test_message_ids_are_unfolded() -> None:
    facts = facts_of(GOOD)
    assert facts["message_id"] == "<threat-1@example.net>"
    assert facts["in_reply_to"] == "<earlier@contoso.com>"
    assert facts["references"] == "<first@contoso.com> <earlier@contoso.com>"


def test_multipart_mixed_is_guessed_to_carry_attachments() -> None:
    facts = facts_of(GOOD)
    assert (facts["content_type"], facts["has_attachments"]) == ("multipart/mixed", True)


def test_a_well_formed_message_has_no_parse_errors() -> None:
    assert facts_of(GOOD)["parse_errors"] == []


def test_reading_stops_at_the_first_blank_line() -> None:
    body = b"From: not-a-header-but-body@example.net\r\n" + b"x" * 10_000
    stream = io.BytesIO(b"Subject: hi\r\n\r\n" + body)
    facts = message_facts(stream)
    assert facts["from"] is None
    assert stream.read() == body


def test_reading_is_capped_and_the_cap_is_recorded() -> None:
    stream = io.BytesIO(b"Subject: " + b"a" * 5000 + b"\r\n\r\nbody")
    facts = message_facts(stream, limit=1000)
    assert stream.tell() <= 1001
    assert any("longer than 1000 bytes" in e for e in facts["parse_errors"])


def test_a_path_is_read_like_a_stream(tmp_path: Path) -> None:
    path = tmp_path / "message.eml"
    path.write_bytes(GOOD + b"body")
    assert message_facts(path) == facts_of(GOOD)


@pytest.mark.parametrize(
    ("message", "recorded"),
    [
        (b"From: a\x00b <a@b.example>\r\n\r\n", "NUL bytes"),
        (b"Subject: Gr\xc3\xbc\xff\xfe\r\n\r\n", "8-bit bytes"),
        (b"Subject: one\rtwo\r\n\r\n", "CR characters without LF"),
        (b"Subject: one\r\nTo: a@b.example\n\n", "mixes CRLF and LF"),
        (b"Content-Type: multipart/mixed\r\n\r\n", "multipart without a boundary"),
        (b"Content-Type: ;;;\r\n\r\n", "Content-Type: not understood"),
        (b"Subject: =?x-klingon?q?qapla?=\r\n\r\n", "unknown character set"),
        (b"Date: the day after tomorrow\r\n\r\n", "Date: not a date"),
        (b"From: a@b.example\r\nFrom: c@d.example\r\n\r\n", "From appears 2 times"),
        (b"From: nobody at all\r\n\r\n", "From: no address could be read"),
        (b"this is not a header\r\n\r\n", "MissingHeaderBodySeparatorDefect"),
        (b"", "no header fields were found"),
        (random.Random(7).randbytes(4096).replace(b"\n", b"") + b"\n\n", "8-bit bytes"),
    ],
    ids=[
        "nul",
        "8bit",
        "bare-cr",
        "mixed-eol",
        "no-boundary",
        "bad-content-type",
        "unknown-charset",
        "bad-date",
        "two-froms",
        "no-address",
        "no-colon",
        "empty",
        "random-bytes",
    ],
)
def test_broken_messages_give_facts_and_record_the_problem(message: bytes, recorded: str) -> None:
    facts = facts_of(message)
    assert any(recorded in error for error in facts["parse_errors"]), facts["parse_errors"]


def test_a_200_kb_folded_header_is_unfolded_without_error() -> None:
    folded = b"Subject: start" + b"\r\n word" * 30_000 + b"\r\n\r\n"
    assert len(folded) > 200_000
    facts = facts_of(folded)
    assert facts["subject"] == "start" + " word" * 30_000
    assert facts["parse_errors"] == []


def test_facts_are_json_serialisable_even_from_binary_garbage() -> None:
    facts = facts_of(b"Subject: \xff\xfe\xed\r\nFrom: =?utf-8?b?/w==?= <a@b.example>\r\n\r\n")
    json.dumps(facts, ensure_ascii=False).encode("utf-8")


def test_hundreds_of_random_corruptions_never_raise() -> None:
    rng = random.Random(2026)
    alphabet = b'=?:;<>"(),@ \t\r\n\x00\xff\xc3QBqb'
    for _ in range(500):
        data = bytearray(GOOD)
        for _ in range(rng.randint(1, 12)):
            position = rng.randrange(len(data) + 1)
            if rng.random() < 0.5:
                data[position:position] = bytes([rng.choice(alphabet)])
            elif data:
                del data[min(position, len(data) - 1)]
        json.dumps(facts_of(bytes(data)))
