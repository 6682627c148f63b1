"""A small PKI for the tests: CAs, server and client certificates made with `cryptography`,
and TLS server contexts for the test CSMS. Loopback names only."""

from __future__ import annotations

import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: Key

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(days: float, start_days_ago: float = 1.0) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    start = now - timedelta(days=start_days_ago)
    return start, now + timedelta(days=days)


def make_ca(
    name: str = "Test CSMS Root", days: float = 3650, start_days_ago: float = 1.0
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity(days, start_days_ago)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
    return Issued(certificate, key)


def issue(
    ca: Issued,
    common_name: str,
    public_key: ec.EllipticCurvePublicKey | None = None,
    days: float = 365,
    start_days_ago: float = 1.0,
    server: bool = False,
    ca_flag: bool = False,
) -> Issued:
    """A certificate signed by `ca` (a new key unless `public_key` is given; the Issued
    then carries a throwaway key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity(days, start_days_ago)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(public_key or key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca_flag, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.OID_CLIENT_AUTH]), critical=False
        )
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def sign_csr(ca: Issued, csr_pem: str, days: float = 365) -> Issued:
    """What a CSMS acting as CA does with a SignCertificate CSR."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    common_name = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    public_key = csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    return issue(ca, str(common_name), public_key, days=days)


def server_context(server: Issued, client_ca: Issued | None = None) -> ssl.SSLContext:
    """A TLS server context presenting `server`; with `client_ca`, client certificates
    are asked for (optional) and verified against it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    load_identity(context, server)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cadata=client_ca.pem)
    return context


def load_identity(context: ssl.SSLContext, server: Issued) -> None:
    """Make `context` present `server` from the next handshake on."""
    with tempfile.TemporaryDirectory() as folder:
        cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert.write_text(server.pem)
        key.write_text(server.key_pem)
        context.load_cert_chain(cert, key)
