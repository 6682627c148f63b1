"""OCPP 2.0.1 provisioning over the live daemon: the device model's requests, network
profiles, BootNotification Pending / Rejected, and the controller variables the station
follows (controller.ocpp.v201.provisioning, network, controller_variables)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from hwsim.csms import CsmsThread, Record
from tests.integration.harness import CARD, Daemon

# Fixtures "csms", "station" come with the import of csms_201, station_201.
from tests.integration.v201 import (  # noqa: F401
    csms_201,
    ended_event,
    start_session_201,
    station_201,
)

PERIODIC = "MeterValuePeriodic"
PASSWORD = "0123456789abcdef"  # security profile 1 (the test CSMS does not check it)


# --- helpers -------------------------------------------------------------------------------


def item(component: str, variable: str, **extra: Any) -> dict[str, Any]:
    """A GetVariableData / SetVariableData entry: evse=, instance=, value=, attribute=."""
    entry: dict[str, Any] = {"component": {"name": component}, "variable": {"name": variable}}
    if "evse" in extra:
        entry["component"]["evse"] = {"id": extra["evse"]}
    if "instance" in extra:
        entry["variable"]["instance"] = extra["instance"]
    if "attribute" in extra:
        entry["attributeType"] = extra["attribute"]
    if "value" in extra:
        entry["attributeValue"] = str(extra["value"])
    return entry


def get_values(csms: CsmsThread, *items: dict[str, Any]) -> list[dict[str, Any]]:
    answer = csms.call("GetVariables", {"getVariableData": list(items)})
    return list(answer["getVariableResult"])


def value_of(csms: CsmsThread, component: str, variable: str, **extra: Any) -> str:
    (result,) = get_values(csms, item(component, variable, **extra))
    assert result["attributeStatus"] == "Accepted", result
    return str(result["attributeValue"])


def set_values(csms: CsmsThread, *items: dict[str, Any]) -> list[str]:
    answer = csms.call("SetVariables", {"setVariableData": list(items)})
    return [r["attributeStatus"] for r in answer["setVariableResult"]]


def set_value(csms: CsmsThread, component: str, variable: str, value: Any, **extra: Any) -> None:
    assert set_values(csms, item(component, variable, value=value, **extra)) == ["Accepted"]


def report(csms: CsmsThread, request_id: int, after: int) -> list[dict[str, Any]]:
    """Every NotifyReport of one report, in order, once its last (tbc false) has come."""
    csms.wait_for(
        "NotifyReport",
        lambda p: p["requestId"] == request_id and not p.get("tbc", False),
        after=after,
    )
    return [p for p in csms.calls("NotifyReport") if p["requestId"] == request_id]


def names(messages: list[dict[str, Any]]) -> list[str]:
    return [
        f"{d['component']['name']}.{d['variable']['name']}"
        for m in messages
        for d in m["reportData"]
    ]


def station_calls(csms: CsmsThread, after: int) -> list[Record]:
    return [
        r
        for r in csms.records
        if r.seq >= after and r.direction == "in" and r.message_type == "CALL"
    ]


def updates(csms: CsmsThread, trigger: str, after: int) -> list[dict[str, Any]]:
    return [
        r.payload
        for r in csms.records
        if r.seq >= after
        and r.direction == "in"
        and r.action == "TransactionEvent"
        and r.message_type == "CALL"
        and r.payload["triggerReason"] == trigger
    ]


def measurands_of(event: dict[str, Any]) -> set[str]:
    return {
        sample.get("measurand", "Energy.Active.Import.Register")
        for value in event.get("meterValue", [])
        for sample in value["sampledValue"]
    }


def profile(url: str, message_timeout: int = 30) -> dict[str, Any]:
    return {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": url,
        "messageTimeout": message_timeout,
        "securityProfile": 1,
        "ocppInterface": "Wired0",
    }


# --- GetVariables / SetVariables --------------------------------------------------------------


def test_get_variables_answers_every_item_on_its_own(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    station()
    csms.wait_for("BootNotification")
    results = get_values(
        csms,
        item("OCPPCommCtrlr", "HeartbeatInterval"),
        item("NoSuchCtrlr", "Enabled"),
        item("OCPPCommCtrlr", "NoSuchVariable"),
        item("OCPPCommCtrlr", "HeartbeatInterval", attribute="Target"),
        item("SecurityCtrlr", "BasicAuthPassword"),
        item("EVSE", "AvailabilityState", evse=1),
        item("EVSE", "AvailabilityState", evse=2),
        item("DeviceDataCtrlr", "ItemsPerMessage", instance="GetVariables"),
    )
    statuses = [r["attributeStatus"] for r in results]
    assert statuses == [
        "Accepted",
        "UnknownComponent",
        "UnknownVariable",
        "NotSupportedAttributeType",
        "Rejected",
        "Accepted",
        "UnknownComponent",
        "Accepted",
    ]
    assert results[0]["attributeValue"] == "300"  # the BootNotification's interval
    assert results[4]["attributeStatusInfo"]["reasonCode"] == "WriteOnly"
    assert "attributeValue" not in results[4]
    assert results[5]["attributeValue"] == "Available"
    assert results[7]["attributeValue"] == "50"


def test_set_variables_refuses_read_only_and_bad_values_and_changes_nothing(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    station()
    csms.wait_for("BootNotification")
    answer = csms.call(
        "SetVariables",
        {
            "setVariableData": [
                item("SecurityCtrlr", "SecurityProfile", value=3),
                item("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", value=0),
                item("OCPPCommCtrlr", "HeartbeatInterval", value="soon"),
                item("TxCtrlr", "TxStartPoint", value="ParkingBayOccupancy"),  # no bay sensor
                item("AuthCtrlr", "Enabled", value="false"),
                item("NoSuchCtrlr", "Enabled", value="true"),
            ]
        },
    )
    results = answer["setVariableResult"]
    assert [r["attributeStatus"] for r in results] == [
        "Rejected",
        "Rejected",
        "Rejected",
        "Rejected",
        "Rejected",
        "UnknownComponent",
    ]
    reasons = [r.get("attributeStatusInfo", {}).get("reasonCode") for r in results]
    assert reasons[:5] == ["ReadOnly", "ValueTooLow", "InvalidValue", "InvalidValue", "ReadOnly"]
    assert value_of(csms, "SecurityCtrlr", "SecurityProfile") == "0"
    assert value_of(csms, "OCPPCommCtrlr", "NetworkProfileConnectionAttempts") == "3"
    assert value_of(csms, "OCPPCommCtrlr", "HeartbeatInterval") == "300"
    assert value_of(csms, "TxCtrlr", "TxStartPoint") == "PowerPathClosed"
    assert value_of(csms, "AuthCtrlr", "Enabled") == "true"  # no free vend here


def test_heartbeat_interval_set_by_the_csms_is_followed(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    station()
    csms.wait_for("BootNotification")
    time.sleep(1.5)
    assert not csms.calls("Heartbeat")  # every 300 s
    mark = csms.mark()
    set_value(csms, "OCPPCommCtrlr", "HeartbeatInterval", 1)
    first = csms.wait_for_record("Heartbeat", after=mark)
    second = csms.wait_for_record("Heartbeat", after=first.seq)
    assert second.time - first.time >= 0.9


def test_set_values_survive_a_restart(station: Callable[..., Daemon], csms: CsmsThread) -> None:
    daemon = station()
    csms.wait_for("BootNotification")
    statuses = set_values(
        csms,
        item("SampledDataCtrlr", "TxUpdatedInterval", value=17),  # the 1.6 key's view
        item("OCPPCommCtrlr", "OfflineThreshold", value=123),  # a 2.0.1 value of its own
        item("SampledDataCtrlr", "TxStartedMeasurands", value="Voltage , Current.Import"),
    )
    assert statuses == ["Accepted"] * 3
    daemon.stop()
    mark = csms.mark()
    daemon.start()
    csms.wait_for("BootNotification", after=mark)
    assert value_of(csms, "SampledDataCtrlr", "TxUpdatedInterval") == "17"
    assert value_of(csms, "OCPPCommCtrlr", "OfflineThreshold") == "123"
    assert value_of(csms, "SampledDataCtrlr", "TxStartedMeasurands") == "Voltage,Current.Import"


# --- reports ---------------------------------------------------------------------------------


def test_base_reports_come_in_numbered_notify_reports(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    station()
    csms.wait_for("BootNotification")
    sizes = {}
    for request_id, base in enumerate(
        ("ConfigurationInventory", "FullInventory", "SummaryInventory"), start=1
    ):
        mark = csms.mark()
        answer = csms.call("GetBaseReport", {"requestId": request_id, "reportBase": base})
        assert answer["status"] == "Accepted"
        messages = report(csms, request_id, mark)
        assert [m["seqNo"] for m in messages] == list(range(len(messages)))
        assert [m["tbc"] for m in messages] == [True] * (len(messages) - 1) + [False]
        entries = [d for m in messages for d in m["reportData"]]
        sizes[base] = len(entries)
        mutabilities = {a["mutability"] for d in entries for a in d["variableAttribute"]}
        if base == "ConfigurationInventory":
            assert mutabilities <= {"ReadWrite", "WriteOnly"}
            assert "OCPPCommCtrlr.HeartbeatInterval" in names(messages)
            (password,) = [d for d in entries if d["variable"]["name"] == "BasicAuthPassword"]
            assert "value" not in password["variableAttribute"][0]
        elif base == "FullInventory":
            assert "ReadOnly" in mutabilities
            assert "ChargingStation.VendorName" in names(messages)
            assert len(messages) > 1  # more entries than one NotifyReport carries
        else:
            variables = {name.split(".")[1] for name in names(messages)}
            assert variables <= {"AvailabilityState", "Available", "Problem", "Tripped"}
            assert "EVSE.AvailabilityState" in names(messages)
    assert sizes["SummaryInventory"] < sizes["ConfigurationInventory"] < sizes["FullInventory"]


def test_get_report_with_criteria_and_selectors(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station()
    csms.wait_for("BootNotification")
    answer = csms.call("GetReport", {"requestId": 7, "componentCriteria": ["Problem"]})
    assert answer["status"] == "EmptyResultSet"  # nothing is wrong yet

    daemon.request("plug", connector=1)
    daemon.request("fault_raise", kind="rcd", connector=1)
    daemon.wait_status("Faulted")
    mark = csms.mark()
    answer = csms.call("GetReport", {"requestId": 8, "componentCriteria": ["Problem"]})
    assert answer["status"] == "Accepted"
    messages = report(csms, 8, mark)
    problems = [d for m in messages for d in m["reportData"] if d["variable"]["name"] == "Problem"]
    assert [(d["component"]["name"], d["component"].get("evse")) for d in problems] == [
        ("EVSE", {"id": 1})
    ]  # the station as a whole has no problem
    assert all(d["variableAttribute"][0]["value"] == "true" for d in problems)

    mark = csms.mark()
    selectors = [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
        {"component": {"name": "EVSE", "evse": {"id": 1}}},
    ]
    answer = csms.call("GetReport", {"requestId": 9, "componentVariable": selectors})
    assert answer["status"] == "Accepted"
    messages = report(csms, 9, mark)
    reported = names(messages)
    assert reported.count("OCPPCommCtrlr.HeartbeatInterval") == 1
    assert {"EVSE.AvailabilityState", "EVSE.Problem", "EVSE.Power"} <= set(reported)
    assert {n.split(".")[0] for n in reported} == {"OCPPCommCtrlr", "EVSE"}
    nothing = [{"component": {"name": "NoSuchCtrlr"}}]
    answer = csms.call("GetReport", {"requestId": 10, "componentVariable": nothing})
    assert answer["status"] == "EmptyResultSet"


# --- network profiles -----------------------------------------------------------------------


def test_a_new_network_profile_takes_the_station_to_another_csms(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    with CsmsThread(subprotocols=("ocpp2.0.1",)) as second:
        # The first CSMS's profile (slot 0) waits 30 s for an answer; the new one 1 s.
        station(csms={"response_timeout": 30, "password": PASSWORD})
        csms.wait_for("BootNotification")
        refused = csms.call(
            "SetNetworkProfile", {"configurationSlot": 0, "connectionData": profile(second.url)}
        )
        assert refused["status"] == "Rejected"
        bad = profile(second.url.replace("ws://", "http://"))
        refused = csms.call("SetNetworkProfile", {"configurationSlot": 1, "connectionData": bad})
        assert refused["status"] == "Rejected"
        assert set_values(
            csms, item("OCPPCommCtrlr", "NetworkConfigurationPriority", value="1,0")
        ) == ["Rejected"]  # slot 1 holds no profile yet
        data = profile(second.url, message_timeout=1)
        answer = csms.call("SetNetworkProfile", {"configurationSlot": 1, "connectionData": data})
        assert answer["status"] == "Accepted"
        set_value(csms, "OCPPCommCtrlr", "NetworkConfigurationPriority", "1,0")
        assert value_of(csms, "OCPPCommCtrlr", "ActiveNetworkProfile") == "0"

        second.ignore("BootNotification", 1)  # its answer is lost: retried after 1 s
        assert csms.call("Reset", {"type": "Immediate"})["status"] == "Accepted"
        lost = second.wait_for_record("BootNotification", timeout=15)
        assert lost.payload["reason"] == "RemoteReset"
        # Sent again after the profile's messageTimeout (1 s) and boot_retry (1 s), well
        # before the 30 s of slot 0's.
        second.wait_for_record("BootNotification", after=lost.seq, timeout=10)
        assert value_of(second, "OCPPCommCtrlr", "ActiveNetworkProfile") == "1"
        assert value_of(second, "OCPPCommCtrlr", "MessageTimeout", instance="Default") == "1"
        second.wait_for("StatusNotification")


def test_an_unreachable_profile_falls_back_after_its_attempts(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    with CsmsThread(subprotocols=("ocpp2.0.1",)) as down:
        down.refuse_connections = True
        station(csms={"password": PASSWORD})
        csms.wait_for("BootNotification")
        answer = csms.call(
            "SetNetworkProfile", {"configurationSlot": 2, "connectionData": profile(down.url)}
        )
        assert answer["status"] == "Accepted"
        statuses = set_values(
            csms,
            item("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", value=2),
            item("OCPPCommCtrlr", "NetworkConfigurationPriority", value="2,0"),
        )
        assert statuses == ["Accepted", "Accepted"]
        mark = csms.mark()
        assert csms.call("Reset", {"type": "Immediate"})["status"] == "Accepted"
        boot = csms.wait_for("BootNotification", after=mark, timeout=20)
        assert boot["reason"] == "RemoteReset"
        refused = [e for e in down.events if e.kind == "rejected"]
        assert len(refused) == 2  # NetworkProfileConnectionAttempts, then slot 0
        assert value_of(csms, "OCPPCommCtrlr", "ActiveNetworkProfile") == "0"


# --- BootNotification Pending and Rejected (B02, B03) ---------------------------------------


def test_while_pending_the_csms_may_configure_and_the_station_only_boots(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    csms.configure(boot_status="Pending", interval=3)
    daemon = station()
    first = csms.wait_for_record("BootNotification")
    daemon.request("plug", connector=1)  # a status change the CSMS must not hear of yet
    assert value_of(csms, "OCPPCommCtrlr", "OfflineThreshold") == "60"
    set_value(csms, "OCPPCommCtrlr", "OfflineThreshold", 90)
    answer = csms.call("GetBaseReport", {"requestId": 3, "reportBase": "SummaryInventory"})
    assert answer["status"] == "Accepted"
    report(csms, 3, first.seq)  # B02.FR.02: the report the CSMS asked for is sent
    token = {"idToken": "DRIVER-7", "type": "Central"}
    start = {"remoteStartId": 1, "idToken": token, "evseId": 1}
    assert csms.call("RequestStartTransaction", start)["status"] == "Rejected"

    csms.configure(boot_status="Accepted")
    second = csms.wait_for_record("BootNotification", after=first.seq)
    assert second.time - first.time >= 2.9  # not before the interval
    sent = [r.action for r in station_calls(csms, first.seq + 1) if r.seq < second.seq]
    assert set(sent) == {"NotifyReport"}
    csms.wait_for("StatusNotification", lambda p: p["connectorStatus"] == "Occupied")
    assert value_of(csms, "OCPPCommCtrlr", "OfflineThreshold") == "90"


def test_while_rejected_the_station_is_silent_until_the_interval(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    csms.configure(boot_status="Rejected", interval=3)
    daemon = station()
    first = csms.wait_for_record("BootNotification")
    daemon.request("plug", connector=1)
    request = {"getVariableData": [item("OCPPCommCtrlr", "OfflineThreshold")]}
    with pytest.raises(TimeoutError):  # not answered while Rejected (B03)
        csms.call("GetVariables", request, timeout=1.5)
    csms.configure(boot_status="Accepted")
    second = csms.wait_for_record("BootNotification", after=first.seq)
    assert second.time - first.time >= 2.9
    between = [r for r in csms.records if first.seq < r.seq < second.seq and r.direction == "in"]
    assert between == []  # no call and no answer
    csms.wait_for("StatusNotification", lambda p: p["connectorStatus"] == "Occupied")
    assert value_of(csms, "OCPPCommCtrlr", "OfflineThreshold") == "60"


# --- the controller variables the station follows ------------------------------------------


def test_sampled_data_variables_shape_the_transaction_events(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station()
    csms.wait_for("BootNotification")
    statuses = set_values(
        csms,
        item("SampledDataCtrlr", "TxStartedMeasurands", value="Power.Active.Import,Voltage"),
        item("SampledDataCtrlr", "TxEndedMeasurands", value="Current.Import"),
        item("SampledDataCtrlr", "TxEndedInterval", value=1),
        item("SampledDataCtrlr", "TxUpdatedInterval", value=1),
    )
    assert statuses == ["Accepted"] * 4
    mark = csms.mark()
    started = start_session_201(daemon, csms)
    assert measurands_of(started) == {
        "Energy.Active.Import.Register",
        "Power.Active.Import",
        "Voltage",
    }
    contexts = {s["context"] for s in started["meterValue"][0]["sampledValue"]}
    assert contexts == {"Transaction.Begin"}
    csms.wait_for("TransactionEvent", lambda p: p["triggerReason"] == PERIODIC, after=mark)

    set_value(csms, "SampledDataCtrlr", "Enabled", "false")
    time.sleep(0.6)  # a value queued just before may still go out
    quiet = csms.mark()
    time.sleep(2.5)
    assert updates(csms, PERIODIC, quiet) == []
    assert daemon.connector()["status"] == "Charging"

    set_value(csms, "SampledDataCtrlr", "Enabled", "true")
    again = csms.mark()
    csms.wait_for("TransactionEvent", lambda p: p["triggerReason"] == PERIODIC, after=again)
    time.sleep(1.5)  # a sample kept for the Ended event
    daemon.request("unplug", connector=1)
    ended = ended_event(csms, after=again)
    assert "Current.Import" in measurands_of(ended)
    final = ended["meterValue"][-1]["sampledValue"]
    assert [s["context"] for s in final] == ["Transaction.End"]


def test_aligned_data_can_be_switched_off(station: Callable[..., Daemon], csms: CsmsThread) -> None:
    station()
    csms.wait_for("BootNotification")
    mark = csms.mark()
    set_value(csms, "AlignedDataCtrlr", "Interval", 1)
    csms.wait_for("MeterValues", after=mark)
    assert value_of(csms, "AlignedDataCtrlr", "TxEndedInterval") == "1"
    assert set_values(csms, item("AlignedDataCtrlr", "TxEndedInterval", value=5)) == ["Rejected"]

    set_value(csms, "AlignedDataCtrlr", "Enabled", "false")
    time.sleep(0.6)
    quiet = csms.mark()
    time.sleep(2.5)
    assert [r for r in station_calls(csms, quiet) if r.action == "MeterValues"] == []
    set_value(csms, "AlignedDataCtrlr", "Enabled", "true")
    csms.wait_for("MeterValues", after=quiet)


def test_offline_threshold_decides_which_statuses_are_sent_again(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station(connectors=[{"max_current": 16}, {"max_current": 16}])
    csms.wait_for("BootNotification")
    csms.wait_for("StatusNotification", lambda p: p["evseId"] == 2)

    def outage(change: Callable[[], None]) -> int:
        daemon.request("link_cut")
        csms.wait_disconnected()
        change()
        mark = csms.mark()
        daemon.request("link_restore")
        csms.wait_connected(after=mark)
        return mark

    # Shorter than OfflineThreshold (60 s): only the connector that changed (B04.FR.02).
    mark = outage(lambda: daemon.request("plug", connector=2))
    csms.wait_for("StatusNotification", lambda p: p["evseId"] == 2, after=mark)
    sent = [r.payload for r in station_calls(csms, mark) if r.action == "StatusNotification"]
    assert [(p["evseId"], p["connectorStatus"]) for p in sent] == [(2, "Occupied")]

    # Longer than OfflineThreshold: every connector (B04.FR.01).
    set_value(csms, "OCPPCommCtrlr", "OfflineThreshold", 0)
    mark = outage(lambda: time.sleep(0.3))
    csms.wait_for("StatusNotification", lambda p: p["evseId"] == 2, after=mark)
    sent = [r.payload for r in station_calls(csms, mark) if r.action == "StatusNotification"]
    assert [(p["evseId"], p["connectorStatus"]) for p in sent] == [
        (1, "Available"),
        (2, "Occupied"),
    ]


def test_retry_back_off_variables_space_the_reconnections(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station()
    csms.wait_for("BootNotification")
    statuses = set_values(
        csms,
        item("OCPPCommCtrlr", "RetryBackOffWaitMinimum", value=3),
        item("OCPPCommCtrlr", "RetryBackOffRandomRange", value=0),
        item("OCPPCommCtrlr", "RetryBackOffRepeatTimes", value=0),
    )
    assert statuses == ["Accepted"] * 3
    mark = csms.mark()
    csms.disconnect()
    csms.wait_connected(after=mark)
    events = [e for e in csms.events if e.seq >= mark]
    gone = next(e for e in events if e.kind == "disconnected")
    back = next(e for e in events if e.kind == "connected")
    assert back.time - gone.time >= 2.9  # [csms] reconnect_min alone would be 0.2 s
    assert "reconnecting in 3.0 s" in daemon.log()


def test_ev_connection_timeout_lapses_an_authorization_without_a_transaction(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station()
    csms.wait_for("BootNotification")
    set_value(csms, "TxCtrlr", "EVConnectionTimeOut", 1)  # the 1.6 ConnectionTimeOut
    mark = csms.mark()
    daemon.request("card", uid=CARD)  # no cable follows
    csms.wait_for("Authorize", after=mark)
    daemon.wait(lambda s: "no cable within ConnectionTimeOut" in daemon.log(), what="the timeout")
    daemon.wait_status("Available")
    daemon.request("plug", connector=1)  # too late: the card must be shown again
    daemon.wait_status("Preparing")
    time.sleep(0.5)
    assert daemon.connector()["transaction"] is None
    assert not csms.calls("TransactionEvent")  # TxStartPoint PowerPathClosed: none began


def test_a_free_vend_station_reports_authorization_disabled(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    station(station={"free_vend_id_tag": "HOME"})
    csms.wait_for("BootNotification")
    assert value_of(csms, "AuthCtrlr", "Enabled") == "false"
