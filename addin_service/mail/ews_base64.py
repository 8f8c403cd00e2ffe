"""Incremental base64 decoding, so a 100 MB ``MimeContent`` never sits in memory whole.

XML parsers hand character data over in arbitrary pieces: a piece may end in the middle of a
4-character base64 quantum and may contain line breaks. The decoder keeps the (at most three)
characters that do not yet make a whole quantum and writes whole quanta straight to the sink.

Decoding is pybase64's (SIMD): CPython's ``binascii.a2b_base64`` decodes about 150–250 MB/s on
this project's machines, which made decoding the largest single cost of capturing a big message
(about 30 ms of every 5 MB); pybase64 with ``validate=True`` refuses the same malformed input
(characters outside the alphabet, padding anywhere but at the end) at several GB/s.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable

import pybase64

_WHITESPACE = b" \t\r\n"
_WHITESPACE_BYTES = tuple(bytes([c]) for c in _WHITESPACE)


class Base64Error(ValueError):
    """The text is not valid base64 (a character outside the alphabet, or a bad length)."""


class Base64StreamDecoder:
    """Decode base64 text fed in pieces and pass the bytes to ``write`` as soon as they are whole."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write
        self._pending = b""
        self._finished = False
        self.decoded = 0  # bytes passed to ``write`` so far

    def feed(self, text: str) -> None:
        """Decode another piece of base64 text.

        :raises Base64Error: the text is not base64, or data follows the final padding.
        """
        try:
            data = text.encode("ascii")
        except UnicodeEncodeError:
            raise Base64Error("non-ASCII character in base64 content") from None
        # Exchange sends MimeContent as one line; looking for whitespace is much cheaper than deleting it.
        if any(space in data for space in _WHITESPACE_BYTES):
            data = data.translate(None, _WHITESPACE)
        if not data:
            return
        if self._finished:
            raise Base64Error("base64 content continues after its padding")
        data = self._pending + data
        whole = len(data) - len(data) % 4
        self._pending = data[whole:]
        if whole:
            self._emit(data[:whole])

    def close(self) -> None:
        """Decode what is left, accepting content whose final padding was left out.

        :raises Base64Error: a dangling single character, which no base64 text can end with.
        """
        if not self._pending:
            return
        if len(self._pending) == 1:
            raise Base64Error("base64 content ends in the middle of a quantum")
        pending, self._pending = self._pending, b""
        self._emit(pending + b"=" * (4 - len(pending)))

    def _emit(self, quanta: bytes) -> None:
        if self._finished:
            raise Base64Error("base64 content continues after its padding")
        try:
            decoded = pybase64.b64decode(quanta, validate=True)
        except binascii.Error as exc:
            raise Base64Error(f"invalid base64 content ({exc})") from None
        if quanta.endswith(b"="):
            self._finished = True
        if decoded:
            self._write(decoded)
            self.decoded += len(decoded)
