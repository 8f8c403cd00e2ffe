"""The evidence store port: write-once packages joined by a signed, append-only ledger.

Package format v1 (DESIGN.md, stable)::

    <case_id>/<report_id>/
      message.eml     MIME exactly as Exchange returned it
      headers.txt     transport headers as returned, "Name: value" CRLF-terminated, folded as received
      metadata.json   parsed facts + capture facts + header analysis + classification
      manifest.json   every file's sha256 and size, previous ledger hash, ledger sequence, signature
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class SealedPackage:
    """What the use case needs to know about a package once it is sealed."""

    case_id: str
    report_id: str
    message_sha256: str  # "sha256:<hex>"
    message_size: int
    manifest_sha256: str  # "sha256:<hex>" of manifest.json's bytes
    ledger_sequence: int
    ledger_hash: str  # "sha256:<hex>": the ledger entry's hash, which ``evidence verify --expect`` checks

    @property
    def ledger_entry(self) -> str:
        """``SEQUENCE:HASH``, as ``evidence verify`` prints a ledger head and ``--expect`` takes it."""
        return f"{self.ledger_sequence}:{self.ledger_hash}"


@dataclass(frozen=True)
class VerifyProblem:
    case_id: str | None
    report_id: str | None
    ledger_sequence: int | None
    problem: str


@dataclass
class VerifyResult:
    reports_checked: int = 0
    problems: list[VerifyProblem] = field(default_factory=list)
    # Every readable ledger entry's hash by sequence: the last one is the ledger's head, which an
    # administrator can record outside the store and later expect to find unchanged.
    entry_hashes: dict[int, str] = field(default_factory=dict)
    # Every ledgered package, (case id, report id) → the sha256 of the manifest the ledger sealed.
    ledgered: dict[tuple[str, str], str] = field(default_factory=dict)
    # Unledgered packages that are genuine seals whose ledger entry was never written (a process
    # stopped between the two): each is also among ``problems``.
    interrupted: set[tuple[str, str]] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def head(self) -> tuple[int, str] | None:
        """(sequence, hash) of the newest ledger entry, or None for an empty ledger."""
        if not self.entry_hashes:
            return None
        sequence = max(self.entry_hashes)
        return sequence, self.entry_hashes[sequence]

    def expectation_problems(self, expected: dict[int, str]) -> list[VerifyProblem]:
        """What is wrong with ledger entries recorded earlier (sequence → hash): gone or changed.
        Entries are only ever appended, so an entry that is missing or different means the
        ledger was truncated or rewritten after it was recorded."""
        problems: list[VerifyProblem] = []
        for sequence, wanted in sorted(expected.items()):
            found = self.entry_hashes.get(sequence)
            if found is None:
                missing = "the ledger no longer holds this entry (truncated or rewritten)"
                problems.append(VerifyProblem(None, None, sequence, missing))
            elif found != wanted:
                problems.append(
                    VerifyProblem(None, None, sequence, f"this entry's hash changed from {wanted} to {found}")
                )
        return problems


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: how many packages, and everything wrong with the case's reports as
    ``evidence verify`` checks one report (ledger entry, manifest, each file), in ledger order.
    Damaged packages are exported as they were found, and REPORT.html marks each one."""

    count: int
    problems: tuple[VerifyProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


class PendingPackage(Protocol):
    """A package being written. Nothing is visible under ``<case_id>/`` until :meth:`seal`."""

    report_id: str

    def write(self, data: bytes, /) -> int:
        """Append MIME bytes (a :class:`~addin_service.mail.ports.MimeSink`).

        :raises MessageTooLarge: more than the package's byte limit was written.
        :raises EvidenceStoreUnavailable: the bytes could not be written.
        """
        ...

    @property
    def message_sha256(self) -> str: ...

    @property
    def message_size(self) -> int: ...

    def seal(
        self, case_id: str, headers: tuple[tuple[str, str], ...], metadata: dict[str, Any]
    ) -> SealedPackage:
        """Write headers.txt, metadata.json and manifest.json, fsync, move into place, append the
        ledger entry. After this returns the package is durable and immutable.

        :raises EvidenceStoreUnavailable: anything could not be written; nothing is left in place.
        """
        ...

    def abort(self) -> None:
        """Discard everything written so far. Safe to call more than once or after seal."""
        ...


class EvidenceStore(Protocol):
    name: str

    def open_package(self, report_id: str, max_message_bytes: int) -> PendingPackage:
        """Start a package in a private temporary area.

        :raises EvidenceStoreUnavailable: the store cannot be written.
        """
        ...

    def read_file(self, case_id: str, report_id: str, name: str) -> bytes:
        """Return one stored file's bytes. :raises FileNotFoundError: no such file."""
        ...

    def check(self) -> None:
        """Readiness probe. :raises EvidenceStoreUnavailable: not writable."""
        ...

    def verify(self) -> VerifyResult:
        """Check every package and the whole ledger chain, in ledger order."""
        ...

    def ledger_head(self) -> tuple[int, str] | None:
        """(sequence, hash) of the newest ledger entry as written; None for an empty ledger.

        :raises EvidenceStoreUnavailable: the ledger cannot be read.
        """
        ...

    def export_case(
        self, case_id: str, out: Path, *, recorded: Collection[str] | None = None
    ) -> ExportResult:
        """Write a zip with the case's packages, the ledger entries they need, the public key and
        a VERIFY.txt. Returns how many packages were exported and what is wrong with any of them
        (each is checked as ``verify`` checks one report; a damaged one is still exported, marked in
        REPORT.html). ``recorded``: the report ids the case database holds for the case, when known;
        REPORT.html marks any other package as sealed but never filed. :raises KeyError: unknown case."""
        ...
