"""The OCPP 1.6 security whitepaper against the real daemon: security profiles 1-3 over a
real (loopback) TLS websocket, the security keys, security events, and certificate
management. The PKI is made here (tests/pki.py); the test CSMS serves TLS with it and
acts as the CA that signs the station's CSR."""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import Certificate, ocsp

from hwsim.csms import CallErrorReceived, ConnectionEvent, CsmsThread
from tests.integration.harness import CARD, Daemon
from tests.pki import Issued, issue, load_identity, make_ca, server_context, sign_csr

PASSWORD = "Station-Password-0001"  # 21 characters
OTHER_PASSWORD = "Another-Password-0002"
STATION = "CP-TEST"
ROOT = "CentralSystemRootCertificate"
MANUFACTURER = "ManufacturerRootCertificate"


# --- the PKI and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca("Test CSMS Root")


@pytest.fixture(scope="module")
def server(ca: Issued) -> Issued:
    return issue(ca, "csms", server=True)


@pytest.fixture
def pki_dir(tmp_path: Path, ca: Issued) -> Path:
    (tmp_path / "csms-root.pem").write_text(ca.pem)
    return tmp_path


@pytest.fixture
def tls_csms(ca: Issued, server: Issued) -> Iterator[CsmsThread]:
    """A TLS CSMS presenting the CA's server certificate; it asks for client certificates of
    that CA (optional) and checks Basic auth only when a test sets its `password`."""
    context = server_context(server, client_ca=ca)
    with CsmsThread(id_tags={CARD: "Accepted"}, ssl_context=context) as central:
        yield central


@pytest.fixture
def launch(request: pytest.FixtureRequest) -> Iterator[Callable[..., Daemon]]:
    """launch(csms, keys={...}, csms={...}, ...) -> a started daemon (cleaned up after)."""
    made: list[Daemon] = []

    def start(central: CsmsThread, keys: dict[str, Any] | None = None, **tables: Any) -> Daemon:
        base = {"ConnectionTimeOut": 5, "MeterValueSampleInterval": 0}
        daemon = Daemon(central, {**base, **(keys or {})}, [{"max_current": 16}], "", **tables)
        made.append(daemon)
        daemon.start()
        return daemon

    yield start
    failed = getattr(request.node, "rep_call", None)
    for daemon in made:
        if failed is not None and failed.failed:
            print(f"\n--- daemon log ({daemon.dir}) ---\n{daemon.log()[-20000:]}")
        daemon.cleanup()


def wait_log(daemon: Daemon, pattern: str, count: int = 1, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(re.findall(pattern, daemon.log())) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} not logged {count} times:\n{daemon.log()[-5000:]}")


def connected(csms: CsmsThread, after: int = 0, timeout: float = 15.0) -> ConnectionEvent:
    csms.wait_connected(timeout, after=after)
    return next(e for e in csms.events if e.kind == "connected" and e.seq >= after)


def configuration(csms: CsmsThread, key: str) -> dict[str, Any]:
    answer = csms.call("GetConfiguration", {"key": [key]})
    (entry,) = answer["configurationKey"]
    return dict(entry)


def change(csms: CsmsThread, key: str, value: str) -> str:
    return str(csms.call("ChangeConfiguration", {"key": key, "value": value})["status"])


def security_events(csms: CsmsThread, kind: str | None = None) -> list[dict[str, Any]]:
    return [e for e in csms.calls("SecurityEventNotification") if kind in (None, e["type"])]


