"""A development certificate authority and the certificates it signs (``faas certs init``).

``ensure_dev_certs(folder, hosts)`` leaves in ``folder``:

- ``ca.pem``, ``ca-key.pem``: the CA that every client trusts (``--tls-ca`` / ``FAAS_TLS_CA``)
  and servers require client certificates from (``--tls-client-ca``);
- ``server.pem``, ``server-key.pem``: a server certificate for 127.0.0.1, ::1, localhost and the
  given hosts (``--tls-cert`` / ``--tls-key`` of the gateway, dispatcher and REST shim);
- ``client.pem``, ``client-key.pem``: a client certificate for mutual TLS
  (``--tls-client-cert`` / ``--tls-client-key``).

What is there and still fits is kept: the CA always (clients keep trusting it), a server
certificate while it names every host asked for and is not about to expire. Keys are 0600.
This is for development and a trusted network: a production deployment brings its own CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["LOOPBACK_HOSTS", "DevCerts", "ensure_dev_certs"]

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

_CA_DAYS = 3650
_LEAF_DAYS = 365
_RENEW_DAYS = 30  # a certificate closer than this to its end is made again
_ORGANIZATION = "MPCSFaaS development"

_Key = ec.EllipticCurvePrivateKey
_SAN = x509.DNSName | x509.IPAddress


@dataclass(frozen=True, slots=True)
class DevCerts:
    """The files of a development CA folder."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca-key.pem"

    @property
    def server(self) -> Path:
        return self.folder / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.folder / "server-key.pem"

    @property
    def client(self) -> Path:
        return self.folder / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.folder / "client-key.pem"


def ensure_dev_certs(folder: Path, hosts: Iterable[str] = ()) -> tuple[DevCerts, list[Path]]:
    """The CA, server and client certificates in ``folder``, made where missing or unfit.

    Returns the files and those written now (empty when everything was kept).
    """
    certs = DevCerts(Path(folder))
    certs.folder.mkdir(parents=True, exist_ok=True)
    names = _names([*LOOPBACK_HOSTS, *hosts])
    written: list[Path] = []
    now = datetime.datetime.now(datetime.UTC)
    ca = _load(certs.ca, certs.ca_key)
    if ca is None:
        ca = _make_ca(now)
        written += _write(certs.ca, certs.ca_key, ca)
    ca_cert = ca[0]
    server = _load(certs.server, certs.server_key)
    if server is None or not _fits(server[0], ca_cert, now, names):
        leaf = _make_leaf(ca, now, "faas-server", names, ExtendedKeyUsageOID.SERVER_AUTH)
        written += _write(certs.server, certs.server_key, leaf)
    client = _load(certs.client, certs.client_key)
    if client is None or not _fits(client[0], ca_cert, now, []):
        client_names = [x509.DNSName("faas-client")]
        leaf = _make_leaf(ca, now, "faas-client", client_names, ExtendedKeyUsageOID.CLIENT_AUTH)
        written += _write(certs.client, certs.client_key, leaf)
    return certs, written


def _names(hosts: Iterable[str]) -> list[_SAN]:
    """Subject alternative names for ``hosts``: addresses as IP names, the rest as DNS names."""
    names: list[_SAN] = []
    for host in dict.fromkeys(h.strip().strip("[]") for h in hosts if h.strip()):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _load(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, _Key] | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, _Key) or key.public_key() != cert.public_key():
        return None
    return cert, key


def _fits(
    cert: x509.Certificate, ca: x509.Certificate, now: datetime.datetime, names: Sequence[_SAN]
) -> bool:
    """Signed by ``ca``, valid for a while yet, and naming every one of ``names``."""
    if cert.issuer != ca.subject or cert.not_valid_after_utc - now < datetime.timedelta(
        days=_RENEW_DAYS
    ):
        return False
    try:
        cert.verify_directly_issued_by(ca)
        present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return all(name in present for name in names)


def _make_ca(now: datetime.datetime) -> tuple[x509.Certificate, _Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, "MPCSFaaS development CA"),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(
    ca: tuple[x509.Certificate, _Key],
    now: datetime.datetime,
    common_name: str,
    names: Sequence[_SAN],
    usage: x509.ObjectIdentifier,
) -> tuple[x509.Certificate, _Key]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    ca_key_id = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _write(cert_path: Path, key_path: Path, pair: tuple[x509.Certificate, _Key]) -> list[Path]:
    """Writes the key (0600 from the start, never readable by others) and the certificate."""
    cert, key = pair
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _replace(key_path, key_pem, 0o600)
    _replace(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return [cert_path, key_path]


def _replace(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(temporary, mode)  # whatever the umask took away or left
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
