"""Export one case as a zip an investigator can verify by hand (see ``howto.py``), with a printable
summary of it (see ``printable.py``).

Each package is checked as ``evidence verify`` checks one report before it is exported. A damaged
package is still exported as it was found (an investigator may need to show the damage), but the
problems are returned to the caller and REPORT.html marks it, next to what was sealed.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import time
import zipfile
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from addin_service.errors import ServiceError
from addin_service.evidence import signing
from addin_service.evidence.canonical import SHA256_PREFIX, utc_now_iso
from addin_service.evidence.fsio import CHUNK, FileDigest, fsync_dir, open_regular
from addin_service.evidence.howto import verify_text
from addin_service.evidence.keys import PUBLIC_KEY_NAME, LedgerKeys
from addin_service.evidence.layout import MESSAGE, PACKAGE_FILES, StoreLayout
from addin_service.evidence.ledger import Ledger, LedgerEntry, LedgerLine
from addin_service.evidence.ports import ExportResult, VerifyProblem
from addin_service.evidence.printable import PackageView, read_package, render_report
from addin_service.evidence.verify import Verifier
from addin_service.ids import is_case_id

LEDGER_ENTRIES_NAME = "ledger-entries.jsonl"
SUMS_NAME = "SHA256SUMS"
VERIFY_NAME = "VERIFY.txt"
REPORT_NAME = "REPORT.html"
_READ_ONLY = (stat.S_IFREG | 0o444) << 16
_READ_WRITE = (stat.S_IFREG | 0o644) << 16


class OutputFolderUnusable(ServiceError, OSError):
    """The folder the export was to be written to does not exist or cannot be written.

    An :class:`OSError`, as export's other write failures are; a :class:`ServiceError` whose detail
    says which folder and why, so the CLI ends with that one line (``cli_support.stops_cleanly``).
    """

    def __init__(self, folder: Path, cause: OSError) -> None:
        if not folder.exists():
            why = "it does not exist"
        elif not folder.is_dir():
            why = "it is not a folder"
        else:
            why = f"it cannot be written ({cause.strerror or type(cause).__name__})"
        super().__init__(f"cannot write the export into {folder}: {why}; choose another -o path")
        self.folder = folder


class LedgerUnreadable(ServiceError, OSError):
    """The ledger (or its lock file) cannot be read, so there is nothing to export from: the CLI ends
    with the one line that says why (``cli_support.stops_cleanly``)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"cannot export: {why}; run addin-service evidence verify")


class _Zip:
    """Adds members to a zip, streaming files and remembering every member's sha256."""

    def __init__(self, zf: zipfile.ZipFile) -> None:
        self._zf = zf
        self.sums: list[tuple[str, str]] = []

    def add_file(self, arcname: str, path: Path, *, stored: bool) -> tuple[str, int]:
        """Copy a regular file in chunks; ``stored`` keeps it uncompressed (bytes exactly as kept).
        Returns the copy's sha256 (hex) and size."""
        fd = open_regular(path)
        try:
            st = os.fstat(fd)
            info = zipfile.ZipInfo(arcname, date_time=_zip_time(st.st_mtime))
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            info.external_attr = _READ_ONLY
            info.file_size = st.st_size
            hasher = hashlib.sha256()
            with self._zf.open(info, "w") as dst:
                while chunk := os.read(fd, CHUNK):
                    hasher.update(chunk)
                    dst.write(chunk)
        finally:
            os.close(fd)
        self.sums.append((hasher.hexdigest(), arcname))
        return hasher.hexdigest(), st.st_size

    def add_bytes(self, arcname: str, data: bytes) -> None:
        info = zipfile.ZipInfo(arcname, date_time=_zip_time(time.time()))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = _READ_WRITE
        self._zf.writestr(info, data)
        self.sums.append((hashlib.sha256(data).hexdigest(), arcname))

    def sums_file(self) -> bytes:
        """``sha256sum -c`` format: hex digest, two spaces, path."""
        return "".join(f"{digest}  {name}\n" for digest, name in self.sums).encode("utf-8")


