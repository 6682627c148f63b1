"""controller.firmware_signature: signing certificates chain to a manufacturer root,
signatures match the file (ECDSA and RSA), and everything else is refused."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.firmware_signature import (
    CertificateProblem,
    check_signing_certificate,
    file_digest,
    load_certificates,
    signature_matches,
)
from tests.file_servers import issue, sign_file

NOW = datetime.now(UTC)
DATA = b"firmware image" * 1000


@pytest.fixture(scope="module")
def root():  # type: ignore[no-untyped-def]
    return issue("Manufacturer Root", ca=True)


def test_a_certificate_issued_by_the_root_is_trusted(root) -> None:  # type: ignore[no-untyped-def]
    signer = issue("Firmware Signing", root, code_signing=True)
    leaf = check_signing_certificate(signer.pem, [root.certificate], NOW)
    assert leaf == signer.certificate


def test_a_chain_through_an_intermediate_is_trusted(root) -> None:  # type: ignore[no-untyped-def]
    intermediate = issue("Signing CA", root, ca=True)
    signer = issue("Firmware Signing", intermediate)
    leaf = check_signing_certificate(signer.pem + intermediate.pem, [root.certificate], NOW)
    assert leaf == signer.certificate
    with pytest.raises(CertificateProblem, match="does not chain"):
        check_signing_certificate(signer.pem, [root.certificate], NOW)  # intermediate missing


def test_an_intermediate_that_is_no_ca_breaks_the_chain(root) -> None:  # type: ignore[no-untyped-def]
    not_ca = issue("Not a CA", root, ca=False)
    signer = issue("Firmware Signing", not_ca)
    with pytest.raises(CertificateProblem, match="does not chain"):
        check_signing_certificate(signer.pem + not_ca.pem, [root.certificate], NOW)


def test_an_untrusted_certificate_is_refused(root) -> None:  # type: ignore[no-untyped-def]
    other_root = issue("Someone Else", ca=True)
    signer = issue("Firmware Signing", other_root)
    with pytest.raises(CertificateProblem, match="does not chain"):
        check_signing_certificate(signer.pem, [root.certificate], NOW)
    with pytest.raises(CertificateProblem, match="does not chain"):
        check_signing_certificate(signer.pem, [], NOW)


def test_a_forged_issuer_name_is_refused(root) -> None:  # type: ignore[no-untyped-def]
    impostor = issue("Manufacturer Root", ca=True)  # same name, other key
    signer = issue("Firmware Signing", impostor)
    with pytest.raises(CertificateProblem, match="does not chain"):
        check_signing_certificate(signer.pem, [root.certificate], NOW)


def test_expired_and_not_yet_valid_certificates_are_refused(root) -> None:  # type: ignore[no-untyped-def]
    expired = issue(
        "Old", root, not_before=NOW - timedelta(days=9), not_after=NOW - timedelta(days=1)
    )
    with pytest.raises(CertificateProblem, match="not valid"):
        check_signing_certificate(expired.pem, [root.certificate], NOW)
    future = issue("New", root, not_before=NOW + timedelta(days=1))
    with pytest.raises(CertificateProblem, match="not valid"):
        check_signing_certificate(future.pem, [root.certificate], NOW)
    old_root = issue(
        "Old Root", ca=True, not_before=NOW - timedelta(days=9), not_after=NOW - timedelta(days=1)
    )
    signer = issue("Firmware Signing", old_root)
    with pytest.raises(CertificateProblem, match="not valid"):
        check_signing_certificate(signer.pem, [old_root.certificate], NOW)


def test_a_certificate_for_other_purposes_is_refused(root) -> None:  # type: ignore[no-untyped-def]
    tls_server = issue("localhost", root, server=True)
    assert check_signing_certificate(tls_server.pem, [root.certificate], NOW)  # no EKU: fine
    ca = issue("A CA", root, ca=True)  # key usage: certificate signing only
    with pytest.raises(CertificateProblem, match="key usage"):
        check_signing_certificate(ca.pem, [root.certificate], NOW)


@pytest.mark.parametrize("text", ["", "not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n"])
def test_unreadable_certificates_are_refused(root, text: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CertificateProblem, match="unreadable"):
        check_signing_certificate(text, [root.certificate], NOW)


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_signatures_over_the_file(root, key_type: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    signer = issue("Firmware Signing", root, key_type=key_type)
    file = tmp_path / "fw.bin"
    file.write_bytes(DATA)
    signature = sign_file(DATA, signer)
    digest = file_digest(file)
    assert signature_matches(digest, signature, signer.certificate)
    file.write_bytes(DATA + b"!")  # one byte more
    assert not signature_matches(file_digest(file), signature, signer.certificate)
    other = issue("Other", root, key_type=key_type)
    assert not signature_matches(digest, signature, other.certificate)
    assert not signature_matches(digest, "not base64!", signer.certificate)
    assert not signature_matches(digest, base64.b64encode(b"short").decode(), signer.certificate)


def test_load_certificates_needs_one() -> None:
    with pytest.raises(ValueError):
        load_certificates("")
