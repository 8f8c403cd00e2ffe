"""A package being written: the message streamed to a temporary folder, then sealed or discarded."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from addin_service.errors import MessageTooLarge
from addin_service.evidence.canonical import SHA256_PREFIX
from addin_service.evidence.fsio import FileDigest, NewFiles, start_writeback, unavailable, write_all
from addin_service.evidence.layout import HEADERS, MESSAGE, METADATA
from addin_service.evidence.ports import SealedPackage
from addin_service.evidence.sealing import Sealer

log = logging.getLogger("addin_service.evidence")

_BUFFER_BYTES = 1024 * 1024
_WRITEBACK_BYTES = 2 * 1024 * 1024


def encode_headers(headers: Sequence[tuple[str, str]]) -> bytes:
    """``headers.txt``: each header as ``Name: value`` + CRLF, the value exactly as given.

    Folded values keep their internal line breaks. Text is UTF-8; a lone surrogate (possible in
    JSON from Graph) is kept as its code point ("surrogatepass") rather than lost or refused.

    :raises TypeError: a name or value is not text.
    """
    out = bytearray()
    for name, value in headers:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("header names and values must be str")
        out += f"{name}: {value}\r\n".encode("utf-8", "surrogatepass")
    return bytes(out)


def encode_metadata(metadata: dict[str, Any]) -> bytes:
    """``metadata.json``: the caller's dict as UTF-8 JSON, sorted keys, indent 2, final newline.

    Text that UTF-8 cannot hold (a lone surrogate) falls back to ASCII ``\\u`` escapes, so odd
    subjects never stop a report from being filed.

    :raises TypeError: something in ``metadata`` is not JSON.
    :raises ValueError: NaN or infinity in ``metadata``.
    """
    text = json.dumps(metadata, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(metadata, sort_keys=True, indent=2, allow_nan=False) + "\n").encode("ascii")


class FilePendingPackage:
    """Writes ``message.eml`` into a private temporary folder, hashing and counting on the way.

    Any failed write discards the temporary folder at once; :meth:`abort` is still safe to call.
    """

    def __init__(self, report_id: str, max_message_bytes: int, work: Path, sealer: Sealer) -> None:
        """:raises OSError: the message file cannot be created in ``work``."""
        self.report_id = report_id
        self._limit = max_message_bytes
        self._work = work
        self._sealer = sealer
        self._hash = hashlib.sha256()
        self._size = 0
        self._written = 0  # bytes of the message in the file
        self._writeback_from = 0  # where the next write-behind starts
        self._buffer = bytearray()
        self._state = "open"
        self._files = NewFiles(work)
        try:
            self._fd = self._files.create(MESSAGE)
        except BaseException:
            self._files.close()
            raise

    @property
    def message_sha256(self) -> str:
        return SHA256_PREFIX + self._hash.hexdigest()

    @property
    def message_size(self) -> int:
        return self._size

    def write(self, data: bytes, /) -> int:
        """Append MIME bytes.

        :raises MessageTooLarge: the message would exceed the limit; the partial file is discarded.
        :raises EvidenceStoreUnavailable: the bytes could not be written; the partial file is discarded.
        :raises RuntimeError: the package is no longer open for writing.
        """
        if self._state == "too-large":
            raise MessageTooLarge(self._limit)
        if self._state != "open":
            raise RuntimeError(f"this evidence package is {self._state}")
        count = memoryview(data).nbytes
        if self._size + count > self._limit:
            self._fail("too-large")
            raise MessageTooLarge(self._limit)
        self._hash.update(data)
        self._size += count
        self._buffer += data
        if len(self._buffer) >= _BUFFER_BYTES:
            try:
                self._flush()
            except OSError as exc:
                self._fail("failed")
                raise unavailable(exc, "write the reported message") from exc
        return count

    def seal(self, case_id: str, headers: tuple[tuple[str, str], ...], metadata: dict[str, Any]) -> SealedPackage:
        """Write headers and metadata, then seal into the ledger (see :class:`Sealer`).

        Whatever happens, the temporary folder is gone afterwards: moved into place or discarded.

        :raises EvidenceStoreUnavailable: anything could not be written; nothing is left in place.
        :raises ValueError: ``case_id`` is malformed, or ``metadata`` holds NaN.
        :raises TypeError: ``headers`` or ``metadata`` hold something that cannot be stored.
        :raises RuntimeError: the package is not open (aborted, failed or already sealed).
        """
        if self._state != "open":
            raise RuntimeError(f"this evidence package is {self._state}")
        try:
            self._flush()
            # Not fsynced one by one: the sealer syncs every file of the package together.
            files = {
                MESSAGE: FileDigest(self.message_sha256, self._size),
                HEADERS: self._files.write(HEADERS, encode_headers(headers)),
                METADATA: self._files.write(METADATA, encode_metadata(metadata)),
            }
            entry = self._sealer.seal(self._files, case_id, self.report_id, files)
        except OSError as exc:
            self._fail("failed")
            raise unavailable(exc, "seal the evidence package") from exc
        except BaseException:
            self._fail("failed")
            raise
        self._state = "sealed"
        self._files.close()
        log.info(
            "evidence sealed",
            extra={
                "event": "evidence.sealed",
                "case_id": case_id,
                "report_id": self.report_id,
                "size": self._size,
                "ledger_sequence": entry.sequence,
            },
        )
        return SealedPackage(
            case_id=case_id,
            report_id=self.report_id,
            message_sha256=self.message_sha256,
            message_size=self._size,
            manifest_sha256=entry.manifest_sha256,
            ledger_sequence=entry.sequence,
            ledger_hash=entry.hash,
        )

    def abort(self) -> None:
        """Discard everything written so far. Safe to call more than once or after seal."""
        if self._state in ("open", "failed", "too-large"):
            self._discard()
            if self._state == "open":
                self._state = "aborted"

    def _flush(self) -> None:
        if self._buffer:
            pending, self._buffer = self._buffer, bytearray()
            write_all(self._fd, pending)
            self._written += len(pending)
            if self._written - self._writeback_from >= _WRITEBACK_BYTES:
                start_writeback(self._fd, self._writeback_from, self._written - self._writeback_from)
                self._writeback_from = self._written

    def _fail(self, state: str) -> None:
        self._state = state
        self._discard()

    def _discard(self) -> None:
        self._buffer = bytearray()
        self._files.close()
        shutil.rmtree(self._work, ignore_errors=True)
        if os.path.lexists(self._work):
            log.warning(
                "could not remove discarded evidence work folder %s",
                self._work,
                extra={"event": "evidence.discard"},
            )
