"""OCPP 2.0.1 firmware management (L01/L02: UpdateFirmware, FirmwareStatusNotification)
and log retrieval (N01: GetLog, LogStatusNotification) end to end: the real daemon,
the test CSMS speaking 2.0.1, and real HTTP and FTP servers on loopback. The installer
is the command installer of the 1.6 tests, and once the A/B updater's hand-over
across a restart."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller.update import Layout, build_bundle
from hwsim.csms import CallErrorReceived, CsmsThread
from tests.file_servers import FtpFileServer, HttpFileServer, Issued, issue, sign_file
from tests.integration.harness import Daemon
from tests.integration.transfer_setup import (
    FIRMWARE,
    Installer,
    members,
    notifications,
    now_plus,
    start,
    statuses,
    toml_table,
    uploaded,
)

# Fixtures "csms" come with the import of csms_201.
from tests.integration.v201 import (  # noqa: F401
    csms_201,
    ended_event,
    make_201,
    start_session_201,
)

STATUS = "FirmwareStatusNotification"
LOG_STATUS = "LogStatusNotification"
SECURITY_EVENT = "SecurityEventNotification"
FINAL = {"Installed", "InstallationFailed", "DownloadFailed", "InvalidSignature"}
FINAL |= {"InstallVerificationFailed"}
LOG_FINAL = {"Uploaded", "UploadFailure", "PermissionDenied", "NotSupportedOperation"}
PASSWORD = "v201-diagnostics-secret-42"  # the CSMS password: must not leave the station
NAME = re.compile(r"evsed-CP-TEST-(security-)?\d{8}T\d{6}Z\.tar\.gz")


@pytest.fixture
def installer(tmp_path: Path) -> Installer:
    return Installer(tmp_path / "installer")


@pytest.fixture(scope="module")
def manufacturer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Issued, Path]:
    root = issue("Manufacturer Root", ca=True)
    path = tmp_path_factory.mktemp("roots") / "manufacturer-roots.pem"
    path.write_text(root.pem)
    return root, path


@pytest.fixture
def station(
    make_daemon: Callable[..., Daemon], csms: CsmsThread, installer: Installer, manufacturer: Any
) -> Callable[..., Daemon]:
    """A 2.0.1 daemon the CSMS has accepted, with the command installer and the
    manufacturer root ([firmware] overrides as keywords)."""

    def make(connectors: list[dict[str, Any]] | None = None, **firmware: Any) -> Daemon:
        settings = {"manufacturer_roots": str(manufacturer[1])} | firmware
        return start(
            make_201(make_daemon),
            csms,
            connectors=connectors,
            csms={"password": PASSWORD},
            extra=installer.firmware_table(**settings),
        )

    return make


def firmware(location: str, **fields: Any) -> dict[str, Any]:
    return {"location": location, "retrieveDateTime": now_plus(-60)} | fields


def signed(location: str, signer: Issued, content: bytes = FIRMWARE, **fields: Any) -> Any:
    return firmware(
        location, signingCertificate=signer.pem, signature=sign_file(content, signer), **fields
    )


def update(csms: CsmsThread, request_id: int, fw: dict[str, Any], **extra: Any) -> Any:
    return csms.call("UpdateFirmware", {"requestId": request_id, "firmware": fw} | extra)


def security_events(csms: CsmsThread, after: int) -> list[str]:
    return [
        r.payload["type"]
        for r in csms.records
        if r.seq >= after and r.direction == "in" and r.action == SECURITY_EVENT
    ]


# --- UpdateFirmware ----------------------------------------------------------------------


def test_a_signed_update_reports_every_status_in_order(
    station: Callable[..., Daemon], csms: CsmsThread, installer: Installer, manufacturer: Any
) -> None:
    signer = issue("Firmware Signing", manufacturer[0], key_type="rsa", code_signing=True)
    with HttpFileServer(files={"/fw.bin": FIRMWARE}) as http:
        station()
        mark = csms.mark()
        retrieve, install = now_plus(2), now_plus(3)
        fw = signed(http.url + "/fw.bin", signer, retrieveDateTime=retrieve)
        answer = update(csms, 7, fw | {"installDateTime": install}, retries=0)
        assert answer == {"status": "Accepted"}
        seen = notifications(csms, STATUS, FINAL, mark)
        get = http.requests[0]
    assert statuses(seen) == [
        "DownloadScheduled",
        "Downloading",
        "Downloaded",
        "SignatureVerified",
        "InstallScheduled",
        "Installing",
        "Installed",
    ]
    assert {p["requestId"] for p in seen} == {7}
    assert installer.marker.read_bytes() == FIRMWARE
    assert get.path == "/fw.bin"
    installing = csms.wait_for_record(STATUS, lambda p: p["status"] == "Installing", after=mark)
    assert installing.time >= datetime.fromisoformat(install.replace("Z", "+00:00")).timestamp()
    csms.wait_for(SECURITY_EVENT, lambda p: p["type"] == "FirmwareUpdated", after=mark)
    # Done: a triggered status says Idle, without a requestId.
    again = csms.mark()
    answer = csms.call("TriggerMessage", {"requestedMessage": STATUS})
    assert answer["status"] == "Accepted"
    assert csms.wait_for(STATUS, after=again) == {"status": "Idle"}


def test_a_file_that_does_not_match_its_signature_is_not_installed(
    station: Callable[..., Daemon], csms: CsmsThread, installer: Installer, manufacturer: Any
) -> None:
    signer = issue("Firmware Signing", manufacturer[0])
    with HttpFileServer(files={"/fw.bin": FIRMWARE}) as http:
        daemon = station()
        mark = csms.mark()
        fw = signed(http.url + "/fw.bin", signer, content=b"another image")
        assert update(csms, 8, fw) == {"status": "Accepted"}
        seen = notifications(csms, STATUS, FINAL, mark)
    assert statuses(seen) == ["Downloading", "Downloaded", "InvalidSignature"]
    assert {p["requestId"] for p in seen} == {8}
    assert not installer.marker.exists()
    csms.wait_for(SECURITY_EVENT, lambda p: p["type"] == "InvalidFirmwareSignature", after=mark)
    assert list((daemon.dir / "state" / "firmware").iterdir()) == []


def test_requests_that_are_refused(
    station: Callable[..., Daemon], csms: CsmsThread, manufacturer: Any
) -> None:
    stranger = issue("Firmware Signing", issue("Someone Else", ca=True))
    signer = issue("Firmware Signing", manufacturer[0])
    with HttpFileServer(files={"/fw.bin": FIRMWARE}) as http:
        station()
        mark = csms.mark()
        # a signing certificate that does not chain to a manufacturer root
        answer = update(csms, 9, signed(http.url + "/fw.bin", stranger))
        assert answer["status"] == "InvalidCertificate"
        csms.wait_for(
            SECURITY_EVENT, lambda p: p["type"] == "InvalidFirmwareSigningCertificate", after=mark
        )
        # a signature without its certificate, a location it cannot fetch from
        half = firmware(http.url + "/fw.bin", signature=sign_file(FIRMWARE, signer))
        assert update(csms, 10, half)["status"] == "Rejected"
        for location in ("file:///etc/shadow", "gopher://example.com/fw.bin"):
            answer = update(csms, 11, firmware(location))
            assert answer["status"] == "Rejected"
            assert answer["statusInfo"]["reasonCode"] == "InvalidValue"
        # the schema's rules: a CALLERROR
        with pytest.raises(CallErrorReceived) as caught:
            csms.call(
                "UpdateFirmware", {"firmware": firmware(http.url + "/fw.bin")}, validate=False
            )
        assert caught.value.code == "OccurrenceConstraintViolation"
        requests = list(http.requests)
    assert requests == []  # nothing was downloaded
    assert csms.calls(STATUS) == []


def test_a_download_that_keeps_failing_is_retried_then_reported(
    station: Callable[..., Daemon], csms: CsmsThread, installer: Installer
) -> None:
    with HttpFileServer() as http:
        daemon = station()
        mark = csms.mark()
        answer = update(csms, 3, firmware(http.url + "/missing.bin"), retries=2, retryInterval=1)
        assert answer == {"status": "Accepted"}
        seen = notifications(csms, STATUS, FINAL, mark)
        gets = [r.path for r in http.requests if r.method == "GET"]
    assert statuses(seen) == ["Downloading", "DownloadFailed"]
    assert {p["requestId"] for p in seen} == {3}
    assert gets == ["/missing.bin"] * 3  # the first attempt and two retries
    assert not installer.marker.exists()
    assert daemon.connector(1)["status"] == "Available"  # nothing held


def test_a_new_request_cancels_a_scheduled_one(
    station: Callable[..., Daemon], csms: CsmsThread, installer: Installer
) -> None:
    with HttpFileServer(files={"/old.bin": b"old", "/new.bin": FIRMWARE}) as http:
        station()
        mark = csms.mark()
        later = firmware(http.url + "/old.bin", retrieveDateTime=now_plus(3600))
        assert update(csms, 1, later) == {"status": "Accepted"}
        assert csms.wait_for(STATUS, after=mark) == {"status": "DownloadScheduled", "requestId": 1}
        assert update(csms, 2, firmware(http.url + "/new.bin")) == {"status": "AcceptedCanceled"}
        seen = notifications(csms, STATUS, FINAL, mark)
        paths = [r.path for r in http.requests]
    # unsigned (L02): no SignatureVerified
    assert seen[1:] == [
        {"status": s, "requestId": 2} for s in ("Downloading", "Downloaded", "Installing")
    ] + [{"status": "Installed", "requestId": 2}]
    assert paths == ["/new.bin"]
    assert installer.marker.read_bytes() == FIRMWARE


def test_installing_waits_for_the_running_transaction(
    station: Callable[..., Daemon], csms: CsmsThread, installer: Installer
) -> None:
    with HttpFileServer(files={"/fw.bin": FIRMWARE}) as http:
        daemon = station(connectors=[{"max_current": 16}, {"max_current": 16}])
        start_session_201(daemon, csms)
        mark = csms.mark()
        assert update(csms, 4, firmware(http.url + "/fw.bin"))["status"] == "Accepted"
        csms.wait_for(STATUS, lambda p: p["status"] == "Downloaded", after=mark)
        # no new session meanwhile: the idle EVSE becomes Unavailable, the running one
        # charges on
        csms.wait_for(
            "StatusNotification",
            lambda p: p["evseId"] == 2 and p["connectorStatus"] == "Unavailable",
            after=mark,
        )
        assert daemon.connector(1)["status"] == "Charging"
        assert daemon.connector(1)["contactor_closed"]
        assert not installer.marker.exists()
        stop = csms.mark()
        daemon.request("ev_charge", connector=1, on=False)
        daemon.request("unplug", connector=1)
        ended = ended_event(csms, after=stop)
        seen = notifications(csms, STATUS, FINAL, mark)
        csms.wait_for(
            "StatusNotification",
            lambda p: p["evseId"] == 2 and p["connectorStatus"] == "Available",
            after=stop,
        )
    assert ended["transactionInfo"].get("stoppedReason", "Local") == "EVDisconnected"
    assert statuses(seen) == ["Downloading", "Downloaded", "Installing", "Installed"]
    order = [
        r.payload.get("eventType") or r.payload["status"]
        for r in csms.records
        if r.direction == "in" and r.action in ("TransactionEvent", STATUS) and r.seq >= mark
    ]
    assert order.index("Ended") < order.index("Installing")


def test_the_updater_restart_boots_with_reason_firmware_update(
    make_daemon: Callable[..., Daemon], csms: CsmsThread, tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "evsed-9.9.9-py3-none-any.whl").write_bytes(b"wheel")
    bundle = build_bundle(wheels, tmp_path / "evsed-9.9.9.tar", "9.9.9").read_bytes()
    root = tmp_path / "root"
    layout = Layout(root)
    table = toml_table("firmware", {"update_root": str(root), "log_file": "daemon.log"})
    with HttpFileServer(files={"/evsed-9.9.9.tar": bundle}) as http:
        daemon = start(make_201(make_daemon), csms, extra=table)
        mark = csms.mark()
        assert update(csms, 5, firmware(http.url + "/evsed-9.9.9.tar"))["status"] == "Accepted"
        csms.wait_for(STATUS, lambda p: p["status"] == "InstallRebooting", after=mark)
    deadline = time.monotonic() + 10
    while not layout.staged.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert layout.staged.read_bytes() == bundle  # handed to the updater
    before = [p["status"] for p in csms.calls(STATUS)]
    assert before == ["Downloading", "Downloaded", "Installing", "InstallRebooting"]
    # the updater: takes the bundle, installs it, restarts evsed, and (after its health
    # check) records the outcome; until then no new session starts
    daemon.stop()
    layout.staged.unlink()
    restart = csms.mark()
    daemon.start()
    assert csms.wait_for("BootNotification", after=restart)["reason"] == "FirmwareUpdate"
    csms.wait_for(
        "StatusNotification",
        lambda p: p["evseId"] == 1 and p["connectorStatus"] == "Unavailable",
        after=restart,
    )
    assert daemon.connector(1)["status"] == "Unavailable"
    assert [r for r in csms.records if r.seq >= restart and r.action == STATUS] == []
    outcome = csms.mark()
    finished = datetime.now(UTC).isoformat(timespec="seconds")
    result = {"job": "job-1", "version": "9.9.9", "outcome": "installed", "detail": "slot b"}
    layout.work_dir.mkdir(parents=True, exist_ok=True)
    layout.result_file.write_text(json.dumps(result | {"finished_at": finished}))
    seen = notifications(csms, STATUS, FINAL, restart)
    assert seen == [{"status": "Installed", "requestId": 5}]
    csms.wait_for(
        "StatusNotification",
        lambda p: p["evseId"] == 1 and p["connectorStatus"] == "Available",
        after=outcome,
    )
    # reported once; the next boot is an ordinary one
    daemon.stop()
    again = csms.mark()
    daemon.start()
    assert csms.wait_for("BootNotification", after=again)["reason"] != "FirmwareUpdate"
    csms.wait_for("StatusNotification", after=again)
    assert [r for r in csms.records if r.seq >= again and r.action == STATUS] == []


# --- GetLog ------------------------------------------------------------------------------


def get_log(
    csms: CsmsThread, log_type: str, request_id: int, location: str, **extra: Any
) -> dict[str, Any]:
    return csms.call(
        "GetLog",
        {
            "logType": log_type,
            "requestId": request_id,
            "log": {"remoteLocation": location},
        }
        | extra,
    )


@pytest.mark.parametrize("log_type", ["DiagnosticsLog", "SecurityLog"])
def test_get_log_uploads_the_archive(
    log_type: str, station: Callable[..., Daemon], csms: CsmsThread, tmp_path: Path
) -> None:
    with HttpFileServer() as http:
        station()
        mark = csms.mark()
        window = {"oldestTimestamp": now_plus(-3600), "latestTimestamp": now_plus(60)}
        answer = csms.call(
            "GetLog",
            {
                "logType": log_type,
                "requestId": 42,
                "retries": 0,
                "log": {"remoteLocation": http.url + "/logs/"} | window,
            },
        )
        assert answer["status"] == "Accepted"
        name = answer["filename"]
        assert NAME.fullmatch(name) and ("security" in name) == (log_type == "SecurityLog")
        seen = notifications(csms, LOG_STATUS, LOG_FINAL, mark)
        archive = uploaded(http, name)
    assert seen == [
        {"status": "Uploading", "requestId": 42},
        {"status": "Uploaded", "requestId": 42},
    ]
    files = members(archive, tmp_path)
    assert all(PASSWORD.encode() not in content for content in files.values())
    config = json.loads(files["config.json"])
    assert config["file"]["csms"]["password"] == "***"
    assert json.loads(files["state.json"])["ocpp"]["version"] == "2.0.1"
    if log_type == "SecurityLog":
        text = files["security-log.txt"].decode()
        assert "evsed.security" in text  # the security events only (here: the start-up)
        assert "evsed.daemon" not in text
    else:
        assert b"evsed.daemon" in files["log.txt"]
    # done: a triggered status says Idle
    again = csms.mark()
    assert csms.call("TriggerMessage", {"requestedMessage": LOG_STATUS})["status"] == "Accepted"
    assert csms.wait_for(LOG_STATUS, after=again) == {"status": "Idle"}


def test_get_log_failures_are_reported(
    station: Callable[..., Daemon], csms: CsmsThread, tmp_path: Path
) -> None:
    with HttpFileServer(refuse_all_uploads=500) as http, FtpFileServer(tmp_path / "ftp") as ftp:
        station()
        mark = csms.mark()
        answer = get_log(csms, "DiagnosticsLog", 1, http.url + "/up/", retries=1, retryInterval=0)
        assert answer["status"] == "Accepted"
        seen = notifications(csms, LOG_STATUS, LOG_FINAL, mark)
        posts = [r for r in http.requests if r.method == "POST"]
        assert statuses(seen) == ["Uploading", "UploadFailure"]
        assert len(posts) == 2  # the first try and one retry
        mark = csms.mark()
        wrong = ftp.url("/", password="wrong")
        assert get_log(csms, "SecurityLog", 2, wrong, retries=0)["status"] == "Accepted"
        seen = notifications(csms, LOG_STATUS, LOG_FINAL, mark)
    assert seen == [
        {"status": "Uploading", "requestId": 2},
        {"status": "PermissionDenied", "requestId": 2},
    ]
    mark = csms.mark()
    answer = get_log(csms, "DiagnosticsLog", 3, "scp://host/dir/")
    assert answer["status"] == "Rejected"
    with pytest.raises(CallErrorReceived) as caught:
        csms.call("GetLog", {"logType": "Everything", "requestId": 4, "log": {}}, validate=False)
    assert caught.value.code in {"PropertyConstraintViolation", "OccurrenceConstraintViolation"}
    csms.call("GetLocalListVersion", {})  # still answering
    assert [r for r in csms.records if r.seq >= mark and r.action == LOG_STATUS] == []


def test_a_new_get_log_cancels_the_one_under_way(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    with HttpFileServer(refuse_all_uploads=500) as refusing, HttpFileServer() as http:
        station()
        mark = csms.mark()
        slow = {"retries": 5, "retryInterval": 60}
        assert get_log(csms, "DiagnosticsLog", 1, refusing.url + "/", **slow)["status"] == (
            "Accepted"
        )
        csms.wait_for(LOG_STATUS, lambda p: p["status"] == "Uploading", after=mark)
        deadline = time.monotonic() + 10
        while not refusing.requests and time.monotonic() < deadline:  # the first try failed
            time.sleep(0.05)
        assert refusing.requests
        answer = get_log(csms, "DiagnosticsLog", 2, http.url + "/", **slow)
        assert answer["status"] == "AcceptedCanceled"
        csms.wait_for(LOG_STATUS, lambda p: p["status"] == "Uploaded", after=mark)
        uploaded(http, answer["filename"])
    assert csms.calls(LOG_STATUS) == [
        {"status": "Uploading", "requestId": 1},
        {"status": "AcceptedCanceled", "requestId": 1},
        {"status": "Uploading", "requestId": 2},
        {"status": "Uploaded", "requestId": 2},
    ]
