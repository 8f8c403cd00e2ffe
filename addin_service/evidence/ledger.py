"""The append-only, hash-chained, signed ledger (``ledger/ledger.jsonl``) and its lock.

One JSON line per sealed package. Each entry's ``hash`` is ``sha256:<hex>`` over the canonical
JSON of its other content fields (``sequence``, ``case_id``, ``report_id``, ``manifest_sha256``,
``previous_hash``, ``at``); ``previous_hash`` is the hash of the entry before (null for the
first), so removing, inserting, reordering or editing lines breaks the chain; ``signature`` is
Ed25519 over the ASCII text of ``hash``. Writers serialise on an ``flock`` of ``ledger.lock``
(several processes) and a thread lock (several threads of one process).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from addin_service.errors import EvidenceStoreUnavailable
from addin_service.evidence import signing
from addin_service.evidence.canonical import canonical_json, is_sha256_tag, sha256_tag
from addin_service.evidence.fsio import NotRegularFile, fsync_dir, open_regular, read_regular, write_all
from addin_service.evidence.keys import Signer
from addin_service.ids import is_case_id, is_report_id

log = logging.getLogger("addin_service.evidence")

LEDGER_NAME = "ledger.jsonl"
LOCK_NAME = "ledger.lock"
_FIELDS = ("at", "case_id", "hash", "manifest_sha256", "previous_hash", "report_id", "sequence", "signature")
_MAX_LINE = 64 * 1024
_FLOCK_FIRST_POLL = 0.0005
_FLOCK_LONGEST_POLL = 0.002


class LedgerUnusable(Exception):
    """The ledger's last entry cannot be chained onto; ``str(exc)`` says why, for an administrator."""


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger line. Instances built by :meth:`parse` always hold well-formed ids and hashes."""

    sequence: int
    case_id: str
    report_id: str
    manifest_sha256: str
    previous_hash: str | None
    at: str
    hash: str
    signature: str

    def hashed_content(self) -> dict[str, Any]:
        """The fields that ``hash`` covers."""
        return {
            "sequence": self.sequence,
            "case_id": self.case_id,
            "report_id": self.report_id,
            "manifest_sha256": self.manifest_sha256,
            "previous_hash": self.previous_hash,
            "at": self.at,
        }

    def computed_hash(self) -> str:
        """What ``hash`` must be for these contents."""
        return sha256_tag(canonical_json(self.hashed_content()))

    def signature_valid(self, key: Ed25519PublicKey) -> bool:
        return signing.verify(key, self.hash.encode("ascii"), self.signature)

    def to_line(self) -> bytes:
        """The entry as one canonical JSON line, newline-terminated."""
        return canonical_json({**self.hashed_content(), "hash": self.hash, "signature": self.signature}) + b"\n"

    @classmethod
    def create(
        cls,
        previous: LedgerEntry | None,
        case_id: str,
        report_id: str,
        manifest_sha256: str,
        at: str,
        signer: Signer,
    ) -> LedgerEntry:
        """The entry that follows ``previous`` (None: the first), hashed and signed."""
        unsigned = cls(
            sequence=1 if previous is None else previous.sequence + 1,
            case_id=case_id,
            report_id=report_id,
            manifest_sha256=manifest_sha256,
            previous_hash=None if previous is None else previous.hash,
            at=at,
            hash="",
            signature="",
        )
        digest = unsigned.computed_hash()
        return replace(unsigned, hash=digest, signature=signer.sign(digest.encode("ascii")))

    @classmethod
    def parse(cls, raw: bytes) -> LedgerEntry:
        """Parse one line (without its newline).

        :raises ValueError: not JSON, or not the shape of a ledger entry; the message says why.
        """
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError("not valid JSON") from None
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        if set(obj) != set(_FIELDS):
            raise ValueError(f"fields are {sorted(obj)}, expected {list(_FIELDS)}")
        seq = obj["sequence"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError("sequence is not a positive whole number")
        if not (isinstance(obj["case_id"], str) and is_case_id(obj["case_id"])):
            raise ValueError("case_id is not a case id")
        if not (isinstance(obj["report_id"], str) and is_report_id(obj["report_id"])):
            raise ValueError("report_id is not a report id")
        for name in ("manifest_sha256", "hash"):
            if not is_sha256_tag(obj[name]):
                raise ValueError(f"{name} is not a sha256:<hex> value")
        if obj["previous_hash"] is not None and not is_sha256_tag(obj["previous_hash"]):
            raise ValueError("previous_hash is neither null nor a sha256:<hex> value")
        if not isinstance(obj["at"], str) or not isinstance(obj["signature"], str):
            raise ValueError("at or signature is not text")
        return cls(**obj)


@dataclass(frozen=True)
class LedgerLine:
    """A line of the ledger file as read: its entry, or why it is not one."""

    number: int
    raw: bytes
    entry: LedgerEntry | None
    error: str | None


def split_lines(data: bytes) -> list[LedgerLine]:
    """Parse the whole ledger file's bytes, line by line, keeping failures in place."""
    if not data:
        return []
    pieces = data.split(b"\n")
    torn = pieces[-1] != b""
    if not torn:
        pieces.pop()
    lines: list[LedgerLine] = []
    for number, raw in enumerate(pieces, start=1):
        if torn and number == len(pieces):
            lines.append(
                LedgerLine(number, raw, None, "the last line is incomplete (a write was interrupted)")
            )
            continue
        try:
            lines.append(LedgerLine(number, raw, LedgerEntry.parse(raw), None))
        except ValueError as exc:
            lines.append(LedgerLine(number, raw, None, f"not a valid ledger entry: {exc}"))
    return lines


