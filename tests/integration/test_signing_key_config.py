"""``ADDIN_SIGNING_KEY`` set to a file that holds no usable key stops start-up, naming the variable
and what is wrong, in every process that signs: the WSGI factory (gunicorn), ``run`` and ``worker``.
Nothing is written at the configured path and none of the file's content is shown.

``evidence verify`` and ``export`` never sign: they use the public key published beside the ledger,
so a bad private key cannot change their answer; when that public key is missing, verify falls back
to the private key and then fails (exit 1) rather than claim the evidence is intact.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from addin_service import create_app
from addin_service.cli import cli
from addin_service.errors import ConfigError
from addin_service.evidence import signing
from addin_service.evidence.files import FileEvidenceStore
from tests.fakes.commands import UNUSED_EXCHANGE
from tests.fakes.evidence import file_report, sample_message
from tests.fakes.ports import free_port

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]
QUIET_SERVICE = {
    **UNUSED_EXCHANGE,
    "ADDIN_NOTIFY_FROM": "report-harassment@contoso.com",
    "ADDIN_WORKER": "false",
    "ADDIN_LOG_LEVEL": "warning",
}


def _env(tmp: Path, key: Path) -> dict[str, str]:
    return {
        **QUIET_SERVICE,
        "ADDIN_DATABASE_URL": f"sqlite:///{tmp / 'addin.db'}",
        "ADDIN_EVIDENCE_URL": f"file://{tmp / 'evidence'}",
        "ADDIN_SIGNING_KEY": str(key),
    }


def _pem_body(data: bytes) -> list[str]:
    """The base64 lines of a PEM file: what must never appear in a message."""
    return [line for line in data.decode("ascii", "replace").splitlines() if line and not line.startswith("-----")]


def _ed25519_pem() -> bytes:
    return signing.private_key_pem(signing.generate_private_key())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def not_pem(tmp: Path) -> Path:
    return _write(tmp / "hostname", b"evidence-host-17\n")  # what ADDIN_SIGNING_KEY=/etc/hostname reads


def empty(tmp: Path) -> Path:
    return _write(tmp / "key.pem", b"")


def rsa_key(tmp: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return _write(tmp / "rsa.pem", pem)


def encrypted(tmp: Path) -> Path:
    pem = signing.generate_private_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"correct horse battery staple"),
    )
    return _write(tmp / "encrypted.pem", pem)


def public_half(tmp: Path) -> Path:
    return _write(tmp / "signing-key.pub.pem", signing.public_key_pem(signing.generate_private_key().public_key()))


def missing(tmp: Path) -> Path:
    return tmp / "no-such-key.pem"


def link_loop(tmp: Path) -> Path:
    (tmp / "a.pem").symlink_to(tmp / "b.pem")
    (tmp / "b.pem").symlink_to(tmp / "a.pem")
    return tmp / "a.pem"


def unreadable(tmp: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("running as root, which can read a file of any mode")
    path = _write(tmp / "key.pem", _ed25519_pem())
    path.chmod(0o000)
    return path


BAD_KEYS: list[tuple[Callable[[Path], Path], str]] = [
    (not_pem, "is not in PEM format"),
    (empty, "is empty"),
    (rsa_key, "is not an Ed25519 private key"),
    (encrypted, "is encrypted"),
    (public_half, "is a public key, not the private key"),
    (missing, "no-such-key.pem"),
    (link_loop, "no readable file"),
    (unreadable, "Permission denied"),
]


@pytest.mark.parametrize(("make", "why"), BAD_KEYS, ids=[make.__name__ for make, _ in BAD_KEYS])
def test_an_unusable_signing_key_stops_the_wsgi_factory_naming_the_variable(
    tmp_path: Path, make: Callable[[Path], Path], why: str
) -> None:
    key = make(tmp_path)
    before = key.read_bytes() if key.is_file() and os.access(key, os.R_OK) else None

    with pytest.raises(ConfigError) as err:
        create_app(_env(tmp_path, key))

    message = str(err.value)
    assert message.startswith("ADDIN_SIGNING_KEY: ")
    assert why in message
    if before is not None:
        assert key.read_bytes() == before
        assert not any(line in message for line in _pem_body(before))
    assert key.exists() == (make not in (missing, link_loop))
    assert not (tmp_path / "evidence" / "ledger" / "signing-key.pem").exists()


def test_a_signing_key_reached_through_links_is_used_as_a_secret_volume_mounts_it(tmp_path: Path) -> None:
    # Kubernetes: key.pem -> ..data/key.pem, ..data -> ..2026_12_03_12_00_00.1/
    version = tmp_path / "..2026_12_03_12_00_00.1"
    version.mkdir()
    _write(version / "key.pem", _ed25519_pem())
    (tmp_path / "..data").symlink_to(version.name)
    key = tmp_path / "key.pem"
    key.symlink_to("..data/key.pem")

    app = create_app(_env(tmp_path, key))
    app.extensions["addin"].close()

    assert key.is_symlink()


def test_a_usable_signing_key_starts_the_app_and_is_left_alone(tmp_path: Path) -> None:
    key = _write(tmp_path / "key.pem", _ed25519_pem())
    before = key.read_bytes()

    app = create_app(_env(tmp_path, key))
    app.extensions["addin"].close()

    assert key.read_bytes() == before
    assert not (tmp_path / "evidence" / "ledger" / "signing-key.pem").exists()


def _command(tmp: Path, key: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` in its own process with only this test's ``ADDIN_*`` variables; one that keeps
    running (serving, sending) is stopped after 20 s and fails the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADDIN_")}
    env.update(_env(tmp, key))
    try:
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{argv[-1]} started with an unusable ADDIN_SIGNING_KEY: {exc.stderr!r}")


@pytest.mark.parametrize("argv", [["run", "--port", "{port}"], ["worker"]], ids=["run", "worker"])
def test_the_service_commands_stop_with_status_2_naming_the_variable(tmp_path: Path, argv: list[str]) -> None:
    key = not_pem(tmp_path)
    argv = [arg.format(port=free_port()) for arg in argv]

    done = _command(tmp_path, key, sys.executable, "-c", "from addin_service.cli import main; main()", *argv)

    assert done.returncode == 2, done.stderr
    assert f"configuration error: ADDIN_SIGNING_KEY: {key} is not in PEM format" in done.stderr
    assert "serving on" not in done.stderr
    assert "evidence-host-17" not in done.stdout + done.stderr


def test_gunicorn_does_not_start_with_an_unusable_signing_key(tmp_path: Path) -> None:
    key = encrypted(tmp_path)

    done = _command(
        tmp_path, key, sys.executable, "-m", "gunicorn", "-c", str(ROOT / "infra" / "gunicorn.conf.py"),
        "--bind", "127.0.0.1:0", "--workers", "1", "addin_service:create_app()",
    )

    assert done.returncode != 0
    assert "ADDIN_SIGNING_KEY" in done.stderr
    assert "is encrypted" in done.stderr


# -- verify and export: they read the published public key, never the private one ----------------


@pytest.fixture
def filed(tmp_path: Path) -> Path:
    """An evidence store with two reports, signed by the key it created; its public key published."""
    root = tmp_path / "evidence"
    store = FileEvidenceStore(root)
    for n in range(2):
        file_report(store, sample_message(f"message {n}".encode()))
    return root


def _evidence(root: Path, key: Path, *args: str) -> Result:
    env = {
        "ADDIN_EVIDENCE_URL": f"file://{root}",
        "ADDIN_DATABASE_URL": f"sqlite:///{root.parent / 'db.sqlite'}",
        "ADDIN_SIGNING_KEY": str(key),
    }
    return CliRunner().invoke(cli, ["evidence", *args], env=env)


def test_verify_checks_against_the_published_public_key_whatever_the_private_key(
    tmp_path: Path, filed: Path
) -> None:
    result = _evidence(filed, not_pem(tmp_path), "verify")

    assert result.exit_code == 0, result.output
    assert "evidence intact: 2 report(s)" in result.output


def test_verify_still_finds_tampering_with_an_unusable_private_key_set(tmp_path: Path, filed: Path) -> None:
    ledger = filed / "ledger" / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    ledger.chmod(0o644)
    ledger.write_bytes(lines[1])

    result = _evidence(filed, not_pem(tmp_path), "verify")

    assert result.exit_code == 1
    assert "EVIDENCE PROBLEM" in result.output


def test_verify_fails_when_it_would_need_the_unusable_private_key(tmp_path: Path, filed: Path) -> None:
    (filed / "ledger" / "signing-key.pub.pem").unlink()
    (filed / "ledger" / "signing-key.pem").unlink()

    result = _evidence(filed, not_pem(tmp_path), "verify")

    assert result.exit_code == 1
    assert "signatures cannot be checked" in result.output
    assert "evidence intact" not in result.output


def test_export_ships_the_published_public_key_whatever_the_private_key(tmp_path: Path, filed: Path) -> None:
    case_id = next(p.name for p in filed.glob("HR-*"))

    result = _evidence(filed, rsa_key(tmp_path), "export", case_id, "-o", str(tmp_path / "case.zip"))

    assert result.exit_code == 0, result.output
    assert (tmp_path / "case.zip").is_file()


def test_export_without_a_usable_public_key_says_why(tmp_path: Path, filed: Path) -> None:
    case_id = next(p.name for p in filed.glob("HR-*"))
    (filed / "ledger" / "signing-key.pub.pem").unlink()

    result = _evidence(filed, not_pem(tmp_path), "export", case_id, "-o", str(tmp_path / "case.zip"))

    assert result.exit_code == 1
    assert f"error: cannot export {case_id}" in result.output
    assert not (tmp_path / "case.zip").exists()
