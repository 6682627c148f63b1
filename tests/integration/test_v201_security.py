"""OCPP 2.0.1 security (blocks A and M) against the real daemon: security profiles 1-3
over a real (loopback) TLS websocket, the client certificate signed by the CSMS (A02),
security events (A04) and certificate management (M03-M05). The PKI comes from
tests/pki.py; the test CSMS serves TLS with it and acts as the CA."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from hwsim.csms import ConnectionEvent, CsmsThread
from tests.integration.harness import CARD, Daemon
from tests.integration.test_security import ocsp_hash, wait_log
from tests.pki import Issued, issue, load_identity, make_ca, server_context, sign_csr

PASSWORD = "Station-Password-0001"
OTHER_PASSWORD = "Another-Password-0002"
STATION = "CP-TEST"
CLIENT_CERTIFICATE = "ChargingStationCertificate"
V201 = ("ocpp2.0.1",)


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca("Test CSMS Root")


@pytest.fixture(scope="module")
def server(ca: Issued) -> Issued:
    return issue(ca, "csms", server=True)


@pytest.fixture
def csms() -> Iterator[CsmsThread]:
    with CsmsThread(id_tags={CARD: "Accepted"}, subprotocols=V201) as central:
        yield central


@pytest.fixture
def tls_csms(ca: Issued, server: Issued) -> Iterator[CsmsThread]:
    """A 2.0.1 TLS CSMS with the CA's server certificate, asking for client certificates
    of that CA (optional); it checks Basic auth only when a test sets its `password`."""
    context = server_context(server, client_ca=ca)
    with CsmsThread(id_tags={CARD: "Accepted"}, subprotocols=V201, ssl_context=context) as c:
        yield c


@pytest.fixture
def launch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """launch(csms, **tables) -> a started 2.0.1 daemon (cleaned up after)."""
    made: list[Daemon] = []

    def start(central: CsmsThread, **tables: Any) -> Daemon:
        keys = {"ConnectionTimeOut": 5, "MeterValueSampleInterval": 0}
        ocpp = {"version": "2.0.1", **tables.pop("ocpp", {})}
        daemon = Daemon(central, keys, [{"max_current": 16}], "", ocpp=ocpp, **tables)
        made.append(daemon)
        daemon.start()
        return daemon

    yield start
    failed = getattr(request.node, "rep_call", None)
    for daemon in made:
        if failed is not None and failed.failed:
            print(f"\n--- daemon log ({daemon.dir}) ---\n{daemon.log()[-20000:]}")
        daemon.cleanup()


@pytest.fixture
def root_file(tmp_path: Path, ca: Issued) -> Path:
    path = tmp_path / "csms-root.pem"
    path.write_text(ca.pem)
    return path


def connected(csms: CsmsThread, after: int = 0, timeout: float = 15.0) -> ConnectionEvent:
    csms.wait_connected(timeout, after=after)
    return next(e for e in csms.events if e.kind == "connected" and e.seq >= after)


def get_variable(csms: CsmsThread, component: str, variable: str) -> dict[str, Any]:
    item = {"component": {"name": component}, "variable": {"name": variable}}
    (result,) = csms.call("GetVariables", {"getVariableData": [item]})["getVariableResult"]
    return dict(result)


def set_variable(csms: CsmsThread, component: str, variable: str, value: str) -> str:
    item = {"component": {"name": component}, "variable": {"name": variable}}
    answer = csms.call("SetVariables", {"setVariableData": [{**item, "attributeValue": value}]})
    return str(answer["setVariableResult"][0]["attributeStatus"])


def events(csms: CsmsThread, kind: str | None = None) -> list[dict[str, Any]]:
    return [e for e in csms.calls("SecurityEventNotification") if kind in (None, e["type"])]


def network_profile(url: str, security_profile: int) -> dict[str, Any]:
    return {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": url,
        "messageTimeout": 30,
        "securityProfile": security_profile,
        "ocppInterface": "Wired0",
    }


def install(csms: CsmsThread, kind: str, pem: str) -> str:
    answer = csms.call("InstallCertificate", {"certificateType": kind, "certificate": pem})
    return str(answer["status"])


# --- profile 1: HTTP Basic auth, BasicAuthPassword ------------------------------------------


def test_profile_1_wrong_password_refused_reported_once_then_a_new_password(
    csms: CsmsThread, launch: Callable[..., Daemon]
) -> None:
    csms.password = OTHER_PASSWORD
    daemon = launch(csms, csms={"security_profile": 1, "password": PASSWORD})
    deadline = time.monotonic() + 15
    while sum(e.kind == "rejected" for e in csms.events) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    rejected = [e for e in csms.events if e.kind == "rejected"]
    assert len(rejected) >= 2 and all("401" in e.detail for e in rejected)
    mark = csms.mark()
    csms.password = PASSWORD
    assert connected(csms, mark).basic_auth
    csms.wait_for("BootNotification", after=mark)
    failed = csms.wait_for(
        "SecurityEventNotification", lambda p: p["type"] == "FailedToAuthenticateAtCsms"
    )
    assert failed["techInfo"] == "HTTP 401"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", failed["timestamp"])
    assert len(events(csms, "FailedToAuthenticateAtCsms")) == 1  # one per failure streak
    assert get_variable(csms, "SecurityCtrlr", "SecurityProfile")["attributeValue"] == "1"
    assert get_variable(csms, "SecurityCtrlr", "BasicAuthPassword")["attributeStatus"] == (
        "Rejected"  # WriteOnly
    )
    assert set_variable(csms, "SecurityCtrlr", "SecurityProfile", "2") == "Rejected"  # ReadOnly
    assert set_variable(csms, "SecurityCtrlr", "BasicAuthPassword", "x" * 15) == "Rejected"
    # A01: once it answered, the station reconnects with the new password.
    csms.password = OTHER_PASSWORD  # checked from the next connection on
    mark = csms.mark()
    assert set_variable(csms, "SecurityCtrlr", "BasicAuthPassword", OTHER_PASSWORD) == "Accepted"
    assert connected(csms, mark).basic_auth
    csms.wait_for(
        "SecurityEventNotification",
        lambda p: (
            p["type"] == "ReconfigurationOfSecurityParameters" and "Password" in p["techInfo"]
        ),
    )
    assert not [e for e in csms.events if e.kind == "rejected" and e.seq >= mark]
    log = daemon.log()
    assert PASSWORD not in log and OTHER_PASSWORD not in log


# --- profile 2: TLS verified against the installed CSMS root --------------------------------


def test_profile_2_refuses_another_ca_then_connects_with_the_installed_root(
    tls_csms: CsmsThread, launch: Callable[..., Daemon], root_file: Path, ca: Issued, server: Issued
) -> None:
    context = tls_csms.csms.ssl_context
    assert context is not None
    load_identity(context, issue(make_ca("Test CSMS Root"), "csms", server=True))  # an impostor
    tls_csms.password = PASSWORD
    daemon = launch(
        tls_csms,
        csms={"security_profile": 2, "password": PASSWORD, "ca_certificate": str(root_file)},
    )
    wait_log(daemon, r"certificate verify failed", count=2)
    assert not [e for e in tls_csms.events if e.kind == "connected"]
    assert not tls_csms.records  # not one OCPP frame went to that server
    load_identity(context, server)
    event = connected(tls_csms)
    assert event.basic_auth and event.client_certificate is None
    invalid = tls_csms.wait_for(
        "SecurityEventNotification", lambda p: p["type"] == "InvalidCsmsCertificate"
    )
    assert "unable to get local issuer" in invalid["techInfo"]
    assert get_variable(tls_csms, "SecurityCtrlr", "SecurityProfile")["attributeValue"] == "2"
    listed = tls_csms.call(
        "GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]}
    )
    assert listed == {
        "status": "Accepted",
        "certificateHashDataChain": [
            {
                "certificateType": "CSMSRootCertificate",
                "certificateHashData": ocsp_hash(ca.certificate),
            }
        ],
    }
    # The last CSMS root is what profile 2 stands on: not deleted.
    delete = {"certificateHashData": ocsp_hash(ca.certificate)}
    assert tls_csms.call("DeleteCertificate", delete) == {"status": "Failed"}
    assert "Basic" not in daemon.log()


# --- A02: the client certificate, and profile 3 ---------------------------------------------


def _subject(csr_pem: str) -> str:
    return x509.load_pem_x509_csr(csr_pem.encode()).subject.rfc4514_string()


def test_certificate_signed_round_trip_and_profile_3(
    tls_csms: CsmsThread, launch: Callable[..., Daemon], root_file: Path, ca: Issued
) -> None:
    tls_csms.password = PASSWORD
    daemon = launch(
        tls_csms,
        csms={"security_profile": 2, "password": PASSWORD, "ca_certificate": str(root_file)},
    )
    tls_csms.wait_for("BootNotification")
    # No client certificate yet: a profile-3 network profile is refused (A05).
    slot = {"configurationSlot": 1, "connectionData": network_profile(tls_csms.url, 3)}
    refused = tls_csms.call("SetNetworkProfile", slot)
    assert refused["status"] == "Rejected"
    assert refused["statusInfo"]["reasonCode"] == "InvalidNetworkConf"
    assert set_variable(tls_csms, "SecurityCtrlr", "OrganizationName", "Acme Charging") == (
        "Accepted"
    )
    # A certificate the station did not ask for, and garbage, are refused.
    for chain in (issue(ca, STATION).pem, "not a certificate"):
        answer = tls_csms.call("CertificateSigned", {"certificateChain": chain})
        assert answer["status"] == "Rejected"
        assert answer["statusInfo"]["reasonCode"] == "InvalidCertificate"
    mark = tls_csms.mark()
    trigger = {"requestedMessage": "SignChargingStationCertificate"}
    assert tls_csms.call("TriggerMessage", trigger)["status"] == "Accepted"
    request = tls_csms.wait_for("SignCertificate", after=mark)
    assert request["certificateType"] == "ChargingStationCertificate"
    assert _subject(request["csr"]) == "O=Acme Charging,CN=CP-TEST"
    signed = sign_csr(ca, request["csr"])
    v2g = {"certificateChain": signed.pem, "certificateType": "V2GCertificate"}
    assert tls_csms.call("CertificateSigned", v2g)["status"] == "Rejected"  # no ISO 15118
    chain = {"certificateChain": signed.pem + ca.pem, "certificateType": CLIENT_CERTIFICATE}
    # A disk error while storing it: Rejected, logged, and no certificate event (the CSMS
    # may send it again).
    client_dir = daemon.dir / "state" / "certs" / "client"
    blocker = client_dir / signed.certificate.fingerprint(hashes.SHA256()).hex()
    blocker.write_text("a file where its directory goes")
    answer = tls_csms.call("CertificateSigned", chain)
    assert answer["status"] == "Rejected"
    assert answer["statusInfo"]["reasonCode"] == "InternalError"
    blocker.unlink()
    wait_log(daemon, "cannot store the client certificate")
    assert tls_csms.call("CertificateSigned", chain) == {"status": "Accepted"}
    deadline = time.monotonic() + 10
    while len(events(tls_csms, "InvalidChargingStationCertificate")) < 2:
        assert time.monotonic() < deadline, events(tls_csms)
        time.sleep(0.05)
    # Up to profile 3 the 2.0.1 way: a network profile, its priority, a reset (A05).
    assert tls_csms.call("SetNetworkProfile", slot) == {"status": "Accepted"}
    assert set_variable(tls_csms, "OCPPCommCtrlr", "NetworkConfigurationPriority", "1,0") == (
        "Accepted"
    )
    tls_csms.password = None  # profile 3 logs in with the certificate alone
    mark = tls_csms.mark()
    assert tls_csms.call("Reset", {"type": "Immediate"})["status"] == "Accepted"
    event = connected(tls_csms, mark, timeout=30)
    assert event.client_certificate == signed.certificate.public_bytes(serialization.Encoding.DER)
    assert not event.basic_auth
    tls_csms.wait_for("BootNotification", after=mark)
    # Events go out oldest first: once the reset's is in, every certificate event is.
    tls_csms.wait_for("SecurityEventNotification", lambda p: p["type"] == "ResetOrReboot")
    assert len(events(tls_csms, "InvalidChargingStationCertificate")) == 2
    assert get_variable(tls_csms, "SecurityCtrlr", "SecurityProfile")["attributeValue"] == "3"
    assert get_variable(tls_csms, "SecurityCtrlr", "Identity")["attributeValue"] == STATION
    # Its certificate is not the CSMS's to delete.
    own = ocsp_hash(signed.certificate)
    own["issuerNameHash"], own["issuerKeyHash"] = _issuer_hashes(ca)
    assert tls_csms.call("DeleteCertificate", {"certificateHashData": own}) == {"status": "Failed"}
    assert PASSWORD not in daemon.log()


def _issuer_hashes(ca: Issued) -> tuple[str, str]:
    data = ocsp_hash(ca.certificate)  # a root is its own issuer: the same hashes
    return data["issuerNameHash"], data["issuerKeyHash"]


def test_sign_certificate_is_repeated_with_the_same_key_until_answered(
    csms: CsmsThread, launch: Callable[..., Daemon]
) -> None:
    launch(csms)
    csms.wait_for("BootNotification")
    assert set_variable(csms, "SecurityCtrlr", "CertSigningWaitMinimum", "1") == "Accepted"
    assert set_variable(csms, "SecurityCtrlr", "CertSigningRepeatTimes", "1") == "Accepted"
    assert set_variable(csms, "SecurityCtrlr", "CertSigningWaitMinimum", "0") == "Rejected"
    mark = csms.mark()
    trigger = {"requestedMessage": "SignChargingStationCertificate"}
    assert csms.call("TriggerMessage", trigger)["status"] == "Accepted"
    first = csms.wait_for("SignCertificate", after=mark)
    deadline = time.monotonic() + 10
    while len(csms.calls("SignCertificate")) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = csms.calls("SignCertificate")[1]
    keys = [x509.load_pem_x509_csr(r["csr"].encode()).public_key() for r in (first, second)]
    assert keys[0] == keys[1]  # a certificate for either request fits the key kept
    time.sleep(2.5)  # a second repeat would come after 2 s: CertSigningRepeatTimes is 1
    assert len(csms.calls("SignCertificate")) == 2


# --- M: certificate management -------------------------------------------------------------


def test_install_list_and_delete_certificates(
    csms: CsmsThread, launch: Callable[..., Daemon], ca: Issued
) -> None:
    launch(csms)
    csms.wait_for("BootNotification")
    assert csms.call("GetInstalledCertificateIds", {}) == {"status": "NotFound"}
    assert install(csms, "CSMSRootCertificate", "garbage") == "Rejected"
    assert install(csms, "CSMSRootCertificate", issue(ca, "leaf").pem) == "Rejected"  # no CA
    expired = make_ca("Old", days=-1, start_days_ago=30)
    assert install(csms, "CSMSRootCertificate", expired.pem) == "Rejected"
    assert install(csms, "CSMSRootCertificate", ca.pem + make_ca("Two").pem) == "Rejected"
    maker, v2g = make_ca("Manufacturer Root"), make_ca("V2G Root")
    assert install(csms, "CSMSRootCertificate", ca.pem) == "Accepted"
    assert install(csms, "CSMSRootCertificate", ca.pem) == "Accepted"  # again: no change
    assert install(csms, "ManufacturerRootCertificate", maker.pem) == "Accepted"
    assert install(csms, "V2GRootCertificate", v2g.pem) == "Accepted"
    assert get_variable(csms, "SecurityCtrlr", "CertificateEntries")["attributeValue"] == "3"
    every = csms.call("GetInstalledCertificateIds", {})
    assert every["status"] == "Accepted"
    assert every["certificateHashDataChain"] == [
        {
            "certificateType": "V2GRootCertificate",
            "certificateHashData": ocsp_hash(v2g.certificate),
        },
        {
            "certificateType": "CSMSRootCertificate",
            "certificateHashData": ocsp_hash(ca.certificate),
        },
        {
            "certificateType": "ManufacturerRootCertificate",
            "certificateHashData": ocsp_hash(maker.certificate),
        },
    ]
    for missing in (["MORootCertificate"], ["V2GCertificateChain"]):
        answer = csms.call("GetInstalledCertificateIds", {"certificateType": missing})
        assert answer == {"status": "NotFound"}
    # Delete by hash data; unknown: NotFound. Profile 0 does not stand on the CSMS root.
    for root in (maker, ca):
        delete = {"certificateHashData": ocsp_hash(root.certificate)}
        assert csms.call("DeleteCertificate", delete) == {"status": "Accepted"}
    delete = {"certificateHashData": ocsp_hash(make_ca("Never installed").certificate)}
    assert csms.call("DeleteCertificate", delete) == {"status": "NotFound"}
    answer = csms.call("GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]})
    assert answer == {"status": "NotFound"}
    assert get_variable(csms, "SecurityCtrlr", "CertificateEntries")["attributeValue"] == "1"
    for variable, value in (
        ("AdditionalRootCertificateCheck", "false"),
        ("MaxCertificateChainSize", "10000"),
    ):
        assert get_variable(csms, "SecurityCtrlr", variable)["attributeValue"] == value
        assert set_variable(csms, "SecurityCtrlr", variable, value) == "Rejected"  # ReadOnly


# --- A04: security events -------------------------------------------------------------------


def test_security_events_wait_for_the_csms_across_a_power_cut(
    csms: CsmsThread, launch: Callable[..., Daemon]
) -> None:
    csms.password = OTHER_PASSWORD  # the station cannot log in
    daemon = launch(csms, csms={"security_profile": 1, "password": PASSWORD})
    wait_log(daemon, r"security event FailedToAuthenticateAtCentralSystem")
    daemon.kill()  # nothing was delivered
    assert not csms.calls("SecurityEventNotification")
    csms.password = PASSWORD
    daemon.start()
    csms.wait_for("BootNotification")
    kinds: list[str] = []
    deadline = time.monotonic() + 15
    while len(kinds) < 3 and time.monotonic() < deadline:
        kinds = [e["type"] for e in events(csms)]
        time.sleep(0.05)
    assert kinds == ["StartupOfTheDevice", "FailedToAuthenticateAtCsms", "StartupOfTheDevice"]
    sent = events(csms)
    assert sent[2]["techInfo"] == "previous run ended: PowerLoss"
    assert sent[0]["timestamp"] <= sent[1]["timestamp"] <= sent[2]["timestamp"]


def test_a_station_offering_both_versions_keeps_one_security_state(
    csms: CsmsThread, launch: Callable[..., Daemon], ca: Issued
) -> None:
    """1.6 and 2.0.1 layers share the events and certificates: one start-up event, one
    event per password change, and the roots either version installed."""
    launch(csms, ocpp={"version": ["1.6", "2.0.1"]})
    csms.wait_for("BootNotification")
    assert csms.version_of() == "2.0.1"
    assert install(csms, "CSMSRootCertificate", ca.pem) == "Accepted"
    mark = csms.mark()
    assert set_variable(csms, "SecurityCtrlr", "BasicAuthPassword", PASSWORD) == "Accepted"
    assert connected(csms, mark).subprotocol == "ocpp2.0.1"  # back with the new password
    csms.wait_for(
        "SecurityEventNotification", lambda p: p["type"] == "ReconfigurationOfSecurityParameters"
    )
    time.sleep(0.5)  # a duplicate would follow at once
    assert [e["type"] for e in events(csms)] == [
        "StartupOfTheDevice",
        "ReconfigurationOfSecurityParameters",
    ]
    answer = csms.call("GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]})
    assert answer["status"] == "Accepted"
