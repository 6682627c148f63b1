"""CSMS operations and robustness over OCPP 1.6J, seen from the CSMS and the EV.

Each test drives a real daemon (simulated hardware) through the control socket
and the test CSMS, and checks what an operator or a driver would notice:
messages at the CSMS, the contactor, the connector status, restarts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hwsim.csms import CsmsThread, Record
from tests.integration.harness import CARD, REPO, Daemon, start_session

TWO_CONNECTORS = [{"max_current": 16}, {"max_current": 16}]


# --- helpers -----------------------------------------------------------------------


def wait_status(
    csms: CsmsThread,
    connector: int,
    status: str,
    error: str | None = "NoError",
    after: int | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """The next StatusNotification for `connector` with this status (and errorCode)."""

    def match(p: dict[str, Any]) -> bool:
        return (
            p["connectorId"] == connector
            and p["status"] == status
            and (error is None or p["errorCode"] == error)
        )

    return csms.wait_for("StatusNotification", match, timeout=timeout, after=after)


def calls_since(csms: CsmsThread, action: str, mark: int) -> list[Record]:
    """The charge point's `action` calls recorded at or after `mark`."""
    return [
        r
        for r in csms.records
        if r.seq >= mark and r.direction == "in" and r.message_type == "CALL" and r.action == action
    ]


def no_status_except(
    csms: CsmsThread, connector: int, status: str, after: int, timeout: float
) -> None:
    """Within `timeout`, no StatusNotification of `connector` says anything but `status`."""
    with pytest.raises(TimeoutError):
        csms.wait_for(
            "StatusNotification",
            lambda p: p["connectorId"] == connector and p["status"] != status,
            timeout=timeout,
            after=after,
        )


def raw_reply(csms: CsmsThread, frame: Any, timeout: float = 5.0) -> list[Any]:
    """Send a frame (a string as is, anything else as JSON); return the parsed reply."""
    text = frame if isinstance(frame, str) else json.dumps(frame)
    reply = csms.send_raw(text, timeout=timeout)
    assert reply is not None, f"no reply to {text}"
    parsed = json.loads(reply)
    assert isinstance(parsed, list)
    return parsed


def booted(csms: CsmsThread) -> None:
    """Wait for the daemon's registration and its first StatusNotification."""
    csms.wait_for("BootNotification")
    wait_status(csms, 1, "Available")


def restart(daemon: Daemon, csms: CsmsThread) -> int:
    """Stop the daemon cleanly and start it again on the same state; return the mark."""
    assert daemon.stop() == 0
    mark = csms.mark()
    daemon.start()
    csms.wait_for("BootNotification", after=mark)
    return mark


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- 1. Reset ----------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "reason"), [("Soft", "SoftReset"), ("Hard", "HardReset")])
def test_reset_ends_the_transaction_and_restarts_the_process(
    make_daemon, csms: CsmsThread, kind: str, reason: str
) -> None:
    daemon = make_daemon()
    booted(csms)
    start_session(daemon, csms)
    tx_id = csms.last_transaction_id
    assert daemon.proc is not None
    pid = daemon.proc.pid

    mark = csms.mark()
    assert csms.call("Reset", {"type": kind}) == {"status": "Accepted"}
    stop = csms.wait_for_record("StopTransaction", after=mark)
    assert stop.payload["reason"] == reason
    assert stop.payload["transactionId"] == tx_id

    # A real restart: the process re-executes itself and registers anew.
    boot = csms.wait_for_record("BootNotification", after=stop, timeout=15)
    daemon.wait_ready()
    assert daemon.proc.poll() is None and daemon.proc.pid == pid
    # The car is still plugged in (the simulated world outlives the process), but the
    # new run starts no transaction of its own: a new session needs authorizing.
    wait_status(csms, 1, "Preparing", after=boot.seq)
    connector = daemon.connector()
    assert connector["status"] != "Charging"
    assert connector["transaction"] is None
    assert connector["contactor_closed"] is False
    assert daemon.state()["hardware"]["connectors"][0]["contactor"]["actually_closed"] is False
    # The transaction was reported once, and the new run does not report it again.
    time.sleep(0.3)
    stops = [p for p in csms.calls("StopTransaction") if p["transactionId"] == tx_id]
    assert len(stops) == 1


