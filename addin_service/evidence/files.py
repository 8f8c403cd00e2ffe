"""``FileEvidenceStore``: the evidence store on a local (or mounted) directory.

Layout under the root::

    <case_id>/<report_id>/{message.eml,headers.txt,metadata.json,manifest.json}   read-only once sealed
    ledger/ledger.jsonl            the signed hash chain, one line per package
    ledger/signing-key.pub.pem     the public key that verifies it
    ledger/signing-key.pem         the private key, only when ADDIN_SIGNING_KEY is not set (0600)
    .tmp/                          packages being written (same filesystem, so sealing is a rename)

A work folder in ``.tmp`` untouched for :data:`STALE_WORK_SECONDS` belongs to a capture whose
process died: it was never sealed nor recorded (the reporter was not told it was filed), and it
holds a partial copy of someone's message. It is removed, and counted in the log, the next time
this store starts a package (at most every :data:`SWEEP_INTERVAL_SECONDS`).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Collection
from pathlib import Path

from addin_service.errors import EvidenceStoreUnavailable
from addin_service.evidence.export import export_case
from addin_service.evidence.fsio import read_regular, unavailable, write_new_file
from addin_service.evidence.keys import LedgerKeys
from addin_service.evidence.layout import StoreLayout
from addin_service.evidence.ledger import Ledger, LedgerUnusable
from addin_service.evidence.package import FilePendingPackage
from addin_service.evidence.ports import ExportResult, VerifyResult
from addin_service.evidence.sealing import Sealer
from addin_service.evidence.verify import Verifier
from addin_service.ids import is_report_id

log = logging.getLogger("addin_service.evidence")
READY_LOCK_WAIT_SECONDS = 2.0

STALE_WORK_SECONDS = 24 * 3600.0  # far longer than any capture may last (see cases.service)
SWEEP_INTERVAL_SECONDS = 3600.0


class FileEvidenceStore:
    """Write-once evidence packages in a directory, joined by a signed append-only ledger.

    Safe for many threads and many processes sharing one directory (POSIX ``flock``; use a
    local filesystem, or NFSv4 with working locks). Nothing touches the disk until first use.
    """

    name = "file"

    def __init__(
        self, root: Path, signing_key_path: str | None = None, *, lock_timeout: float = 30.0
    ) -> None:
        self._layout = StoreLayout(root)
        self._keys = LedgerKeys(self._layout.ledger_dir, signing_key_path)
        self._ledger = Ledger(self._layout.ledger_dir, lock_timeout)
        self._sealer = Sealer(self._layout, self._ledger, self._keys)
        self._verifier = Verifier(self._layout, self._ledger, self._keys)
        self._probe_lock = threading.Lock()
        self._sweep_lock = threading.Lock()
        self._next_sweep = float("-inf")

    @property
    def root(self) -> Path:
        return self._layout.root

    def open_package(self, report_id: str, max_message_bytes: int) -> FilePendingPackage:
        """Start a package in ``.tmp``. The signing key is prepared now, so that a key problem is
        reported before a large message is fetched rather than after.

        :raises ValueError: ``report_id`` is malformed or the limit is not positive.
        :raises ConfigError: ``ADDIN_SIGNING_KEY`` cannot be used.
        :raises EvidenceStoreUnavailable: the store cannot be written.
        """
        if not is_report_id(report_id):
            raise ValueError("not a report id")
        if max_message_bytes <= 0:
            raise ValueError("max_message_bytes must be positive")
        try:
            self._layout.ensure()
            work = Path(tempfile.mkdtemp(prefix=f"{report_id}.", dir=self._layout.tmp_dir))
        except OSError as exc:
            raise unavailable(exc, "start an evidence package") from exc
        self._sweep_if_due()
        try:
            self._keys.signer()
            return FilePendingPackage(report_id, max_message_bytes, work, self._sealer)
        except OSError as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise unavailable(exc, "start an evidence package") from exc
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def _sweep_if_due(self) -> None:
        now = time.monotonic()
        with self._sweep_lock:
            if now < self._next_sweep:
                return
            self._next_sweep = now + SWEEP_INTERVAL_SECONDS
        removed = sweep_stale_work(self._layout.tmp_dir, time.time() - STALE_WORK_SECONDS)
        if removed:
            log.warning(
                "removed unsealed work folders left by captures that never finished",
                extra={"event": "evidence.tmp_swept", "count": removed},
            )

    def read_file(self, case_id: str, report_id: str, name: str) -> bytes:
        """One sealed file's bytes.

        :raises FileNotFoundError: no such file (including malformed ids or names).
        """
        try:
            path = self._layout.package_file(case_id, report_id, name)
        except ValueError:
            raise FileNotFoundError(errno.ENOENT, "no such evidence file") from None
        return read_regular(path)

    def check(self) -> None:
        """Readiness: create, fsync and remove a probe file in ``.tmp``; make sure a key exists;
        read the ledger's newest line, within a short wait for its lock. A ledger lock held for
        seconds, or a torn last line, stops every report, so the service is not ready.

        :raises EvidenceStoreUnavailable: the store is not writable, the key cannot be used, the
            ledger lock is held or the ledger's last line is not an entry.
        :raises ConfigError: ``ADDIN_SIGNING_KEY`` cannot be used.
        """
        probe = self._layout.tmp_dir / f"probe-{os.getpid()}-{threading.get_ident()}"
        with self._probe_lock:
            try:
                self._layout.ensure()
                probe.unlink(missing_ok=True)
                write_new_file(probe, b"probe\n")
                probe.unlink()
            except OSError as exc:
                raise unavailable(exc, "write a probe file") from exc
        self._keys.signer()
        self._read_head(lock_timeout=READY_LOCK_WAIT_SECONDS)

    def verify(self) -> VerifyResult:
        """Check the ledger chain, its signatures and every package, in ledger order.

        Needs only ``ledger/signing-key.pub.pem``, never the private key.

        :raises EvidenceStoreUnavailable: a writer held the ledger lock for too long.
        :raises OSError: the ledger or the root cannot be read at all.
        """
        return self._verifier.verify_all()

    def verify_package(self, case_id: str, report_id: str) -> VerifyResult:
        """Check one report's ledger entry and package (not the rest of the chain).

        :raises ValueError: an id is malformed.
        :raises KeyError: the store knows nothing of this report.
        """
        return self._verifier.verify_one(case_id, report_id)

    def ledger_head(self) -> tuple[int, str] | None:
        """(sequence, hash) of the newest ledger entry as written (unchecked: ``verify`` checks).

        :raises EvidenceStoreUnavailable: the ledger cannot be read or its last line is not an entry.
        """
        return self._read_head()

    def _read_head(self, lock_timeout: float | None = None) -> tuple[int, str] | None:
        try:
            with self._ledger.shared(lock_timeout):
                entry = self._ledger.head()
        except OSError as exc:
            raise unavailable(exc, "read the ledger's head") from exc
        except LedgerUnusable as exc:
            log.error("evidence ledger: %s", exc, extra={"event": "evidence.ledger_unusable"})
            raise EvidenceStoreUnavailable(
                "The evidence ledger's newest line is not a valid entry; an administrator should run "
                "addin-service evidence verify."
            ) from exc
        return (entry.sequence, entry.hash) if entry is not None else None

    def export_case(
        self, case_id: str, out: Path, *, recorded: Collection[str] | None = None
    ) -> ExportResult:
        """Write the case's evidence as a zip verifiable by hand, checking each package as verify
        does; returns the number of packages and what is wrong with any of them.

        :raises KeyError: unknown case.
        :raises ValueError: there is no usable public key to include.
        :raises OSError: the ledger could not be read or the zip could not be written.
        """
        return export_case(self._layout, self._ledger, self._keys, case_id, out, recorded=recorded)


def sweep_stale_work(tmp_dir: Path, older_than: float) -> int:
    """Remove the entries of ``tmp_dir`` in which nothing changed since ``older_than`` (a Unix
    time); the number removed. Never raises: what cannot be removed now is tried next time."""
    removed = 0
    try:
        entries = list(os.scandir(tmp_dir))
    except OSError:
        return 0
    for entry in entries:
        try:
            if _newest_change(entry) >= older_than:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed += 1
        except OSError:
            continue
    return removed


def _newest_change(entry: os.DirEntry[str]) -> float:
    """The latest modification time of the entry or, for a folder, of anything directly in it."""
    newest = entry.stat(follow_symlinks=False).st_mtime
    if entry.is_dir(follow_symlinks=False):
        for inner in os.scandir(entry.path):
            newest = max(newest, inner.stat(follow_symlinks=False).st_mtime)
    return newest
