"""FileEvidenceStore on a real directory: layout, byte-exactness, limits, failures, keys."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from pathlib import Path

import pytest

from addin_service import ids
from addin_service.errors import ConfigError, EvidenceStoreUnavailable, MessageTooLarge
from addin_service.evidence import signing
from addin_service.evidence.files import FileEvidenceStore
from addin_service.evidence.ledger import Ledger
from tests.fakes.evidence import SAMPLE_HEADERS, file_report, sample_message, sha256

FILES = {"headers.txt", "manifest.json", "message.eml", "metadata.json"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "evidence"


@pytest.fixture
def store(root: Path) -> FileEvidenceStore:
    return FileEvidenceStore(root)


def package_dir(root: Path, case_id: str, report_id: str) -> Path:
    return root / case_id / report_id


def leftovers(root: Path) -> list[str]:
    """Everything under the root except the ledger folder."""
    return (
        sorted(
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.relative_to(root).parts[0] not in ("ledger",)
        )
        if root.exists()
        else []
    )


def test_a_sealed_package_has_the_four_files_in_its_case_folder(store: FileEvidenceStore, root: Path) -> None:
    sealed = file_report(store, sample_message())
    assert {p.name for p in package_dir(root, sealed.case_id, sealed.report_id).iterdir()} == FILES


def test_seal_reports_the_message_hash_size_and_ledger_position(store: FileEvidenceStore) -> None:
    message = sample_message()
    sealed = file_report(store, message)
    assert (sealed.message_sha256, sealed.message_size, sealed.ledger_sequence) == (
        sha256(message),
        len(message),
        1,
    )


def test_the_manifest_hash_is_of_the_stored_manifest_bytes(store: FileEvidenceStore) -> None:
    sealed = file_report(store, sample_message())
    assert (
        sha256(store.read_file(sealed.case_id, sealed.report_id, "manifest.json")) == sealed.manifest_sha256
    )


def test_the_manifest_lists_each_file_and_the_ledger_position(store: FileEvidenceStore) -> None:
    first = file_report(store, b"one")
    second = file_report(store, sample_message())
    manifest = json.loads(store.read_file(second.case_id, second.report_id, "manifest.json"))
    ledger_line = (store.root / "ledger" / "ledger.jsonl").read_bytes().splitlines()[0]
    assert manifest["format"] == 1
    assert manifest["files"]["message.eml"] == {"sha256": second.message_sha256, "size": second.message_size}
    assert set(manifest["files"]) == FILES - {"manifest.json"}
    assert manifest["ledger"] == {"sequence": 2, "previous_hash": json.loads(ledger_line)["hash"]}
    assert manifest["created_at"].endswith("Z")
    assert manifest["signature"]["alg"] == "Ed25519"
    assert first.ledger_sequence == 1


def test_headers_are_stored_exactly_as_given(store: FileEvidenceStore) -> None:
    sealed = file_report(store, b"x", headers=SAMPLE_HEADERS)
    expected = b"".join(f"{n}: {v}\r\n".encode() for n, v in SAMPLE_HEADERS)
    assert store.read_file(sealed.case_id, sealed.report_id, "headers.txt") == expected


def test_metadata_is_stored_as_given_with_sorted_keys(store: FileEvidenceStore) -> None:
    sealed = file_report(store, b"x", metadata={"zeta": 1, "alpha": {"b": 2, "a": "ü"}})
    data = store.read_file(sealed.case_id, sealed.report_id, "metadata.json")
    assert data == '{\n  "alpha": {\n    "a": "ü",\n    "b": 2\n  },\n  "zeta": 1\n}\n'.encode()


def test_sealed_files_are_read_only(store: FileEvidenceStore, root: Path) -> None:
    sealed = file_report(store, b"x")
    folder = package_dir(root, sealed.case_id, sealed.report_id)
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o444}


@pytest.mark.parametrize(
    ("message", "chunk"),
    [
        (b"\x00\x00NUL\x00 bytes\r\n\r\n\x00", 3),
        (bytes(range(256)) * 64, 1000),
        (b"CR without LF\r\rand LF without CR\n\n\r\n", 5),
        (b"Subject: long\r\n\r\n" + b"y" * 100_000 + b"\r\n", 64 * 1024),
        (b"", 64 * 1024),
        (os.urandom(3 * 1024 * 1024 + 17), 64 * 1024),
    ],
    ids=["nul", "all-bytes", "cr-lf-mix", "100kb-line", "empty", "3mb-random"],
)
def test_the_message_is_stored_byte_for_byte(store: FileEvidenceStore, message: bytes, chunk: int) -> None:
    sealed = file_report(store, message, chunk=chunk)
    assert store.read_file(sealed.case_id, sealed.report_id, "message.eml") == message


def test_a_message_exactly_at_the_limit_is_accepted(store: FileEvidenceStore) -> None:
    sealed = file_report(store, b"a" * 1000, limit=1000, chunk=300)
    assert sealed.message_size == 1000


def test_a_message_over_the_limit_raises_as_soon_as_the_limit_is_passed(store: FileEvidenceStore) -> None:
    pending = store.open_package(ids.new_report_id(), 1000)
    pending.write(b"a" * 600)
    with pytest.raises(MessageTooLarge) as raised:
        pending.write(b"a" * 401)
    assert raised.value.limit == 1000


def test_a_message_over_the_limit_leaves_nothing_behind(store: FileEvidenceStore, root: Path) -> None:
    with pytest.raises(MessageTooLarge):
        file_report(store, b"a" * 5000, limit=1000, chunk=300)
    assert leftovers(root) == [".tmp"]


def test_abort_discards_the_partial_message(store: FileEvidenceStore, root: Path) -> None:
    pending = store.open_package(ids.new_report_id(), 1000)
    pending.write(b"partial")
    pending.abort()
    pending.abort()
    assert leftovers(root) == [".tmp"]


def test_abort_after_seal_keeps_the_sealed_package(store: FileEvidenceStore, root: Path) -> None:
    pending = store.open_package(ids.new_report_id(), 1000)
    pending.write(b"kept")
    sealed = pending.seal(ids.new_case_id(), (), {})
    pending.abort()
    assert store.read_file(sealed.case_id, sealed.report_id, "message.eml") == b"kept"


def test_a_package_cannot_be_sealed_twice(store: FileEvidenceStore) -> None:
    pending = store.open_package(ids.new_report_id(), 1000)
    pending.seal(ids.new_case_id(), (), {})
    with pytest.raises(RuntimeError):
        pending.seal(ids.new_case_id(), (), {})


def test_a_malformed_case_id_is_refused_and_nothing_is_written(store: FileEvidenceStore, root: Path) -> None:
    pending = store.open_package(ids.new_report_id(), 1000)
    pending.write(b"x")
    with pytest.raises(ValueError):
        pending.seal("../../outside", (), {})
    assert leftovers(root) == [".tmp"]
    assert not (root / "ledger" / "ledger.jsonl").exists()


def test_a_malformed_report_id_is_refused(store: FileEvidenceStore) -> None:
    with pytest.raises(ValueError):
        store.open_package("../R-AAAA", 1000)


@pytest.mark.parametrize(
    ("case_id", "report_id", "name"),
    [("..", "..", "ledger"), ("HR-2026-AAAAAAAA", "R-AAAAAAAAAAAAAAAA", "../../ledger/signing-key.pem")],
)
def test_read_file_refuses_paths_outside_a_package(
    store: FileEvidenceStore, case_id: str, report_id: str, name: str
) -> None:
    file_report(store, b"x")
    with pytest.raises(FileNotFoundError):
        store.read_file(case_id, report_id, name)


def test_the_same_report_cannot_be_sealed_over_an_existing_one(store: FileEvidenceStore) -> None:
    report_id, case_id = ids.new_report_id(), ids.new_case_id()
    first = store.open_package(report_id, 1000)
    first.write(b"first")
    first.seal(case_id, (), {})
    second = store.open_package(report_id, 1000)
    second.write(b"second")
    with pytest.raises(EvidenceStoreUnavailable):
        second.seal(case_id, (), {})
    assert store.read_file(case_id, report_id, "message.eml") == b"first"
    assert store.verify().ok


def test_a_failed_ledger_append_leaves_nothing_under_the_case(
    store: FileEvidenceStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(self: Ledger, entry: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Ledger, "append", disk_full)
    case_id = ids.new_case_id()
    with pytest.raises(EvidenceStoreUnavailable, match="disk is full"):
        file_report(store, sample_message(), case_id=case_id)
    assert leftovers(root) == [".tmp"]


@pytest.mark.parametrize("existing_case", [False, True])
def test_a_failed_sync_before_the_move_leaves_nothing_under_the_case(
    store: FileEvidenceStore, root: Path, monkeypatch: pytest.MonkeyPatch, existing_case: bool
) -> None:
    store.check()  # the key exists: what fails is the seal
    case_id = ids.new_case_id()
    kept = [file_report(store, b"already there", case_id=case_id).report_id] if existing_case else []
    ledger = root / "ledger" / "ledger.jsonl"
    ledger_before = ledger.read_bytes() if existing_case else None

    def io_error(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", io_error)
        with pytest.raises(EvidenceStoreUnavailable, match="input/output error"):
            file_report(store, sample_message(), case_id=case_id)
    assert sorted(p.name for p in root.iterdir()) == sorted([".tmp", "ledger", *([case_id] if kept else [])])
    assert list((root / ".tmp").iterdir()) == []
    if kept:
        assert [p.name for p in (root / case_id).iterdir()] == kept
    assert (ledger.read_bytes() if ledger.exists() else None) == ledger_before
    assert store.verify().ok


def test_a_torn_last_ledger_line_stops_sealing_without_repairing_it(
    store: FileEvidenceStore, root: Path
) -> None:
    first = file_report(store, b"first")
    ledger = root / "ledger" / "ledger.jsonl"
    torn = ledger.read_bytes() + b'{"at":"2026-'
    ledger.write_bytes(torn)
    with pytest.raises(EvidenceStoreUnavailable, match="incomplete"):
        file_report(store, b"second")
    assert ledger.read_bytes() == torn
    assert sorted(p.name for p in root.iterdir()) == [".tmp", first.case_id, "ledger"]
    assert list((root / ".tmp").iterdir()) == []


def test_an_edited_last_ledger_line_stops_sealing(store: FileEvidenceStore, root: Path) -> None:
    file_report(store, b"first")
    ledger = root / "ledger" / "ledger.jsonl"
    ledger.write_bytes(ledger.read_bytes().replace(b'"sequence":1', b'"sequence":7'))
    with pytest.raises(EvidenceStoreUnavailable, match="edited"):
        file_report(store, b"second")


def test_a_root_that_is_a_file_is_unavailable(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "evidence"
    not_a_folder.write_bytes(b"")
    with pytest.raises(EvidenceStoreUnavailable, match="not a folder"):
        FileEvidenceStore(not_a_folder).open_package(ids.new_report_id(), 1000)


def test_check_fails_when_the_root_is_a_file(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "evidence"
    not_a_folder.write_bytes(b"")
    with pytest.raises(EvidenceStoreUnavailable):
        FileEvidenceStore(not_a_folder).check()


def test_check_leaves_no_probe_file(store: FileEvidenceStore, root: Path) -> None:
    store.check()
    assert list((root / ".tmp").iterdir()) == []


def test_the_store_creates_its_key_with_mode_0600_on_first_use(store: FileEvidenceStore, root: Path) -> None:
    store.check()
    assert stat.S_IMODE((root / "ledger" / "signing-key.pem").stat().st_mode) == 0o600
    assert (root / "ledger" / "signing-key.pub.pem").is_file()


def test_the_created_key_is_never_overwritten(root: Path) -> None:
    FileEvidenceStore(root).check()
    before = (root / "ledger" / "signing-key.pem").read_bytes()
    FileEvidenceStore(root).check()
    file_report(FileEvidenceStore(root), b"x")
    assert (root / "ledger" / "signing-key.pem").read_bytes() == before


def test_the_key_fingerprint_is_logged_at_info(
    store: FileEvidenceStore, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="addin_service.evidence")
    store.check()
    public = signing.load_public_key_pem((root / "ledger" / "signing-key.pub.pem").read_bytes())
    assert any(
        r.levelno == logging.INFO and signing.fingerprint(public) in r.getMessage() for r in caplog.records
    )


def test_a_lost_private_key_is_not_silently_replaced(root: Path) -> None:
    file_report(FileEvidenceStore(root), b"x")
    (root / "ledger" / "signing-key.pem").unlink()
    with pytest.raises(EvidenceStoreUnavailable):
        FileEvidenceStore(root).check()
    assert not (root / "ledger" / "signing-key.pem").exists()


def write_key(path: Path) -> str:
    key = signing.generate_private_key()
    path.write_bytes(signing.private_key_pem(key))
    path.chmod(0o600)
    return signing.fingerprint(key.public_key())


def test_a_configured_key_signs_and_no_key_is_created(tmp_path: Path, root: Path) -> None:
    fingerprint = write_key(tmp_path / "configured.pem")
    store = FileEvidenceStore(root, str(tmp_path / "configured.pem"))
    sealed = file_report(store, b"x")
    manifest = json.loads(store.read_file(sealed.case_id, sealed.report_id, "manifest.json"))
    assert manifest["signature"]["key"] == fingerprint
    assert not (root / "ledger" / "signing-key.pem").exists()


def test_a_configured_key_that_does_not_match_the_ledger_is_refused(tmp_path: Path, root: Path) -> None:
    file_report(FileEvidenceStore(root), b"signed with the created key")
    published = (root / "ledger" / "signing-key.pub.pem").read_bytes()
    write_key(tmp_path / "other.pem")
    with pytest.raises(EvidenceStoreUnavailable):
        FileEvidenceStore(root, str(tmp_path / "other.pem")).check()
    assert (root / "ledger" / "signing-key.pub.pem").read_bytes() == published


def test_a_configured_key_that_is_not_ed25519_names_the_variable(tmp_path: Path, root: Path) -> None:
    (tmp_path / "bad.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="^ADDIN_SIGNING_KEY"):
        FileEvidenceStore(root, str(tmp_path / "bad.pem")).check()


def test_logs_hold_no_message_body_or_metadata(
    store: FileEvidenceStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    file_report(store, sample_message(b"SECRET-BODY-TEXT"), metadata={"note": "SECRET-NOTE-TEXT"})
    with pytest.raises(MessageTooLarge):
        file_report(store, b"SECRET-BODY-TEXT" * 100, limit=100)
    logged = caplog.text + "".join(json.dumps(vars(r), default=str) for r in caplog.records)
    assert "SECRET-BODY-TEXT" not in logged and "SECRET-NOTE-TEXT" not in logged


def test_a_large_message_starts_writeback_behind_itself_in_contiguous_ranges(
    store: FileEvidenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from addin_service.evidence import fsio, package

    started: list[tuple[int, int]] = []
    real = fsio.start_writeback

    def recording(fd: int, offset: int, length: int) -> None:
        started.append((offset, length))
        real(fd, offset, length)  # the real kernel call, on the real file

    monkeypatch.setattr(package, "start_writeback", recording)
    message = os.urandom(9 * 1024 * 1024 + 5)
    sealed = file_report(store, message, chunk=64 * 1024)
    assert store.read_file(sealed.case_id, sealed.report_id, "message.eml") == message
    assert started, "no writeback was started for a 9 MB message"
    assert started[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in zip(started, started[1:], strict=False))
    assert all(n >= 2 * 1024 * 1024 for _, n in started)
    assert started[-1][0] + started[-1][1] <= len(message)


def test_a_small_message_starts_no_writeback(store: FileEvidenceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from addin_service.evidence import package

    started: list[int] = []
    monkeypatch.setattr(package, "start_writeback", lambda fd, offset, length: started.append(length))
    file_report(store, b"x" * 50_000)
    assert started == []


def test_work_left_by_a_capture_that_died_is_swept_and_a_live_one_kept(
    root: Path, store: FileEvidenceStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A partial copy of someone's message must not sit in .tmp forever; a capture still running
    in another process must not lose its work."""
    tmp = root / ".tmp"
    tmp.mkdir(parents=True)
    dead = tmp / "R-AAAAAAAAAAAAAAAA.dead1234"
    dead.mkdir()
    (dead / "message.eml").write_bytes(b"From: half of a message")
    day_and_more = os.stat(dead).st_mtime - 25 * 3600
    for path in (dead / "message.eml", dead):
        os.utime(path, (day_and_more, day_and_more))
    live = tmp / "R-BBBBBBBBBBBBBBBB.live5678"
    live.mkdir()
    (live / "message.eml").write_bytes(b"still arriving")
    os.utime(live, (day_and_more, day_and_more))  # the folder is old, its file was written just now

    with caplog.at_level(logging.WARNING, logger="addin_service.evidence"):
        pending = store.open_package(ids.new_report_id(), 1024)
    pending.abort()

    assert not dead.exists()
    assert (live / "message.eml").read_bytes() == b"still arriving"
    assert [r.__dict__.get("count") for r in caplog.records if r.__dict__.get("event") == "evidence.tmp_swept"] == [1]