# --- 2. ChangeAvailability -----------------------------------------------------------


def test_inoperative_is_scheduled_during_a_transaction_and_survives_restart(
    make_daemon, csms: CsmsThread
) -> None:
    daemon = make_daemon()
    booted(csms)
    start_session(daemon, csms)

    mark = csms.mark()
    answer = csms.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert answer == {"status": "Scheduled"}
    # The running session is not interrupted.
    no_status_except(csms, 1, "Charging", after=mark, timeout=0.5)
    connector = daemon.connector()
    assert connector["status"] == "Charging" and connector["contactor_closed"] is True
    assert calls_since(csms, "StopTransaction", mark) == []

    # Once the driver ends the session, the connector becomes Unavailable.
    daemon.request("card", uid=CARD)
    stop = csms.wait_for("StopTransaction", after=mark)
    assert stop["reason"] == "Local"
    wait_status(csms, 1, "Unavailable", after=mark)
    daemon.request("unplug", connector=1)

    # The setting survives a restart: reported Unavailable, and a card starts nothing.
    mark = restart(daemon, csms)
    wait_status(csms, 1, "Unavailable", after=mark)
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    with pytest.raises(TimeoutError):
        csms.wait_for("StartTransaction", after=mark, timeout=1.5)
    connector = daemon.connector()
    assert connector["status"] == "Unavailable" and connector["transaction"] is None
    assert connector["contactor_closed"] is False
    daemon.request("unplug", connector=1)

    mark = csms.mark()
    answer = csms.call("ChangeAvailability", {"connectorId": 1, "type": "Operative"})
    assert answer == {"status": "Accepted"}
    wait_status(csms, 1, "Available", after=mark)
    # And it is usable again.
    start_session(daemon, csms)


