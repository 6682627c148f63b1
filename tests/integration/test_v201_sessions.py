"""OCPP 2.0.1 over the same station core: the session, offline and power-loss
scenarios of the 1.6 tests, seen by a 2.0.1 CSMS as TransactionEvents."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from hwsim.csms import CsmsThread
from tests.integration.harness import CARD, Daemon

# Fixtures "csms", "station" come with the import of csms_201, station_201.
from tests.integration.v201 import (  # noqa: F401
    csms_201,
    ended_event,
    start_session_201,
    station_201,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$")


def test_a_card_session_is_one_gap_free_transaction(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station(keys={"MeterValueSampleInterval": 1})
    boot = csms.wait_for("BootNotification")
    assert boot["reason"] == "PowerUp"
    assert boot["chargingStation"]["vendorName"] == "evsed"
    assert csms.version_of() == "2.0.1"
    daemon.request("meter_set", connector=1, wh=500.0)
    time.sleep(0.5)
    mark = csms.mark()
    started = start_session_201(daemon, csms)
    assert started["triggerReason"] == "Authorized"
    assert started["idToken"] == {"idToken": CARD, "type": "ISO14443"}
    assert started["evse"] == {"id": 1, "connectorId": 1}
    assert "offline" not in started
    authorize = csms.wait_for("Authorize", after=mark)
    assert authorize["idToken"] == {"idToken": CARD, "type": "ISO14443"}
    time.sleep(2.5)
    daemon.request("unplug", connector=1)
    ended = ended_event(csms, after=mark)

    (view,) = csms.transaction_events().values()
    assert view.gap_free() and view.seq_nos[0] == 0
    assert view.stopped_reason == "EVDisconnected"
    assert ended["triggerReason"] == "EVCommunicationLost"
    assert "Charging" in [u["transactionInfo"].get("chargingState") for u in view.updates]
    assert "MeterValuePeriodic" in view.trigger_reasons
    energy = view.sampled_values()
    assert energy[0] == 500.0 and energy == sorted(energy) and energy[-1] > 500.0
    assert all(TIMESTAMP.match(e["timestamp"]) for e in view.distinct_events())
    # One status per real 2.0.1 change: Available -> Occupied -> Available.
    csms.wait_for_record(
        "StatusNotification", lambda p: p["connectorStatus"] == "Available", after=mark
    )
    statuses = [p["connectorStatus"] for p in csms.calls("StatusNotification")]
    assert statuses == ["Available", "Occupied", "Available"]


def test_a_card_tap_ends_the_transaction_as_stop_authorized(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station()
    csms.wait_for("BootNotification")
    start_session_201(daemon, csms)
    mark = csms.mark()
    daemon.request("card", uid=CARD)
    ended = ended_event(csms, after=mark)
    assert ended["triggerReason"] == "StopAuthorized"
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    assert ended["idToken"] == {"idToken": CARD, "type": "ISO14443"}


def test_a_refused_token_is_not_charged(station: Callable[..., Daemon], csms: CsmsThread) -> None:
    csms.configure(id_tags={CARD: "Accepted", "0A0B0C0D": "NoCredit"})
    daemon = station()
    csms.wait_for("BootNotification")
    mark = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("card", uid="0A0B0C0D")
    assert csms.wait_for("Authorize", after=mark)["idToken"]["idToken"] == "0A0B0C0D"
    time.sleep(1.0)
    assert daemon.connector()["transaction"] is None
    assert not csms.transaction_events()


def test_remote_start_and_stop(station: Callable[..., Daemon], csms: CsmsThread) -> None:
    daemon = station()
    csms.wait_for("BootNotification")
    daemon.request("plug", connector=1)
    daemon.wait_status("Preparing")
    mark = csms.mark()
    token = {"idToken": "DRIVER-7", "type": "Central"}
    csms.configure(id_tags={CARD: "Accepted", "DRIVER-7": "Accepted"})
    answer = csms.call(
        "RequestStartTransaction", {"remoteStartId": 42, "idToken": token, "evseId": 1}
    )
    assert answer["status"] == "Accepted"
    started = csms.wait_for_record(
        "TransactionEvent", lambda p: p["eventType"] == "Started", after=mark
    ).payload
    assert started["triggerReason"] == "RemoteStart"
    assert started["transactionInfo"]["remoteStartId"] == 42
    assert started["idToken"] == token

    uid = started["transactionInfo"]["transactionId"]
    status = csms.call("GetTransactionStatus", {"transactionId": uid})
    assert status["ongoingIndicator"] is True
    assert csms.call("RequestStopTransaction", {"transactionId": "no-such"})["status"] == "Rejected"
    assert csms.call("RequestStopTransaction", {"transactionId": uid})["status"] == "Accepted"
    ended = ended_event(csms, after=mark)
    assert ended["triggerReason"] == "RemoteStop"
    assert ended["transactionInfo"]["stoppedReason"] == "Remote"
    time.sleep(0.3)
    status = csms.call("GetTransactionStatus", {"transactionId": uid})
    assert status == {"ongoingIndicator": False, "messagesInQueue": False}


def test_remote_start_on_an_unknown_evse_is_rejected(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    station()
    csms.wait_for("BootNotification")
    token = {"idToken": "DRIVER-7", "type": "Central"}
    answer = csms.call(
        "RequestStartTransaction", {"remoteStartId": 1, "idToken": token, "evseId": 2}
    )
    assert answer["status"] == "Rejected"


def test_offline_session_is_delivered_later_with_the_offline_flag(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station(keys={"MeterValueSampleInterval": 1, "LocalAuthorizeOffline": True})
    csms.wait_for("BootNotification")
    daemon.request("plug", connector=1)  # the card gets into the cache
    daemon.request("card", uid=CARD)
    ended_mark = csms.mark()
    csms.wait_for_record("TransactionEvent", lambda p: p["eventType"] == "Started")
    daemon.request("unplug", connector=1)
    ended_event(csms, after=ended_mark)
    time.sleep(0.3)

    daemon.request("link_cut")
    csms.wait_disconnected()
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    daemon.request("ev_charge", connector=1, on=True)
    daemon.wait_status("Charging")
    time.sleep(2.2)
    daemon.request("unplug", connector=1)
    daemon.wait_status("Available")
    mark = csms.mark()
    daemon.request("link_restore")
    ended_event(csms, after=mark, timeout=15)

    views = list(csms.transaction_events().values())
    assert len(views) == 2
    offline = views[1]
    assert offline.gap_free()
    assert all(offline.offline_flags)  # every event of it happened while offline
    assert offline.started is not None and offline.ended is not None
    assert offline.stopped_reason == "EVDisconnected"
    assert not any(views[0].offline_flags)


def test_a_lost_answer_is_sent_again_with_the_same_seq_no(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station(keys={"TransactionMessageRetryInterval": 1})
    csms.wait_for("BootNotification")
    csms.ignore("TransactionEvent", 1)  # the Started event's answer never comes
    start_session_201(daemon, csms)
    mark = csms.mark()
    daemon.request("unplug", connector=1)
    ended_event(csms, after=mark, timeout=20)
    (view,) = csms.transaction_events().values()
    assert view.gap_free()
    assert [r.payload["seqNo"] for r in view.retransmitted] == [0]


def test_power_loss_ends_the_transaction_once_with_the_next_seq_no(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station(keys={"MeterValueSampleInterval": 1})
    csms.wait_for("BootNotification")
    start_session_201(daemon, csms)
    time.sleep(2.5)
    daemon.kill()

    mark = csms.mark()
    daemon.start()
    boot = csms.wait_for("BootNotification", after=mark)
    assert boot["reason"] == "PowerUp"
    ended = ended_event(csms, after=mark)
    assert ended["transactionInfo"]["stoppedReason"] == "PowerLoss"
    (view,) = csms.transaction_events().values()
    assert view.gap_free()
    energy = view.sampled_values()
    assert energy == sorted(energy)

    daemon.stop()
    mark = csms.mark()
    daemon.start()
    boot = csms.wait_for("BootNotification", after=mark)
    assert boot["reason"] == "LocalReset"  # the stop before was a shutdown
    time.sleep(1.0)
    assert len([e for e in csms.calls("TransactionEvent") if e["eventType"] == "Ended"]) == 1


def test_a_resumed_transaction_goes_on_with_its_seq_nos(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station(keys={"MeterValueSampleInterval": 1}, ocpp={"resume_transactions": True})
    csms.wait_for("BootNotification")
    start_session_201(daemon, csms)
    time.sleep(1.5)
    daemon.kill()
    mark = csms.mark()
    daemon.start()
    csms.wait_for("BootNotification", after=mark)
    daemon.wait_status("Charging")
    time.sleep(1.5)
    daemon.request("unplug", connector=1)
    ended_event(csms, after=mark)
    (view,) = csms.transaction_events().values()
    assert view.gap_free()
    assert view.stopped_reason == "EVDisconnected"


def test_reset_on_idle_waits_for_the_transaction(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station()
    csms.wait_for("BootNotification")
    start_session_201(daemon, csms)
    assert csms.call("Reset", {"type": "OnIdle"})["status"] == "Scheduled"
    time.sleep(1.0)
    assert daemon.connector()["status"] == "Charging"
    mark = csms.mark()
    daemon.request("unplug", connector=1)
    assert ended_event(csms, after=mark)["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    boot = csms.wait_for("BootNotification", after=mark, timeout=20)
    assert boot["reason"] == "RemoteReset"


def test_reset_immediate_ends_the_transaction(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station()
    csms.wait_for("BootNotification")
    start_session_201(daemon, csms)
    # An EVSE cannot be reset on its own.
    assert csms.call("Reset", {"type": "Immediate", "evseId": 1})["status"] == "Rejected"
    mark = csms.mark()
    assert csms.call("Reset", {"type": "Immediate"})["status"] == "Accepted"
    ended = ended_event(csms, after=mark)
    assert ended["transactionInfo"]["stoppedReason"] == "ImmediateReset"
    assert ended["triggerReason"] == "ResetCommand"
    assert csms.wait_for("BootNotification", after=mark, timeout=20)["reason"] == "RemoteReset"


def test_change_availability_of_an_evse_persists(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station()
    csms.wait_for("BootNotification")
    mark = csms.mark()
    answer = csms.call(
        "ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}}
    )
    assert answer["status"] == "Accepted"
    csms.wait_for_record(
        "StatusNotification", lambda p: p["connectorStatus"] == "Unavailable", after=mark
    )
    unknown = {"operationalStatus": "Inoperative", "evse": {"id": 5}}
    assert csms.call("ChangeAvailability", unknown)["status"] == "Rejected"
    daemon.stop()
    mark = csms.mark()
    daemon.start()
    csms.wait_for_record(
        "StatusNotification", lambda p: p["connectorStatus"] == "Unavailable", after=mark
    )
    operative = {"operationalStatus": "Operative", "evse": {"id": 1}}
    assert csms.call("ChangeAvailability", operative)["status"] == "Accepted"
    daemon.wait_status("Available")


def test_unlock_connector_answers(station: Callable[..., Daemon], csms: CsmsThread) -> None:
    daemon = station(connectors=[{"max_current": 16, "cable": "socket", "lock": True}])
    csms.wait_for("BootNotification")
    assert csms.call("UnlockConnector", {"evseId": 2, "connectorId": 1})["status"] == (
        "UnknownConnector"
    )
    assert csms.call("UnlockConnector", {"evseId": 1, "connectorId": 1})["status"] == "Unlocked"
    start_session_201(daemon, csms)
    assert csms.call("UnlockConnector", {"evseId": 1, "connectorId": 1})["status"] == (
        "OngoingAuthorizedTransaction"
    )


def test_local_list_and_cache(station: Callable[..., Daemon], csms: CsmsThread) -> None:
    daemon = station(keys={"LocalAuthListEnabled": True})
    csms.wait_for("BootNotification")
    entry = {
        "idToken": {"idToken": "11223344", "type": "Local"},
        "idTokenInfo": {"status": "Accepted"},
    }
    full = {"versionNumber": 3, "updateType": "Full", "localAuthorizationList": [entry]}
    assert csms.call("SendLocalList", full)["status"] == "Accepted"
    assert csms.call("GetLocalListVersion", {}) == {"versionNumber": 3}
    stale = {"versionNumber": 2, "updateType": "Differential", "localAuthorizationList": [entry]}
    assert csms.call("SendLocalList", stale)["status"] == "VersionMismatch"
    assert csms.call("ClearCache", {})["status"] == "Accepted"

    # The listed token starts offline, and the transaction names its type.
    daemon.request("link_cut")
    csms.wait_disconnected()
    daemon.request("plug", connector=1)
    daemon.request("card", uid="11223344")
    daemon.wait(lambda s: s["connectors"][0]["transaction"] is not None, what="a transaction")
    mark = csms.mark()
    daemon.request("link_restore")
    started = csms.wait_for_record(
        "TransactionEvent", lambda p: p["eventType"] == "Started", after=mark
    ).payload
    assert started["idToken"] == {"idToken": "11223344", "type": "Local"}
    assert started["offline"] is True


def test_a_fault_is_notified_as_an_event_and_cleared(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station()
    csms.wait_for("BootNotification")
    mark = csms.mark()
    daemon.request("fault_raise", kind="rcd", connector=1)
    raised = csms.wait_for("NotifyEvent", after=mark)["eventData"][0]
    assert raised["component"] == {"name": "EVSE", "evse": {"id": 1}}
    assert (raised["variable"], raised["actualValue"], raised["cleared"]) == (
        {"name": "Problem"},
        "true",
        False,
    )
    csms.wait_for_record(
        "StatusNotification", lambda p: p["connectorStatus"] == "Faulted", after=mark
    )
    mark = csms.mark()
    daemon.request("fault_clear", kind="rcd", connector=1)
    cleared = csms.wait_for("NotifyEvent", after=mark, timeout=15)["eventData"][0]
    assert (cleared["actualValue"], cleared["cleared"]) == ("false", True)
    assert cleared["eventId"] > raised["eventId"]


def test_negotiation_picks_the_csms_choice(
    make_daemon: Callable[..., Daemon], csms: CsmsThread
) -> None:
    """A station offering both versions speaks the one the CSMS prefers."""
    csms.subprotocols = ("ocpp1.6",)
    daemon = make_daemon(ocpp={"version": ["2.0.1", "1.6"]})
    csms.wait_for("BootNotification")
    assert csms.version_of() == "1.6"
    assert daemon.state()["ocpp"]["version"] == "1.6"
    csms.subprotocols = ("ocpp2.0.1", "ocpp1.6")
    mark = csms.mark()
    daemon.request("link_cut")
    csms.wait_disconnected()
    daemon.request("link_restore")
    csms.wait_for("BootNotification", after=mark)
    assert csms.version_of() == "2.0.1"
    start_session_201(daemon, csms)


def test_a_station_of_one_version_is_refused_by_a_csms_of_another(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    csms.subprotocols = ("ocpp1.6",)
    daemon = station()
    deadline = time.monotonic() + 10
    while not [e for e in csms.events if e.kind == "rejected"]:
        assert time.monotonic() < deadline, "the station never tried to connect"
        time.sleep(0.05)
    assert not csms.calls("BootNotification")
    assert daemon.state()["ocpp"]["connected"] is False


def test_a_refused_notify_event_does_not_hold_back_the_faulted_status(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    csms.fail_always("NotifyEvent", "NotImplemented")
    daemon = station()
    csms.wait_for("BootNotification")
    mark = csms.mark()
    daemon.request("fault_raise", kind="rcd", connector=1)
    csms.wait_for_record(
        "StatusNotification", lambda p: p["connectorStatus"] == "Faulted", after=mark
    )


def test_a_scheduled_reset_survives_a_power_cut_and_holds_new_sessions(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station(
        connectors=[{"max_current": 16}, {"max_current": 16}],
        ocpp={"resume_transactions": True},
    )
    csms.wait_for("BootNotification")
    start_session_201(daemon, csms)
    assert csms.call("Reset", {"type": "OnIdle"})["status"] == "Scheduled"
    daemon.wait_status("Unavailable", connector=2)  # no new session meanwhile
    token = {"idToken": "DRIVER-7", "type": "Central"}
    request = {"remoteStartId": 3, "idToken": token, "evseId": 2}
    assert csms.call("RequestStartTransaction", request)["status"] == "Rejected"

    daemon.kill()
    mark = csms.mark()
    daemon.start()
    csms.wait_for("BootNotification", after=mark)
    daemon.wait_status("Charging")  # the transaction goes on after the power cut
    daemon.wait_status("Unavailable", connector=2)
    mark = csms.mark()
    daemon.request("unplug", connector=1)
    assert ended_event(csms, after=mark)["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    boot = csms.wait_for("BootNotification", after=mark, timeout=20)
    assert boot["reason"] == "RemoteReset"


def test_a_transaction_started_under_2_0_1_ends_at_a_1_6_csms(
    make_daemon: Callable[..., Daemon], csms: CsmsThread
) -> None:
    """The CSMS moves the station to 1.6 while a session runs: the 1.6 CSMS gets the
    transaction's start before its stop, so it can book it."""
    daemon = make_daemon(ocpp={"version": ["2.0.1", "1.6"]})
    csms.wait_for("BootNotification")
    start_session_201(daemon, csms)
    daemon.request("link_cut")
    csms.wait_disconnected()
    csms.subprotocols = ("ocpp1.6",)
    daemon.request("unplug", connector=1)
    daemon.wait_status("Available")
    mark = csms.mark()
    daemon.request("link_restore")
    stop = csms.wait_for("StopTransaction", after=mark)
    start = csms.wait_for("StartTransaction", after=mark)
    assert csms.version_of() == "1.6"
    assert start["idTag"] == CARD
    assert stop["transactionId"] == csms.last_transaction_id and stop["reason"] == "EVDisconnected"


def test_a_transaction_started_under_1_6_ends_at_a_2_0_1_csms(
    make_daemon: Callable[..., Daemon], csms: CsmsThread
) -> None:
    csms.subprotocols = ("ocpp1.6",)
    daemon = make_daemon(ocpp={"version": ["2.0.1", "1.6"]})
    csms.wait_for("BootNotification")
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    csms.wait_for("StartTransaction")
    daemon.request("link_cut")
    csms.wait_disconnected()
    csms.subprotocols = ("ocpp2.0.1",)
    daemon.request("unplug", connector=1)
    daemon.wait_status("Available")
    mark = csms.mark()
    daemon.request("link_restore")
    ended_event(csms, after=mark)
    (view,) = csms.transaction_events().values()
    assert view.gap_free() and view.started is not None
    assert view.started["idToken"]["idToken"] == CARD