def export_case(
    layout: StoreLayout,
    ledger: Ledger,
    keys: LedgerKeys,
    case_id: str,
    out: Path,
    *,
    recorded: Collection[str] | None = None,
) -> ExportResult:
    """Write ``case_id``'s ledgered packages, their ledger lines, the public key, SHA256SUMS and
    VERIFY.txt to the zip ``out`` (written to a temporary name, then renamed). Packages that
    are missing from disk are left out; their ledger lines stay in, so the gap shows.

    Every package is checked as ``evidence verify`` checks one report; one that does not match what
    was sealed (or is missing) is still exported as found, and REPORT.html marks it. Returns the
    number of packages exported and those problems. With ``recorded`` (the report ids the case
    database holds), REPORT.html marks each other package as sealed by a request that failed before
    filing it.

    :raises KeyError: no ledger entry belongs to ``case_id``.
    :raises ValueError: there is no public key to include.
    :raises LedgerUnreadable: the ledger or its lock file cannot be read (an OSError).
    :raises OutputFolderUnusable: nothing can be created in ``out``'s folder (an OSError).
    :raises OSError: a file could not be read or the zip could not be written.
    """
    if not is_case_id(case_id):
        raise KeyError(case_id)
    verifier = Verifier(layout, ledger, keys)
    try:
        with ledger.shared():
            lines = [
                line
                for line in verifier.ledger_lines()
                if line.entry is not None and line.entry.case_id == case_id
            ]
    except OSError as exc:
        why = ledger.unreadable(exc)
        if why is None:
            raise
        raise LedgerUnreadable(why) from exc
    if not lines:
        raise KeyError(case_id)
    public_key = keys.public_key()
    if public_key is None:
        raise ValueError(f"no {PUBLIC_KEY_NAME} to include in the export")
    out = Path(os.path.abspath(out))
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    except OSError as exc:
        raise OutputFolderUnusable(out.parent, exc) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                members = _Zip(zf)
                views, problems = _add_packages(members, layout, verifier, public_key, lines)
                if recorded is not None:
                    views = [replace(view, filed=view.report_id in recorded) for view in views]
                count = len(views)
                exported_at = utc_now_iso()
                fingerprint = signing.fingerprint(public_key)
                members.add_bytes(LEDGER_ENTRIES_NAME, b"".join(line.raw + b"\n" for line in lines))
                members.add_bytes(PUBLIC_KEY_NAME, signing.public_key_pem(public_key))
                members.add_bytes(
                    VERIFY_NAME,
                    verify_text(case_id=case_id, count=count, exported_at=exported_at, fingerprint=fingerprint),
                )
                members.add_bytes(
                    REPORT_NAME,
                    render_report(
                        case_id=case_id,
                        packages=views,
                        exported_at=exported_at,
                        fingerprint=fingerprint,
                        problems=problems,
                    ),
                )
                zf.writestr(_text_info(SUMS_NAME), members.sums_file())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, out)
        fsync_dir(out.parent)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return ExportResult(count=count, problems=tuple(problems))


def _add_packages(
    members: _Zip, layout: StoreLayout, verifier: Verifier, key: Ed25519PublicKey, lines: list[LedgerLine]
) -> tuple[list[PackageView], list[VerifyProblem]]:
    """Check and add each ledgered package's files; return what the printable summary needs of
    each, and every problem found, in ledger order."""
    views: list[PackageView] = []
    problems: list[VerifyProblem] = []
    entries: dict[str, list[LedgerEntry]] = {}
    for line in lines:
        if line.entry is not None:
            entries.setdefault(line.entry.report_id, []).append(line.entry)
    for entry, *duplicates in entries.values():
        check = verifier.check_report(entry, key)
        if duplicates:
            check.problems.append("this report appears more than once in the ledger")
        package = layout.package_dir(entry.case_id, entry.report_id)
        if _is_folder(package):
            exported = {
                name: members.add_file(
                    f"{entry.case_id}/{entry.report_id}/{name}", package / name, stored=name == MESSAGE
                )
                for name in PACKAGE_FILES
                if _is_regular(package / name)
            }
            check.problems += _changed_since_checked(check.found, exported)
            views.append(read_package(package, entry, exported, listed=check.listed, problems=check.problems))
        problems += [VerifyProblem(entry.case_id, entry.report_id, entry.sequence, p) for p in check.problems]
    return views, problems


def _changed_since_checked(found: dict[str, FileDigest], exported: dict[str, tuple[str, int]]) -> list[str]:
    """The files whose copy in the zip is not what the check just read: each changed in between."""
    return [
        f"{name} changed while it was being exported (the copy in the export is not the file that was checked)"
        for name, digest in sorted(found.items())
        if name in exported and (SHA256_PREFIX + exported[name][0], exported[name][1]) != (digest.sha256, digest.size)
    ]


def _is_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):  # the case's own folder may be a file or a FIFO
        return False


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _text_info(arcname: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname, date_time=_zip_time(time.time()))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = _READ_WRITE
    return info


def _zip_time(timestamp: float) -> tuple[int, int, int, int, int, int]:
    """A zip member time (UTC; zip cannot hold dates before 1980)."""
    t = time.gmtime(max(timestamp, 315532800.0))
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)
