"""GetDiagnostics and GetLog end to end: the real daemon uploads its archive to real
HTTP, HTTPS and FTP servers on loopback; the archive holds the log, the state and the
configuration without its secrets; refusals are reported."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hwsim.csms import CsmsThread
from tests.file_servers import FtpFileServer, HttpFileServer
from tests.integration.harness import Daemon, start_session
from tests.integration.transfer_setup import (
    TRANSPORTS,
    Installer,
    file_server,
    members,
    notifications,
    now_plus,
    start,
    statuses,
    uploaded,
)

MakeDaemon = Callable[..., Daemon]
PASSWORD = "diagnostics-secret-0123"  # the CSMS password: must not leave the station
DIAGNOSTICS = "DiagnosticsStatusNotification"
LOG_STATUS = "LogStatusNotification"
NAME = re.compile(r"evsed-CP-TEST-(security-)?\d{8}T\d{6}Z\.tar\.gz")


@pytest.fixture
def daemon_with(make_daemon: MakeDaemon, csms: CsmsThread, tmp_path: Path) -> Callable[..., Daemon]:
    def make(**firmware: object) -> Daemon:
        table = Installer(tmp_path / "installer").firmware_table(**firmware)
        return start(make_daemon, csms, csms={"password": PASSWORD}, extra=table)

    return make


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_get_diagnostics_uploads_over_each_transport(
    transport: str, daemon_with: Callable[..., Daemon], csms: CsmsThread, tmp_path: Path
) -> None:
    with file_server(transport, tmp_path) as (server, base, settings):
        if isinstance(server, FtpFileServer):
            (server.root / "upload").mkdir()
        daemon = daemon_with(**settings)
        start_session(daemon, csms)
        mark = csms.mark()
        answer = csms.call(
            "GetDiagnostics",
            {"location": base + "/upload/", "startTime": now_plus(-3600), "stopTime": now_plus(60)},
        )
        name = answer["fileName"]
        assert NAME.fullmatch(name), name
        seen = notifications(csms, DIAGNOSTICS, {"Uploaded", "UploadFailed"}, mark)
        archive = uploaded(server, name)
    assert statuses(seen) == ["Uploading", "Uploaded"]
    files = members(archive, tmp_path)
    assert set(files) == {"log.txt", "state.json", "config.json", "store.json", "manifest.json"}
    state = json.loads(files["state.json"])
    assert state["connectors"][0]["status"] == "Charging"
    assert state["ocpp"]["registration"] == "Accepted"
    config = json.loads(files["config.json"])
    assert config["file"]["station"]["id"] == "CP-TEST"
    assert config["file"]["csms"]["password"] == "***"
    assert config["ocpp_keys"]["AuthorizationKey"] == "***"
    assert config["ocpp_keys"]["HeartbeatInterval"]
    assert b"evsed ready" in files["log.txt"]
    assert all(PASSWORD.encode() not in content for content in files.values())
    store = json.loads(files["store.json"])
    assert store["recent_transactions"][0]["id_tag"] == "04A1B2C3"
    manifest = json.loads(files["manifest.json"])
    assert manifest["log_source"].startswith("file ")


def test_an_upload_refused_by_the_server(
    daemon_with: Callable[..., Daemon], csms: CsmsThread
) -> None:
    with HttpFileServer(refuse_all_uploads=500) as http:
        daemon_with()
        mark = csms.mark()
        answer = csms.call(
            "GetDiagnostics", {"location": http.url + "/upload/", "retries": 1, "retryInterval": 0}
        )
        assert NAME.fullmatch(answer["fileName"])
        seen = notifications(csms, DIAGNOSTICS, {"Uploaded", "UploadFailed"}, mark)
        posts = [r for r in http.requests if r.method == "POST"]
    assert statuses(seen) == ["Uploading", "UploadFailed"]
    assert len(posts) == 2  # the first try and one retry
    # not busy any more: a triggered notification says Idle
    again = csms.mark()
    assert csms.call("TriggerMessage", {"requestedMessage": DIAGNOSTICS}) == {"status": "Accepted"}
    assert csms.wait_for(DIAGNOSTICS, after=again) == {"status": "Idle"}


def test_an_unusable_location_gets_no_file_name(
    daemon_with: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon_with()
    mark = csms.mark()
    assert csms.call("GetDiagnostics", {"location": "file:///etc/"}) == {}
    assert csms.call(
        "GetLog",
        {
            "logType": "DiagnosticsLog",
            "requestId": 1,
            "log": {"remoteLocation": "scp://host/dir/"},
        },
    ) == {"status": "Rejected"}
    csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert [
        r for r in csms.records if r.seq >= mark and r.action in (DIAGNOSTICS, LOG_STATUS)
    ] == []


@pytest.mark.parametrize("log_type", ["DiagnosticsLog", "SecurityLog"])
def test_get_log(
    log_type: str, daemon_with: Callable[..., Daemon], csms: CsmsThread, tmp_path: Path
) -> None:
    with HttpFileServer() as http:
        daemon_with()
        mark = csms.mark()
        answer = csms.call(
            "GetLog",
            {
                "logType": log_type,
                "requestId": 42,
                "retries": 0,
                "log": {
                    "remoteLocation": http.url + "/logs/",
                    "oldestTimestamp": now_plus(-3600),
                    "latestTimestamp": now_plus(60),
                },
            },
        )
        assert answer["status"] == "Accepted"
        name = answer["filename"]
        assert NAME.fullmatch(name) and ("security" in name) == (log_type == "SecurityLog")
        seen = notifications(csms, LOG_STATUS, {"Uploaded", "UploadFailure"}, mark)
        archive = uploaded(http, name)
    assert seen == [
        {"status": "Uploading", "requestId": 42},
        {"status": "Uploaded", "requestId": 42},
    ]
    files = members(archive, tmp_path)
    if log_type == "SecurityLog":
        text = files["security-log.txt"].decode()
        # the security log holds the security events only (here: the start-up)
        assert "evsed.security" in text
        assert "evsed.daemon" not in text
    else:
        assert b"evsed.daemon" in files["log.txt"]
    assert json.loads(files["manifest.json"])["kind"] == (
        "SecurityLog" if log_type == "SecurityLog" else "Diagnostics"
    )


def test_get_log_refused_by_the_ftp_server(
    daemon_with: Callable[..., Daemon], csms: CsmsThread, tmp_path: Path
) -> None:
    with FtpFileServer(tmp_path / "ftp") as ftp:
        daemon_with()
        mark = csms.mark()
        answer = csms.call(
            "GetLog",
            {
                "logType": "DiagnosticsLog",
                "requestId": 5,
                "retries": 0,
                "log": {"remoteLocation": ftp.url("/", password="wrong")},
            },
        )
        assert answer["status"] == "Accepted"
        seen = notifications(
            csms, LOG_STATUS, {"Uploaded", "UploadFailure", "PermissionDenied"}, mark
        )
    assert statuses(seen) == ["Uploading", "PermissionDenied"]


def test_a_new_get_log_cancels_the_one_under_way(
    daemon_with: Callable[..., Daemon], csms: CsmsThread
) -> None:
    with HttpFileServer(refuse_all_uploads=500) as refusing, HttpFileServer() as http:
        daemon_with()
        mark = csms.mark()
        slow = {
            "logType": "DiagnosticsLog",
            "requestId": 1,
            "retries": 5,
            "retryInterval": 60,
            "log": {"remoteLocation": refusing.url + "/"},
        }
        assert csms.call("GetLog", slow)["status"] == "Accepted"
        csms.wait_for(LOG_STATUS, lambda p: p["status"] == "Uploading", after=mark)
        deadline = time.monotonic() + 10
        while not refusing.requests and time.monotonic() < deadline:  # the first try failed
            time.sleep(0.05)
        assert refusing.requests
        fresh = dict(slow, requestId=2, log={"remoteLocation": http.url + "/"})
        answer = csms.call("GetLog", fresh)
        assert answer["status"] == "AcceptedCanceled"
        final = csms.wait_for(LOG_STATUS, lambda p: p["status"] == "Uploaded", after=mark)
        uploaded(http, answer["filename"])
    assert final == {"status": "Uploaded", "requestId": 2}
    later = [r.payload for r in csms.records if r.seq >= mark and r.action == LOG_STATUS]
    assert {"status": "UploadFailure", "requestId": 1} not in later
