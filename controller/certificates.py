"""The station's certificates: the roots it trusts, its own client certificate and key,
certificate signing requests, and the checks a certificate must pass.

Protocol-neutral: the OCPP 1.6 security whitepaper and OCPP 2.0.1 manage the same
things under different message names, so both layers use this module. Root uses
have neutral names (`CSMS_ROOT`, `MANUFACTURER_ROOT`); the OCPP spellings of them
are accepted wherever a use is asked for.

Everything lives in files under one directory (`<state>/certs`, mode 0700), each
written atomically (temporary file, fsync, rename), so a power cut leaves the old
file or the new one:

    roots/<use>/<sha256 fingerprint>.pem     trusted roots, one certificate per file
    client/<sha256 fingerprint>/chain.pem    a client certificate, leaf first
    client/<sha256 fingerprint>/key.pem      its private key (0600)
    client/current                           the name of the directory in use
    pending-key.pem                          the key of the last CSR sent (0600)

Private keys never leave their 0600 files and are never logged.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import ssl
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

from controller.crypto import ec, exceptions, hashes, rsa, serialization, x509

CSMS_ROOT: Final = "csms"
MANUFACTURER_ROOT: Final = "manufacturer"
V2G_ROOT: Final = "v2g"  # 2.0.1's ISO 15118 roots: kept and listed for the CSMS, not used yet
MO_ROOT: Final = "mo"
ROOT_USES: Final = (CSMS_ROOT, MANUFACTURER_ROOT, V2G_ROOT, MO_ROOT)
# The names OCPP gives the uses (1.6 security whitepaper, 2.0.1), and our own.
USE_NAMES: Final = {
    "CentralSystemRootCertificate": CSMS_ROOT,
    "CSMSRootCertificate": CSMS_ROOT,
    "ManufacturerRootCertificate": MANUFACTURER_ROOT,
    "V2GRootCertificate": V2G_ROOT,
    "MORootCertificate": MO_ROOT,
    **{use: use for use in (CSMS_ROOT, MANUFACTURER_ROOT, V2G_ROOT, MO_ROOT)},
}
HASH_ALGORITHMS: Final[dict[str, Callable[[], hashes.HashAlgorithm]]] = {
    "SHA256": lambda: hashes.SHA256(),
    "SHA384": lambda: hashes.SHA384(),
    "SHA512": lambda: hashes.SHA512(),
}
# TLS 1.2 suites the security whitepaper names (ECDSA and RSA servers); TLS 1.3 keeps its own.
TLS12_CIPHERS: Final = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
    )
)
RENEW_BEFORE: Final = timedelta(days=30)  # a client certificate this close to its end is renewed

if TYPE_CHECKING:  # annotations only: the alias would load cryptography at import
    PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def root_use(name: str) -> str:
    """The neutral use of an OCPP certificate-use name; ValueError for one we do not keep."""
    try:
        return USE_NAMES[name]
    except KeyError:
        raise ValueError(f"unknown certificate use {name!r}") from None


# --- reading and describing certificates ------------------------------------------------


def load_certificates(pem: str | bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM text, in order; ValueError if there is none or one is
    malformed (anything else in the text is a malformed certificate too)."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except (ValueError, exceptions.UnsupportedAlgorithm):
        raise ValueError("not a PEM certificate") from None
    if not certificates:
        raise ValueError("no certificate in the text")
    return certificates


def to_pem(certificates: Iterable[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def describe(certificate: x509.Certificate) -> str:
    """Subject and serial, for logs and security events."""
    return f"{certificate.subject.rfc4514_string()} (serial {certificate.serial_number:x})"


@dataclass(frozen=True, slots=True)
class CertificateHashData:
    """What identifies a certificate in OCPP (an OCSP CertID): hex digests of the
    issuer's DER name and public key, and the serial number in hex."""

    hash_algorithm: str
    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str

    def matches(self, other: CertificateHashData) -> bool:
        """Hex is compared case-blind and serials without leading zeros."""
        return (
            self.hash_algorithm == other.hash_algorithm
            and self.issuer_name_hash.lower() == other.issuer_name_hash.lower()
            and self.issuer_key_hash.lower() == other.issuer_key_hash.lower()
            and _serial(self.serial_number) == _serial(other.serial_number)
        )


def _serial(text: str) -> str:
    return text.lower().removeprefix("0x").lstrip("0") or "0"


def hash_data(
    certificate: x509.Certificate,
    issuer: x509.Certificate | None = None,
    algorithm: str = "SHA256",
) -> CertificateHashData:
    """The certificate's hash data; `issuer` None means it is its own (a root)."""
    issuer = issuer or certificate
    digest = HASH_ALGORITHMS[algorithm]
    name = hashes.Hash(digest())
    name.update(issuer.subject.public_bytes())
    key = hashes.Hash(digest())
    key.update(_public_key_bits(issuer))
    return CertificateHashData(
        hash_algorithm=algorithm,
        issuer_name_hash=name.finalize().hex(),
        issuer_key_hash=key.finalize().hex(),
        serial_number=format(certificate.serial_number, "x"),
    )


