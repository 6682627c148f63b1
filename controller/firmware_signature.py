"""Signed firmware: is the signing certificate one the manufacturer issued, and is the
file what it signed (OCPP 1.6 security whitepaper, SignedUpdateFirmware; the same in
OCPP 2.0.1).

The signing certificate (PEM, optionally followed by intermediate CA certificates)
must chain to a trusted ManufacturerRootCertificate, every certificate of the chain
valid now, the issuers CA certificates, and the leaf allowed to sign (key usage
digitalSignature, and codeSigning if it has an extended key usage). The signature is
base64 over the file: RSA (PKCS#1 v1.5, or PSS) with SHA-256, or ECDSA with SHA-256.
No I/O here beyond reading the file being checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from pathlib import Path

from controller.crypto import ec, exceptions, hashes, padding, rsa, utils, x509

MAX_CHAIN = 5


class CertificateProblem(Exception):
    """The signing certificate cannot be trusted; the message says why."""


def load_certificates(pem: str | bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM text; ValueError if there is none or one is damaged."""
    data = pem.encode() if isinstance(pem, str) else pem
    certificates = x509.load_pem_x509_certificates(data)
    if not certificates:
        raise ValueError("no certificate")
    return certificates


def load_roots(path: Path) -> list[x509.Certificate]:
    """The certificates in a PEM file (raises OSError, ValueError)."""
    return load_certificates(path.read_bytes())


def check_signing_certificate(
    pem: str, roots: list[x509.Certificate], now: datetime
) -> x509.Certificate:
    """The leaf certificate of `pem` if it chains to one of `roots`; else CertificateProblem."""
    try:
        chain = load_certificates(pem)
    except ValueError as e:
        raise CertificateProblem(f"unreadable signing certificate: {e}") from None
    leaf, intermediates = chain[0], chain[1:]
    _check_leaf(leaf)
    current = leaf
    for _ in range(MAX_CHAIN):
        _check_time(current, now)
        for root in roots:
            if _issued_by(current, root):
                _check_time(root, now)
                return leaf
        issuer = next((c for c in intermediates if _issued_by(current, c) and _is_ca(c)), None)
        if issuer is None:
            break
        current = issuer
    raise CertificateProblem("the signing certificate does not chain to a manufacturer root")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, exceptions.InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _check_time(cert: x509.Certificate, now: datetime) -> None:
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        subject = cert.subject.rfc4514_string()[:80]
        raise CertificateProblem(f"certificate {subject!r} is not valid at {now.isoformat()}")


def _check_leaf(leaf: x509.Certificate) -> None:
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            raise CertificateProblem("the signing certificate may not sign (key usage)")
    except x509.ExtensionNotFound:
        pass
    try:
        extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if x509.oid.ExtendedKeyUsageOID.CODE_SIGNING not in extended:
            raise CertificateProblem("the signing certificate is not for code signing")
    except x509.ExtensionNotFound:
        pass
    if not isinstance(leaf.public_key(), rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise CertificateProblem("the signing key is neither RSA nor ECDSA")


def file_digest(path: Path) -> bytes:
    """SHA-256 of a file, read in chunks (a firmware image may be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def signature_matches(digest: bytes, signature_b64: str, certificate: x509.Certificate) -> bool:
    """Whether the base64 `signature_b64` signs the SHA-256 `digest` with the key of
    `certificate`."""
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    key = certificate.public_key()
    prehashed = utils.Prehashed(hashes.SHA256())
    try:
        if isinstance(key, rsa.RSAPublicKey):
            for scheme in (
                padding.PKCS1v15(),
                padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO),
            ):
                try:
                    key.verify(signature, digest, scheme, prehashed)
                    return True
                except exceptions.InvalidSignature:
                    continue
            return False
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(prehashed))
            return True
    except (exceptions.InvalidSignature, ValueError):
        return False
    return False
