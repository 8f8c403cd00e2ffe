"""Verification: walk the ledger in order and check every entry and every package against it.

Problems are reported in ledger order, so the first problem names the first bad report; packages
on disk that the ledger does not know, and stray entries, follow at the end.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from addin_service.evidence.canonical import sha256_tag
from addin_service.evidence.fsio import FileDigest, digest_file, read_regular
from addin_service.evidence.keys import LedgerKeys
from addin_service.evidence.layout import MANIFEST, PACKAGE_FILES, StoreLayout
from addin_service.evidence.ledger import Ledger, LedgerEntry, LedgerLine, split_lines
from addin_service.evidence.manifest import check_manifest
from addin_service.evidence.ports import VerifyProblem, VerifyResult

_MANIFEST_LIMIT = 1024 * 1024
INTERRUPTED_SEAL = (
    "package is not in the ledger: it is genuine (signed, intact, chained onto the entry before it), so its "
    "seal was interrupted before the ledger entry was written"
)


@dataclass
class PackageCheck:
    """What checking one package against its ledger entry found."""

    problems: list[str] = field(default_factory=list)  # empty when the package is intact
    # What manifest.json lists for each payload file (empty when it cannot be read or parsed).
    listed: dict[str, FileDigest] = field(default_factory=dict)
    # What was read on disk: manifest.json and each listed file, as far as they could be read.
    found: dict[str, FileDigest] = field(default_factory=dict)


@dataclass
class _Chain:
    """Where the walk is: the sequence and hash the next entry must continue from."""

    expected_sequence: int | None = 1  # None: unknown after an unreadable line
    previous_hash: str | None = None
    previous_known: bool = True


class Verifier:
    """Checks a store's ledger and packages using only the public key."""

    def __init__(self, layout: StoreLayout, ledger: Ledger, keys: LedgerKeys) -> None:
        self._layout = layout
        self._ledger = ledger
        self._keys = keys

    def verify_all(self) -> VerifyResult:
        """Check the whole ledger chain, every package, and that nothing was added or removed.

        A ledger that cannot be read (or a lock file that is not a file) is the one problem found:
        nothing can be checked without it.

        :raises EvidenceStoreUnavailable: a writer held the ledger lock for too long.
        :raises OSError: the store's root cannot be read at all.
        """
        try:
            with self._ledger.shared():
                lines = self.ledger_lines()
                scan = self._layout.scan()
        except OSError as exc:
            return self._unreadable_ledger(exc)
        result = VerifyResult()
        key = self._public_key(result) if lines else None
        chain = _Chain()
        seen_sequences: set[int] = set()
        for line in lines:
            entry = line.entry
            if entry is None:
                result.problems.append(
                    VerifyProblem(None, None, None, f"ledger line {line.number}: {line.error}")
                )
                chain = _Chain(expected_sequence=None, previous_known=False)
                continue
            problems = self._chain_problems(entry, chain, seen_sequences)
            problems += self._entry_problems(entry, key)
            if (entry.case_id, entry.report_id) in result.ledgered:
                problems.append("this report appears more than once in the ledger")
            else:
                result.ledgered[(entry.case_id, entry.report_id)] = entry.manifest_sha256
                problems += self.package_problems(entry, key)
                result.reports_checked += 1
            result.problems += [
                VerifyProblem(entry.case_id, entry.report_id, entry.sequence, p) for p in problems
            ]
            seen_sequences.add(entry.sequence)
            result.entry_hashes.setdefault(entry.sequence, entry.hash)
            chain = _Chain(expected_sequence=entry.sequence + 1, previous_hash=entry.hash)
        for case_id, report_id in scan.packages:
            if (case_id, report_id) not in result.ledgered:
                if self._interrupted_seal(case_id, report_id, key, result.entry_hashes):
                    result.interrupted.add((case_id, report_id))
                    why = INTERRUPTED_SEAL
                else:
                    why = "package is not in the ledger (added, or its ledger entry was removed)"
                result.problems.append(VerifyProblem(case_id, report_id, None, why))
        result.problems += [
            VerifyProblem(None, None, None, f"unexpected entry in the evidence folder: {stray}")
            for stray in scan.strays
        ]
        return result

    def verify_one(self, case_id: str, report_id: str) -> VerifyResult:
        """Check one report's ledger entry (hash, signature) and package; not the whole chain.

        :raises ValueError: an id is malformed.
        :raises KeyError: neither a ledger entry nor a package exists for this report.
        """
        package = self._layout.package_dir(case_id, report_id)
        try:
            with self._ledger.shared():
                lines = self.ledger_lines()
        except OSError as exc:
            return self._unreadable_ledger(exc)
        entries = [
            line.entry
            for line in lines
            if line.entry is not None and (line.entry.case_id, line.entry.report_id) == (case_id, report_id)
        ]
        result = VerifyResult()
        if not entries:
            if not os.path.lexists(package):
                raise KeyError(f"{case_id}/{report_id}")
            result.problems.append(VerifyProblem(case_id, report_id, None, "package is not in the ledger"))
            return result
        key = self._public_key(result)
        entry = entries[0]
        problems = self.check_report(entry, key).problems
        if len(entries) > 1:
            problems.append("this report appears more than once in the ledger")
        result.reports_checked = 1
        result.problems += [VerifyProblem(case_id, report_id, entry.sequence, p) for p in problems]
        return result

    def ledger_lines(self) -> list[LedgerLine]:
        """The ledger's lines as read now. Call under the ledger's lock.

        :raises OSError: the ledger cannot be read (:meth:`Ledger.unreadable` says why).
        """
        return split_lines(self._ledger.read_bytes())

    def _unreadable_ledger(self, exc: OSError) -> VerifyResult:
        """The result of a verification that could not read the ledger.

        :raises OSError: ``exc`` came from elsewhere (the store's root), re-raised.
        """
        why = self._ledger.unreadable(exc)
        if why is None:
            raise exc
        return VerifyResult(problems=[VerifyProblem(None, None, None, f"{why}: nothing can be checked without it")])

    def check_report(self, entry: LedgerEntry, key: Ed25519PublicKey | None) -> PackageCheck:
        """Check one report as ``verify`` does: its ledger entry (hash, signature) and its package."""
        check = self.inspect_package(entry, key)
        check.problems[:0] = self._entry_problems(entry, key)
        return check

    def _interrupted_seal(
        self, case_id: str, report_id: str, key: Ed25519PublicKey | None, entry_hashes: dict[int, str]
    ) -> bool:
        """Whether an unledgered package is what a process stopped between moving a sealed package
        into place and appending its ledger entry leaves: its own manifest, signed by the ledger's
        key, names a ledger position whose previous entry is in the ledger and that the next seal took
        (or that is the next one), and every file is intact.
        (Only the private key makes such a manifest; the next seal then took the same position.)"""
        if key is None:
            return False
        try:
            manifest_bytes = read_regular(self._layout.package_dir(case_id, report_id) / MANIFEST, _MANIFEST_LIMIT)
            position = json.loads(manifest_bytes)["ledger"]
            sequence, previous_hash = position["sequence"], position["previous_hash"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
            return False
        chained = previous_hash is None if sequence == 1 else entry_hashes.get(sequence - 1) == previous_hash
        # The position is the ledger's next one, or the next seal took it: a position left empty is
        # a ledger entry removed, and the chain break says so.
        taken_or_next = sequence in entry_hashes or sequence == max(entry_hashes, default=0) + 1
        if not (chained and taken_or_next):
            return False
        claimed = LedgerEntry(
            sequence=sequence,
            case_id=case_id,
            report_id=report_id,
            manifest_sha256=sha256_tag(manifest_bytes),
            previous_hash=previous_hash,
            at="",
            hash="",
            signature="",
        )
        return not self.package_problems(claimed, key)

    def package_problems(self, entry: LedgerEntry, key: Ed25519PublicKey | None) -> list[str]:
        """Everything wrong with the package that ``entry`` seals; empty when it is intact."""
        return self.inspect_package(entry, key).problems

    def inspect_package(self, entry: LedgerEntry, key: Ed25519PublicKey | None) -> PackageCheck:
        """Check the package that ``entry`` seals; also say what its manifest lists and what was found."""
        package = self._layout.package_dir(entry.case_id, entry.report_id)
        check = PackageCheck()
        problems = check.problems
        try:
            mode = os.lstat(package).st_mode
            present = set(os.listdir(package)) if stat.S_ISDIR(mode) else None
        except FileNotFoundError:
            problems.append("package folder is missing (removed)")
            return check
        except OSError as exc:
            problems.append(f"package folder cannot be read ({exc.strerror})")
            return check
        if present is None:
            problems.append("package path is not a folder")
            return check
        problems += [
            f"unexpected file {name} in the package (added)" for name in sorted(present - set(PACKAGE_FILES))
        ]
        problems += [f"{name} is missing (removed)" for name in PACKAGE_FILES if name not in present]
        if MANIFEST not in present:
            return check
        try:
            manifest_bytes = read_regular(package / MANIFEST, _MANIFEST_LIMIT)
        except OSError as exc:
            problems.append(f"manifest.json cannot be read ({exc.strerror})")
            return check
        if len(manifest_bytes) <= _MANIFEST_LIMIT:  # else only its start was read
            check.found[MANIFEST] = FileDigest(sha256_tag(manifest_bytes), len(manifest_bytes))
        if sha256_tag(manifest_bytes) != entry.manifest_sha256:
            problems.append(
                "manifest.json does not match the hash in its ledger entry (it was edited or replaced)"
            )
        files, manifest_problems = check_manifest(manifest_bytes, entry, key)
        check.listed = files
        problems += manifest_problems
        for name, listed in sorted(files.items()):
            if name not in present:
                continue
            try:
                actual = digest_file(package / name)
            except OSError as exc:
                problems.append(f"{name} cannot be read ({exc.strerror})")
                continue
            check.found[name] = actual
            if actual.size != listed.size:
                problems.append(
                    f"{name} is {actual.size} bytes; the manifest says {listed.size} (it was edited)"
                )
            elif actual.sha256 != listed.sha256:
                problems.append(f"{name} does not match its sha256 in the manifest (it was edited)")
        return check

    @staticmethod
    def _chain_problems(entry: LedgerEntry, chain: _Chain, seen: set[int]) -> list[str]:
        problems: list[str] = []
        if entry.sequence in seen:
            problems.append(f"sequence {entry.sequence} appears more than once in the ledger")
        elif chain.expected_sequence is not None and entry.sequence != chain.expected_sequence:
            problems.append(
                f"sequence {entry.sequence} where {chain.expected_sequence} was expected "
                "(ledger entries were removed, inserted or reordered)"
            )
        if chain.previous_known and entry.previous_hash != chain.previous_hash:
            problems.append(
                "previous_hash does not match the entry before it "
                "(ledger entries were removed, inserted or reordered)"
            )
        return problems

    @staticmethod
    def _entry_problems(entry: LedgerEntry, key: Ed25519PublicKey | None) -> list[str]:
        problems: list[str] = []
        if entry.computed_hash() != entry.hash:
            problems.append("ledger entry does not match its hash (the entry was edited)")
        if key is not None and not entry.signature_valid(key):
            problems.append("ledger entry signature is not valid for the ledger's public key")
        return problems

    def _public_key(self, result: VerifyResult) -> Ed25519PublicKey | None:
        """The public key, or None with a problem recorded that says why signatures go unchecked."""
        try:
            key = self._keys.public_key()
        except ValueError as exc:
            result.problems.append(VerifyProblem(None, None, None, f"signatures cannot be checked: {exc}"))
            return None
        if key is None:
            result.problems.append(
                VerifyProblem(
                    None, None, None, "signatures cannot be checked: signing-key.pub.pem is missing"
                )
            )
        return key
