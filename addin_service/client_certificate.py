"""The application's certificate credential (``ADDIN_CLIENT_CERTIFICATE``): one PEM file with the
app's RSA private key and the certificate uploaded to its app registration, checked when the
settings are read so that a bad file stops start-up naming the variable. msal signs client
assertions with it (:mod:`addin_service.mail.graph_tokens`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from addin_service.errors import ConfigError

CLIENT_CERTIFICATE = "ADDIN_CLIENT_CERTIFICATE"
CLIENT_CERTIFICATE_PASSWORD = "ADDIN_CLIENT_CERTIFICATE_PASSWORD"  # noqa: S105 - a variable's name
MIN_RSA_KEY_BITS = 2048
_MAX_CERTIFICATE_FILE = 1024 * 1024
_CERTIFICATE_CLOCK_SKEW = timedelta(minutes=5)
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)
_PFX_HINT = "convert a .pfx with: openssl pkcs12 -in app.pfx -out app.pem -nodes"


@dataclass(frozen=True)
class ClientCertificate:
    """The application's certificate credential (``ADDIN_CLIENT_CERTIFICATE``), checked.

    ``private_key_pem`` is the key's PEM block exactly as in the file (still encrypted when it was);
    ``certificate_pem`` is the certificate whose public key matches it, the one uploaded to the app
    registration.
    """

    private_key_pem: str = field(repr=False)
    certificate_pem: str
    sha256_thumbprint: str  # hex, of the certificate's DER: Entra's x5t#S256
    not_valid_after: datetime


def load_client_certificate(
    path: str, password: str | None = None, *, now: datetime | None = None
) -> ClientCertificate:
    """Read and check the PEM file of ``ADDIN_CLIENT_CERTIFICATE``: exactly one RSA private key
    (2048 bits or more, decrypted with ``password`` when it is encrypted) and exactly one
    certificate whose public key matches it, valid now. Other certificates (a chain) are ignored.

    Errors name the variable and never carry key material.

    :raises ConfigError: naming ``ADDIN_CLIENT_CERTIFICATE`` or ``ADDIN_CLIENT_CERTIFICATE_PASSWORD``.
    """
    try:
        with open(path, "rb") as file:
            data = file.read(_MAX_CERTIFICATE_FILE + 1)
    except OSError as exc:
        raise ConfigError(CLIENT_CERTIFICATE, f"cannot read {path} ({type(exc).__name__})") from None
    if len(data) > _MAX_CERTIFICATE_FILE:
        raise ConfigError(CLIENT_CERTIFICATE, f"{path} is too large to be a PEM key and certificate")
    blocks = [(m.group(1).decode("ascii"), m.group(0)) for m in _PEM_BLOCK.finditer(data)]
    if not blocks:
        raise ConfigError(
            CLIENT_CERTIFICATE,
            f"{path} is not a PEM file: it must hold the private key and the certificate as "
            f"-----BEGIN ...----- blocks ({_PFX_HINT})",
        )
    keys = [block for label, block in blocks if label.endswith("PRIVATE KEY")]
    if len(keys) != 1:
        raise ConfigError(
            CLIENT_CERTIFICATE, f"{path} holds {len(keys)} private keys; it must hold exactly one ({_PFX_HINT})"
        )
    key = _private_key(keys[0], password)
    certificates = [block for label, block in blocks if label == "CERTIFICATE"]
    if not certificates:
        raise ConfigError(
            CLIENT_CERTIFICATE,
            f"{path} holds no CERTIFICATE block: add the certificate uploaded to the app registration",
        )
    wanted = _public_key_der(key.public_key())
    matching: list[x509.Certificate] = []
    for block in certificates:
        try:
            certificate = x509.load_pem_x509_certificate(block)
        except ValueError:
            raise ConfigError(CLIENT_CERTIFICATE, f"{path} holds a CERTIFICATE block that cannot be parsed") from None
        if _public_key_der(certificate.public_key()) == wanted:
            matching.append(certificate)
    if len(matching) != 1:
        problem = (
            "no certificate in it matches the private key (the key and the certificate are not a pair)"
            if not matching
            else f"{len(matching)} certificates in it match the private key; keep only the current one"
        )
        raise ConfigError(CLIENT_CERTIFICATE, f"{path}: {problem}")
    certificate = matching[0]
    moment = now or datetime.now(UTC)
    if certificate.not_valid_after_utc <= moment:
        raise ConfigError(
            CLIENT_CERTIFICATE,
            f"the certificate in {path} expired on {_day(certificate.not_valid_after_utc)}; Entra ID refuses it. "
            "Create a new one and upload it to the app registration",
        )
    if certificate.not_valid_before_utc > moment + _CERTIFICATE_CLOCK_SKEW:
        raise ConfigError(
            CLIENT_CERTIFICATE,
            f"the certificate in {path} is not valid before {_day(certificate.not_valid_before_utc)}",
        )
    der = certificate.public_bytes(serialization.Encoding.DER)
    return ClientCertificate(
        private_key_pem=keys[0].decode("ascii"),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        sha256_thumbprint=hashlib.sha256(der).hexdigest(),
        not_valid_after=certificate.not_valid_after_utc,
    )


def _private_key(block: bytes, password: str | None) -> rsa.RSAPrivateKey:
    encrypted = block.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") or b"Proc-Type: 4,ENCRYPTED" in block
    if encrypted and not password:
        raise ConfigError(
            CLIENT_CERTIFICATE_PASSWORD, f"is required: the private key in {CLIENT_CERTIFICATE} is encrypted"
        )
    if password and not encrypted:
        raise ConfigError(
            CLIENT_CERTIFICATE_PASSWORD,
            f"is set but the private key in {CLIENT_CERTIFICATE} is not encrypted; unset it",
        )
    try:
        key = serialization.load_pem_private_key(block, password.encode("utf-8") if password else None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        if encrypted:
            raise ConfigError(
                CLIENT_CERTIFICATE_PASSWORD, f"does not decrypt the private key in {CLIENT_CERTIFICATE}"
            ) from None
        raise ConfigError(CLIENT_CERTIFICATE, "holds a private key that cannot be read") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(
            CLIENT_CERTIFICATE,
            f"holds a private key that is not RSA; Entra ID certificate credentials need an RSA key of "
            f"{MIN_RSA_KEY_BITS} bits or more",
        )
    if key.key_size < MIN_RSA_KEY_BITS:
        raise ConfigError(
            CLIENT_CERTIFICATE, f"holds a {key.key_size}-bit RSA key; use {MIN_RSA_KEY_BITS} bits or more"
        )
    return key


def _public_key_der(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
