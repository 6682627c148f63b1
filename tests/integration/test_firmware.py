"""Firmware updates end to end: the real daemon, the test CSMS, and real HTTP, HTTPS
and FTP servers on loopback. UpdateFirmware (plain 1.6) and SignedUpdateFirmware (the
security whitepaper), with the command installer, and once with the A/B updater's
hand-over across a restart."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.update import Layout, build_bundle
from hwsim.csms import CallErrorReceived, CsmsThread
from tests.file_servers import HttpFileServer, issue, sign_file
from tests.integration.harness import Daemon, start_session, status_record
from tests.integration.transfer_setup import (
    FIRMWARE,
    TRANSPORTS,
    Installer,
    file_server,
    notifications,
    now_plus,
    publish,
    start,
    statuses,
    toml_table,
)

MakeDaemon = Callable[..., Daemon]
PLAIN = "FirmwareStatusNotification"
SIGNED = "SignedFirmwareStatusNotification"
SECURITY_EVENT = "SecurityEventNotification"
PLAIN_FINAL = {"Installed", "InstallationFailed", "DownloadFailed"}
SIGNED_FINAL = PLAIN_FINAL | {"InvalidSignature", "InstallVerificationFailed"}


@pytest.fixture
def installer(tmp_path: Path) -> Installer:
    return Installer(tmp_path / "installer")


def update(csms: CsmsThread, location: str, **extra: object) -> dict[str, object]:
    payload = {"location": location, "retrieveDate": now_plus(-60)} | extra
    return csms.call("UpdateFirmware", payload)


# --- UpdateFirmware ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_update_firmware_installs_over_each_transport(
    transport: str, make_daemon: MakeDaemon, csms: CsmsThread, installer: Installer, tmp_path: Path
) -> None:
    with file_server(transport, tmp_path) as (server, base, settings):
        publish(server, "/fw/evsed-2.0.bin", FIRMWARE)
        start(make_daemon, csms, extra=installer.firmware_table(**settings))
        mark = csms.mark()
        assert update(csms, base + "/fw/evsed-2.0.bin") == {}
        seen = notifications(csms, PLAIN, PLAIN_FINAL, mark)
    assert statuses(seen) == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert installer.marker.read_bytes() == FIRMWARE


def test_a_failing_install_is_reported(
    make_daemon: MakeDaemon, csms: CsmsThread, installer: Installer
) -> None:
    with HttpFileServer(files={"/fw.bin": b"BAD firmware"}) as http:
        daemon = start(make_daemon, csms, extra=installer.firmware_table())
        mark = csms.mark()
        update(csms, http.url + "/fw.bin")
        seen = notifications(csms, PLAIN, PLAIN_FINAL, mark)
    assert statuses(seen) == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]
    assert not installer.marker.exists()
    assert list((daemon.dir / "state" / "firmware").iterdir()) == []  # the download is gone


def test_retries_then_download_failed(
    make_daemon: MakeDaemon, csms: CsmsThread, installer: Installer
) -> None:
    with HttpFileServer() as http:
        start(make_daemon, csms, extra=installer.firmware_table())
        mark = csms.mark()
        update(csms, http.url + "/missing.bin", retries=2, retryInterval=1)
        seen = notifications(csms, PLAIN, PLAIN_FINAL, mark)
        gets = [r.path for r in http.requests if r.method == "GET"]
    assert statuses(seen) == ["Downloading", "DownloadFailed"]
    assert gets == ["/missing.bin"] * 3  # the first attempt and two retries
    assert not installer.marker.exists()


def test_a_retrieve_date_in_the_future_is_waited_for(
    make_daemon: MakeDaemon, csms: CsmsThread, installer: Installer
) -> None:
    fetched: list[float] = []
    with HttpFileServer(files={"/fw.bin": FIRMWARE}) as http:
        http.on_request = lambda r: fetched.append(time.time())
        start(make_daemon, csms, extra=installer.firmware_table())
        retrieve = datetime.fromisoformat(now_plus(3).replace("Z", "+00:00"))
        mark = csms.mark()
        update(csms, http.url + "/fw.bin", retrieveDate=retrieve.isoformat())
        seen = notifications(csms, PLAIN, PLAIN_FINAL, mark)
    assert statuses(seen) == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert len(fetched) == 1 and fetched[0] >= retrieve.timestamp()


def test_installing_waits_for_the_running_transaction(
    make_daemon: MakeDaemon, csms: CsmsThread, installer: Installer
) -> None:
    with HttpFileServer(files={"/fw.bin": FIRMWARE}) as http:
        daemon = start(
            make_daemon,
            csms,
            connectors=[{"max_current": 16}, {"max_current": 16}],
            extra=installer.firmware_table(),
        )
        start_session(daemon, csms)
        mark = csms.mark()
        update(csms, http.url + "/fw.bin")
        csms.wait_for(PLAIN, lambda p: p["status"] == "Downloaded", after=mark)
        # no new session meanwhile: the idle connector becomes Unavailable, the
        # running one charges on
        status_record(csms, "Unavailable", connector=2, after=mark)
        assert daemon.connector(1)["status"] == "Charging"
        assert daemon.connector(1)["contactor_closed"]
        assert not installer.marker.exists()
        # the CSMS making the station operative does not lift the install's hold
        answer = csms.call("ChangeAvailability", {"connectorId": 0, "type": "Operative"})
        assert answer["status"] == "Accepted"
        assert daemon.connector(2)["status"] == "Unavailable"
        stop_mark = csms.mark()
        daemon.request("ev_charge", connector=1, on=False)
        daemon.request("unplug", connector=1)
        seen = notifications(csms, PLAIN, PLAIN_FINAL, mark)
        status_record(csms, "Available", connector=2, after=stop_mark)
    assert statuses(seen) == ["Downloading", "Downloaded", "Installing", "Installed"]
    stop = csms.wait_for_record("StopTransaction", after=mark)
    installing = csms.wait_for_record(PLAIN, lambda p: p["status"] == "Installing", after=mark)
    assert stop.seq < installing.seq


def test_a_restart_during_the_download_tries_again(
    make_daemon: MakeDaemon, csms: CsmsThread, installer: Installer
) -> None:
    first_get = threading.Event()
    release = threading.Event()

    def stall_the_first(request: object) -> None:
        if not first_get.is_set():
            first_get.set()
            release.wait(10)  # the daemon is killed while this hangs

    with HttpFileServer(files={"/fw.bin": FIRMWARE}) as http:
        http.on_request = stall_the_first
        daemon = start(make_daemon, csms, extra=installer.firmware_table())
        mark = csms.mark()
        update(csms, http.url + "/fw.bin", retries=0)
        csms.wait_for(PLAIN, lambda p: p["status"] == "Downloading", after=mark)
        assert first_get.wait(10)
        daemon.kill(signal.SIGKILL)
        release.set()
        restart = csms.mark()
        daemon.start()
        seen = notifications(csms, PLAIN, PLAIN_FINAL, restart)
    assert statuses(seen) == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert installer.marker.read_bytes() == FIRMWARE


def test_a_new_request_replaces_a_scheduled_one(
    make_daemon: MakeDaemon, csms: CsmsThread, installer: Installer
) -> None:
    with HttpFileServer(files={"/old.bin": b"old", "/new.bin": FIRMWARE}) as http:
        start(make_daemon, csms, extra=installer.firmware_table())
        mark = csms.mark()
        update(csms, http.url + "/old.bin", retrieveDate=now_plus(3600))
        update(csms, http.url + "/new.bin")
        seen = notifications(csms, PLAIN, PLAIN_FINAL, mark)
        paths = [r.path for r in http.requests]
    assert statuses(seen) == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert paths == ["/new.bin"]
    assert installer.marker.read_bytes() == FIRMWARE


def test_unusable_requests(make_daemon: MakeDaemon, csms: CsmsThread, installer: Installer) -> None:
    start(make_daemon, csms, extra=installer.firmware_table())
    mark = csms.mark()
    # no status field in UpdateFirmware.conf: a location we cannot use is only logged
    assert update(csms, "file:///etc/passwd") == {}
    assert update(csms, "gopher://example.com/fw.bin") == {}
    with pytest.raises(CallErrorReceived) as caught:
        csms.call("UpdateFirmware", {"location": "http://x/fw.bin", "retrieveDate": "soon"})
    assert caught.value.code == "PropertyConstraintViolation"
    with pytest.raises(CallErrorReceived) as caught:
        csms.call("UpdateFirmware", {"location": "http://x/fw.bin"})
    assert caught.value.code == "OccurenceConstraintViolation"
    csms.call("GetConfiguration", {})  # still answering
    assert [r for r in csms.records if r.seq >= mark and r.action == PLAIN] == []


def test_the_configuration_keys(make_daemon: MakeDaemon, csms: CsmsThread) -> None:
    start(
        make_daemon,
        csms,
    )
    answer = csms.call(
        "GetConfiguration", {"key": ["SupportedFileTransferProtocols", "SupportedFeatureProfiles"]}
    )
    keys = {k["key"]: k for k in answer["configurationKey"]}
    assert keys["SupportedFileTransferProtocols"] == {
        "key": "SupportedFileTransferProtocols",
        "readonly": True,
        "value": "FTP,HTTP,HTTPS",
    }
    assert "FirmwareManagement" in keys["SupportedFeatureProfiles"]["value"].split(",")
    answer = csms.call(
        "ChangeConfiguration", {"key": "SupportedFileTransferProtocols", "value": "HTTP"}
    )
    assert answer == {"status": "Rejected"}


# --- the A/B updater ------------------------------------------------------------------------


def test_the_updater_reports_the_outcome_after_the_restart(
    make_daemon: MakeDaemon, csms: CsmsThread, tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "evsed-9.9.9-py3-none-any.whl").write_bytes(b"wheel")
    bundle = build_bundle(wheels, tmp_path / "evsed-9.9.9.tar", "9.9.9").read_bytes()
    root = tmp_path / "root"
    layout = Layout(root)
    with HttpFileServer(files={"/evsed-9.9.9.tar": bundle}) as http:
        daemon = start(
            make_daemon,
            csms,
            extra=toml_table("firmware", {"update_root": str(root), "log_file": "daemon.log"}),
        )
        mark = csms.mark()
        update(csms, http.url + "/evsed-9.9.9.tar")
        csms.wait_for(PLAIN, lambda p: p["status"] == "Installing", after=mark)
    deadline = time.monotonic() + 10
    while not layout.staged.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert layout.staged.read_bytes() == bundle  # handed to the updater
    # the updater: takes the bundle, installs it, restarts evsed, and (after its health
    # check) records the outcome; until then no new session starts
    daemon.stop()
    layout.staged.unlink()
    restart = csms.mark()
    daemon.start()
    status_record(csms, "Unavailable", after=restart)
    assert daemon.connector(1)["status"] == "Unavailable"
    assert [r for r in csms.records if r.seq >= restart and r.action == PLAIN] == []
    outcome = csms.mark()
    finished = datetime.now(UTC).isoformat(timespec="seconds")
    result = {"job": "job-1", "version": "9.9.9", "outcome": "installed", "detail": "slot b"}
    layout.work_dir.mkdir(parents=True, exist_ok=True)
    layout.result_file.write_text(json.dumps(result | {"finished_at": finished}))
    seen = notifications(csms, PLAIN, PLAIN_FINAL, restart)
    assert statuses(seen) == ["Installed"]
    status_record(csms, "Available", after=outcome)
    # reported once: the next run has nothing to say
    daemon.stop()
    again = csms.mark()
    daemon.start()
    csms.wait_for("StatusNotification", after=again)
    assert [r for r in csms.records if r.seq >= again and r.action == PLAIN] == []
    answer = csms.call("TriggerMessage", {"requestedMessage": PLAIN})
    assert answer == {"status": "Accepted"}
    assert csms.wait_for(PLAIN, after=again) == {"status": "Idle"}
    assert not list((daemon.dir / "state" / "firmware").glob("*"))


# --- SignedUpdateFirmware -------------------------------------------------------------------


@pytest.fixture(scope="module")
def manufacturer(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = issue("Manufacturer Root", ca=True)
    path = tmp_path_factory.mktemp("roots") / "manufacturer-roots.pem"
    path.write_text(root.pem)
    return root, path


def signed_update(
    csms: CsmsThread, location: str, signer_pem: str, signature: str, request_id: int
) -> dict[str, object]:
    return csms.call(
        "SignedUpdateFirmware",
        {
            "requestId": request_id,
            "retries": 0,
            "firmware": {
                "location": location,
                "retrieveDateTime": now_plus(-60),
                "signingCertificate": signer_pem,
                "signature": signature,
            },
        },
    )


def test_signed_update_with_a_valid_signature(
    make_daemon: MakeDaemon, csms: CsmsThread, installer: Installer, manufacturer
) -> None:  # type: ignore[no-untyped-def]
    root, roots_file = manufacturer
    signer = issue("Firmware Signing", root, key_type="rsa", code_signing=True)
    with HttpFileServer(files={"/fw.bin": FIRMWARE}) as http:
        start(make_daemon, csms, extra=installer.firmware_table(manufacturer_roots=str(roots_file)))
        mark = csms.mark()
        answer = signed_update(
            csms, http.url + "/fw.bin", signer.pem, sign_file(FIRMWARE, signer), 7
        )
        assert answer == {"status": "Accepted"}
        seen = notifications(csms, SIGNED, SIGNED_FINAL, mark)
    assert statuses(seen) == [
        "Downloading",
        "Downloaded",
        "SignatureVerified",
        "Installing",
        "Installed",
    ]
    assert {p["requestId"] for p in seen} == {7}
    assert installer.marker.read_bytes() == FIRMWARE
    assert [r for r in csms.records if r.seq >= mark and r.action == PLAIN] == []


def test_signed_update_waits_for_the_install_time(
    make_daemon: MakeDaemon, csms: CsmsThread, installer: Installer, manufacturer
) -> None:  # type: ignore[no-untyped-def]
    root, roots_file = manufacturer
    signer = issue("Firmware Signing", root)
    with HttpFileServer(files={"/fw.bin": FIRMWARE}) as http:
        start(make_daemon, csms, extra=installer.firmware_table(manufacturer_roots=str(roots_file)))
        mark = csms.mark()
        install_at = now_plus(3)
        request = {
            "requestId": 3,
            "firmware": {
                "location": http.url + "/fw.bin",
                "retrieveDateTime": now_plus(-60),
                "installDateTime": install_at,
                "signingCertificate": signer.pem,
                "signature": sign_file(FIRMWARE, signer),
            },
        }
        assert csms.call("SignedUpdateFirmware", request) == {"status": "Accepted"}
        seen = notifications(csms, SIGNED, SIGNED_FINAL, mark)
    assert statuses(seen) == [
        "Downloading",
        "Downloaded",
        "SignatureVerified",
        "InstallScheduled",
        "Installing",
        "Installed",
    ]
    installing = csms.wait_for_record(SIGNED, lambda p: p["status"] == "Installing", after=mark)
    moment = datetime.fromisoformat(install_at.replace("Z", "+00:00")).timestamp()
    assert installing.time >= moment


def test_signed_update_with_a_bad_signature(
    make_daemon: MakeDaemon, csms: CsmsThread, installer: Installer, manufacturer
) -> None:  # type: ignore[no-untyped-def]
    root, roots_file = manufacturer
    signer = issue("Firmware Signing", root)
    with HttpFileServer(files={"/fw.bin": FIRMWARE}) as http:
        daemon = start(
            make_daemon, csms, extra=installer.firmware_table(manufacturer_roots=str(roots_file))
        )
        mark = csms.mark()
        signature = sign_file(b"some other image", signer)
        answer = signed_update(csms, http.url + "/fw.bin", signer.pem, signature, 8)
        assert answer == {"status": "Accepted"}
        seen = notifications(csms, SIGNED, SIGNED_FINAL, mark)
    assert statuses(seen) == ["Downloading", "Downloaded", "InvalidSignature"]
    assert not installer.marker.exists()
    csms.wait_for(SECURITY_EVENT, lambda p: p["type"] == "InvalidFirmwareSignature", after=mark)
    assert list((daemon.dir / "state" / "firmware").iterdir()) == []


def test_signed_update_with_an_untrusted_certificate(
    make_daemon: MakeDaemon, csms: CsmsThread, installer: Installer, manufacturer
) -> None:  # type: ignore[no-untyped-def]
    _root, roots_file = manufacturer
    stranger = issue("Firmware Signing", issue("Someone Else", ca=True))
    with HttpFileServer(files={"/fw.bin": FIRMWARE}) as http:
        start(make_daemon, csms, extra=installer.firmware_table(manufacturer_roots=str(roots_file)))
        mark = csms.mark()
        signature = sign_file(FIRMWARE, stranger)
        answer = signed_update(csms, http.url + "/fw.bin", stranger.pem, signature, 9)
        assert answer == {"status": "InvalidCertificate"}
        csms.wait_for(
            SECURITY_EVENT, lambda p: p["type"] == "InvalidFirmwareSigningCertificate", after=mark
        )
        assert http.requests == []  # nothing was downloaded
    assert [r for r in csms.records if r.seq >= mark and r.action == SIGNED] == []


def test_signed_update_replaces_and_rejects(
    make_daemon: MakeDaemon, csms: CsmsThread, installer: Installer, manufacturer
) -> None:  # type: ignore[no-untyped-def]
    root, roots_file = manufacturer
    signer = issue("Firmware Signing", root)
    signature = sign_file(FIRMWARE, signer)
    with HttpFileServer(files={"/fw.bin": FIRMWARE}) as http:
        start(make_daemon, csms, extra=installer.firmware_table(manufacturer_roots=str(roots_file)))
        mark = csms.mark()
        later = {
            "requestId": 1,
            "firmware": {
                "location": http.url + "/fw.bin",
                "retrieveDateTime": now_plus(3600),
                "signingCertificate": signer.pem,
                "signature": signature,
            },
        }
        assert csms.call("SignedUpdateFirmware", later) == {"status": "Accepted"}
        scheduled = csms.wait_for(SIGNED, after=mark)
        assert scheduled == {"status": "DownloadScheduled", "requestId": 1}
        answer = signed_update(csms, http.url + "/fw.bin", signer.pem, signature, 2)
        assert answer == {"status": "AcceptedCanceled"}
        seen = notifications(csms, SIGNED, SIGNED_FINAL, mark)
        bad = dict(later, firmware=dict(later["firmware"], location="file:///etc/shadow"))
        assert csms.call("SignedUpdateFirmware", bad) == {"status": "Rejected"}
    assert statuses(seen)[0] == "DownloadScheduled" and seen[0]["requestId"] == 1
    assert {p["requestId"] for p in seen[1:]} == {2}
    assert statuses(seen)[-1] == "Installed"
    assert len(http.requests) == 1
