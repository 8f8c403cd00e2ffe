"""An in-memory EvidenceStore with the port's behaviour, and helpers shared by evidence tests.

The fake keeps sealed packages in dictionaries, records what was sealed and aborted, and can be
told to fail (``failures``) so use-case tests can exercise a store that is down. Its "manifest"
lists hashes but is not signed: the signed ledger is the file store's job.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from addin_service import ids
from addin_service.errors import MessageTooLarge, ServiceError
from addin_service.evidence.ports import (
    EvidenceStore,
    ExportResult,
    SealedPackage,
    VerifyProblem,
    VerifyResult,
)

PACKAGE_FILES = ("headers.txt", "manifest.json", "message.eml", "metadata.json")

SAMPLE_HEADERS: tuple[tuple[str, str], ...] = (
    ("Received", "from mx.example.net (192.0.2.7) by mail.contoso.com;\r\n Tue, 25 Nov 2026 09:00:00 +0000"),
    ("From", "Someone <someone@example.net>"),
    ("To", "reporter@contoso.com"),
    ("Subject", "=?utf-8?q?You_will_regret_this?="),
)


def sample_message(body: bytes = b"Stop ignoring me.\r\n") -> bytes:
    """A small well-formed message."""
    return (
        b"From: Someone <someone@example.net>\r\n"
        b"To: reporter@contoso.com\r\n"
        b"Subject: You will regret this\r\n"
        b"Date: Tue, 25 Nov 2026 09:00:00 +0000\r\n"
        b"Message-ID: <threat-1@example.net>\r\n"
        b"\r\n" + body
    )


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_report(
    store: EvidenceStore,
    message: bytes,
    *,
    case_id: str | None = None,
    headers: tuple[tuple[str, str], ...] = SAMPLE_HEADERS,
    metadata: dict[str, Any] | None = None,
    chunk: int = 64 * 1024,
    limit: int = 100 * 1024 * 1024,
) -> SealedPackage:
    """Open a package, stream ``message`` in ``chunk``-sized writes, seal it; abort on failure."""
    pending = store.open_package(ids.new_report_id(), limit)
    try:
        for start in range(0, len(message), chunk):
            pending.write(message[start : start + chunk])
        return pending.seal(case_id or ids.new_case_id(), headers, metadata or {"category": "threat"})
    except BaseException:
        pending.abort()
        raise


@dataclass
class InMemoryPendingPackage:
    report_id: str
    store: InMemoryEvidenceStore
    limit: int
    data: bytearray = field(default_factory=bytearray)
    state: str = "open"

    def write(self, data: bytes, /) -> int:
        if self.state == "too-large":
            raise MessageTooLarge(self.limit)
        if self.state != "open":
            raise RuntimeError(f"this evidence package is {self.state}")
        if len(self.data) + len(data) > self.limit:
            self.state = "too-large"
            self.data.clear()
            raise MessageTooLarge(self.limit)
        self.store.raise_planned_failure()
        self.data += data
        return len(data)

    @property
    def message_sha256(self) -> str:
        return sha256(bytes(self.data))

    @property
    def message_size(self) -> int:
        return len(self.data)

    def seal(
        self, case_id: str, headers: tuple[tuple[str, str], ...], metadata: dict[str, Any]
    ) -> SealedPackage:
        if self.state != "open":
            raise RuntimeError(f"this evidence package is {self.state}")
        if not ids.is_case_id(case_id):
            self.abort()
            raise ValueError("not a case id")
        try:
            self.store.raise_planned_failure()
        except BaseException:
            self.abort()
            raise
        files = {
            "message.eml": bytes(self.data),
            "headers.txt": b"".join(f"{n}: {v}\r\n".encode("utf-8", "surrogatepass") for n, v in headers),
            "metadata.json": (
                json.dumps(metadata, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
            ).encode(),
        }
        sequence = len(self.store.ledger) + 1
        manifest = {
            "format": 1,
            "case_id": case_id,
            "report_id": self.report_id,
            "files": {
                name: {"sha256": sha256(data), "size": len(data)} for name, data in sorted(files.items())
            },
            "ledger": {"sequence": sequence},
        }
        files["manifest.json"] = (json.dumps(manifest, sort_keys=True, indent=2) + "\n").encode()
        self.store.packages[(case_id, self.report_id)] = files
        self.store.ledger.append((case_id, self.report_id))
        self.state = "sealed"
        sealed = SealedPackage(
            case_id=case_id,
            report_id=self.report_id,
            message_sha256=self.message_sha256,
            message_size=self.message_size,
            manifest_sha256=sha256(files["manifest.json"]),
            ledger_sequence=sequence,
            ledger_hash=sha256(f"{sequence}:{case_id}/{self.report_id}".encode() + files["manifest.json"]),
        )
        self.store.sealed.append(sealed)
        return sealed

    def abort(self) -> None:
        if self.state in ("open", "too-large"):
            self.data.clear()
            if self.state == "open":
                self.state = "aborted"
            self.store.aborted.append(self.report_id)


@dataclass
class InMemoryEvidenceStore:
    """Sealed packages by (case_id, report_id); ``failures`` are raised, in order, by the next
    write, seal, open or check."""

    name: str = "memory"
    packages: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    ledger: list[tuple[str, str]] = field(default_factory=list)
    sealed: list[SealedPackage] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    failures: list[ServiceError] = field(default_factory=list)

    def raise_planned_failure(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    def open_package(self, report_id: str, max_message_bytes: int) -> InMemoryPendingPackage:
        if not ids.is_report_id(report_id):
            raise ValueError("not a report id")
        self.raise_planned_failure()
        return InMemoryPendingPackage(report_id, self, max_message_bytes)

    def read_file(self, case_id: str, report_id: str, name: str) -> bytes:
        try:
            return self.packages[(case_id, report_id)][name]
        except KeyError:
            raise FileNotFoundError(name) from None

    def check(self) -> None:
        self.raise_planned_failure()

    def verify(self) -> VerifyResult:
        result = VerifyResult()
        for sequence, key in enumerate(self.ledger, start=1):
            result.reports_checked += 1
            result.problems += self._package_problems(key, sequence)
        return result

    def _package_problems(self, key: tuple[str, str], sequence: int) -> list[VerifyProblem]:
        files = self.packages.get(key)
        if files is None:
            return [VerifyProblem(*key, sequence, "package folder is missing (removed)")]
        listed = json.loads(files["manifest.json"])["files"]
        return [
            VerifyProblem(*key, sequence, f"{name} does not match its sha256")
            for name, facts in sorted(listed.items())
            if sha256(files.get(name, b"")) != facts["sha256"]
        ]

    def ledger_head(self) -> tuple[int, str] | None:
        """The newest entry: its sequence and a stand-in hash (this store keeps no chain)."""
        self.raise_planned_failure()
        if not self.ledger:
            return None
        return len(self.ledger), sha256("/".join(self.ledger[-1]).encode())

    def export_case(self, case_id: str, out: Path, *, recorded: Collection[str] | None = None) -> ExportResult:
        ledgered = [(sequence, key) for sequence, key in enumerate(self.ledger, start=1) if key[0] == case_id]
        if not ledgered:
            raise KeyError(case_id)
        problems = [problem for sequence, key in ledgered for problem in self._package_problems(key, sequence)]
        keys = [key for _, key in ledgered if key in self.packages]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            for key in keys:
                for name, data in sorted(self.packages[key].items()):
                    zf.writestr(f"{key[0]}/{key[1]}/{name}", data)
        out.write_bytes(buffer.getvalue())
        return ExportResult(count=len(keys), problems=tuple(problems))
