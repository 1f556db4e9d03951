"""TLS material of the secure local stack: a CA made for this stack dir and a broker
certificate it signs for 127.0.0.1 and localhost.

Written once into ``<stack_dir>/secure/`` (``ensure_certs``): ``ca.pem`` (what the
clients trust: ``AGENTMEM_KAFKA_SSL_CA_FILE``) and ``broker.pem`` (the broker's private
key and certificate chain, read by Kafka as a PEM key store). The CA's private key is
never written: it signs the broker's certificate and is dropped, so nothing on disk can
sign another. Pure apart from writing those files.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The names the broker's certificate holds: what clients of the local stack dial.
BROKER_HOSTS = ("127.0.0.1", "localhost", "::1")
VALID_DAYS = 825


@dataclass(frozen=True)
class StackCerts:
    ca_file: Path
    broker_keystore: Path  # private key, then certificate and CA certificate (PEM)


def cert_paths(directory: Path) -> StackCerts:
    return StackCerts(directory / "ca.pem", directory / "broker.pem")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "agentmem local stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_certs(
    hosts: tuple[str, ...] = BROKER_HOSTS, *, now: datetime.datetime | None = None
) -> tuple[bytes, bytes]:
    """(CA certificate PEM, broker key + certificate chain PEM). Pure but for randomness."""
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(minutes=5)
    end = start + datetime.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("agentmem local CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("agentmem kafka broker"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_pem = ca_cert.public_bytes(pem)
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca_pem, key_pem + cert.public_bytes(pem) + ca_pem


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by its owner only (created so: never briefly world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def ensure_certs(directory: Path) -> StackCerts:
    """The stack's CA and broker certificate, made the first time (kept after that)."""
    paths = cert_paths(directory)
    if paths.ca_file.is_file() and paths.broker_keystore.is_file():
        return paths
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_pem, keystore = make_certs()
    write_private(paths.broker_keystore, keystore)
    write_private(paths.ca_file, ca_pem)
    return paths
