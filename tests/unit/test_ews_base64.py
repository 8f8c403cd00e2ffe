"""Incremental base64 decoding of MimeContent (addin_service.mail.ews_base64)."""

from __future__ import annotations

import base64

import pytest

from addin_service.mail.ews_base64 import Base64Error, Base64StreamDecoder

PAYLOAD = bytes(range(256)) * 7 + b"\x00\xff\r\n tail"  # not a multiple of 3: padding at the end


def decode_in_pieces(text: str, size: int) -> bytes:
    out: list[bytes] = []
    decoder = Base64StreamDecoder(out.append)
    for start in range(0, len(text), size):
        decoder.feed(text[start : start + size])
    decoder.close()
    return b"".join(out)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 4096])
def test_text_split_anywhere_decodes_to_the_original_bytes(size: int) -> None:
    text = base64.b64encode(PAYLOAD).decode()
    assert decode_in_pieces(text, size) == PAYLOAD


def test_line_breaks_and_spaces_inside_the_text_are_ignored() -> None:
    encoded = base64.encodebytes(PAYLOAD).decode().replace("\n", "\r\n  \t")
    assert decode_in_pieces(encoded, 13) == PAYLOAD


def test_content_without_its_final_padding_is_accepted() -> None:
    text = base64.b64encode(b"ab").decode().rstrip("=")
    assert decode_in_pieces(text, 1) == b"ab"


def test_empty_content_decodes_to_nothing() -> None:
    assert decode_in_pieces("", 1) == b""


def test_counts_the_bytes_it_has_written() -> None:
    decoder = Base64StreamDecoder(lambda data: None)
    decoder.feed(base64.b64encode(b"12345").decode())
    decoder.close()
    assert decoder.decoded == 5


def test_a_character_outside_the_alphabet_is_an_error() -> None:
    decoder = Base64StreamDecoder(lambda data: None)
    with pytest.raises(Base64Error):
        decoder.feed("QUJD*EVG")


def test_text_after_the_padding_is_an_error() -> None:
    decoder = Base64StreamDecoder(lambda data: None)
    decoder.feed("QQ==")
    with pytest.raises(Base64Error):
        decoder.feed("QUJD")


@pytest.mark.parametrize("text", ["QQ==QUJD", "QU=DQUJD", "====QUJD", "QUJD-_JD"])
def test_padding_inside_a_piece_or_the_url_safe_alphabet_is_an_error(text: str) -> None:
    decoder = Base64StreamDecoder(lambda data: None)
    with pytest.raises(Base64Error):
        decoder.feed(text)


def test_a_large_piece_decodes_exactly() -> None:
    payload = bytes(range(256)) * 40_000  # ten megabytes, one piece: the vectorised path
    out: list[bytes] = []
    decoder = Base64StreamDecoder(out.append)
    decoder.feed(base64.b64encode(payload).decode())
    decoder.close()
    assert b"".join(out) == payload


def test_a_dangling_single_character_is_an_error() -> None:
    decoder = Base64StreamDecoder(lambda data: None)
    decoder.feed("QUJDR")
    with pytest.raises(Base64Error):
        decoder.close()


def test_non_ascii_text_is_an_error() -> None:
    decoder = Base64StreamDecoder(lambda data: None)
    with pytest.raises(Base64Error):
        decoder.feed("QUJ\u00e9")


def test_errors_raised_by_the_writer_pass_through_untouched() -> None:
    class Full(Exception):
        pass

    def refuse(data: bytes) -> None:
        raise Full

    decoder = Base64StreamDecoder(refuse)
    with pytest.raises(Full):
        decoder.feed("QUJD")
