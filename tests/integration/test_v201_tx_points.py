"""TxStartPoint / TxStopPoint over the live daemon: a 2.0.1 transaction that starts at
plug-in, at the card, or when energy flows, and one that outlives its authorization
until the EV leaves, as a 2.0.1 CSMS sees them (one transactionId, gap-free seqNos)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from hwsim.csms import CsmsThread
from tests.integration.harness import CARD, Daemon

# Fixtures "csms" come with the import of csms_201.
from tests.integration.v201 import (  # noqa: F401
    csms_201,
    ended_event,
    make_201,
)


@pytest.fixture
def station(make_daemon: Callable[..., Daemon], csms: CsmsThread) -> Callable[..., Daemon]:
    """A 2.0.1 station with the given start and stop points (from [ocpp.variables]),
    registered with the CSMS."""
    make = make_201(make_daemon)

    def started(start: str, stop: str = "EVConnected,Authorized", **kwargs: Any) -> Daemon:
        variables = f'"TxCtrlr.TxStartPoint" = "{start}"\n"TxCtrlr.TxStopPoint" = "{stop}"\n'
        daemon = make(extra="[ocpp.variables]\n" + variables, **kwargs)
        csms.wait_for("BootNotification")
        return daemon

    return started


def event(csms: CsmsThread, mark: int, **fields: str) -> dict[str, Any]:
    """The first TransactionEvent after `mark` with these eventType / triggerReason."""

    def matches(p: dict[str, Any]) -> bool:
        return all(p.get(k) == v for k, v in fields.items())

    return csms.wait_for_record("TransactionEvent", matches, after=mark).payload


def plug_in(daemon: Daemon, csms: CsmsThread) -> tuple[int, dict[str, Any]]:
    """Plug in (TxStartPoint EVConnected): the mark before and the Started event."""
    mark = csms.mark()
    daemon.request("plug", connector=1)
    return mark, event(csms, mark, eventType="Started")


def the_transaction(csms: CsmsThread) -> Any:
    (view,) = csms.transaction_events().values()
    assert view.gap_free() and view.seq_nos[0] == 0
    return view


def state(payload: dict[str, Any]) -> str | None:
    return payload["transactionInfo"].get("chargingState")


def test_ev_connected_starts_at_plug_in_and_the_card_is_an_update(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("EVConnected")
    daemon.request("meter_set", connector=1, wh=250.0)
    time.sleep(0.5)
    mark = csms.mark()
    daemon.request("plug", connector=1)
    started = event(csms, mark, eventType="Started")
    assert started["triggerReason"] == "CablePluggedIn"
    assert "idToken" not in started  # nobody is authorized yet
    assert state(started) == "EVConnected"
    assert started["meterValue"][0]["sampledValue"][0]["value"] == 250.0
    daemon.request("card", uid=CARD)
    authorized = event(csms, mark, triggerReason="Authorized")
    assert authorized["eventType"] == "Updated"
    assert authorized["idToken"] == {"idToken": CARD, "type": "ISO14443"}
    daemon.request("ev_charge", connector=1, on=True)
    daemon.wait_status("Charging")
    daemon.request("card", uid=CARD)
    ended = ended_event(csms, after=mark)
    assert ended["triggerReason"] == "StopAuthorized"
    # The stop is the first event after the card (E07): no charging-state change before it.
    assert state(the_transaction(csms).distinct_events()[-2]) == "Charging"
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    view = the_transaction(csms)
    assert view.transaction_id == started["transactionInfo"]["transactionId"]
    assert "Charging" in [state(u) for u in view.updates]


def test_ev_connected_start_ends_when_the_ev_leaves_unauthorized(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("EVConnected")
    mark, _ = plug_in(daemon, csms)
    answer = csms.call(
        "GetTransactionStatus", {"transactionId": the_transaction(csms).transaction_id}
    )
    assert answer["ongoingIndicator"] is True
    daemon.request("unplug", connector=1)
    ended = ended_event(csms, after=mark)
    assert ended["triggerReason"] == "EVCommunicationLost"
    assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    assert state(ended) == "Idle"
    assert not csms.calls("Authorize")
    assert len(the_transaction(csms).distinct_events()) == 2


def test_authorized_starts_at_the_card_and_times_out_without_an_ev(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("Authorized", keys={"ConnectionTimeOut": 2})
    mark = csms.mark()
    daemon.request("card", uid=CARD)
    started = event(csms, mark, eventType="Started")
    assert started["triggerReason"] == "Authorized"
    assert started["idToken"] == {"idToken": CARD, "type": "ISO14443"}
    assert state(started) == "Idle"  # no EV yet
    ended = ended_event(csms, after=mark)
    assert ended["triggerReason"] == "EVConnectTimeout"
    assert ended["transactionInfo"]["stoppedReason"] == "Timeout"
    daemon.wait_status("Available")


def test_authorized_start_then_plug_in_is_one_transaction(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("Authorized")
    mark = csms.mark()
    daemon.request("card", uid=CARD)
    event(csms, mark, eventType="Started")
    daemon.request("plug", connector=1)
    plugged = event(csms, mark, triggerReason="CablePluggedIn")
    assert (plugged["eventType"], state(plugged)) == ("Updated", "EVConnected")
    daemon.request("ev_charge", connector=1, on=True)
    daemon.wait_status("Charging")
    daemon.request("unplug", connector=1)
    ended = ended_event(csms, after=mark)
    assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    the_transaction(csms)  # one transaction, gap-free


def test_stop_at_ev_connected_outlives_the_card_until_the_ev_leaves(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("PowerPathClosed", "EVConnected")
    mark = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    event(csms, mark, eventType="Started")
    daemon.request("ev_charge", connector=1, on=True)
    daemon.wait_status("Charging")
    daemon.request("ev_charge", connector=1, on=False)  # the EV pauses: the card ends it at once
    daemon.wait_status("SuspendedEV")
    daemon.request("card", uid=CARD)
    stopped = event(csms, mark, triggerReason="StopAuthorized")
    assert stopped["eventType"] == "Updated"  # energy stops, the transaction goes on
    daemon.wait(lambda s: not s["connectors"][0]["contactor_closed"], what="the contactor open")
    time.sleep(0.5)
    assert the_transaction(csms).ended is None
    last = the_transaction(csms).updates[-1]  # it says EVConnected: no second event for it
    assert (last["triggerReason"], state(last)) == ("StopAuthorized", "EVConnected")
    assert csms.call("GetTransactionStatus", {})["messagesInQueue"] is False
    daemon.request("unplug", connector=1)
    ended = ended_event(csms, after=mark)
    assert ended["triggerReason"] == "EVCommunicationLost"
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    the_transaction(csms)


def test_energy_transfer_starts_only_when_energy_flows(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("EnergyTransfer")
    mark = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    csms.wait_for("Authorize", after=mark)
    daemon.wait(lambda s: s["connectors"][0]["transaction"] is not None, what="authorized")
    time.sleep(0.5)
    assert not csms.calls("TransactionEvent")  # authorized, no energy: no transaction yet
    daemon.request("ev_charge", connector=1, on=True)
    started = event(csms, mark, eventType="Started")
    assert started["triggerReason"] == "ChargingStateChanged"
    assert state(started) == "Charging"
    assert started["idToken"] == {"idToken": CARD, "type": "ISO14443"}
    daemon.request("unplug", connector=1)
    ended_event(csms, after=mark)
    the_transaction(csms)


def test_a_power_cut_ends_a_transaction_waiting_for_its_card_once(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("EVConnected")
    mark, _ = plug_in(daemon, csms)
    daemon.kill()
    daemon.start()  # the simulated EV is still plugged in
    ended = ended_event(csms, after=mark)
    assert ended["transactionInfo"]["stoppedReason"] == "PowerLoss"
    time.sleep(1.0)
    # The EV that stayed plugged in is no new plug-in: nothing more starts (the Started
    # may have been sent again: the kill can come before its answer is taken).
    view = the_transaction(csms)
    assert [e["eventType"] for e in view.distinct_events()] == ["Started", "Ended"]


def test_remote_start_joins_and_remote_stop_ends_a_transaction_started_at_plug_in(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("EVConnected")
    mark, started = plug_in(daemon, csms)
    uid = started["transactionInfo"]["transactionId"]
    request = {"idToken": {"idToken": CARD, "type": "ISO14443"}, "remoteStartId": 5, "evseId": 1}
    answer = csms.call("RequestStartTransaction", request)
    assert answer == {"status": "Accepted", "transactionId": uid}
    remote = event(csms, mark, triggerReason="RemoteStart")
    assert remote["transactionInfo"]["remoteStartId"] == 5
    assert remote["transactionInfo"]["transactionId"] == uid
    assert csms.call("RequestStopTransaction", {"transactionId": uid})["status"] == "Accepted"
    ended = ended_event(csms, after=mark)
    assert ended["transactionInfo"]["stoppedReason"] == "Remote"
    the_transaction(csms)


def test_trigger_and_remote_stop_reach_a_transaction_that_has_no_authorization(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("EVConnected")
    mark, started = plug_in(daemon, csms)
    uid = started["transactionInfo"]["transactionId"]
    trigger = {"requestedMessage": "TransactionEvent", "evse": {"id": 1}}
    assert csms.call("TriggerMessage", trigger)["status"] == "Accepted"
    triggered = event(csms, mark, triggerReason="Trigger")
    assert (triggered["transactionInfo"]["transactionId"], triggered["seqNo"]) == (uid, 1)
    assert csms.call("RequestStopTransaction", {"transactionId": uid})["status"] == "Accepted"
    ended = ended_event(csms, after=mark)
    assert (ended["triggerReason"], ended["transactionInfo"]["stoppedReason"]) == (
        "RemoteStop",
        "Remote",
    )
    again = csms.call("RequestStopTransaction", {"transactionId": uid})
    assert again["status"] == "Rejected"  # it has ended
    daemon.request("unplug", connector=1)
    time.sleep(0.5)
    assert len(csms.calls("TransactionEvent")) == 3


def test_the_ev_leaving_ends_it_whatever_stop_tx_on_ev_side_disconnect_says(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("PowerPathClosed", keys={"StopTransactionOnEVSideDisconnect": False})
    mark = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    event(csms, mark, eventType="Started")
    daemon.request("unplug", connector=1)  # TxStopPoint EVConnected: it ends
    ended = ended_event(csms, after=mark)
    assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    daemon.wait(lambda s: s["connectors"][0]["transaction"] is None, what="the end")


def test_a_1_6_csms_keeps_its_own_rule_on_a_station_that_also_speaks_2_0_1(
    make_daemon: Callable[..., Daemon], csms: CsmsThread
) -> None:
    csms.subprotocols = ("ocpp1.6",)
    daemon = make_daemon(
        ocpp={"version": ["2.0.1", "1.6"]}, keys={"StopTransactionOnEVSideDisconnect": False}
    )
    csms.wait_for("BootNotification")
    assert csms.version_of() == "1.6"
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    csms.wait_for("StartTransaction")
    daemon.request("unplug", connector=1)  # 1.6: the transaction waits for the EV
    daemon.wait_status("SuspendedEV")
    time.sleep(1.0)
    assert not csms.calls("StopTransaction")
    assert daemon.connector()["transaction"] is not None


def test_the_data_of_the_charging_is_in_the_ended_event_of_a_transaction_that_outlived_it(
    make_daemon: Callable[..., Daemon], csms: CsmsThread
) -> None:
    variables = '"TxCtrlr.TxStopPoint" = "EVConnected"\n"SampledDataCtrlr.TxEndedInterval" = 1\n'
    keys = {"StopTxnSampledData": "Energy.Active.Import.Register"}  # TxEndedMeasurands
    daemon = make_201(make_daemon)(keys=keys, extra="[ocpp.variables]\n" + variables)
    csms.wait_for("BootNotification")
    mark = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    daemon.request("ev_charge", connector=1, on=True)
    daemon.wait_status("Charging")
    time.sleep(2.5)
    daemon.request("card", uid=CARD)
    event(csms, mark, triggerReason="StopAuthorized")
    time.sleep(0.5)  # the StopAuthorized event is delivered: its data stays for the Ended
    daemon.request("unplug", connector=1)
    ended = ended_event(csms, after=mark)
    contexts = [v["sampledValue"][0].get("context") for v in ended["meterValue"]]
    assert contexts.count("Sample.Periodic") >= 2
    assert contexts[-1] == "Transaction.End"


def test_a_card_refused_in_the_answer_to_its_started_event_ends_it(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("Authorized")

    def refuse_started(payload: dict[str, Any]) -> dict[str, Any]:
        if payload["eventType"] == "Started":
            return {"idTokenInfo": {"status": "Invalid"}}
        return {}

    csms.respond_with("TransactionEvent", refuse_started)
    mark = csms.mark()
    daemon.request("card", uid=CARD)  # Authorize says Accepted; the Started's answer not
    ended = ended_event(csms, after=mark)
    assert (ended["triggerReason"], ended["transactionInfo"]["stoppedReason"]) == (
        "Deauthorized",
        "DeAuthorized",
    )
    daemon.wait(lambda s: s["connectors"][0]["authorized_id_tag"] is None, what="withdrawn")
    daemon.request("plug", connector=1)  # too late: nothing starts
    time.sleep(0.5)
    assert daemon.connector()["transaction"] is None


def test_a_remote_start_before_the_ev_starts_it_with_its_remote_start_id(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("Authorized")
    mark = csms.mark()
    request = {"idToken": {"idToken": CARD, "type": "ISO14443"}, "remoteStartId": 9, "evseId": 1}
    assert csms.call("RequestStartTransaction", request)["status"] == "Accepted"
    started = event(csms, mark, eventType="Started")
    assert started["triggerReason"] == "RemoteStart"
    assert started["transactionInfo"]["remoteStartId"] == 9
    daemon.request("plug", connector=1)
    plugged = event(csms, mark, triggerReason="CablePluggedIn")
    assert "idToken" not in plugged  # reported once, by the Started


def test_an_immediate_reset_ends_a_transaction_waiting_for_its_card_before_the_restart(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("EVConnected")
    mark, _ = plug_in(daemon, csms)
    assert csms.call("Reset", {"type": "Immediate"})["status"] == "Accepted"
    ended = ended_event(csms, after=mark)
    assert (ended["triggerReason"], ended["transactionInfo"]["stoppedReason"]) == (
        "ResetCommand",
        "ImmediateReset",
    )
    boot = csms.wait_for("BootNotification", after=mark, timeout=20)
    assert boot["reason"] == "RemoteReset"
    assert "offline" not in ended  # sent before the restart


def test_a_power_cut_ends_the_transaction_after_its_last_event(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("PowerPathClosed")
    mark = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    event(csms, mark, eventType="Started")
    time.sleep(0.5)  # a meter reading checkpoints the transaction
    daemon.request("ev_charge", connector=1, on=True)
    charging = csms.wait_for("TransactionEvent", lambda p: state(p) == "Charging", after=mark)
    daemon.kill()
    daemon.start()
    ended = ended_event(csms, after=mark)
    assert ended["transactionInfo"]["stoppedReason"] == "PowerLoss"
    assert ended["timestamp"] >= charging["timestamp"]  # not before an event it holds


def test_making_an_evse_unavailable_during_a_transaction_started_at_plug_in_is_scheduled(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("EVConnected")
    mark, _ = plug_in(daemon, csms)
    request = {"operationalStatus": "Inoperative", "evse": {"id": 1}}
    assert csms.call("ChangeAvailability", request)["status"] == "Scheduled"
    daemon.request("unplug", connector=1)
    ended_event(csms, after=mark)
    daemon.wait_status("Unavailable")


def test_a_transaction_waiting_for_its_card_gets_its_periodic_meter_values(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station("EVConnected", keys={"MeterValueSampleInterval": 1})
    mark, started = plug_in(daemon, csms)
    periodic = event(csms, mark, triggerReason="MeterValuePeriodic")
    uid = started["transactionInfo"]["transactionId"]
    assert periodic["transactionInfo"]["transactionId"] == uid
    assert not csms.calls("MeterValues")  # they are the transaction's, not outside one
    daemon.request("card", uid=CARD)
    event(csms, mark, triggerReason="Authorized")
    daemon.request("unplug", connector=1)
    ended_event(csms, after=mark)
    assert "MeterValuePeriodic" in the_transaction(csms).trigger_reasons
