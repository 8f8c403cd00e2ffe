"""Ed25519 keys for the ledger: PEM (PKCS#8 / SubjectPublicKeyInfo) I/O, fingerprint, sign, verify.

Pure functions over bytes; where the key files live and when they are created is ``keys.py``'s job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "Ed25519"


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh random Ed25519 key."""
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM (the file is protected by mode 0600, not a passphrase)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    """The public key as SubjectPublicKeyInfo PEM, the form ``openssl pkeyutl -pubin`` reads."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key_pem(data: bytes) -> Ed25519PrivateKey:
    """Parse an unencrypted Ed25519 private key in PEM.

    :raises ValueError: not PEM, encrypted, or not an Ed25519 key.
    """
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("not an unencrypted private key in PEM format") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def load_public_key_pem(data: bytes) -> Ed25519PublicKey:
    """Parse an Ed25519 public key in PEM.

    :raises ValueError: not PEM or not an Ed25519 key.
    """
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError("not a public key in PEM format") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of the public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    """``sha256:<hex>`` of the raw 32-byte public key: how manifests and logs name the key."""
    return "sha256:" + hashlib.sha256(raw_public_bytes(key)).hexdigest()


def sign(key: Ed25519PrivateKey, data: bytes) -> str:
    """Sign ``data``; the signature in standard base64."""
    return base64.b64encode(key.sign(data)).decode("ascii")


def verify(key: Ed25519PublicKey, data: bytes, signature: object) -> bool:
    """True when ``signature`` (base64 text) is a valid Ed25519 signature of ``data`` by ``key``."""
    if not isinstance(signature, str):
        return False
    try:
        raw = base64.b64decode(signature.encode("ascii"), validate=True)
        key.verify(raw, data)
    except (InvalidSignature, binascii.Error, UnicodeEncodeError, ValueError):
        return False
    return True
