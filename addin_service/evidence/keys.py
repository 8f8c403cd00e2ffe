"""Where the ledger's signing key comes from, and the public key published beside the ledger.

With ``ADDIN_SIGNING_KEY`` set, that private key is used. Otherwise a key is created beside the
ledger (``signing-key.pem``, mode 0600) the first time one is needed and never overwritten.
Either way the public half is published once as ``signing-key.pub.pem`` so that anyone can
verify the ledger without the private key; a key that does not match an already published
public key is refused, because signing with it would make the existing evidence unverifiable.

A configured key is checked when a process that signs starts (:func:`check_configured_key`), so a
bad ``ADDIN_SIGNING_KEY`` stops start-up instead of every filing.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from addin_service.errors import ConfigError, EvidenceStoreUnavailable
from addin_service.evidence import signing
from addin_service.evidence.fsio import create_exclusive, read_regular, unavailable

log = logging.getLogger("addin_service.evidence")

PRIVATE_KEY_NAME = "signing-key.pem"
PUBLIC_KEY_NAME = "signing-key.pub.pem"
_KEY_FILE_LIMIT = 64 * 1024
_KEY_UNUSABLE = (
    "The evidence signing key cannot be used, so nothing can be filed right now. "
    "An administrator must check the service log."
)
_KEY_EXPECTED = (
    "it must be an unencrypted Ed25519 private key in PEM (PKCS#8), as `openssl genpkey -algorithm ed25519` writes"
)


def check_configured_key(path: str | None) -> None:
    """Start-up check of ``ADDIN_SIGNING_KEY`` for processes that sign (filing, acknowledgement
    links): read and parse the key now, so that a bad one stops start-up rather than every report.
    Does nothing when unset; never creates or writes a file.

    :raises ConfigError: naming ``ADDIN_SIGNING_KEY`` and what is wrong (missing, unreadable, not
        PEM, encrypted, not an Ed25519 private key); never any of the file's content.
    """
    if path:
        load_configured_key(Path(path))


def load_configured_key(path: Path) -> Ed25519PrivateKey:
    """The private key at ``ADDIN_SIGNING_KEY``; warns when other users may read it.

    :raises ConfigError: naming ``ADDIN_SIGNING_KEY``: the file cannot be read or holds no usable key.
    """
    try:
        # The admin chose this path, and secret stores hand keys out through links (a Kubernetes
        # secret volume, systemd credentials): follow them, then read the file itself.
        real = path.resolve(strict=True)
        data = read_regular(real, _KEY_FILE_LIMIT)
    except OSError as exc:
        raise ConfigError("ADDIN_SIGNING_KEY", _unreadable(path, exc)) from None
    except RuntimeError:  # a loop of links (Python 3.11 and 3.12)
        raise ConfigError("ADDIN_SIGNING_KEY", f"{path} is a loop of symbolic links") from None
    try:
        key = signing.load_private_key_pem(data)
    except ValueError as exc:
        raise ConfigError("ADDIN_SIGNING_KEY", f"{path} is {_unusable(data, exc)}; {_KEY_EXPECTED}") from None
    if os.stat(real).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "evidence signing key %s is readable by other users; chmod 600 it",
            path,
            extra={"event": "evidence.signing_key_mode"},
        )
    return key


def _unreadable(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return f"{path} does not exist"
    if exc.errno == errno.ELOOP:
        return f"{path} is a loop of symbolic links"
    if exc.errno == errno.EISDIR:
        return f"{path} is not a regular file"
    return f"cannot read {path} ({exc.strerror})"


def _unusable(data: bytes, exc: ValueError) -> str:
    """What is wrong with key file contents that did not load, judged by their PEM labels only."""
    if len(data) > _KEY_FILE_LIMIT:
        return f"larger than {_KEY_FILE_LIMIT // 1024} KiB, too large to be a key"
    if not data.strip():
        return "empty"
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data:
        return "encrypted (the service cannot ask for a passphrase; protect the file by mode 0600 instead)"
    if b"-----BEGIN PUBLIC KEY-----" in data:
        return "a public key, not the private key"
    if b"-----BEGIN " not in data:
        return "not in PEM format"
    return str(exc)


@dataclass(frozen=True)
class Signer:
    """The private key in use, its public half and that half's fingerprint."""

    private_key: Ed25519PrivateKey
    public_key: Ed25519PublicKey
    fingerprint: str

    def sign(self, data: bytes) -> str:
        """Base64 Ed25519 signature of ``data``."""
        return signing.sign(self.private_key, data)


