"""Export's last check: the copy written into the zip is the file that was just verified."""

from __future__ import annotations

import hashlib

from addin_service.evidence.export import _changed_since_checked
from addin_service.evidence.fsio import FileDigest


def digest(data: bytes) -> FileDigest:
    return FileDigest("sha256:" + hashlib.sha256(data).hexdigest(), len(data))


def copied(data: bytes) -> tuple[str, int]:
    return hashlib.sha256(data).hexdigest(), len(data)


def test_a_copy_of_the_checked_bytes_is_no_problem() -> None:
    found = {"message.eml": digest(b"as sealed"), "manifest.json": digest(b"{}")}
    assert _changed_since_checked(found, {"message.eml": copied(b"as sealed"), "manifest.json": copied(b"{}")}) == []


def test_a_file_that_changed_between_the_check_and_the_copy_is_named() -> None:
    found = {"message.eml": digest(b"as sealed"), "headers.txt": digest(b"h")}
    exported = {"message.eml": copied(b"as sealeD"), "headers.txt": copied(b"h")}
    assert _changed_since_checked(found, exported) == [
        "message.eml changed while it was being exported (the copy in the export is not the file that was checked)"
    ]


def test_a_file_the_check_could_not_read_is_left_to_the_checks_own_problem() -> None:
    assert _changed_since_checked({}, {"message.eml": copied(b"x")}) == []