def test_station_inoperative_makes_every_connector_unavailable(
    make_daemon, csms: CsmsThread
) -> None:
    daemon = make_daemon(connectors=TWO_CONNECTORS)
    booted(csms)
    wait_status(csms, 2, "Available")

    mark = csms.mark()
    answer = csms.call("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
    assert answer == {"status": "Accepted"}
    for n in (0, 1, 2):
        wait_status(csms, n, "Unavailable", after=mark)
    assert [c["status"] for c in daemon.state()["connectors"]] == ["Unavailable"] * 2

    mark = csms.mark()
    answer = csms.call("ChangeAvailability", {"connectorId": 0, "type": "Operative"})
    assert answer == {"status": "Accepted"}
    for n in (0, 1, 2):
        wait_status(csms, n, "Available", after=mark)

    mark = csms.mark()
    answer = csms.call("ChangeAvailability", {"connectorId": 5, "type": "Inoperative"})
    assert answer == {"status": "Rejected"}
    no_status_except(csms, 1, "Available", after=mark, timeout=0.3)
    assert [c["status"] for c in daemon.state()["connectors"]] == ["Available"] * 2


# --- 3. Configuration keys ---------------------------------------------------------------

# OCPP 1.6 §9.1: the Core keys evsed implements and whether each is read-only.
CORE_KEYS_READONLY = {
    "ClockAlignedDataInterval": False,
    "ConnectionTimeOut": False,
    "ConnectorPhaseRotation": False,
    "ConnectorPhaseRotationMaxLength": True,
    "GetConfigurationMaxKeys": True,
    "HeartbeatInterval": False,
    "LocalAuthorizeOffline": False,
    "LocalPreAuthorize": False,
    "MeterValuesAlignedData": False,
    "MeterValuesAlignedDataMaxLength": True,
    "MeterValuesSampledData": False,
    "MeterValuesSampledDataMaxLength": True,
    "MeterValueSampleInterval": False,
    "NumberOfConnectors": True,
    "ResetRetries": False,
    "StopTransactionOnEVSideDisconnect": False,
    "StopTransactionOnInvalidId": False,
    "StopTxnAlignedData": False,
    "StopTxnAlignedDataMaxLength": True,
    "StopTxnSampledData": False,
    "StopTxnSampledDataMaxLength": True,
    "SupportedFeatureProfiles": True,
    "TransactionMessageAttempts": False,
    "TransactionMessageRetryInterval": False,
    "UnlockConnectorOnEVSideDisconnect": False,
    "WebSocketPingInterval": False,
}


def get_keys(csms: CsmsThread, *names: str) -> dict[str, Any]:
    answer = csms.call("GetConfiguration", {"key": list(names)} if names else {})
    return {item["key"]: item for item in answer["configurationKey"]}


def test_get_and_change_configuration(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(csms)

    answer = csms.call("GetConfiguration", {})
    assert "unknownKey" not in answer or answer["unknownKey"] == []
    items = answer["configurationKey"]
    names = [item["key"] for item in items]
    assert len(names) == len(set(names)), "a key is listed twice"
    keys = {item["key"]: item for item in items}
    for name, readonly in CORE_KEYS_READONLY.items():
        assert name in keys, f"{name} missing from GetConfiguration"
        assert keys[name]["readonly"] is readonly, name
        assert isinstance(keys[name]["value"], str), name
    # AuthorizeRemoteTxRequests may be R or RW (the implementer's choice).
    assert isinstance(keys["AuthorizeRemoteTxRequests"]["readonly"], bool)
    assert keys["NumberOfConnectors"]["value"] == "1"
    assert "Core" in keys["SupportedFeatureProfiles"]["value"].split(",")
    assert keys["ConnectionTimeOut"]["value"] == "5"  # from the configuration file

    def change(key: str, value: str) -> str:
        return str(csms.call("ChangeConfiguration", {"key": key, "value": value})["status"])

    assert change("HeartbeatInterval", "17") == "Accepted"
    assert get_keys(csms, "HeartbeatInterval")["HeartbeatInterval"]["value"] == "17"
    assert change("ConnectionTimeOut", "42") == "Accepted"

    assert change("NumberOfConnectors", "2") == "Rejected"
    assert change("NoSuchKey", "1") == "NotSupported"
    assert change("HeartbeatInterval", "abc") == "Rejected"
    sampled = get_keys(csms, "MeterValuesSampledData")["MeterValuesSampledData"]["value"]
    assert change("MeterValuesSampledData", "Energy.Active.Import.Register,Bogus") == "Rejected"
    assert change("WebSocketPingInterval", "30") == "RebootRequired"

    answer = csms.call(
        "GetConfiguration", {"key": ["HeartbeatInterval", "NoSuchKey", "NumberOfConnectors"]}
    )
    assert answer["unknownKey"] == ["NoSuchKey"]
    keys = {item["key"]: item for item in answer["configurationKey"]}
    assert set(keys) == {"HeartbeatInterval", "NumberOfConnectors"}
    assert keys["HeartbeatInterval"]["value"] == "17"  # "abc" did not stick
    assert keys["NumberOfConnectors"] == {
        "key": "NumberOfConnectors",
        "readonly": True,
        "value": "1",
    }
    assert get_keys(csms, "MeterValuesSampledData")["MeterValuesSampledData"]["value"] == sampled

    # What the CSMS set survives a restart and beats the configuration file. The
    # CSMS sends interval 0 so BootNotification does not set HeartbeatInterval itself.
    csms.interval = 0
    restart(daemon, csms)
    keys = get_keys(csms, "HeartbeatInterval", "ConnectionTimeOut", "WebSocketPingInterval")
    assert keys["HeartbeatInterval"]["value"] == "17"
    assert keys["ConnectionTimeOut"]["value"] == "42"
    assert keys["WebSocketPingInterval"]["value"] == "30"


# --- 4. Malformed and unknown calls -----------------------------------------------------


def test_malformed_and_unknown_calls_get_the_right_callerror(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(csms)
    mark = csms.mark()

    reply = raw_reply(csms, '[2, "x1", "Heartbeat", {')
    assert reply[:3] == [4, "-1", "FormationViolation"]

    def error_for(uid: str, action: str, payload: Any) -> str:
        reply = raw_reply(csms, [2, uid, action, payload])
        assert len(reply) == 5 and reply[0] == 4 and reply[1] == uid, reply
        assert isinstance(reply[3], str) and isinstance(reply[4], dict), reply
        return str(reply[2])

    assert error_for("u1", "MakeCoffee", {}) == "NotImplemented"
    # A 1.6 action only a charge point sends: defined, but nothing a station answers.
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    assert error_for("u2", "StatusNotification", status) == "NotSupported"
    assert error_for("u3", "ChangeAvailability", {"connectorId": 1}) == (
        "OccurenceConstraintViolation"
    )
    wrong_type = {"connectorId": "one", "type": "Operative"}
    assert error_for("u4", "ChangeAvailability", wrong_type) == "TypeConstraintViolation"
    bad_enum = {"connectorId": 1, "type": "Sideways"}
    assert error_for("u5", "ChangeAvailability", bad_enum) == "PropertyConstraintViolation"
    extra = {"connectorId": 1, "type": "Operative", "colour": "red"}
    assert error_for("u6", "ChangeAvailability", extra) == "FormationViolation"
    assert error_for("u7", "ChangeAvailability", [1, "Operative"]) == "FormationViolation"
    assert error_for("u8", "GetConfiguration", "all") == "FormationViolation"

    # Answers to calls the charge point never made are dropped without a reply.
    assert csms.send_raw('[3, "never-sent", {"status": "Accepted"}]', timeout=1.0) is None
    assert csms.send_raw('[4, "never-sent-2", "InternalError", "", {}]', timeout=0.5) is None

    # No harm done: same connection, same process, normal calls still answered.
    assert daemon.proc is not None and daemon.proc.poll() is None
    keys = get_keys(csms, "NumberOfConnectors")
    assert keys["NumberOfConnectors"]["value"] == "1"
    assert not [e for e in csms.events if e.seq >= mark and e.kind == "disconnected"]
    assert calls_since(csms, "BootNotification", mark) == []
    assert daemon.connector()["status"] == "Available"
    assert daemon.connector()["operative"] is True
    start_session(daemon, csms)


# --- 5. The link --------------------------------------------------------------------------


def test_link_loss_and_reconnect_without_new_boot(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(connectors=TWO_CONNECTORS)
    booted(csms)
    wait_status(csms, 2, "Available")

    mark = csms.mark()
    daemon.request("link_cut")
    csms.wait_disconnected(after=mark)
    assert daemon.state()["ocpp"]["connected"] is False

    mark = csms.mark()
    daemon.request("link_restore")
    csms.wait_connected(after=mark)
    for n in (0, 1, 2):
        wait_status(csms, n, "Available", after=mark)
    assert calls_since(csms, "BootNotification", mark) == []
    assert daemon.state()["ocpp"] == {
        "connected": True,
        "registration": "Accepted",
        "allowed": True,
        "version": "1.6",
    }

    # The CSMS drops the connection: the station comes back after a backoff delay.
    mark = csms.mark()
    csms.disconnect()
    csms.wait_connected(after=mark)
    for n in (0, 1, 2):
        wait_status(csms, n, "Available", after=mark)
    events = [e for e in csms.events if e.seq >= mark]
    gone = next(e for e in events if e.kind == "disconnected")
    back = next(e for e in events if e.kind == "connected")
    assert back.time - gone.time >= 0.1, "reconnected without any backoff"
    assert calls_since(csms, "BootNotification", mark) == []
    assert csms.call("GetConfiguration", {"key": ["NumberOfConnectors"]})["configurationKey"]


def test_transaction_stopped_offline_is_delivered_after_reconnect(
    make_daemon, csms: CsmsThread
) -> None:
    daemon = make_daemon()
    booted(csms)
    start_session(daemon, csms)
    tx_id = csms.last_transaction_id

    mark = csms.mark()
    daemon.request("link_cut")
    csms.wait_disconnected(after=mark)
    daemon.request("card", uid=CARD)  # the driver ends the session while offline
    state = daemon.wait(lambda s: s["connectors"][0]["transaction"] is None, 5, "the offline stop")
    assert state["queued_messages"] >= 1
    assert state["connectors"][0]["contactor_closed"] is False
    time.sleep(0.3)
    restored_at = time.time()
    assert calls_since(csms, "StopTransaction", mark) == []

    mark = csms.mark()
    daemon.request("link_restore")
    csms.wait_connected(after=mark)
    stop = csms.wait_for("StopTransaction", after=mark)
    assert stop["transactionId"] == tx_id
    assert stop["reason"] == "Local"
    assert parse_time(stop["timestamp"]) <= restored_at  # when it stopped, not when sent
    daemon.wait(lambda s: s["queued_messages"] == 0, 5, "an empty outbox")
    time.sleep(0.5)
    stops = [p for p in csms.calls("StopTransaction") if p["transactionId"] == tx_id]
    assert len(stops) == 1


# --- 6. Faults ---------------------------------------------------------------------------


def test_rcd_trip_opens_at_once_and_latches_until_unplug(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(csms)
    start_session(daemon, csms)
    tx_id = csms.last_transaction_id

    mark = csms.mark()
    daemon.request("fault_raise", kind="rcd", connector=1)
    daemon.wait(
        lambda s: s["hardware"]["connectors"][0]["contactor"]["actually_closed"] is False,
        0.5,
        "the contactor to open",
    )
    wait_status(csms, 1, "Faulted", "GroundFailure", after=mark)
    stop = csms.wait_for("StopTransaction", after=mark)
    assert stop["reason"] == "Other" and stop["transactionId"] == tx_id

    mark = csms.mark()
    daemon.request("fault_clear", kind="rcd", connector=1)
    no_status_except(csms, 1, "Faulted", after=mark, timeout=0.5)
    connector = daemon.connector()
    assert connector["status"] == "Faulted" and connector["contactor_closed"] is False

    daemon.request("unplug", connector=1)
    wait_status(csms, 1, "Available", after=mark)


def test_welded_contactor_stays_faulted_until_restart(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(csms)
    start_session(daemon, csms)

    mark = csms.mark()
    daemon.request("fault_raise", kind="weld", connector=1)
    wait_status(csms, 1, "Faulted", "PowerSwitchFailure", after=mark)
    assert csms.wait_for("StopTransaction", after=mark)["reason"] == "Other"
    assert daemon.connector()["contactor_closed"] is False  # commanded open

    mark = csms.mark()
    daemon.request("fault_clear", kind="weld", connector=1)
    daemon.request("unplug", connector=1)
    no_status_except(csms, 1, "Faulted", after=mark, timeout=0.5)
    assert daemon.connector()["status"] == "Faulted"

    mark = restart(daemon, csms)
    wait_status(csms, 1, "Available", after=mark)


def test_silent_meter_is_reported_without_stopping_the_charge(
    make_daemon, csms: CsmsThread
) -> None:
    daemon = make_daemon()
    booted(csms)
    start_session(daemon, csms)

    mark = csms.mark()
    raised = time.monotonic()
    daemon.request("fault_raise", kind="meter", connector=1)
    wait_status(csms, 1, "Charging", "PowerMeterFailure", after=mark)
    # Not on the first missed reading: only after meter_offline_after (1 s).
    assert time.monotonic() - raised >= 0.7
    connector = daemon.connector()
    assert connector["contactor_closed"] is True and connector["transaction"] is not None
    assert calls_since(csms, "StopTransaction", mark) == []

    mark = csms.mark()
    daemon.request("fault_clear", kind="meter", connector=1)
    wait_status(csms, 1, "Charging", "NoError", after=mark)


def test_reader_offline_is_reported_on_connector_zero(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(csms)

    mark = csms.mark()
    daemon.request("fault_raise", kind="reader", connector=0)
    wait_status(csms, 0, "Available", "ReaderFailure", after=mark)
    assert daemon.connector()["status"] == "Available"

    mark = csms.mark()
    daemon.request("fault_clear", kind="reader", connector=0)
    wait_status(csms, 0, "Available", "NoError", after=mark)


def test_generic_fault_blocks_and_clears_with_its_condition(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(csms)

    mark = csms.mark()
    daemon.request("fault_raise", kind="generic", connector=1)
    wait_status(csms, 1, "Faulted", "OtherError", after=mark)
    # A faulted connector starts no session.
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    with pytest.raises(TimeoutError):
        csms.wait_for("StartTransaction", after=mark, timeout=1.0)
    daemon.request("unplug", connector=1)

    mark = csms.mark()
    daemon.request("fault_clear", kind="generic", connector=1)
    wait_status(csms, 1, "Available", after=mark)


def test_diode_fault_is_an_ev_communication_error(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(csms)
    start_session(daemon, csms)

    mark = csms.mark()
    daemon.request("fault_raise", kind="diode", connector=1)
    wait_status(csms, 1, "Faulted", "EVCommunicationError", after=mark)
    assert csms.wait_for("StopTransaction", after=mark)["reason"] == "Other"
    assert daemon.connector()["contactor_closed"] is False


# --- 7. UnlockConnector ------------------------------------------------------------------


def test_unlock_connector_with_lock_ends_the_transaction(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(connectors=[{"max_current": 16, "lock": True}])
    booted(csms)
    start_session(daemon, csms)
    tx_id = csms.last_transaction_id
    assert daemon.state()["hardware"]["connectors"][0]["lock"] == "locked"

    mark = csms.mark()
    assert csms.call("UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
    stop = csms.wait_for("StopTransaction", after=mark)
    assert stop["reason"] == "UnlockCommand" and stop["transactionId"] == tx_id
    state = daemon.state()
    assert state["hardware"]["connectors"][0]["lock"] == "unlocked"
    assert state["connectors"][0]["contactor_closed"] is False
    assert state["hardware"]["connectors"][0]["contactor"]["actually_closed"] is False


def test_unlock_connector_on_fixed_cable_is_not_supported(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(csms)
    start_session(daemon, csms)

    mark = csms.mark()
    assert csms.call("UnlockConnector", {"connectorId": 1}) == {"status": "NotSupported"}
    assert csms.call("UnlockConnector", {"connectorId": 5}) == {"status": "NotSupported"}
    # Nothing happens to the session.
    no_status_except(csms, 1, "Charging", after=mark, timeout=0.3)
    assert calls_since(csms, "StopTransaction", mark) == []
    assert daemon.connector()["status"] == "Charging"


# --- 8. DataTransfer ---------------------------------------------------------------------


def test_data_transfer_with_unknown_vendor(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(csms)
    answer = csms.call("DataTransfer", {"vendorId": "com.example.nobody", "data": "x"})
    assert answer["status"] == "UnknownVendorId"
    assert daemon.proc is not None and daemon.proc.poll() is None


# --- 9. Configuration errors -------------------------------------------------------------

BAD_CONFIG = """\
[station]
id = "bad id!"

[csms]
url = "http://csms.example/ocpp"
reconnect_min = -1

[[connectors]]
max_current = 100
phases = 2
colour = "red"

[ocpp.keys]
HeartbeatInterval = "abc"
NumberOfConnectors = 3

[logging]
level = "loud"
"""
BAD_PATHS = [
    "station.id",
    "csms.url",
    "csms.reconnect_min",
    "connectors[1].max_current",
    "connectors[1].phases",
    "connectors[1].colour",
    "ocpp.keys.HeartbeatInterval",
    "ocpp.keys.NumberOfConnectors",
    "logging.level",
]
GOOD_CONFIG = """\
[station]
id = "CP-OK"

[csms]
url = "ws://127.0.0.1:9/ocpp"

[state]
dir = "state"

[[connectors]]
max_current = 16
"""


def evsed(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'hw-sim'}"}
    return subprocess.run(
        [sys.executable, "-m", "controller", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("command", [["run", "--config"], ["config", "check"]])
def test_bad_configuration_reports_every_problem(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD_CONFIG)
    result = evsed(tmp_path, *command, str(path))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    lines = [line.strip() for line in output.splitlines()]
    for key_path in BAD_PATHS:
        assert any(line.startswith(f"{key_path}: ") for line in lines), (key_path, output)


def test_toml_syntax_error_is_reported_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(GOOD_CONFIG + '\n[hardware\nmeter = "sim"\n')
    result = evsed(tmp_path, "config", "check", str(path))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    assert "TOML syntax error" in output and "line 13" in output, output


def test_valid_configuration_passes_the_check(tmp_path: Path) -> None:
    path = tmp_path / "good.toml"
    path.write_text(GOOD_CONFIG)
    result = evsed(tmp_path, "config", "check", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