class LedgerKeys:
    """Loads (or creates once) the signing key and publishes its public half in ``ledger_dir``."""

    def __init__(self, ledger_dir: Path, configured_path: str | None = None) -> None:
        self._dir = ledger_dir
        self._configured = Path(configured_path) if configured_path else None
        self._lock = threading.Lock()
        self._signer: Signer | None = None

    @property
    def public_key_path(self) -> Path:
        return self._dir / PUBLIC_KEY_NAME

    def signer(self) -> Signer:
        """The key to sign with, loaded or created on first use and then cached.

        :raises ConfigError: ``ADDIN_SIGNING_KEY`` names an unreadable or non-Ed25519 key.
        :raises EvidenceStoreUnavailable: the key files cannot be written, or the key does not
            match the public key already published beside the ledger.
        """
        with self._lock:
            if self._signer is None:
                try:
                    self._signer = self._load_signer()
                except OSError as exc:
                    raise unavailable(exc, "prepare the evidence signing key") from exc
            return self._signer

    def public_key(self) -> Ed25519PublicKey | None:
        """The key to verify with: the published public key, else the public half of a private key
        that already exists. Never creates a key. None when there is no key at all.

        :raises ValueError: the key file exists but cannot be read or parsed.
        """
        try:
            return signing.load_public_key_pem(read_regular(self.public_key_path, _KEY_FILE_LIMIT))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ValueError(f"{PUBLIC_KEY_NAME} cannot be read ({exc.strerror})") from exc
        except ValueError as exc:
            raise ValueError(f"{PUBLIC_KEY_NAME} is {exc}") from exc
        private_path = self._configured or self._dir / PRIVATE_KEY_NAME
        try:
            return signing.load_private_key_pem(read_regular(private_path, _KEY_FILE_LIMIT)).public_key()
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ValueError(f"no {PUBLIC_KEY_NAME}, and the private key cannot be used ({exc})") from exc

    def _load_signer(self) -> Signer:
        if self._configured is not None:
            key, origin = load_configured_key(self._configured), "configured"
        else:
            key, origin = self._load_or_create_own()
        public = key.public_key()
        self._publish(public)
        signer = Signer(private_key=key, public_key=public, fingerprint=signing.fingerprint(public))
        log.info(
            "evidence signing key %s (%s); public key at %s",
            signer.fingerprint,
            origin,
            self.public_key_path,
            extra={"event": "evidence.signing_key", "fingerprint": signer.fingerprint, "origin": origin},
        )
        return signer

    def _load_or_create_own(self) -> tuple[Ed25519PrivateKey, str]:
        path = self._dir / PRIVATE_KEY_NAME
        origin = "loaded from the ledger folder"
        try:
            data = read_regular(path, _KEY_FILE_LIMIT)
        except FileNotFoundError:
            if os.path.lexists(self.public_key_path):
                log.error(
                    "%s is missing but the ledger's public key %s exists; refusing to create a new key. "
                    "Restore the private key or set ADDIN_SIGNING_KEY to it.",
                    path,
                    self.public_key_path,
                    extra={"event": "evidence.key_missing"},
                )
                raise EvidenceStoreUnavailable(_KEY_UNUSABLE) from None
            fresh = signing.generate_private_key()
            if create_exclusive(path, signing.private_key_pem(fresh), 0o600):
                return fresh, "created beside the ledger"
            data = read_regular(path, _KEY_FILE_LIMIT)  # another process created it first
        try:
            return signing.load_private_key_pem(data), origin
        except ValueError as exc:
            log.error(
                "evidence signing key %s is unusable: %s", path, exc, extra={"event": "evidence.key_unusable"}
            )
            raise EvidenceStoreUnavailable(_KEY_UNUSABLE) from None

    def _publish(self, public: Ed25519PublicKey) -> None:
        path = self.public_key_path
        if create_exclusive(path, signing.public_key_pem(public), 0o644):
            return
        try:
            published = signing.load_public_key_pem(read_regular(path, _KEY_FILE_LIMIT))
        except ValueError as exc:
            log.error("%s is unusable: %s", path, exc, extra={"event": "evidence.key_unusable"})
            raise EvidenceStoreUnavailable(_KEY_UNUSABLE) from None
        if signing.raw_public_bytes(published) != signing.raw_public_bytes(public):
            log.error(
                "the signing key %s does not match the ledger's public key %s (%s); refusing to sign "
                "with it, because existing evidence could no longer be verified",
                signing.fingerprint(public),
                signing.fingerprint(published),
                path,
                extra={"event": "evidence.key_mismatch"},
            )
            raise EvidenceStoreUnavailable(_KEY_UNUSABLE)
