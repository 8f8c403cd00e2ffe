"""A MIME sink that passes bytes through and keeps a copy of the header block for parsing."""

from __future__ import annotations

from addin_service.mail.ports import MimeSink

HEADER_BLOCK_LIMIT = 1024 * 1024


class HeaderTee:
    """Forward every byte to ``target``; remember bytes up to the first blank line (or 1 MiB).

    The copy is only for metadata parsing: the stored message is what ``target`` received.
    """

    def __init__(self, target: MimeSink, limit: int = HEADER_BLOCK_LIMIT) -> None:
        self._target = target
        self._limit = limit
        self._head = bytearray()
        self._done = False

    def write(self, data: bytes, /) -> int:
        written = self._target.write(data)
        if not self._done:
            self._head.extend(data[: self._limit - len(self._head)])
            if b"\r\n\r\n" in self._head or b"\n\n" in self._head or len(self._head) >= self._limit:
                self._done = True
        return written

    @property
    def header_block(self) -> bytes:
        return bytes(self._head)
