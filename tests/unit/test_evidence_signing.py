"""Ed25519 helpers: PEM forms, fingerprints, signatures."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from addin_service.evidence import signing


def test_fingerprint_is_sha256_of_the_raw_public_key() -> None:
    key = signing.generate_private_key().public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert signing.fingerprint(key) == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_a_signature_verifies_with_the_matching_public_key() -> None:
    key = signing.generate_private_key()
    assert signing.verify(key.public_key(), b"data", signing.sign(key, b"data"))


def test_a_signature_does_not_verify_for_other_data() -> None:
    key = signing.generate_private_key()
    assert not signing.verify(key.public_key(), b"datA", signing.sign(key, b"data"))


def test_a_signature_does_not_verify_with_another_key() -> None:
    key = signing.generate_private_key()
    other = signing.generate_private_key().public_key()
    assert not signing.verify(other, b"data", signing.sign(key, b"data"))


@pytest.mark.parametrize("signature", ["not base64!", "", None, 42, "AAAA"])
def test_malformed_signatures_are_invalid_not_errors(signature: object) -> None:
    key = signing.generate_private_key().public_key()
    assert not signing.verify(key, b"data", signature)


def test_private_key_pem_round_trips() -> None:
    key = signing.generate_private_key()
    loaded = signing.load_private_key_pem(signing.private_key_pem(key))
    assert signing.fingerprint(loaded.public_key()) == signing.fingerprint(key.public_key())


def test_public_key_pem_round_trips() -> None:
    key = signing.generate_private_key().public_key()
    assert signing.fingerprint(
        signing.load_public_key_pem(signing.public_key_pem(key))
    ) == signing.fingerprint(key)


def test_an_rsa_key_is_refused() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="not an Ed25519"):
        signing.load_private_key_pem(pem)


def test_garbage_is_not_a_key() -> None:
    with pytest.raises(ValueError, match="PEM"):
        signing.load_public_key_pem(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
