"""Real storage failures: a full disk and a read-only mount, in a private mount namespace.

Running as root, chmod does not stop writes, so these tests mount a tiny tmpfs (or a read-only
bind mount) with ``unshare --mount --map-root-user`` and run the store in a child process there.
Where the kernel refuses unprivileged namespaces the tests are skipped, saying why.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROGRAM = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from addin_service import ids
    from addin_service.errors import EvidenceStoreUnavailable
    from addin_service.evidence.files import FileEvidenceStore

    root = Path(sys.argv[1]) / "evidence"
    mode = sys.argv[2]
    store = FileEvidenceStore(root)
    outcome = "no error"
    try:
        if mode == "check":
            store.check()
        else:
            pending = store.open_package(ids.new_report_id(), 100 * 1024 * 1024)
            try:
                size = 4 * 1024 * 1024 if mode == "fill-while-writing" else 300 * 1024
                for _ in range(size // 65536):
                    pending.write(b"m" * 65536)
                padding = "p" * (400 * 1024 if mode == "fill-while-sealing" else 1)
                pending.seal(ids.new_case_id(), (), {"padding": padding})
            finally:
                pending.abort()
    except EvidenceStoreUnavailable as exc:
        outcome = exc.detail
    left = sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.relative_to(root).parts[0] != "ledger"
    )
    print(json.dumps({"outcome": outcome, "left": left, "verify_ok": store.verify().ok}))
    """
)


def run_in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["unshare", "--mount", "--map-root-user", "sh", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def namespaces(tmp_path_factory: pytest.TempPathFactory) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare to mount a small filesystem privately")
    probe = tmp_path_factory.mktemp("probe")
    tried = run_in_namespace(f"mount -t tmpfs -o size=64k tmpfs {probe}")
    if tried.returncode != 0:
        pytest.skip(f"this kernel/container refuses private mount namespaces: {tried.stderr.strip()}")


def store_outcome(script: str) -> dict[str, object]:
    ran = run_in_namespace(script)
    assert ran.returncode == 0, ran.stderr
    result: dict[str, object] = json.loads(ran.stdout.strip().splitlines()[-1])
    return result


def program(tmp_path: Path, mode: str) -> tuple[Path, str]:
    """A folder to mount over, and the shell command that runs the store in it."""
    disk = tmp_path / "disk"
    disk.mkdir(exist_ok=True)
    (tmp_path / "program.py").write_text(PROGRAM)
    command = shlex.join([sys.executable, str(tmp_path / "program.py"), str(disk), mode])
    return disk, command


def test_a_disk_that_fills_while_the_message_is_written_files_nothing(
    namespaces: None, tmp_path: Path
) -> None:
    disk, command = program(tmp_path, "fill-while-writing")
    outcome = store_outcome(f"mount -t tmpfs -o size=512k tmpfs {shlex.quote(str(disk))} && {command}")
    assert "the disk is full" in str(outcome["outcome"]) and "Nothing was filed" in str(outcome["outcome"])
    assert (outcome["left"], outcome["verify_ok"]) == ([".tmp"], True)


def test_a_disk_that_fills_while_sealing_files_nothing(namespaces: None, tmp_path: Path) -> None:
    disk, command = program(tmp_path, "fill-while-sealing")
    outcome = store_outcome(f"mount -t tmpfs -o size=512k tmpfs {shlex.quote(str(disk))} && {command}")
    assert "the disk is full" in str(outcome["outcome"])
    assert (outcome["left"], outcome["verify_ok"]) == ([".tmp"], True)


def test_a_read_only_store_fails_its_check_but_still_verifies(namespaces: None, tmp_path: Path) -> None:
    disk, seal = program(tmp_path, "seal")
    _, check = program(tmp_path, "check")
    where = shlex.quote(str(disk))
    outcome = store_outcome(
        f"{seal} >/dev/null && mount --bind {where} {where} && mount -o remount,bind,ro {where} && {check}"
    )
    assert "the storage is read-only" in str(outcome["outcome"])
    assert outcome["verify_ok"] is True
