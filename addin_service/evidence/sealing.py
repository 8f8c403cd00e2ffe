"""Sealing: the step that turns a finished temporary package into ledgered, immutable evidence.

Under the ledger lock: chain onto the last entry, write the signed manifest, make the files
read-only, rename the directory into ``<case_id>/<report_id>``, append the ledger entry. If
anything fails before the entry is durable, the directory is moved back out so that nothing is
left under the case folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from addin_service.errors import EvidenceStoreUnavailable
from addin_service.evidence.canonical import sha256_tag, utc_now_iso
from addin_service.evidence.fsio import FileDigest, NewFiles, fsync_dir, make_private_dir, open_dir
from addin_service.evidence.keys import LedgerKeys
from addin_service.evidence.layout import MANIFEST, StoreLayout
from addin_service.evidence.ledger import Ledger, LedgerEntry, LedgerUnusable
from addin_service.evidence.manifest import build_manifest, encode_manifest

log = logging.getLogger("addin_service.evidence")

READ_ONLY_FILE = 0o444
READ_ONLY_DIR = 0o555


class Sealer:
    """Moves finished packages into place and records them in the ledger."""

    def __init__(self, layout: StoreLayout, ledger: Ledger, keys: LedgerKeys) -> None:
        self._layout = layout
        self._ledger = ledger
        self._keys = keys

    def seal(self, work: NewFiles, case_id: str, report_id: str, files: Mapping[str, FileDigest]) -> LedgerEntry:
        """Seal the package in ``work`` (holding the three payload files) as ``case_id/report_id``.

        On failure ``work`` holds the package again (the caller discards it) and nothing is left
        under the case folder.

        :raises ValueError: a malformed id.
        :raises EvidenceStoreUnavailable: the ledger cannot be chained onto, the report already
            exists, the key cannot be used, or the lock was not obtained in time.
        :raises OSError: a file or directory operation failed.
        """
        target = self._layout.package_dir(case_id, report_id)
        signer = self._keys.signer()
        with self._ledger.exclusive():
            previous = self._chain_point(signer.public_key)
            case_created = make_private_dir(target.parent)
            moved = False
            try:
                if not case_created and os.path.lexists(target):
                    log.error(
                        "evidence package %s already exists; refusing to overwrite it",
                        target,
                        extra={"event": "evidence.exists"},
                    )
                    raise EvidenceStoreUnavailable(
                        "A report with this number is already stored. Nothing was overwritten and "
                        "nothing was filed; please try again."
                    )
                at = utc_now_iso()
                manifest = build_manifest(
                    case_id=case_id,
                    report_id=report_id,
                    created_at=at,
                    files=files,
                    sequence=1 if previous is None else previous.sequence + 1,
                    previous_hash=None if previous is None else previous.hash,
                    signer=signer,
                )
                manifest_bytes = encode_manifest(manifest)
                work.write(MANIFEST, manifest_bytes)
                # Every file, the folder itself and a new case folder's entry in the root are
                # durable before the rename makes the package visible.
                self._make_durable(work, case_created)
                os.rename(work.directory, target)
                moved = True
                # One journal transaction holds the rename on both sides; syncing the new parent
                # makes it durable.
                fsync_dir(target.parent)
                entry = LedgerEntry.create(previous, case_id, report_id, sha256_tag(manifest_bytes), at, signer)
                self._ledger.append(entry, signed_by=signer.public_key)
            except BaseException:
                self._withdraw(target, work.directory if moved else None, target.parent if case_created else None)
                raise
        self._lock_directory(target)
        return entry

    def _make_durable(self, work: NewFiles, case_created: bool) -> None:
        """Make the files read-only and sync them and their folder, and the root if a case was created."""
        if not case_created:
            work.finish(READ_ONLY_FILE)
            return
        root = open_dir(self._layout.root)
        try:
            work.finish(READ_ONLY_FILE, also=[root])
        finally:
            os.close(root)

    def _chain_point(self, key: Ed25519PublicKey) -> LedgerEntry | None:
        """The checked last entry to chain onto; never chains onto a torn or edited line."""
        try:
            return self._ledger.last_entry(key)
        except LedgerUnusable as exc:
            log.error(
                "evidence ledger %s: %s; refusing to chain onto it",
                self._ledger.path,
                exc,
                extra={"event": "evidence.ledger_unusable"},
            )
            raise EvidenceStoreUnavailable(
                f"New evidence cannot be filed because {exc}. Nothing was filed. An administrator must "
                "run `addin-service evidence verify` and decide how to proceed; evidence is never "
                "repaired automatically."
            ) from None

    def _withdraw(self, target: Path, work: Path | None, created_case_dir: Path | None) -> None:
        """Take back a package that did not make it into the ledger: move it out of the case folder
        to ``work`` (None: it was not moved in yet) and remove the case folder if this seal made it."""
        try:
            if work is not None:
                os.rename(target, work)
                fsync_dir(target.parent)
            if created_case_dir is not None:
                os.rmdir(created_case_dir)
                fsync_dir(self._layout.root)
        except OSError as exc:
            log.critical(
                "could not withdraw unledgered evidence package %s (%s); `addin-service evidence verify` "
                "will list it as not in the ledger",
                target,
                exc,
                extra={"event": "evidence.withdraw_failed"},
            )

    @staticmethod
    def _lock_directory(target: Path) -> None:
        """Make the sealed package's folder read-only too, so no file is added by accident."""
        try:
            os.chmod(target, READ_ONLY_DIR)
        except OSError as exc:
            log.warning("could not make %s read-only: %s", target, exc, extra={"event": "evidence.chmod_failed"})
