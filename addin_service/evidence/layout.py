"""Where things live under the store's root, and the only place paths are built from ids.

Every path into the store goes through :class:`StoreLayout`, which accepts only ids that match
``ids.py`` and only the four package file names, so nothing from a request (or from an edited
ledger line) can point outside the root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from addin_service.evidence.fsio import make_private_dir
from addin_service.ids import is_case_id, is_report_id

MESSAGE = "message.eml"
HEADERS = "headers.txt"
METADATA = "metadata.json"
MANIFEST = "manifest.json"
PAYLOAD_FILES = (HEADERS, MESSAGE, METADATA)  # listed and hashed in the manifest
PACKAGE_FILES = (HEADERS, MANIFEST, MESSAGE, METADATA)
LEDGER_DIR = "ledger"
TMP_DIR = ".tmp"
_IGNORED_AT_ROOT = frozenset({LEDGER_DIR, TMP_DIR, "lost+found"})


@dataclass
class Scan:
    """What is on disk: package directories, and anything that does not belong."""

    packages: list[tuple[str, str]] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)


class StoreLayout:
    """Paths of the store rooted at ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(root))
        self.ledger_dir = self.root / LEDGER_DIR
        self.tmp_dir = self.root / TMP_DIR

    def ensure(self) -> None:
        """Create the root, ledger and temporary folders (0700) if they are missing.

        :raises OSError: they cannot be created, or a path component is not a directory.
        """
        if not self.root.is_dir():
            os.makedirs(self.root, mode=0o700, exist_ok=True)
        make_private_dir(self.ledger_dir)
        make_private_dir(self.tmp_dir)

    def case_dir(self, case_id: str) -> Path:
        """:raises ValueError: ``case_id`` is not a case id."""
        if not is_case_id(case_id):
            raise ValueError("not a case id")
        return self.root / case_id

    def package_dir(self, case_id: str, report_id: str) -> Path:
        """:raises ValueError: either id is malformed."""
        if not is_report_id(report_id):
            raise ValueError("not a report id")
        return self.case_dir(case_id) / report_id

    def package_file(self, case_id: str, report_id: str, name: str) -> Path:
        """:raises ValueError: an id is malformed or ``name`` is not a package file."""
        if name not in PACKAGE_FILES:
            raise ValueError("not a package file name")
        return self.package_dir(case_id, report_id) / name

    def scan(self) -> Scan:
        """List package directories and stray entries (without following links).

        :raises OSError: the root exists but cannot be listed.
        """
        scan = Scan()
        try:
            top = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return scan
        for entry in top:
            if entry.name in _IGNORED_AT_ROOT:
                continue
            if not (is_case_id(entry.name) and entry.is_dir(follow_symlinks=False)):
                scan.strays.append(entry.name)
                continue
            for sub in sorted(os.scandir(entry.path), key=lambda e: e.name):
                if is_report_id(sub.name) and sub.is_dir(follow_symlinks=False):
                    scan.packages.append((entry.name, sub.name))
                else:
                    scan.strays.append(f"{entry.name}/{sub.name}")
        return scan
