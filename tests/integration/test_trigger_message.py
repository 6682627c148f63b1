"""Remote Trigger: TriggerMessage and ExtendedTriggerMessage against the real daemon.

Each test asks the station for a message and checks, at the CSMS, the answer,
that the message came after the answer (OCPP 1.6 requires the conf first), and
what it says; refusals send nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from hwsim.csms import CallErrorReceived, CsmsThread, Record
from tests.integration.harness import Daemon, cp_calls, start_session, status_record

TWO_CONNECTORS = [{"max_current": 16}, {"max_current": 16}]


def booted(daemon: Daemon, csms: CsmsThread, connectors: int = 1) -> None:
    """Registered, every status sent, and a meter reading of every connector."""
    csms.wait_for("BootNotification")
    for n in range(connectors + 1):
        status_record(csms, "Available", connector=n)
    daemon.wait(lambda s: all(c["meter"] is not None for c in s["connectors"]), 5, "meter readings")


def trigger(
    csms: CsmsThread, requested: str, connector: int | None = None, action: str = "TriggerMessage"
) -> tuple[str, int]:
    """Ask for a message; its status, and the mark to find what followed."""
    mark = csms.mark()
    payload: dict[str, Any] = {"requestedMessage": requested}
    if connector is not None:
        payload["connectorId"] = connector
    return csms.call(action, payload)["status"], mark


def answer_record(csms: CsmsThread, action: str, mark: int) -> Record:
    """The station's CALLRESULT to our trigger (recorded with the trigger's action)."""
    found = [
        r
        for r in csms.records
        if r.seq >= mark
        and r.direction == "in"
        and r.message_type == "CALLRESULT"
        and r.action == action
    ]
    assert len(found) == 1, found
    return found[0]


def triggered(
    csms: CsmsThread, action: str, mark: int, count: int = 1, by: str = "TriggerMessage"
) -> list[Record]:
    """The `count` messages the trigger asked for, each checked to follow its answer."""
    records = [csms.wait_for_record(action, after=mark, timeout=5) for _ in range(count)]
    conf = answer_record(csms, by, mark)
    for record in records:
        assert record.seq > conf.seq, f"{action} sent before the {by} answer"
    return records


def nothing_sent_before_heartbeat(csms: CsmsThread, mark: int, *actions: str) -> None:
    """A refused trigger sends nothing: a Heartbeat triggered after it is the barrier,
    since the station sends its triggered messages in order."""
    status, barrier = trigger(csms, "Heartbeat")
    assert status == "Accepted"
    beat = csms.wait_for_record("Heartbeat", after=answer_record(csms, "TriggerMessage", barrier))
    early = [r.action for r in cp_calls(csms, mark) if r.seq < beat.seq]
    assert not set(early) & set(actions), early


# --- messages about the whole station -------------------------------------------------


@pytest.mark.parametrize("connector", [None, 1, 5])  # a connector they do not concern is ignored
@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("Heartbeat", {}),
        ("DiagnosticsStatusNotification", {"status": "Idle"}),
        ("FirmwareStatusNotification", {"status": "Idle"}),
    ],
)
def test_station_messages_follow_the_answer(
    make_daemon, csms: CsmsThread, requested: str, expected: dict[str, Any], connector: int | None
) -> None:
    daemon = make_daemon()
    booted(daemon, csms)
    status, mark = trigger(csms, requested, connector)
    assert status == "Accepted"
    [message] = triggered(csms, requested, mark)
    assert message.payload == expected
    assert len(cp_calls(csms, mark, requested)) == 1


def test_triggered_boot_notification_takes_the_new_interval(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(daemon, csms)
    csms.configure(interval=42)
    events = len(csms.events)
    status, mark = trigger(csms, "BootNotification", 1)
    assert status == "Accepted"
    [boot] = triggered(csms, "BootNotification", mark)
    assert boot.payload["chargePointVendor"] and boot.payload["firmwareVersion"]
    assert csms.answer_to(boot).payload["interval"] == 42  # type: ignore[union-attr]
    daemon.wait(lambda s: s["ocpp"]["registration"] == "Accepted", 5, "still accepted")
    config = csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert config["configurationKey"][0]["value"] == "42"
    assert len(csms.events) == events, "the link was not dropped"


def test_triggered_boot_that_is_no_longer_accepted_registers_again(
    make_daemon, csms: CsmsThread
) -> None:
    daemon = make_daemon()
    booted(daemon, csms)
    csms.configure(boot_status="Pending", interval=1)
    status, mark = trigger(csms, "BootNotification")
    assert status == "Accepted"
    triggered(csms, "BootNotification", mark)
    # The station starts over: a new connection, BootNotification only until accepted.
    csms.wait_connected(after=mark)
    again = csms.wait_for_record("BootNotification", after=mark, timeout=5)
    assert [r.action for r in cp_calls(csms, again.seq)] == ["BootNotification"]
    csms.configure(boot_status="Accepted")
    accepted = csms.wait_for_record(
        "BootNotification", after=again, timeout=5
    )  # the retry after the interval
    status_record(csms, "Available", connector=1, after=accepted.seq)
    daemon.wait(lambda s: s["ocpp"]["registration"] == "Accepted", 5, "accepted again")


def test_while_pending_a_triggered_boot_notification_is_accepted_at_once(
    make_daemon, csms: CsmsThread
) -> None:
    # A long interval: without the trigger, the station would wait a minute to retry.
    csms.configure(boot_status="Pending", interval=60)
    daemon = make_daemon()
    first = csms.wait_for_record("BootNotification")
    daemon.wait(lambda s: s["ocpp"]["registration"] == "Pending", 5, "registration Pending")

    # While Pending, the station sends only what the CSMS triggers.
    status, mark = trigger(csms, "StatusNotification", 1)
    assert status == "Accepted"
    [pending_status] = triggered(csms, "StatusNotification", mark)
    assert pending_status.payload["status"] == "Available"
    assert {r.action for r in cp_calls(csms, first.seq)} == {
        "BootNotification",
        "StatusNotification",
    }

    csms.configure(boot_status="Accepted")
    status, mark = trigger(csms, "BootNotification")
    assert status == "Accepted"
    [boot] = triggered(csms, "BootNotification", mark)
    assert csms.answer_to(boot).payload["status"] == "Accepted"  # type: ignore[union-attr]
    # Accepted: the station carries on as after any accepted boot (statuses first).
    status_record(csms, "Available", connector=0, after=boot.seq)
    daemon.wait(lambda s: s["ocpp"]["registration"] == "Accepted", 5, "registration Accepted")
    assert len(cp_calls(csms, first.seq, "BootNotification")) == 2


# --- statuses --------------------------------------------------------------------------


def test_status_notification_for_one_connector_and_for_all(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(connectors=TWO_CONNECTORS)
    booted(daemon, csms, connectors=2)
    mark = csms.mark()
    daemon.request("plug", connector=2)
    status_record(csms, "Preparing", connector=2, after=mark)

    for connector, expected in [(0, "Available"), (1, "Available"), (2, "Preparing")]:
        status, mark = trigger(csms, "StatusNotification", connector)
        assert status == "Accepted"
        [message] = triggered(csms, "StatusNotification", mark)
        assert message.payload["connectorId"] == connector
        assert message.payload["status"] == expected
        assert message.payload["errorCode"] == "NoError"

    status, mark = trigger(csms, "StatusNotification")
    assert status == "Accepted"
    messages = triggered(csms, "StatusNotification", mark, count=3)
    assert [(m.payload["connectorId"], m.payload["status"]) for m in messages] == [
        (0, "Available"),
        (1, "Available"),
        (2, "Preparing"),
    ]


def test_status_notification_reports_a_fault(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(daemon, csms)
    mark = csms.mark()
    daemon.request("fault_raise", kind="rcd", connector=1)
    status_record(csms, "Faulted", connector=1, after=mark)
    status, mark = trigger(csms, "StatusNotification", 1)
    assert status == "Accepted"
    [message] = triggered(csms, "StatusNotification", mark)
    assert message.payload["status"] == "Faulted"
    assert message.payload["errorCode"] == "GroundFailure"


@pytest.mark.parametrize("connector", [3, -1])
def test_status_notification_for_a_connector_that_does_not_exist_is_rejected(
    make_daemon, csms: CsmsThread, connector: int
) -> None:
    daemon = make_daemon(connectors=TWO_CONNECTORS)
    booted(daemon, csms, connectors=2)
    status, mark = trigger(csms, "StatusNotification", connector)
    assert status == "Rejected"
    nothing_sent_before_heartbeat(csms, mark, "StatusNotification")


# --- meter values ----------------------------------------------------------------------


def sampled(message: Record) -> dict[str, list[dict[str, Any]]]:
    """The sampled values of a MeterValues, by measurand."""
    [value] = message.payload["meterValue"]
    out: dict[str, list[dict[str, Any]]] = {}
    for sample in value["sampledValue"]:
        out.setdefault(sample["measurand"], []).append(sample)
    return out


def test_meter_values_of_a_running_transaction(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(
        keys={"MeterValuesSampledData": "Energy.Active.Import.Register,Current.Import"}
    )
    booted(daemon, csms)
    start_session(daemon, csms)
    daemon.request("ev_charge", connector=1, on=False)  # no energy flows: the reading holds
    daemon.wait_status("SuspendedEV")
    daemon.request("meter_set", connector=1, wh=23456)
    daemon.wait(lambda s: s["connectors"][0]["meter"]["energy_wh"] == 23456, 5, "meter set")
    tx_id = csms.last_transaction_id
    daemon.wait(lambda s: s["connectors"][0]["transaction"]["csms_id"] == tx_id, 5, "tx confirmed")

    status, mark = trigger(csms, "MeterValues", 1)
    assert status == "Accepted"
    [message] = triggered(csms, "MeterValues", mark)
    assert message.payload["connectorId"] == 1
    assert message.payload["transactionId"] == tx_id
    values = sampled(message)
    assert set(values) == {"Energy.Active.Import.Register", "Current.Import"}
    [energy] = values["Energy.Active.Import.Register"]
    assert energy == {
        "measurand": "Energy.Active.Import.Register",
        "value": "23456",
        "unit": "Wh",
        "context": "Trigger",
        "location": "Outlet",
    }
    assert all(s["context"] == "Trigger" for v in values.values() for s in v)
    assert [s["phase"] for s in values["Current.Import"]] == ["L1", "L2", "L3"]
    assert message.error is None  # schema-valid at the CSMS


def test_meter_values_of_every_connector(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(connectors=TWO_CONNECTORS)
    booted(daemon, csms, connectors=2)
    for connector, wh in [(1, 1000), (2, 2000)]:
        daemon.request("meter_set", connector=connector, wh=wh)
    daemon.wait(
        lambda s: [c["meter"]["energy_wh"] for c in s["connectors"]] == [1000, 2000],
        5,
        "meters set",
    )
    status, mark = trigger(csms, "MeterValues")
    assert status == "Accepted"
    messages = triggered(csms, "MeterValues", mark, count=2)
    assert [m.payload["connectorId"] for m in messages] == [1, 2]
    for message, register in zip(messages, ["1000", "2000"], strict=True):
        assert "transactionId" not in message.payload  # no transaction runs
        # The default MeterValuesSampledData: the register and the power.
        values = sampled(message)
        assert set(values) == {"Energy.Active.Import.Register", "Power.Active.Import"}
        assert values["Energy.Active.Import.Register"][0]["value"] == register


def test_meter_values_with_no_sampled_measurands_still_report_the_register(
    make_daemon, csms: CsmsThread
) -> None:
    daemon = make_daemon(keys={"MeterValuesSampledData": ""})
    booted(daemon, csms)
    status, mark = trigger(csms, "MeterValues", 1)
    assert status == "Accepted"
    [message] = triggered(csms, "MeterValues", mark)
    assert set(sampled(message)) == {"Energy.Active.Import.Register"}


@pytest.mark.parametrize("connector", [0, 2, -1])  # no station-wide meter; no connector 2
def test_meter_values_for_a_connector_without_a_meter_are_rejected(
    make_daemon, csms: CsmsThread, connector: int
) -> None:
    daemon = make_daemon()
    booted(daemon, csms)
    status, mark = trigger(csms, "MeterValues", connector)
    assert status == "Rejected"
    nothing_sent_before_heartbeat(csms, mark, "MeterValues")


def test_meter_values_of_a_silent_meter_are_rejected(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(daemon, csms)
    mark = csms.mark()
    daemon.request("fault_raise", kind="meter", connector=1)
    daemon.wait(lambda s: s["connectors"][0]["error_code"] == "PowerMeterFailure", 5, "failure")
    status, mark = trigger(csms, "MeterValues", 1)
    assert status == "Rejected"  # a stale reading is no answer
    nothing_sent_before_heartbeat(csms, mark, "MeterValues")


# --- what the schema refuses --------------------------------------------------------------


@pytest.mark.parametrize("action", ["TriggerMessage", "ExtendedTriggerMessage"])
@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"requestedMessage": "StopTransaction"}, "PropertyConstraintViolation"),
        ({"requestedMessage": "Heartbeat", "connectorId": "1"}, "TypeConstraintViolation"),
        ({"connectorId": 1}, "OccurenceConstraintViolation"),
    ],
)
def test_a_request_the_schema_refuses_gets_a_callerror(
    make_daemon, csms: CsmsThread, action: str, payload: dict[str, Any], code: str
) -> None:
    daemon = make_daemon()
    booted(daemon, csms)
    mark = csms.mark()
    with pytest.raises(CallErrorReceived) as error:
        csms.call(action, payload)
    assert error.value.code == code
    nothing_sent_before_heartbeat(csms, mark, "StopTransaction", "Heartbeat")


def test_diagnostics_status_is_not_an_extended_trigger(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(daemon, csms)
    with pytest.raises(CallErrorReceived) as error:
        csms.call("ExtendedTriggerMessage", {"requestedMessage": "DiagnosticsStatusNotification"})
    assert error.value.code == "PropertyConstraintViolation"
    with pytest.raises(CallErrorReceived) as error:
        csms.call("TriggerMessage", {"requestedMessage": "LogStatusNotification"})
    assert error.value.code == "PropertyConstraintViolation"


# --- ExtendedTriggerMessage (security whitepaper) --------------------------------------------


@pytest.mark.parametrize(
    ("requested", "connector", "action", "expected"),
    [
        ("Heartbeat", None, "Heartbeat", {}),
        (
            "FirmwareStatusNotification",
            None,
            "SignedFirmwareStatusNotification",
            {"status": "Idle"},
        ),
        ("LogStatusNotification", None, "LogStatusNotification", {"status": "Idle"}),
        ("LogStatusNotification", 1, "LogStatusNotification", {"status": "Idle"}),
    ],
)
def test_extended_trigger_station_messages(
    make_daemon,
    csms: CsmsThread,
    requested: str,
    connector: int | None,
    action: str,
    expected: dict[str, Any],
) -> None:
    daemon = make_daemon()
    booted(daemon, csms)
    status, mark = trigger(csms, requested, connector, "ExtendedTriggerMessage")
    assert status == "Accepted"
    [message] = triggered(csms, action, mark, by="ExtendedTriggerMessage")
    assert message.payload == expected
    assert message.error is None
    # The security variant replaces the 1.6 one: no plain FirmwareStatusNotification.
    assert cp_calls(csms, mark, "FirmwareStatusNotification") == []


def test_extended_trigger_boot_status_and_meter_values(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(connectors=TWO_CONNECTORS)
    booted(daemon, csms, connectors=2)
    by = "ExtendedTriggerMessage"

    status, mark = trigger(csms, "BootNotification", None, by)
    assert status == "Accepted"
    [boot] = triggered(csms, "BootNotification", mark, by=by)
    assert csms.answer_to(boot).payload["status"] == "Accepted"  # type: ignore[union-attr]

    status, mark = trigger(csms, "StatusNotification", None, by)
    assert status == "Accepted"
    statuses = triggered(csms, "StatusNotification", mark, count=3, by=by)
    assert [m.payload["connectorId"] for m in statuses] == [0, 1, 2]

    status, mark = trigger(csms, "MeterValues", 2, by)
    assert status == "Accepted"
    [values] = triggered(csms, "MeterValues", mark, by=by)
    assert values.payload["connectorId"] == 2
    assert {s["context"] for s in values.payload["meterValue"][0]["sampledValue"]} == {"Trigger"}

    for requested, connector in [("StatusNotification", 3), ("MeterValues", 0)]:
        status, mark = trigger(csms, requested, connector, by)
        assert status == "Rejected"
        nothing_sent_before_heartbeat(csms, mark, requested)


def test_sign_certificate_sends_a_signing_request_after_the_answer(
    make_daemon, csms: CsmsThread
) -> None:
    # The security feature sets the hook; without one, the trigger is Rejected
    # (tests/unit/test_trigger_profile.py).
    daemon = make_daemon()
    booted(daemon, csms)
    status, mark = trigger(csms, "SignChargePointCertificate", None, "ExtendedTriggerMessage")
    assert status == "Accepted"
    [sign] = triggered(csms, "SignCertificate", mark, by="ExtendedTriggerMessage")
    assert "BEGIN CERTIFICATE REQUEST" in sign.payload["csr"]


def test_remote_trigger_is_a_supported_profile(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(daemon, csms)
    config = csms.call("GetConfiguration", {"key": ["SupportedFeatureProfiles"]})
    profiles = config["configurationKey"][0]["value"].split(",")
    assert "RemoteTrigger" in profiles and "Core" in profiles
