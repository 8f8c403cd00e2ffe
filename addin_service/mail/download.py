"""Reading a streamed HTTP body as evidence: every byte accounted for, and never forever.

``requests``' ``iter_content`` is not enough for a message that is filed as evidence:

* it decodes ``Content-Encoding: gzip`` without checking that the compressed stream was complete,
  so a body cut short at a clean HTTP boundary would be stored as the whole message;
* it reads fixed-size blocks, each of which may wait on a server that sends one byte at a time, so
  a per-read timeout never fires while the download takes hours.

:func:`body_chunks` reads what arrives (``read1``), counts the bytes on the wire against
``Content-Length``, decodes gzip or deflate itself and insists on the end of the compressed stream,
and gives up once the download falls behind a floor rate after the waiting budget.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

import requests
import urllib3

from addin_service.untrusted_numbers import decimal

# Once the capture's waiting budget is spent, a download must have averaged at least this rate
# (bytes received per second of the time past the budget) to go on: a 100 MB message may take
# over three minutes, a server sending a byte every second may not hold a report for hours.
MIN_BYTES_PER_SECOND = 512 * 1024
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class DownloadFailed(Exception):
    """The body did not arrive whole (cut short, undecodable, or too slow); nothing it gave is usable."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def declared_length(response: requests.Response) -> int | None:
    """``Content-Length`` when the body is not encoded (so it is the size of what is stored)."""
    if _encoding(response) != "identity":
        return None
    return decimal(response.headers.get("Content-Length"))


def body_chunks(
    response: requests.Response,
    *,
    chunk_size: int,
    deadline: float,
    clock: Callable[[], float],
) -> Iterator[bytes]:
    """The decoded body of a ``stream=True`` response, piece by piece as it arrives.

    :raises DownloadFailed: the connection broke, fewer bytes came than ``Content-Length`` said, a
        compressed body stopped before its end or is not a known encoding, or after ``deadline`` the
        download fell below :data:`MIN_BYTES_PER_SECOND`.
    """
    encoding = _encoding(response)
    if encoding != "identity" and encoding not in _DECODERS:
        raise DownloadFailed(f"unsupported Content-Encoding {encoding!r}")
    decoder = zlib.decompressobj(_DECODERS[encoding]) if encoding != "identity" else None
    raw = response.raw
    expected = response.headers.get("Content-Length", "").strip()
    on_wire = 0
    try:
        while True:
            data = raw.read1(chunk_size, decode_content=False)
            if not data:
                break
            on_wire += len(data)
            if clock() > deadline + on_wire / MIN_BYTES_PER_SECOND:
                raise DownloadFailed("too slow")
            if decoder is None:
                yield data
                continue
            if decoder.eof:
                raise DownloadFailed(f"data after the end of the {encoding} body")
            try:
                yield from _inflate(decoder, data, chunk_size)
            except zlib.error:
                raise DownloadFailed(f"{encoding} body does not decode") from None
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        raise DownloadFailed(type(exc).__name__) from None
    if (length := decimal(expected)) is not None and on_wire != length:
        raise DownloadFailed("fewer bytes than Content-Length")
    if decoder is not None and not decoder.eof:
        raise DownloadFailed(f"{encoding} body cut short")


def _inflate(decoder: zlib._Decompress, data: bytes, chunk_size: int) -> Iterator[bytes]:
    """Decode in slices of at most ``chunk_size`` so that a small bomb never becomes one big buffer."""
    while data:
        out = decoder.decompress(data, chunk_size)
        if out:
            yield out
        data = decoder.unconsumed_tail
        if decoder.eof:
            if decoder.unused_data:
                raise DownloadFailed("data after the end of the compressed body")
            return


def _encoding(response: requests.Response) -> str:
    return response.headers.get("Content-Encoding", "identity").strip().lower() or "identity"