def _public_key_bits(certificate: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING's bytes (what an OCSP issuerKeyHash is taken of)."""
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    # Other kinds are refused on installation; their SubjectPublicKeyInfo still tells them apart.
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer` signed `certificate` (names and signature)."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, exceptions.InvalidSignature, exceptions.UnsupportedAlgorithm):
        return False
    return True


def self_signed(certificate: x509.Certificate) -> bool:
    return issued_by(certificate, certificate)


# --- the checks ---------------------------------------------------------------------------


def validity_problem(certificate: x509.Certificate, now: datetime) -> str | None:
    if now < certificate.not_valid_before_utc:
        return f"not valid before {certificate.not_valid_before_utc.isoformat()}"
    if now > certificate.not_valid_after_utc:
        return f"expired on {certificate.not_valid_after_utc.isoformat()}"
    return None


def _is_ca(certificate: x509.Certificate) -> bool | None:
    """The basicConstraints CA flag; None when the extension is absent."""
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # a malformed extension
        return False


def root_problem(certificate: x509.Certificate, now: datetime) -> str | None:
    """Why a certificate may not be installed as a trusted root, or None."""
    if _is_ca(certificate) is False:
        return "not a CA certificate"
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return "only EC and RSA keys are supported"
    return validity_problem(certificate, now)


def chain_problem(
    chain: list[x509.Certificate],
    key: PrivateKey | None,
    roots: list[x509.Certificate],
    now: datetime,
    common_name: str | None = None,
) -> str | None:
    """Why a signed client certificate chain (leaf first) may not be installed, or None.

    The leaf must carry `key`'s public key (and, if given, `common_name`: the station
    identity the signing request named), every certificate must be valid now and
    signed by the next one, and when a given root issued the last one, its signature
    must hold. A chain whose issuer is not among `roots` is taken as it is: the CSMS
    that sent it is the one the station trusts, and its own CA may differ from the
    server certificate's.
    """
    if not chain:
        return "empty certificate chain"
    if key is None:
        return "no key pair is waiting for a certificate"
    leaf = chain[0]
    mine = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if mine != theirs:
        return "the certificate is not for the station's key"
    if common_name is not None:
        names = leaf.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        if [str(n.value) for n in names] != [common_name]:
            return f"the certificate does not name this station ({common_name}) as its CN"
    if _is_ca(leaf) is True:
        return "the leaf is a CA certificate"
    for certificate in chain:
        problem = validity_problem(certificate, now)
        if problem is not None:
            return f"{describe(certificate)}: {problem}"
    for child, parent in itertools.pairwise(chain):
        if not issued_by(child, parent):
            return f"{describe(child)} is not signed by {describe(parent)}"
    last = chain[-1]
    anchors = [root for root in roots if root.subject == last.issuer]
    if anchors and not self_signed(last) and not any(issued_by(last, r) for r in anchors):
        return f"{describe(last)} is not signed by the installed root of that name"
    return None


def renewal_due(chain: list[x509.Certificate], now: datetime) -> bool:
    """Whether a client certificate is close enough to its end to ask for a new one."""
    return bool(chain) and now >= chain[0].not_valid_after_utc - RENEW_BEFORE


# --- keys and signing requests ----------------------------------------------------------------


def new_private_key() -> PrivateKey:
    """An EC P-256 key: small, fast on a Pi, and one the whitepaper's TLS suites use."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("only EC and RSA keys are supported")
    return key


def signing_request(key: PrivateKey, common_name: str, organization: str = "") -> str:
    """A PEM CSR for `key`: CN = the station's identity, O = the operator (when known)."""
    attributes = [x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(x509.oid.NameOID.ORGANIZATION_NAME, organization))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(attributes))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


# --- TLS --------------------------------------------------------------------------------------


def client_ssl_context(
    roots: list[x509.Certificate],
    client: tuple[Path, Path] | None = None,
    system_roots: bool = False,
) -> ssl.SSLContext:
    """A TLS 1.2+ client context that verifies the server against `roots` (and the
    system's CAs when `system_roots`) and its host name, presenting `client`
    (chain file, key file) when given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificate and host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    if system_roots:
        context.load_default_certs()
    if roots:
        context.load_verify_locations(cadata=to_pem(roots))
    if client is not None:
        chain, key = client
        context.load_cert_chain(chain, key)
    return context


# --- the store --------------------------------------------------------------------------------


def _write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a file so that a power cut leaves the old content or the new, never a mix."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CertificateStore:
    """The certificate files of one station (see the module docstring for the layout)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        for sub in (directory, directory / "client", *(directory / "roots" / u for u in ROOT_USES)):
            sub.mkdir(parents=True, exist_ok=True)
            os.chmod(sub, 0o700)
        self._pending_path = directory / "pending-key.pem"
        self._current_path = directory / "client" / "current"

    # roots

    def _root_dir(self, use: str) -> Path:
        return self.directory / "roots" / root_use(use)

    def roots(self, use: str) -> list[x509.Certificate]:
        """The trusted roots of a use (`CSMS_ROOT`, "ManufacturerRootCertificate", ...),
        oldest file first. Unreadable files are skipped."""
        found = []
        files = sorted(self._root_dir(use).glob("*.pem"), key=lambda p: (p.stat().st_mtime, p))
        for path in files:
            try:
                found.extend(load_certificates(path.read_bytes()))
            except (OSError, ValueError):
                continue
        return found

    def root_count(self) -> int:
        return sum(len(self.roots(use)) for use in ROOT_USES)

    def add_root(self, use: str, certificate: x509.Certificate) -> bool:
        """Keep `certificate` as a root of `use`; False if it already was one."""
        path = self._root_dir(use) / f"{fingerprint(certificate)}.pem"
        if path.exists():
            return False
        _write_atomically(path, to_pem([certificate]).encode())
        return True

    def remove_root(self, use: str, certificate: x509.Certificate) -> None:
        path = self._root_dir(use) / f"{fingerprint(certificate)}.pem"
        path.unlink(missing_ok=True)
        _sync_dir(path.parent)

    def root_hash_data(self, use: str, algorithm: str = "SHA256") -> list[CertificateHashData]:
        roots = self.roots(use)
        return [hash_data(root, self._issuer(root, roots), algorithm) for root in roots]

    def find_root(self, wanted: CertificateHashData) -> tuple[str, x509.Certificate] | None:
        """The root (and its use) that `wanted` names, if any."""
        for use in ROOT_USES:
            roots = self.roots(use)
            for root in roots:
                if wanted.matches(
                    hash_data(root, self._issuer(root, roots), wanted.hash_algorithm)
                ):
                    return use, root
        return None

    @staticmethod
    def _issuer(
        certificate: x509.Certificate, candidates: list[x509.Certificate]
    ) -> x509.Certificate | None:
        """The certificate's issuer among `candidates`; None for a self-signed one (or one
        whose issuer is not known, which is then described as its own issuer)."""
        if self_signed(certificate):
            return None
        for candidate in candidates:
            if candidate is not certificate and issued_by(certificate, candidate):
                return candidate
        return None

    # the client certificate

    def client_files(self) -> tuple[Path, Path] | None:
        """(chain file, key file) of the client certificate in use, or None."""
        try:
            name = self._current_path.read_text().strip()
        except OSError:
            return None
        if not name or "/" in name:
            return None
        folder = self.directory / "client" / name
        chain, key = folder / "chain.pem", folder / "key.pem"
        return (chain, key) if chain.is_file() and key.is_file() else None

    def client_chain(self) -> list[x509.Certificate]:
        """The client certificate in use and its intermediates, leaf first ([] if none)."""
        files = self.client_files()
        if files is None:
            return []
        try:
            return load_certificates(files[0].read_bytes())
        except (OSError, ValueError):
            return []

    def client_hash_data(self, algorithm: str = "SHA256") -> CertificateHashData | None:
        chain = self.client_chain()
        if not chain:
            return None
        return hash_data(chain[0], chain[1] if len(chain) > 1 else None, algorithm)

    def install_client(self, chain: list[x509.Certificate], key: PrivateKey) -> None:
        """Make `chain` with `key` the client certificate in use: the new files are
        complete on disk before `current` names them, so a cut keeps the old pair."""
        name = fingerprint(chain[0])
        folder = self.directory / "client" / name
        folder.mkdir(exist_ok=True)
        os.chmod(folder, 0o700)
        _write_atomically(folder / "key.pem", key_pem(key), mode=0o600)
        _write_atomically(folder / "chain.pem", to_pem(chain).encode())
        previous = self.client_files()
        _write_atomically(self._current_path, name.encode())
        if previous is not None and previous[0].parent != folder:
            shutil.rmtree(previous[0].parent, ignore_errors=True)

    # the key of the request under way

    def new_pending_key(self) -> PrivateKey:
        """A fresh key pair for a CSR, kept (0600) until its certificate arrives."""
        key = new_private_key()
        _write_atomically(self._pending_path, key_pem(key), mode=0o600)
        return key

    def pending_key(self) -> PrivateKey | None:
        try:
            return load_private_key(self._pending_path.read_bytes())
        except (OSError, ValueError, TypeError, exceptions.UnsupportedAlgorithm):
            return None

    def client_key(self) -> PrivateKey | None:
        files = self.client_files()
        if files is None:
            return None
        try:
            return load_private_key(files[1].read_bytes())
        except (OSError, ValueError, TypeError, exceptions.UnsupportedAlgorithm):
            return None

    def drop_pending_key(self) -> None:
        self._pending_path.unlink(missing_ok=True)


def utc_now() -> datetime:
    return datetime.now(UTC)
