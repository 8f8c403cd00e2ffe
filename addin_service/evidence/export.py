"""Export one case as a zip an investigator can verify by hand (see ``howto.py``), with a printable
summary of it (see ``printable.py``)."""

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

from addin_service.errors import ServiceError
from addin_service.evidence import signing
from addin_service.evidence.canonical import utc_now_iso
from addin_service.evidence.fsio import CHUNK, fsync_dir, open_regular
from addin_service.evidence.howto import verify_text
from addin_service.evidence.keys import PUBLIC_KEY_NAME, LedgerKeys
from addin_service.evidence.layout import MESSAGE, PACKAGE_FILES, StoreLayout
from addin_service.evidence.ledger import Ledger, LedgerLine, split_lines
from addin_service.evidence.printable import PackageView, read_package, render_report
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
) -> int:
    """Write ``case_id``'s ledgered packages, their ledger lines, the public key, SHA256SUMS and
    VERIFY.txt to the zip ``out`` (written to a temporary name, then renamed). Packages that
    are missing from disk are left out; their ledger lines stay in, so the gap shows.

    Returns the number of packages exported. With ``recorded`` (the report ids the case database
    holds), REPORT.html marks each other package as sealed by a request that failed before filing it.

    :raises KeyError: no ledger entry belongs to ``case_id``.
    :raises ValueError: there is no public key to include.
    :raises OutputFolderUnusable: nothing can be created in ``out``'s folder (an OSError).
    :raises OSError: a file could not be read or the zip could not be written.
    """
    if not is_case_id(case_id):
        raise KeyError(case_id)
    with ledger.shared():
        lines = [
            line
            for line in split_lines(ledger.read_bytes())
            if line.entry is not None and line.entry.case_id == case_id
        ]
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
                views = _add_packages(members, layout, lines)
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
                    render_report(case_id=case_id, packages=views, exported_at=exported_at, fingerprint=fingerprint),
                )
                zf.writestr(_text_info(SUMS_NAME), members.sums_file())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, out)
        fsync_dir(out.parent)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return count


def _add_packages(members: _Zip, layout: StoreLayout, lines: list[LedgerLine]) -> list[PackageView]:
    """Add each ledgered package's files; return what the printable summary needs of each."""
    views: list[PackageView] = []
    seen: set[str] = set()
    for line in lines:
        entry = line.entry
        if entry is None or entry.report_id in seen:
            continue
        seen.add(entry.report_id)
        package = layout.package_dir(entry.case_id, entry.report_id)
        try:
            if not stat.S_ISDIR(os.lstat(package).st_mode):
                continue
        except FileNotFoundError:
            continue
        exported = {
            name: members.add_file(f"{entry.case_id}/{entry.report_id}/{name}", package / name, stored=name == MESSAGE)
            for name in PACKAGE_FILES
            if _is_regular(package / name)
        }
        views.append(read_package(package, entry, exported))
    return views


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
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