def ocsp_hash(certificate: Certificate) -> dict[str, str]:
    """The certificateHashData of a root, computed independently (an OCSP CertID)."""
    request = (
        ocsp.OCSPRequestBuilder().add_certificate(certificate, certificate, hashes.SHA256()).build()
    )
    return {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": request.issuer_name_hash.hex(),
        "issuerKeyHash": request.issuer_key_hash.hex(),
        "serialNumber": format(request.serial_number, "x"),
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def pem_body(text: str) -> list[str]:
    """The base64 lines of a PEM block, each long enough to be unmistakable in a log."""
    return [line for line in text.splitlines() if line and not line.startswith("-----")]


# --- profile 1: HTTP Basic auth ------------------------------------------------------------


def test_profile_1_basic_auth_wrong_password_retried_then_reported(
    csms: CsmsThread, launch: Callable[..., Daemon]
) -> None:
    csms.password = OTHER_PASSWORD
    daemon = launch(csms, csms={"security_profile": 1, "password": PASSWORD})
    deadline = time.monotonic() + 15
    while sum(e.kind == "rejected" for e in csms.events) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    rejected = [e for e in csms.events if e.kind == "rejected"]
    assert len(rejected) >= 3 and all("401" in e.detail for e in rejected)  # refused, retried
    assert not [e for e in csms.events if e.kind == "connected"]
    mark = csms.mark()
    csms.password = PASSWORD
    event = connected(csms, mark)
    assert event.basic_auth and event.station_id == STATION
    csms.wait_for("BootNotification", after=mark)
    failed = csms.wait_for(
        "SecurityEventNotification", lambda p: p["type"] == "FailedToAuthenticateAtCentralSystem"
    )
    assert failed["techInfo"] == "HTTP 401"
    csms.wait_for("SecurityEventNotification", lambda p: p["type"] == "StartupOfTheDevice")
    # One event for the whole failure streak, not one per attempt.
    assert len(security_events(csms, "FailedToAuthenticateAtCentralSystem")) == 1
    log = daemon.log()
    assert PASSWORD not in log and OTHER_PASSWORD not in log


def test_authorization_key_is_write_only_long_enough_and_used_next_connection(
    csms: CsmsThread, launch: Callable[..., Daemon]
) -> None:
    csms.password = PASSWORD
    daemon = launch(csms, csms={"security_profile": 1, "password": PASSWORD})
    csms.wait_for("BootNotification")
    assert configuration(csms, "AuthorizationKey") == {"key": "AuthorizationKey", "readonly": False}
    assert "value" not in configuration(csms, "AuthorizationKey")
    assert change(csms, "AuthorizationKey", "x" * 15) == "Rejected"
    assert change(csms, "AuthorizationKey", "x" * 41) == "Rejected"
    assert change(csms, "AuthorizationKey", "sixteen-chars-\u00e9\u00e9") == "Rejected"
    # TC_073_CS: once it answered, the station reconnects with the new password.
    csms.password = OTHER_PASSWORD  # checked from the next connection on
    mark = csms.mark()
    assert change(csms, "AuthorizationKey", OTHER_PASSWORD) == "Accepted"
    assert connected(csms, mark).basic_auth
    csms.wait_for(
        "SecurityEventNotification",
        lambda p: (
            p["type"] == "ReconfigurationOfSecurityParameters"
            and "AuthorizationKey" in p["techInfo"]
        ),
    )
    assert not [e for e in csms.events if e.kind == "rejected" and e.seq >= mark]
    # Persisted: a restart logs in with it too.
    daemon.stop()
    mark = csms.mark()
    daemon.start()
    connected(csms, mark)
    assert not [e for e in csms.events if e.kind == "rejected" and e.seq >= mark]
    log = daemon.log()
    assert OTHER_PASSWORD not in log and PASSWORD not in log
    database = daemon.dir / "state" / "evsed.db"
    assert mode(database) == 0o600
    assert OTHER_PASSWORD.encode() in b"".join(
        p.read_bytes() for p in database.parent.glob("evsed.db*")
    )  # the check above is about the right file


# --- raising the profile -------------------------------------------------------------------


def test_security_profile_is_only_raised_with_its_prerequisites(
    csms: CsmsThread, launch: Callable[..., Daemon], ca: Issued
) -> None:
    csms.password = PASSWORD
    launch(csms, csms={"security_profile": 1, "password": PASSWORD})
    csms.wait_for("BootNotification")
    assert configuration(csms, "SecurityProfile")["value"] == "1"
    assert change(csms, "SecurityProfile", "0") == "Rejected"  # never lowered
    assert change(csms, "SecurityProfile", "4") == "Rejected"
    assert change(csms, "SecurityProfile", "2") == "Rejected"  # no CSMS root installed
    assert change(csms, "SecurityProfile", "3") == "Rejected"  # nor a client certificate
    assert change(csms, "SecurityProfile", "1") == "Accepted"  # unchanged
    assert configuration(csms, "SecurityProfile")["value"] == "1"


def test_a_raised_profile_that_cannot_connect_falls_back(
    csms: CsmsThread, launch: Callable[..., Daemon], ca: Issued
) -> None:
    """This CSMS speaks plain ws only: profile 2 (wss) cannot reach it, so the station
    goes back to profile 1 after its attempts, and stays reachable."""
    csms.password = PASSWORD
    daemon = launch(csms, csms={"security_profile": 1, "password": PASSWORD})
    csms.wait_for("BootNotification")
    answer = csms.call("InstallCertificate", {"certificateType": ROOT, "certificate": ca.pem})
    assert answer == {"status": "Accepted"}
    mark = csms.mark()
    assert change(csms, "SecurityProfile", "2") == "Accepted"
    csms.wait_disconnected(after=mark)
    wait_log(daemon, r"security profile 2 does not connect")
    connected(csms, mark)
    assert configuration(csms, "SecurityProfile")["value"] == "1"
    csms.wait_for(
        "SecurityEventNotification",
        lambda p: (
            p["type"] == "ReconfigurationOfSecurityParameters"
            and p["techInfo"] == "SecurityProfile 1 -> 2"
        ),
    )
    csms.wait_for(
        "SecurityEventNotification",
        lambda p: (
            p["type"] == "ReconfigurationOfSecurityParameters" and "back to 1" in p["techInfo"]
        ),
    )
    # The fallback is persisted: a restart stays on 1.
    daemon.stop()
    mark = csms.mark()
    daemon.start()
    connected(csms, mark)
    assert configuration(csms, "SecurityProfile")["value"] == "1"


# --- profile 2: TLS and Basic auth -----------------------------------------------------------


def test_profile_2_connects_over_tls_verified_by_the_installed_root(
    tls_csms: CsmsThread, launch: Callable[..., Daemon], pki_dir: Path, ca: Issued
) -> None:
    tls_csms.password = PASSWORD
    assert tls_csms.url.startswith("wss://")
    daemon = launch(
        tls_csms,
        csms={
            "security_profile": 2,
            "password": PASSWORD,
            "ca_certificate": str(pki_dir / "csms-root.pem"),
        },
    )
    event = connected(tls_csms)
    assert event.basic_auth and event.client_certificate is None
    tls_csms.wait_for("BootNotification")
    answer = tls_csms.call("GetInstalledCertificateIds", {"certificateType": ROOT})
    assert answer == {"status": "Accepted", "certificateHashData": [ocsp_hash(ca.certificate)]}
    missing = tls_csms.call("GetInstalledCertificateIds", {"certificateType": MANUFACTURER})
    assert missing == {"status": "NotFound"}
    # The last CSMS root is what profile 2 stands on: not deleted.
    delete = {"certificateHashData": ocsp_hash(ca.certificate)}
    assert tls_csms.call("DeleteCertificate", delete) == {"status": "Failed"}
    assert tls_csms.call("GetInstalledCertificateIds", {"certificateType": ROOT})["status"] == (
        "Accepted"
    )
    assert "Basic" not in daemon.log()


@pytest.mark.parametrize("kind", ["another CA", "expired"])
def test_profile_2_refuses_a_csms_certificate_it_cannot_verify(
    kind: str,
    tls_csms: CsmsThread,
    launch: Callable[..., Daemon],
    pki_dir: Path,
    ca: Issued,
    server: Issued,
) -> None:
    bad = (
        issue(make_ca("Test CSMS Root"), "csms", server=True)  # same name, another key
        if kind == "another CA"
        else issue(ca, "csms", days=-1, start_days_ago=10, server=True)
    )
    context = tls_csms.csms.ssl_context
    assert context is not None
    load_identity(context, bad)
    tls_csms.password = PASSWORD
    daemon = launch(
        tls_csms,
        csms={
            "security_profile": 2,
            "password": PASSWORD,
            "ca_certificate": str(pki_dir / "csms-root.pem"),
        },
    )
    wait_log(daemon, r"certificate verify failed", count=3)  # refused, and retried
    assert not [e for e in tls_csms.events if e.kind == "connected"]
    assert not tls_csms.records  # not one OCPP frame went to that server
    load_identity(context, server)  # the right certificate again
    connected(tls_csms)
    invalid = tls_csms.wait_for(
        "SecurityEventNotification", lambda p: p["type"] == "InvalidCentralSystemCertificate"
    )
    expected = "certificate has expired" if kind == "expired" else "unable to get local issuer"
    assert expected in invalid["techInfo"]
    assert len(security_events(tls_csms, "InvalidCentralSystemCertificate")) == 1


# --- profile 3: client certificates -----------------------------------------------------------


def _sign_next_csr(csms: CsmsThread, ca: Issued, after: int, days: float = 365) -> Issued:
    """Act as the CA: sign the next SignCertificate CSR and send it in CertificateSigned."""
    request = csms.wait_for("SignCertificate", after=after)
    signed = sign_csr(ca, request["csr"], days=days)
    answer = csms.call("CertificateSigned", {"certificateChain": signed.pem})
    assert answer == {"status": "Accepted"}
    return signed


def test_profile_3_with_a_certificate_signed_by_the_csms(
    tls_csms: CsmsThread, launch: Callable[..., Daemon], pki_dir: Path, ca: Issued
) -> None:
    tls_csms.password = PASSWORD
    daemon = launch(
        tls_csms,
        csms={
            "security_profile": 2,
            "password": PASSWORD,
            "ca_certificate": str(pki_dir / "csms-root.pem"),
        },
    )
    tls_csms.wait_for("BootNotification")
    assert change(tls_csms, "SecurityProfile", "3") == "Rejected"  # no client certificate yet
    assert change(tls_csms, "CpoName", "Acme Charging, Inc.") == "Accepted"
    # A certificate the station did not ask for, and garbage, are refused.
    stray = issue(ca, STATION)
    for chain in (stray.pem, "not a certificate"):
        answer = tls_csms.call("CertificateSigned", {"certificateChain": chain})
        assert answer == {"status": "Rejected"}
    mark = tls_csms.mark()
    trigger = {"requestedMessage": "SignChargePointCertificate"}
    assert tls_csms.call("ExtendedTriggerMessage", trigger) == {"status": "Accepted"}
    csr = tls_csms.wait_for("SignCertificate", after=mark)["csr"]
    assert "CN=CP-TEST" in _subject(csr) and "O=Acme Charging\\, Inc." in _subject(csr)
    # A certificate for that request, but signed by a stranger of the root's name: refused.
    impostor = sign_csr(make_ca("Test CSMS Root"), csr)
    answer = tls_csms.call("CertificateSigned", {"certificateChain": impostor.pem})
    assert answer == {"status": "Rejected"}
    signed = sign_csr(ca, csr)
    chain = signed.pem + ca.pem
    # A disk error while storing it: refused, logged, and no certificate event (the CSMS
    # may send it again).
    client_dir = daemon.dir / "state" / "certs" / "client"
    blocker = client_dir / signed.certificate.fingerprint(hashes.SHA256()).hex()
    blocker.write_text("a file where its directory goes")
    assert tls_csms.call("CertificateSigned", {"certificateChain": chain}) == {"status": "Rejected"}
    blocker.unlink()
    wait_log(daemon, "cannot store the client certificate")
    assert tls_csms.call("CertificateSigned", {"certificateChain": chain}) == {"status": "Accepted"}
    refused = security_events(tls_csms, "InvalidChargePointCertificate")
    deadline = time.monotonic() + 10
    while len(refused) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
        refused = security_events(tls_csms, "InvalidChargePointCertificate")
    assert len(refused) == 3  # the stray one, the garbage, the impostor
    # The key stays on the station, owner-only, and out of the log.
    (key_file,) = (daemon.dir / "state" / "certs" / "client").glob("*/key.pem")
    assert mode(key_file) == 0o600 and mode(key_file.parent) == 0o700
    assert not (daemon.dir / "state" / "certs" / "pending-key.pem").exists()
    # Up to profile 3: the station reconnects with the certificate and without Basic auth.
    tls_csms.password = None
    mark = tls_csms.mark()
    assert change(tls_csms, "SecurityProfile", "3") == "Accepted"
    event = connected(tls_csms, mark)
    assert event.client_certificate == signed.certificate.public_bytes(serialization.Encoding.DER)
    assert not event.basic_auth
    assert configuration(tls_csms, "SecurityProfile")["value"] == "3"
    assert change(tls_csms, "SecurityProfile", "2") == "Rejected"
    # Events go out oldest first: once the raise's is in, every certificate event is.
    tls_csms.wait_for(
        "SecurityEventNotification",
        lambda p: p["type"] == "ReconfigurationOfSecurityParameters" and "3" in p["techInfo"],
    )
    assert len(security_events(tls_csms, "InvalidChargePointCertificate")) == 3
    log = daemon.log()
    assert not [line for line in pem_body(key_file.read_text()) if line in log]
    assert PASSWORD not in log


def _subject(csr_pem: str) -> str:
    from cryptography import x509

    return x509.load_pem_x509_csr(csr_pem.encode()).subject.rfc4514_string()


def test_a_provisioned_client_certificate_is_renewed_before_it_ends(
    tls_csms: CsmsThread, launch: Callable[..., Daemon], pki_dir: Path, ca: Issued
) -> None:
    """Profile 3 from the start with an installer's certificate that ends in ten days: the
    station asks for a new one on its own and moves over to it."""
    old = issue(ca, STATION, days=10)
    (pki_dir / "client.pem").write_text(old.pem)
    (pki_dir / "client.key").write_text(old.key_pem)
    daemon = launch(
        tls_csms,
        csms={
            "security_profile": 3,
            "ca_certificate": str(pki_dir / "csms-root.pem"),
            "client_certificate": str(pki_dir / "client.pem"),
            "client_key": str(pki_dir / "client.key"),
        },
    )
    first = connected(tls_csms)
    assert first.client_certificate == old.certificate.public_bytes(serialization.Encoding.DER)
    assert not first.basic_auth
    mark = tls_csms.mark()
    new = _sign_next_csr(tls_csms, ca, after=0)
    event = connected(tls_csms, mark)  # in use: the station reconnects with the new one
    assert event.client_certificate == new.certificate.public_bytes(serialization.Encoding.DER)
    # A restart keeps the new certificate (the file's is imported once only).
    daemon.stop()
    mark = tls_csms.mark()
    daemon.start()
    event = connected(tls_csms, mark)
    assert event.client_certificate == new.certificate.public_bytes(serialization.Encoding.DER)
    assert len(tls_csms.calls("SignCertificate")) == 1  # the new one is not due


# --- certificate management ----------------------------------------------------------------


def test_install_list_and_delete_root_certificates(
    csms: CsmsThread, make_daemon: Callable[..., Daemon], ca: Issued
) -> None:
    daemon = make_daemon()
    csms.wait_for("BootNotification")

    def install(kind: str, pem: str) -> str:
        return str(
            csms.call("InstallCertificate", {"certificateType": kind, "certificate": pem})["status"]
        )

    def installed(kind: str) -> dict[str, Any]:
        return csms.call("GetInstalledCertificateIds", {"certificateType": kind})

    assert installed(ROOT) == {"status": "NotFound"}
    assert install(ROOT, "garbage") == "Rejected"
    assert install(ROOT, issue(ca, "leaf").pem) == "Rejected"  # not a CA
    assert install(ROOT, make_ca("Old", days=-1, start_days_ago=30).pem) == "Rejected"
    assert install(ROOT, ca.pem + make_ca("Two").pem) == "Rejected"  # one per request
    assert install(ROOT, ca.pem) == "Accepted"
    assert install(ROOT, ca.pem) == "Accepted"  # again: nothing changes
    maker = make_ca("Manufacturer Root")
    assert install(MANUFACTURER, maker.pem) == "Accepted"
    assert installed(ROOT) == {
        "status": "Accepted",
        "certificateHashData": [ocsp_hash(ca.certificate)],
    }
    assert installed(MANUFACTURER)["certificateHashData"] == [ocsp_hash(maker.certificate)]
    # CertificateStoreMaxLength bounds both uses together.
    limit = int(configuration(csms, "CertificateStoreMaxLength")["value"])
    assert configuration(csms, "CertificateStoreMaxLength")["readonly"] is True
    for n in range(limit - 2):
        assert install(ROOT, make_ca(f"Extra {n}").pem) == "Accepted"
    assert install(ROOT, make_ca("One too many").pem) == "Rejected"
    # Deleting: by hash data; unknown ones are NotFound; a malformed request a CALLERROR.
    assert csms.call(
        "DeleteCertificate", {"certificateHashData": ocsp_hash(maker.certificate)}
    ) == {"status": "Accepted"}
    assert installed(MANUFACTURER) == {"status": "NotFound"}
    unknown = ocsp_hash(make_ca("Never installed").certificate)
    assert csms.call("DeleteCertificate", {"certificateHashData": unknown}) == {
        "status": "NotFound"
    }
    with pytest.raises(CallErrorReceived) as error:
        csms.call("DeleteCertificate", {"certificateHashData": {**unknown, "hashAlgorithm": "MD5"}})
    assert error.value.code == "PropertyConstraintViolation"
    # Kept across a restart.
    daemon.stop()
    mark = csms.mark()
    daemon.start()
    csms.wait_for("BootNotification", after=mark)
    assert len(installed(ROOT)["certificateHashData"]) == limit - 1
    for key, value in (
        ("AdditionalRootCertificateCheck", "false"),
        ("CertificateSignedMaxChainSize", "10000"),
    ):
        assert configuration(csms, key) == {"key": key, "readonly": True, "value": value}


# --- security events ----------------------------------------------------------------------------


def test_security_events_wait_for_the_csms_across_a_restart(
    csms: CsmsThread, make_daemon: Callable[..., Daemon]
) -> None:
    csms.password = OTHER_PASSWORD  # the station cannot log in
    daemon = make_daemon(csms={"security_profile": 1, "password": PASSWORD})
    wait_log(daemon, r"security event FailedToAuthenticateAtCentralSystem")
    daemon.kill()  # a power cut: nothing was delivered
    assert not csms.calls("SecurityEventNotification")
    csms.password = PASSWORD
    daemon.start()
    csms.wait_for("BootNotification")
    kinds: list[str] = []
    deadline = time.monotonic() + 15
    while len(kinds) < 3 and time.monotonic() < deadline:
        kinds = [e["type"] for e in security_events(csms)]
        time.sleep(0.05)
    assert kinds == [
        "StartupOfTheDevice",  # the first run's, with the failure it met
        "FailedToAuthenticateAtCentralSystem",
        "StartupOfTheDevice",
    ]
    events = security_events(csms)
    assert events[2]["techInfo"] == "previous run ended: PowerLoss"
    assert events[0]["timestamp"] <= events[1]["timestamp"] <= events[2]["timestamp"]
    # Delivered once: a further restart sends only its own start-up.
    daemon.stop()
    mark = csms.mark()
    daemon.start()
    latest = csms.wait_for("SecurityEventNotification", after=mark)
    assert latest["type"] == "StartupOfTheDevice"
    assert latest["techInfo"] == "previous run ended: Reboot"
    assert len(security_events(csms)) == 4


def test_a_reset_is_reported_as_reset_or_reboot(
    csms: CsmsThread, make_daemon: Callable[..., Daemon]
) -> None:
    make_daemon()
    csms.wait_for("SecurityEventNotification", lambda p: p["type"] == "StartupOfTheDevice")
    mark = csms.mark()
    assert csms.call("Reset", {"type": "Soft"}) == {"status": "Accepted"}
    event = csms.wait_for("SecurityEventNotification", after=mark, timeout=20)
    assert event == {**event, "type": "ResetOrReboot", "techInfo": "SoftReset"}


def test_a_clock_set_by_the_csms_is_reported(
    csms: CsmsThread, make_daemon: Callable[..., Daemon]
) -> None:
    csms.clock = lambda: datetime.now(UTC) + timedelta(hours=1)
    make_daemon()
    event = csms.wait_for("SecurityEventNotification", lambda p: p["type"] == "SettingSystemTime")
    assert re.fullmatch(r"clock corrected by \+(3599|3600|3601) s", event["techInfo"])
    sent = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    assert sent > datetime.now(UTC) + timedelta(minutes=55)  # told in the CSMS's time
    assert len(security_events(csms, "SettingSystemTime")) == 1  # once: the new reference
