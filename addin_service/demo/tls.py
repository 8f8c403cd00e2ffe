"""Throw-away TLS material for the demo and the protocol doubles: a private CA and one server cert.

msal accepts only ``https://`` authorities, so the Entra double must speak TLS. Clients trust it
through ``REQUESTS_CA_BUNDLE`` (requests, msal and exchangelib all honour it) or an explicit
``verify=`` path pointing at :attr:`ThrowawayTls.ca_bundle_path`. Nothing here is meant for
production: keys are created in memory, written only into the directory given, and valid for a day.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ThrowawayTls:
    """Paths of a generated CA certificate and a server certificate + key signed by it."""

    ca_bundle_path: Path
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        """An SSL context for a server presenting the generated certificate (TLS 1.2+)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """An SSL context for clients (urllib, smtplib...) that trusts only the generated CA."""
        return ssl.create_default_context(cafile=str(self.ca_bundle_path))


def make_throwaway_tls(
    directory: Path,
    hosts: Iterable[str] = DEFAULT_HOSTS,
    *,
    valid_for: timedelta = timedelta(days=1),
    name: str = "Report Harassment demo",
) -> ThrowawayTls:
    """Create a CA and a server certificate for ``hosts`` (IP addresses or DNS names) in ``directory``.

    :raises OSError: ``directory`` cannot be written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    not_before, not_after = now - timedelta(minutes=5), now + valid_for

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} throw-away CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} server")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    tls = ThrowawayTls(
        ca_bundle_path=directory / "ca.pem",
        cert_path=directory / "server.pem",
        key_path=directory / "server.key",
    )
    tls.ca_bundle_path.write_bytes(ca_cert.public_bytes(pem))
    tls.cert_path.write_bytes(server_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    key_bytes = server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(tls.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_bytes)
    return tls


def self_signed_certificate(
    key: rsa.RSAPrivateKey,
    common_name: str,
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> x509.Certificate:
    """A bare self-signed certificate for ``key`` (valid from yesterday for a year unless told),
    as Entra keeps beside a signing key or an admin makes for an app registration."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
