"""The certificate store and checks (controller.certificates), against certificates made
here with `cryptography` (tests/pki.py) and its OCSP builder as the oracle for hash data."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from controller.certificates import (
    CSMS_ROOT,
    MANUFACTURER_ROOT,
    CertificateHashData,
    CertificateStore,
    chain_problem,
    client_ssl_context,
    hash_data,
    load_certificates,
    new_private_key,
    renewal_due,
    root_problem,
    root_use,
    signing_request,
    to_pem,
    validity_problem,
)
from tests.pki import issue, make_ca, server_context, sign_csr

NOW = datetime.now(UTC)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- reading and naming ---------------------------------------------------------------


def test_load_certificates_reads_every_certificate_in_order() -> None:
    a, b = make_ca("A"), make_ca("B")
    assert load_certificates(a.pem + b.pem) == [a.certificate, b.certificate]


@pytest.mark.parametrize("text", ["", "hello", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END"])
def test_load_certificates_refuses_what_is_not_a_certificate(text: str) -> None:
    with pytest.raises(ValueError):
        load_certificates(text)


def test_ocpp_names_of_uses_map_to_the_neutral_ones() -> None:
    assert root_use("CentralSystemRootCertificate") == CSMS_ROOT
    assert root_use("CSMSRootCertificate") == CSMS_ROOT
    assert root_use("ManufacturerRootCertificate") == MANUFACTURER_ROOT
    assert root_use("V2GRootCertificate") == "v2g"  # 2.0.1: kept and listed, not used yet
    assert root_use("MORootCertificate") == "mo"
    with pytest.raises(ValueError):
        root_use("V2GCertificateChain")  # a chain of the station's own, not a root


@pytest.mark.parametrize("algorithm", ["SHA256", "SHA384", "SHA512"])
def test_hash_data_is_the_ocsp_cert_id(algorithm: str) -> None:
    ca = make_ca()
    leaf = issue(ca, "leaf")
    digest: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
        "SHA256": hashes.SHA256,
        "SHA384": hashes.SHA384,
        "SHA512": hashes.SHA512,
    }
    for certificate, issuer in ((leaf.certificate, ca.certificate), (ca.certificate, None)):
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(certificate, issuer or certificate, digest[algorithm]())
            .build()
        )
        data = hash_data(certificate, issuer, algorithm)
        assert data.hash_algorithm == algorithm
        assert data.issuer_name_hash == request.issuer_name_hash.hex()
        assert data.issuer_key_hash == request.issuer_key_hash.hex()
        assert data.serial_number == format(request.serial_number, "x")


def test_hash_data_of_a_root_hashes_its_own_name() -> None:
    ca = make_ca()
    data = hash_data(ca.certificate)
    assert (
        data.issuer_name_hash == hashlib.sha256(ca.certificate.subject.public_bytes()).hexdigest()
    )


def test_hash_data_matching_ignores_hex_case_and_leading_zeros() -> None:
    ours = CertificateHashData("SHA256", "ab" * 32, "cd" * 32, "1f")
    assert ours.matches(CertificateHashData("SHA256", "AB" * 32, "CD" * 32, "001F"))
    assert not ours.matches(CertificateHashData("SHA384", "ab" * 32, "cd" * 32, "1f"))
    assert not ours.matches(CertificateHashData("SHA256", "ab" * 32, "cd" * 32, "1e"))
    assert not ours.matches(CertificateHashData("SHA256", "ab" * 32, "ce" * 32, "1f"))


# --- checks -----------------------------------------------------------------------------


def test_a_valid_ca_may_be_a_root() -> None:
    assert root_problem(make_ca().certificate, NOW) is None


def test_a_leaf_expired_or_future_certificate_is_no_root() -> None:
    ca = make_ca()
    assert root_problem(issue(ca, "leaf").certificate, NOW) == "not a CA certificate"
    expired = make_ca(days=-1, start_days_ago=30).certificate
    assert "expired" in (root_problem(expired, NOW) or "")
    future = make_ca(start_days_ago=-2).certificate
    assert "not valid before" in (root_problem(future, NOW) or "")


def test_validity_is_inclusive_of_the_period_and_nothing_else() -> None:
    ca = make_ca(days=10).certificate
    assert validity_problem(ca, ca.not_valid_before_utc) is None
    assert validity_problem(ca, ca.not_valid_after_utc) is None
    assert validity_problem(ca, ca.not_valid_after_utc + timedelta(seconds=1)) is not None
    assert validity_problem(ca, ca.not_valid_before_utc - timedelta(seconds=1)) is not None


def test_a_chain_for_our_key_signed_by_its_issuer_is_accepted() -> None:
    root = make_ca("Root")
    sub = issue(root, "Sub CA", ca_flag=True)
    key = new_private_key()
    leaf = issue(sub, "CP-1", key.public_key())  # type: ignore[arg-type]
    chain = [leaf.certificate, sub.certificate]
    assert chain_problem(chain, key, [root.certificate], NOW) is None
    assert chain_problem(chain, key, [], NOW) is None  # no installed root of that name: taken


def test_chain_problems() -> None:
    root, other = make_ca("Root"), make_ca("Root")  # same name, another key
    key = new_private_key()
    leaf = issue(root, "CP-1", key.public_key())  # type: ignore[arg-type]
    assert chain_problem([], key, [], NOW) == "empty certificate chain"
    assert chain_problem([leaf.certificate], None, [], NOW) == (
        "no key pair is waiting for a certificate"
    )
    assert chain_problem([leaf.certificate], new_private_key(), [], NOW) == (
        "the certificate is not for the station's key"
    )
    assert chain_problem([leaf.certificate], key, [], NOW, common_name="CP-1") is None
    assert "does not name this station (CP-2)" in (
        chain_problem([leaf.certificate], key, [], NOW, common_name="CP-2") or ""
    )
    assert "not signed by the installed root" in (
        chain_problem([leaf.certificate], key, [other.certificate], NOW) or ""
    )
    assert (
        chain_problem([leaf.certificate], key, [other.certificate, root.certificate], NOW) is None
    )
    expired = issue(root, "CP-1", key.public_key(), days=-1, start_days_ago=30)  # type: ignore[arg-type]
    assert "expired" in (chain_problem([expired.certificate], key, [], NOW) or "")
    stranger = make_ca("Stranger")
    broken = [leaf.certificate, stranger.certificate]
    assert "is not signed by" in (chain_problem(broken, key, [], NOW) or "")
    ca_leaf = issue(root, "CP-1", key.public_key(), ca_flag=True)  # type: ignore[arg-type]
    assert chain_problem([ca_leaf.certificate], key, [], NOW) == "the leaf is a CA certificate"


def test_renewal_is_due_within_thirty_days_of_the_end() -> None:
    ca = make_ca()
    assert renewal_due([issue(ca, "a", days=10).certificate], NOW)
    assert renewal_due([issue(ca, "a", days=-1, start_days_ago=5).certificate], NOW)
    assert not renewal_due([issue(ca, "a", days=100).certificate], NOW)
    assert not renewal_due([], NOW)


def test_signing_request_names_the_station_and_operator_for_our_key() -> None:
    key = new_private_key()
    csr = x509.load_pem_x509_csr(signing_request(key, "CP-1", "Acme, Inc.").encode())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP-1"
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Acme, Inc."
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert csr.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)
    plain = x509.load_pem_x509_csr(signing_request(key, "CP-1").encode())
    assert not plain.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)


# --- the store ---------------------------------------------------------------------------


def test_roots_are_kept_per_use_once_each(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path / "certs")
    a, b = make_ca("A"), make_ca("B")
    assert store.add_root("CentralSystemRootCertificate", a.certificate)
    assert not store.add_root(CSMS_ROOT, a.certificate)
    assert store.add_root("ManufacturerRootCertificate", b.certificate)
    assert store.roots("CentralSystemRootCertificate") == [a.certificate]
    assert store.roots(MANUFACTURER_ROOT) == [b.certificate]
    assert store.root_count() == 2
    again = CertificateStore(tmp_path / "certs")  # what a restart sees
    assert again.roots(CSMS_ROOT) == [a.certificate]
    assert mode(tmp_path / "certs") == 0o700


def test_roots_are_found_and_removed_by_hash_data(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path / "certs")
    a, b = make_ca("A"), make_ca("B")
    store.add_root(CSMS_ROOT, a.certificate)
    store.add_root(MANUFACTURER_ROOT, b.certificate)
    listed = store.root_hash_data(MANUFACTURER_ROOT)
    assert listed == [hash_data(b.certificate)]
    assert store.find_root(listed[0]) == (MANUFACTURER_ROOT, b.certificate)
    assert store.find_root(hash_data(a.certificate, algorithm="SHA512")) == (
        CSMS_ROOT,
        a.certificate,
    )
    assert store.find_root(hash_data(make_ca("C").certificate)) is None
    store.remove_root(MANUFACTURER_ROOT, b.certificate)
    assert store.roots(MANUFACTURER_ROOT) == []
    assert store.root_hash_data(MANUFACTURER_ROOT) == []


def test_an_intermediate_root_is_described_with_its_installed_issuer(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path / "certs")
    root = make_ca("Root")
    sub = issue(root, "Sub", ca_flag=True)
    store.add_root(CSMS_ROOT, root.certificate)
    store.add_root(CSMS_ROOT, sub.certificate)
    assert hash_data(sub.certificate, root.certificate) in store.root_hash_data(CSMS_ROOT)


def test_a_client_certificate_replaces_the_previous_one_key_kept_private(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path / "certs")
    ca = make_ca()
    assert store.client_files() is None and store.client_chain() == []
    key = store.new_pending_key()
    assert mode(tmp_path / "certs" / "pending-key.pem") == 0o600
    assert store.pending_key() is not None
    first = issue(ca, "CP-1", key.public_key())  # type: ignore[arg-type]
    store.install_client([first.certificate, ca.certificate], key)
    store.drop_pending_key()
    assert store.pending_key() is None
    files = store.client_files()
    assert files is not None
    assert mode(files[1]) == 0o600 and mode(files[1].parent) == 0o700
    assert store.client_chain() == [first.certificate, ca.certificate]
    assert store.client_hash_data() == hash_data(first.certificate, ca.certificate)
    key2 = new_private_key()
    second = issue(ca, "CP-1", key2.public_key())  # type: ignore[arg-type]
    store.install_client([second.certificate], key2)
    assert store.client_chain() == [second.certificate]
    assert not files[0].parent.exists()  # the old pair is gone
    loaded = store.client_key()
    assert loaded is not None
    assert loaded.private_numbers() == key2.private_numbers()


def test_unreadable_files_are_skipped_not_fatal(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path / "certs")
    (tmp_path / "certs" / "roots" / CSMS_ROOT / "junk.pem").write_text("junk")
    (tmp_path / "certs" / "client" / "current").write_text("../../etc")
    assert store.roots(CSMS_ROOT) == []
    assert store.client_files() is None
    (tmp_path / "certs" / "pending-key.pem").write_text("junk")
    assert store.pending_key() is None


# --- TLS -----------------------------------------------------------------------------------


async def _handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> bytes | None:
    """Connect over loopback; the DER client certificate the server saw."""
    seen: list[bytes | None] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = writer.get_extra_info("ssl_object")
        seen.append(tls.getpeercert(binary_form=True))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="127.0.0.1"
        )
        assert await reader.read(2) == b"ok"
        writer.close()
    finally:
        listener.close()
        await listener.wait_closed()
    return seen[0]


def test_client_context_verifies_the_server_with_the_given_roots(tmp_path: Path) -> None:
    ca = make_ca()
    server = server_context(issue(ca, "csms", server=True))
    context = client_ssl_context([ca.certificate])
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert asyncio.run(_handshake(context, server)) is None
    with pytest.raises(ssl.SSLCertVerificationError):
        asyncio.run(_handshake(client_ssl_context([make_ca().certificate]), server))
    expired = server_context(issue(ca, "csms", days=-1, start_days_ago=5, server=True))
    with pytest.raises(ssl.SSLCertVerificationError):
        asyncio.run(_handshake(context, expired))


def test_client_context_presents_the_client_certificate(tmp_path: Path) -> None:
    ca = make_ca()
    store = CertificateStore(tmp_path / "certs")
    key = new_private_key()
    client = sign_csr(ca, signing_request(key, "CP-1"))
    store.install_client([client.certificate], key)
    server = server_context(issue(ca, "csms", server=True), client_ca=ca)
    seen = asyncio.run(
        _handshake(client_ssl_context([ca.certificate], store.client_files()), server)
    )
    assert seen == client.certificate.public_bytes(serialization.Encoding.DER)


def test_to_pem_round_trips() -> None:
    a, b = make_ca("A"), make_ca("B")
    assert load_certificates(to_pem([a.certificate, b.certificate])) == [
        a.certificate,
        b.certificate,
    ]
