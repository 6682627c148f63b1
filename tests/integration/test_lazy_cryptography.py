"""The running daemon keeps cryptography (about 14 MB on a Pi) unloaded until a feature
needs it: after booting in either OCPP version and running its first background rounds
(security events, the certificate watch), and after reading the device model's
certificate count. tests/unit/test_lazy.py checks the imports; this checks the process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hwsim.csms import CsmsThread
from tests.integration.harness import CARD, Daemon
from tests.pki import make_ca

SUBPROTOCOLS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}


@pytest.fixture(params=sorted(SUBPROTOCOLS))
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def csms(version: str) -> Iterator[CsmsThread]:
    with CsmsThread(id_tags={CARD: "Accepted"}, subprotocols=(SUBPROTOCOLS[version],)) as central:
        yield central


def cryptography_loaded(daemon: Daemon) -> bool:
    """Whether the daemon process has mapped cryptography's compiled core."""
    assert daemon.proc is not None
    maps = Path(f"/proc/{daemon.proc.pid}/maps").read_text()
    return "_rust.abi3.so" in maps or "/cryptography/" in maps


def booted(
    make_daemon: Callable[..., Daemon],
    csms: CsmsThread,
    version: str,
    settings: dict[str, object] | None = None,
) -> Daemon:
    """A daemon of `version` (`settings`: its [csms] table) that booted and settled."""
    daemon = make_daemon(ocpp={"version": version}, csms=settings or {})
    csms.wait_for("BootNotification")
    csms.wait_for("StatusNotification")
    # The start-up event goes out from the security feature's loop, beside the certificate
    # watch's first round; a round trip after it lets the loop finish what it began.
    csms.wait_for("SecurityEventNotification")
    if version == "1.6":
        csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]})
    else:
        item = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
        csms.call("GetVariables", {"getVariableData": [item]})
    return daemon


def test_a_booted_daemon_has_not_loaded_cryptography(
    make_daemon: Callable[..., Daemon], csms: CsmsThread, version: str
) -> None:
    daemon = booted(make_daemon, csms, version)
    assert not cryptography_loaded(daemon)
    if version == "2.0.1":
        item = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "CertificateEntries"}}
        (result,) = csms.call("GetVariables", {"getVariableData": [item]})["getVariableResult"]
        assert result["attributeValue"] == "0"
        assert not cryptography_loaded(daemon)


def test_the_check_sees_cryptography_once_a_certificate_is_read(
    make_daemon: Callable[..., Daemon], csms: CsmsThread, version: str, tmp_path: Path
) -> None:
    """The control: a CSMS root in the configuration is read at start, with cryptography."""
    root = tmp_path / "csms-root.pem"
    root.write_text(make_ca("Test CSMS Root").pem)
    daemon = booted(make_daemon, csms, version, {"ca_certificate": str(root)})
    assert cryptography_loaded(daemon)
