"""A streamed message body is either every byte the server meant or a failure: real sockets on loopback
answering with bodies cut short behind correct frames, compressed bodies that stop early, and a
server sending one byte at a time."""

from __future__ import annotations

import gzip
import time
import zlib

import pytest
import requests

from addin_service.mail.download import DownloadFailed, body_chunks, declared_length
from tests.fakes.scripted_http import ScriptedHttpServer, response_head


def served(packed: bytes, encoding: str) -> ScriptedHttpServer:
    """A server answering ``packed`` with that Content-Encoding and a correct Content-Length."""
    head = response_head(f"Content-Encoding: {encoding}", f"Content-Length: {len(packed)}")
    return ScriptedHttpServer([head, packed])


MESSAGE = b"From: someone@example.net\r\nSubject: evidence\r\n\r\n" + b"line of the body\r\n" * 4000


def download(server: ScriptedHttpServer, *, budget: float = 30.0, chunk_size: int = 4096) -> bytes:
    response = requests.get(server.url, stream=True, timeout=5, headers={"Accept-Encoding": "identity"})
    try:
        deadline = time.monotonic() + budget
        return b"".join(body_chunks(response, chunk_size=chunk_size, deadline=deadline, clock=time.monotonic))
    finally:
        response.close()


def test_a_whole_body_arrives_byte_for_byte() -> None:
    pieces = [response_head(f"Content-Length: {len(MESSAGE)}"), MESSAGE[:1000], MESSAGE[1000:]]
    with ScriptedHttpServer(pieces) as server:
        assert download(server) == MESSAGE


def test_a_chunked_body_arrives_byte_for_byte() -> None:
    framed = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in (MESSAGE[:5], MESSAGE[5:])) + b"0\r\n\r\n"
    with ScriptedHttpServer([response_head("Transfer-Encoding: chunked"), framed]) as server:
        assert download(server) == MESSAGE


def test_a_body_shorter_than_its_content_length_fails() -> None:
    pieces = [response_head(f"Content-Length: {len(MESSAGE)}"), MESSAGE[:-1]]
    with ScriptedHttpServer(pieces) as server, pytest.raises(DownloadFailed):
        download(server)


def test_a_complete_gzip_body_is_decoded_exactly() -> None:
    packed = gzip.compress(MESSAGE)
    with served(packed, "gzip") as server:
        assert download(server) == MESSAGE


def test_a_gzip_body_cut_short_behind_a_correct_frame_fails() -> None:
    """urllib3 would hand over the first part as if it were the whole message."""
    packed = gzip.compress(MESSAGE)[: len(gzip.compress(MESSAGE)) // 2]
    with served(packed, "gzip") as server, pytest.raises(DownloadFailed, match="cut short"):
        download(server)


def test_data_after_the_end_of_a_compressed_body_fails() -> None:
    packed = gzip.compress(MESSAGE) + gzip.compress(b"a second member")
    with served(packed, "gzip") as server, pytest.raises(DownloadFailed, match="after the end"):
        download(server, chunk_size=1 << 20)


def test_a_deflate_body_is_decoded_and_an_unknown_encoding_refused() -> None:
    packed = zlib.compress(MESSAGE)
    with served(packed, "deflate") as server:
        assert download(server) == MESSAGE
    with served(b"abcd", "br") as server, pytest.raises(DownloadFailed, match="unsupported"):
        download(server)


def test_a_server_sending_a_byte_at_a_time_is_given_up_on_after_the_budget() -> None:
    body = MESSAGE[:400]
    pieces = [response_head(f"Content-Length: {len(body)}"), *(body[i : i + 1] for i in range(len(body)))]
    slow = ScriptedHttpServer(pieces, pause=0.01)  # 4 s for the whole body, each read quick
    with slow as server, pytest.raises(DownloadFailed, match="too slow"):
        download(server, budget=0.5)


def test_only_an_unencoded_content_length_is_the_size_of_what_is_stored() -> None:
    def headers(**values: str) -> requests.Response:
        response = requests.Response()
        response.headers.update(values)
        return response

    assert declared_length(headers(**{"Content-Length": "42"})) == 42
    assert declared_length(headers(**{"Content-Length": "42", "Content-Encoding": "gzip"})) is None
    assert declared_length(headers(**{"Content-Length": "4x2"})) is None
