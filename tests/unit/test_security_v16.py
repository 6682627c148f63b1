"""The pure parts of the 1.6 security feature (controller.ocpp.v16.security): which
security event a failed connection is, the AuthorizationKey rule, the key catalogue."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidMessage, InvalidStatus
from websockets.http11 import Response

from controller.ocpp.v16.features import all_keys
from controller.ocpp.v16.keys import ChangeResult, ConfigurationKeys
from controller.ocpp.v16.security import (
    CRITICAL_EVENTS,
    SECURITY_EVENTS,
    Security,
    basic_auth,
    failure_event,
    password_acceptable,
)


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    error.verify_code = code
    error.verify_message = message
    return error


def ssl_error(reason: str) -> ssl.SSLError:
    error = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower()}")
    error.reason = reason
    return error


def http_status(status: int) -> InvalidStatus:
    return InvalidStatus(Response(status, "refused", Headers()))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            verify_error(20, "unable to get local issuer certificate"),
            "InvalidCentralSystemCertificate",
        ),
        (verify_error(10, "certificate has expired"), "InvalidCentralSystemCertificate"),
        (verify_error(62, "Hostname mismatch"), "CentralSystemFailedToAuthenticate"),
        (ssl_error("TLSV13_ALERT_CERTIFICATE_REQUIRED"), "FailedToAuthenticateAtCentralSystem"),
        (ssl_error("SSLV3_ALERT_BAD_CERTIFICATE"), "FailedToAuthenticateAtCentralSystem"),
        (ssl_error("TLSV1_ALERT_PROTOCOL_VERSION"), "InvalidTLSVersion"),
        (ssl_error("UNSUPPORTED_PROTOCOL"), "InvalidTLSVersion"),
        (ssl_error("NO_SHARED_CIPHER"), "InvalidTLSCipherSuite"),
        (ssl_error("SSLV3_ALERT_HANDSHAKE_FAILURE"), "InvalidTLSCipherSuite"),
        (http_status(401), "FailedToAuthenticateAtCentralSystem"),
        (http_status(403), "FailedToAuthenticateAtCentralSystem"),
        (http_status(404), None),
        (ConnectionRefusedError(111, "Connection refused"), None),
        (TimeoutError(), None),
        (ssl_error("UNEXPECTED_EOF_WHILE_READING"), None),
    ],
)
def test_failed_connections_as_security_events(error: BaseException, expected: str | None) -> None:
    found = failure_event(error)
    assert (found[0] if found else None) == expected
    if expected is not None:
        assert found is not None and found[1] and len(found[1]) <= 255


def test_a_failure_wrapped_by_the_websocket_library_is_found_in_its_cause() -> None:
    wrapper = InvalidMessage("did not receive a valid HTTP response")
    wrapper.__cause__ = ssl_error("TLSV13_ALERT_CERTIFICATE_REQUIRED")
    found = failure_event(wrapper)
    assert found is not None and found[0] == "FailedToAuthenticateAtCentralSystem"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("x" * 15, False),
        ("x" * 16, True),
        ("x" * 40, True),
        ("x" * 41, False),
        ("0123456789abcdef0123456789abcdef01234567", True),  # the whitepaper's 20 bytes in hex
        ("sixteen chars ok!", True),
        ("sixteen-chars-\u00e9\u00e9", False),
        ("tab\there-long-enough", False),
    ],
)
def test_authorization_key_rule(value: str, ok: bool) -> None:
    assert password_acceptable(value) is ok


def test_basic_auth_header_names_the_station() -> None:
    header = basic_auth("CP-1", "Pass:word-0123456")["Authorization"]
    assert header.startswith("Basic ")
    assert base64.b64decode(header.removeprefix("Basic ")) == b"CP-1:Pass:word-0123456"


def test_the_key_catalogue() -> None:
    specs = Security.keys(1)
    assert set(specs) == {
        "SecurityProfile",
        "AuthorizationKey",
        "CpoName",
        "CertificateStoreMaxLength",
        "AdditionalRootCertificateCheck",
        "CertificateSignedMaxChainSize",
    }
    assert specs["AuthorizationKey"].write_only and not specs["AuthorizationKey"].readonly
    for name in ("CertificateStoreMaxLength", "AdditionalRootCertificateCheck"):
        assert specs[name].readonly
    assert set(specs) <= set(all_keys(1))  # registered


def test_keys_without_the_live_feature_keep_their_value_rules() -> None:
    keys = ConfigurationKeys(all_keys(1), initial={"AuthorizationKey": "short"})
    assert keys.get("AuthorizationKey") == ""  # a bad initial value is not taken
    assert keys.change("AuthorizationKey", "short") is ChangeResult.REJECTED
    assert keys.change("CpoName", "Acme, Inc. ") is ChangeResult.ACCEPTED
    assert keys.get("CpoName") == "Acme, Inc. "  # text is kept as given, not as a list
    assert keys.change("CpoName", "x" * 65) is ChangeResult.REJECTED
    assert keys.change("SecurityProfile", "4") is ChangeResult.REJECTED


def test_the_event_vocabulary() -> None:
    assert len(SECURITY_EVENTS) == 18
    assert CRITICAL_EVENTS <= SECURITY_EVENTS
    assert "StartupOfTheDevice" in CRITICAL_EVENTS
    assert "InvalidCentralSystemCertificate" not in CRITICAL_EVENTS


@pytest.mark.parametrize("url", ["WS://csms.example/ocpp", "Ws://csms.example/ocpp"])
def test_a_capitalised_scheme_is_no_way_around_tls(url: str, tmp_path: Path) -> None:
    """Profile 2 means TLS against the installed roots, however the scheme is spelt;
    without a root there is no connection at all (and no password sent in clear)."""
    from controller.certificates import CertificateStore
    from controller.ocpp.v16.security import connection_options
    from tests.pki import make_ca

    store = CertificateStore(tmp_path / "certs")
    with pytest.raises(ConnectionError, match="CentralSystemRootCertificate"):
        connection_options(url, "CP1", 2, "a-password-of-16+", store)
    store.add_root("csms", make_ca().certificate)
    target, options = connection_options(url, "CP1", 2, "a-password-of-16+", store)
    assert target == "wss://csms.example/ocpp"
    assert isinstance(options["ssl"], ssl.SSLContext)
    wss, _ = connection_options(url.replace("S:", "SS:"), "CP1", 2, "a-password-of-16+", store)
    assert wss == "wss://csms.example/ocpp"
