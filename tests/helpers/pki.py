"""Throwaway PKI for TLS tests: a CA, a server cert (for 127.0.0.1 and localhost unless told
otherwise), a client cert for ``order-service``, and an unrelated second CA with a client
cert of its own (made with ``cryptography``)."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    other_client_cert: Path
    other_client_key: Path

    def read(self, name: str) -> bytes:
        """The bytes of one of the files, by attribute name."""
        path: Path = getattr(self, name)
        return path.read_bytes()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str) -> tuple[_Key, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _leaf(
    cn: str, ca_key: _Key, ca_cert: x509.Certificate, *, server_names: Sequence[str] = ()
) -> tuple[_Key, x509.Certificate]:
    server = bool(server_names)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in server_names]),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def _write(path: Path, key: _Key | None, cert: x509.Certificate | None) -> Path:
    if key is not None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    elif cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_pki(directory: Path, server_names: Sequence[str] = ("localhost", "127.0.0.1")) -> Pki:
    """Generate the whole set into ``directory``; the server certificate is valid for
    ``server_names`` (host names or IP addresses) only."""
    ca_key, ca = _ca("tradetrust test CA")
    server_key, server = _leaf(server_names[0], ca_key, ca, server_names=server_names)
    client_key, client = _leaf("order-service", ca_key, ca)
    other_key, other_ca = _ca("unrelated CA")
    stranger_key, stranger = _leaf("order-service", other_key, other_ca)
    d = directory
    return Pki(
        ca=_write(d / "ca.pem", None, ca),
        server_cert=_write(d / "server.pem", None, server),
        server_key=_write(d / "server.key", server_key, None),
        client_cert=_write(d / "client.pem", None, client),
        client_key=_write(d / "client.key", client_key, None),
        other_ca=_write(d / "other-ca.pem", None, other_ca),
        other_client_cert=_write(d / "other-client.pem", None, stranger),
        other_client_key=_write(d / "other-client.key", stranger_key, None),
    )