@dataclass(frozen=True)
class _Tail:
    """The last line this object read or appended, and the key its entry is known to be signed by."""

    line: bytes  # exactly as in the file, newline included
    entry: LedgerEntry
    key: Ed25519PublicKey | None


class Ledger:
    """The ledger file in ``directory`` and the lock that serialises writers."""

    def __init__(self, directory: Path, lock_timeout: float = 30.0) -> None:
        self.directory = directory
        self.path = directory / LEDGER_NAME
        self.lock_path = directory / LOCK_NAME
        self._timeout = lock_timeout
        self._thread_lock = threading.Lock()
        self._tail: _Tail | None = None  # read and written under the writers' lock only

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the writers' lock (threads and processes).

        :raises EvidenceStoreUnavailable: the lock was not obtained within the timeout.
        :raises OSError: the lock file cannot be opened or is not a regular file.
        """
        started = time.monotonic()
        if not self._thread_lock.acquire(timeout=self._timeout):
            raise self._busy()
        try:
            fd = self._open_lock(os.O_RDWR | os.O_CREAT)
            try:
                # One timeout for both waits, behind this process's writers and then another's.
                self._flock(fd, fcntl.LOCK_EX, max(0.0, self._timeout - (time.monotonic() - started)))
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the flock
        finally:
            self._thread_lock.release()

    @contextmanager
    def shared(self, timeout: float | None = None) -> Iterator[None]:
        """Hold a readers' lock, so a snapshot never sees a seal half done; wait at most
        ``timeout`` seconds for a writer (default: the ledger's lock timeout).

        On a read-only copy of the store (no lock file, cannot create one) nobody can be
        writing, so the snapshot proceeds without a lock.

        :raises EvidenceStoreUnavailable: a writer held the lock for longer than the timeout.
        :raises NotRegularFile: the lock file is a FIFO, a device, a socket or a folder.
        """
        fd: int | None = None
        for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
            try:
                fd = self._open_lock(flags)
                break
            except NotRegularFile:
                raise  # not a read-only copy: something has taken the lock file's place
            except OSError:
                continue
        try:
            if fd is not None:
                self._flock(fd, fcntl.LOCK_SH, timeout)
            yield
        finally:
            if fd is not None:
                os.close(fd)

    def read_bytes(self) -> bytes:
        """The whole ledger file (empty if there is none yet). Call under a lock.

        :raises NotRegularFile: it is a FIFO, a device, a socket or a folder (never waited on).
        :raises OSError: it exists but cannot be read, or is a symbolic link.
        """
        try:
            return read_regular(self.path)
        except FileNotFoundError:
            return b""

    def unreadable(self, exc: OSError) -> str | None:
        """Why the ledger cannot be read, in words, when ``exc`` came from opening or reading the
        ledger file or opening its lock file (:meth:`read_bytes`, :meth:`shared`); else None."""
        if exc.filename is None:
            return None
        path = Path(os.fsdecode(exc.filename))
        if path not in (self.path, self.lock_path):
            return None
        why = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror or type(exc).__name__
        return f"{self.directory.name}/{path.name} cannot be read ({why})"

    def _open_lock(self, flags: int) -> int:
        """The lock file opened with ``flags``; never waits, even on a FIFO put in its place.

        :raises NotRegularFile: it is not a regular file.
        :raises OSError: it cannot be opened.
        """
        return open_regular(self.lock_path, flags, 0o600, follow=True)

    def last_entry(self, key: Ed25519PublicKey) -> LedgerEntry | None:
        """The entry to chain onto, checked: well formed, its hash right and signed by ``key``.

        Reads only the end of the file. When that is still exactly the line this object last
        checked or appended, its entry is returned without parsing and verifying it again; any
        other writer's append or any edit of the line changes those bytes. Call under
        :meth:`exclusive`.

        :raises LedgerUnusable: the last line is torn, malformed, edited or signed by another key.
        :raises OSError: the ledger cannot be read.
        """
        with self._opened() as opened:
            if opened is None:
                return None
            fd, size = opened
            remembered = self._remembered_tail(fd, size, key)
            if remembered is not None:
                return remembered
            raw = self._complete_last_line(fd, size)
        entry = _parsed_last(raw)
        if entry.computed_hash() != entry.hash:
            raise LedgerUnusable("the ledger's last entry does not match its hash (it was edited)")
        if not entry.signature_valid(key):
            raise LedgerUnusable("the ledger's last entry is not signed by this service's key")
        self._tail = _Tail(raw + b"\n", entry, key)
        return entry

    def head(self) -> LedgerEntry | None:
        """The newest entry as written (parsed, not checked; ``verify`` checks), None when the
        ledger is empty. Call under :meth:`shared` or :meth:`exclusive`.

        :raises LedgerUnusable: the last line is torn or not an entry.
        :raises OSError: the ledger cannot be read.
        """
        with self._opened() as opened:
            if opened is None:
                return None
            raw = self._complete_last_line(*opened)
        return _parsed_last(raw)

    def append(self, entry: LedgerEntry, *, signed_by: Ed25519PublicKey | None = None) -> None:
        """Append ``entry`` and fsync. On failure the file is cut back to its previous length, so a
        failed append never leaves a torn line behind. Call under :meth:`exclusive`.

        ``signed_by``: the key whose private half just signed ``entry``; the next
        :meth:`last_entry` with that key then need not verify the signature again.

        :raises OSError: the entry could not be written durably.
        """
        self._tail = None
        line = entry.to_line()
        fd, created = self._open_for_append()
        try:
            if created:
                fsync_dir(self.directory)
            before = os.fstat(fd).st_size
            try:
                write_all(fd, line)
                os.fsync(fd)
            except OSError:
                self._cut_back(fd, before)
                raise
        finally:
            os.close(fd)
        self._tail = _Tail(line, entry, signed_by)

    def _open_for_append(self) -> tuple[int, bool]:
        """The ledger opened for appending, and whether this call created it.

        :raises OSError: it cannot be opened, is a symbolic link or is not a regular file.
        """
        flags = os.O_WRONLY | os.O_APPEND
        try:
            return open_regular(self.path, flags), False
        except FileNotFoundError:
            pass
        try:
            return open_regular(self.path, flags | os.O_CREAT | os.O_EXCL, 0o600), True
        except FileExistsError:
            return open_regular(self.path, flags), False

    def _remembered_tail(self, fd: int, size: int, key: Ed25519PublicKey) -> LedgerEntry | None:
        """The remembered last entry if the file of ``size`` bytes still ends with exactly its line
        (and a line break before it) and it is known to be signed by ``key``; else None."""
        tail = self._tail
        if tail is None or tail.key is not key or len(tail.line) > size:
            return None
        expected = tail.line if len(tail.line) == size else b"\n" + tail.line
        if os.pread(fd, len(expected), size - len(expected)) != expected:
            return None
        return tail.entry

    def _cut_back(self, fd: int, size: int) -> None:
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as exc:
            log.critical(
                "could not undo a failed ledger append; `addin-service evidence verify` will report a "
                "torn last line in %s: %s",
                self.path,
                exc,
                extra={"event": "evidence.ledger_torn"},
            )

    @contextmanager
    def _opened(self) -> Iterator[tuple[int, int] | None]:
        """The ledger opened for reading, as (descriptor, size); None when it is missing or empty.

        :raises OSError: it cannot be opened, is a symbolic link or is not a regular file.
        """
        try:
            fd = open_regular(self.path)
        except FileNotFoundError:
            yield None
            return
        try:
            size = os.fstat(fd).st_size
            yield (fd, size) if size else None
        finally:
            os.close(fd)

    def _complete_last_line(self, fd: int, size: int) -> bytes:
        """The last line of a non-empty ledger, without its newline.

        :raises LedgerUnusable: the file does not end in a newline (a write was interrupted).
        """
        if os.pread(fd, 1, size - 1) != b"\n":
            raise LedgerUnusable("the ledger's last line is incomplete (a write was interrupted)")
        return self._last_line(fd, size - 1)

    @staticmethod
    def _last_line(fd: int, end: int) -> bytes:
        """Bytes from the last newline before ``end`` (exclusive) up to ``end``."""
        line = b""
        pos = end
        while pos > 0:
            start = max(0, pos - 4096)
            chunk = os.pread(fd, pos - start, start)
            cut = chunk.rfind(b"\n")
            if cut != -1:
                return chunk[cut + 1 :] + line
            line = chunk + line
            if len(line) > _MAX_LINE:
                raise LedgerUnusable("the ledger's last line is far too long to be an entry")
            pos = start
        return line

    def _flock(self, fd: int, operation: int, timeout: float | None = None) -> None:
        # flock cannot wait with a timeout, so it is polled. Only one thread per process polls
        # (the others queue on the thread lock) and a seal holds the lock for a few fsyncs, so
        # the poll stays short: a waiter asleep for tens of ms leaves the ledger idle in a burst
        # (measured: 8% more reports per second across two processes, p99 about a third lower).
        waited = self._timeout if timeout is None else timeout
        deadline = time.monotonic() + waited
        delay = _FLOCK_FIRST_POLL
        while True:
            try:
                fcntl.flock(fd, operation | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise self._busy(waited)
            time.sleep(delay)
            delay = min(delay * 2, _FLOCK_LONGEST_POLL)

    def _busy(self, waited: float | None = None) -> EvidenceStoreUnavailable:
        log.warning(
            "evidence ledger lock not obtained within %.0f s",
            self._timeout if waited is None else waited,
            extra={"event": "evidence.ledger_busy"},
        )
        return EvidenceStoreUnavailable(
            "Many reports are being filed at this moment. Nothing was filed; please try again shortly.",
            retry_after=5,
        )


def _parsed_last(raw: bytes) -> LedgerEntry:
    """:raises LedgerUnusable: ``raw`` (the ledger's last line) is not an entry."""
    try:
        return LedgerEntry.parse(raw)
    except ValueError as exc:
        raise LedgerUnusable(f"the ledger's last line is not a valid entry ({exc})") from None
