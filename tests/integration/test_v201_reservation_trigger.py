"""OCPP 2.0.1 reservations (H), TriggerMessage (F06) and DataTransfer against the real
daemon: what the test CSMS is answered, what it is sent afterwards (statuses,
TransactionEvents, ReservationStatusUpdate, the triggered messages) and in which order.
The pure parts are unit-tested in tests/unit/test_reservation_v201.py and
tests/unit/test_trigger_v201.py."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hwsim.csms import CallErrorReceived, CsmsThread, Record
from tests.integration.harness import CARD, Daemon
from tests.integration.v201 import ended_event, make_201, start_session_201

CARD2 = "04D5E6F7"
CARD3 = "0A0B0C01"
TWO = [{"max_current": 16}, {"max_current": 16, "lock": True}]  # EVSE 2: a socket outlet


@pytest.fixture
def csms() -> Iterator[CsmsThread]:
    tags = {CARD: "Accepted", CARD2: "Accepted", CARD3: "Accepted"}
    with CsmsThread(id_tags=tags, subprotocols=("ocpp2.0.1",)) as central:
        yield central


@pytest.fixture
def station(make_daemon: Callable[..., Daemon]) -> Callable[..., Daemon]:
    return make_201(make_daemon)


# --- helpers -----------------------------------------------------------------------------


def booted(csms: CsmsThread, evses: int = 1, after: int = 0) -> None:
    csms.wait_for("BootNotification", after=after)
    for n in range(1, evses + 1):
        connector_status(csms, "Available", evse=n, after=after)


def connector_status(csms: CsmsThread, status: str, evse: int = 1, after: int = 0) -> Record:
    return csms.wait_for_record(
        "StatusNotification",
        lambda p: p["evseId"] == evse and p["connectorStatus"] == status,
        after=after,
    )


def expiry(seconds: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def token(value: str, kind: str = "ISO14443") -> dict[str, str]:
    return {"idToken": value, "type": kind}


def reserve(
    csms: CsmsThread, reservation_id: int, id_token: str, seconds: float = 600, **more: Any
) -> dict[str, Any]:
    request = {"id": reservation_id, "expiryDateTime": expiry(seconds), "idToken": token(id_token)}
    return csms.call("ReserveNow", request | more)


def cancel(csms: CsmsThread, reservation_id: int) -> str:
    return str(csms.call("CancelReservation", {"reservationId": reservation_id})["status"])


def card_refused(daemon: Daemon, card: str, why: str, timeout: float = 10.0) -> None:
    """Present `card` and wait until the daemon has refused it for `why`."""
    since = len(daemon.log())
    daemon.request("card", uid=card)
    deadline = time.monotonic() + timeout
    while f"card {card} refused: {why}" not in daemon.log()[since:]:
        assert time.monotonic() < deadline, f"card {card} not refused ({why})"
        time.sleep(0.05)


def started_event(csms: CsmsThread, after: int) -> dict[str, Any]:
    return csms.wait_for_record(
        "TransactionEvent", lambda p: p["eventType"] == "Started", after=after
    ).payload


def status_updates(csms: CsmsThread) -> list[tuple[int, str]]:
    return [
        (p["reservationId"], p["reservationUpdateStatus"])
        for p in csms.calls("ReservationStatusUpdate")
    ]


# --- reservations ---------------------------------------------------------------------------


def test_a_reserved_evse_serves_only_its_token(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station()
    booted(csms)
    mark = csms.mark()
    assert reserve(csms, 5, CARD, evseId=1) == {"status": "Accepted"}
    connector_status(csms, "Reserved", after=mark)

    # Another card is refused at once: no Authorize, the EVSE stays reserved.
    card_refused(daemon, CARD2, "connector 1 is reserved for another idTag (reservation 5)")
    assert csms.calls("Authorize") == []
    assert daemon.connector()["status"] == "Reserved"

    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    started = started_event(csms, mark)
    assert started["reservationId"] == 5
    assert started["idToken"] == token(CARD)
    assert cancel(csms, 5) == "Rejected"  # used up
    assert status_updates(csms) == []  # a used reservation is told by its transaction


def test_a_card_of_the_reserved_group_may_use_the_reservation(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    csms.configure(parent_id_tags={CARD: "NEIGHBOURS", CARD2: "FAMILY"})
    daemon = station()
    booted(csms)
    mark = csms.mark()
    family = token("FAMILY", "Central")
    mum = {"idToken": token("MUM", "Central"), "groupIdToken": family, "evseId": 1}
    assert reserve(csms, 9, "MUM", **mum)["status"] == "Accepted"
    connector_status(csms, "Reserved", after=mark)
    daemon.request("plug", connector=1)
    # A card's group is known from its authorization: asked, then refused.
    card_refused(daemon, CARD, "connector 1 is reserved for another idTag (reservation 9)")
    daemon.request("card", uid=CARD2)
    started = started_event(csms, mark)
    assert (started["idToken"], started["reservationId"]) == (token(CARD2), 9)


def test_expiry_and_cancellation(station: Callable[..., Daemon], csms: CsmsThread) -> None:
    daemon = station()
    booted(csms)
    mark = csms.mark()
    assert reserve(csms, 4, CARD, seconds=2)["status"] == "Accepted"  # any EVSE: the only one
    reserved = connector_status(csms, "Reserved", after=mark)
    update = csms.wait_for("ReservationStatusUpdate", after=mark)
    assert update == {"reservationId": 4, "reservationUpdateStatus": "Expired"}
    connector_status(csms, "Available", after=reserved)
    assert cancel(csms, 4) == "Rejected"  # it is gone

    mark = csms.mark()
    assert reserve(csms, 3, CARD, evseId=1)["status"] == "Accepted"
    reserved = connector_status(csms, "Reserved", after=mark)
    assert cancel(csms, 3) == "Accepted"
    connector_status(csms, "Available", after=reserved)
    assert cancel(csms, 3) == "Rejected"
    assert cancel(csms, 999) == "Rejected"

    # A card that is not the reserving one now starts without a reservationId.
    mark = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD2)
    assert "reservationId" not in started_event(csms, mark)
    assert status_updates(csms) == [(4, "Expired")]  # nothing for the cancelled one


def test_reserve_now_says_why_it_cannot(station: Callable[..., Daemon], csms: CsmsThread) -> None:
    daemon = station()
    booted(csms)

    daemon.request("plug", connector=1)
    daemon.wait_status("Preparing")
    assert reserve(csms, 1, CARD, evseId=1)["status"] == "Occupied"
    assert reserve(csms, 1, CARD)["status"] == "Occupied"
    daemon.request("unplug", connector=1)
    daemon.wait_status("Available")

    daemon.request("fault_raise", kind="generic", connector=1)
    daemon.wait_status("Faulted")
    assert reserve(csms, 1, CARD, evseId=1)["status"] == "Faulted"
    daemon.request("fault_clear", kind="generic", connector=1)
    daemon.wait_status("Available")

    csms.call("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}})
    daemon.wait_status("Unavailable")
    assert reserve(csms, 1, CARD, evseId=1)["status"] == "Unavailable"
    csms.call("ChangeAvailability", {"operationalStatus": "Operative", "evse": {"id": 1}})
    daemon.wait_status("Available")

    rejected = reserve(csms, 1, CARD, evseId=2)
    assert rejected == {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}
    socket = reserve(csms, 1, CARD, connectorType="sType2")  # EVSE 1 has a fixed cable
    assert socket == {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidConnectorType"}}
    assert reserve(csms, 1, CARD, seconds=-60)["status"] == "Rejected"  # expired already
    with pytest.raises(CallErrorReceived) as missing:
        csms.call("ReserveNow", {"id": 1, "expiryDateTime": expiry(60)}, validate=False)
    assert missing.value.code == "OccurrenceConstraintViolation"
    with pytest.raises(CallErrorReceived) as wrong:
        csms.call("CancelReservation", {"reservationId": "one"}, validate=False)
    assert wrong.value.code == "TypeConstraintViolation"
    assert daemon.connector()["status"] == "Available"  # nothing was reserved

    # A fault on a reserved EVSE removes its reservation, and the CSMS is told.
    mark = csms.mark()
    assert reserve(csms, 2, CARD, evseId=1)["status"] == "Accepted"
    connector_status(csms, "Reserved", after=mark)
    daemon.request("fault_raise", kind="generic", connector=1)
    update = csms.wait_for("ReservationStatusUpdate", after=mark)
    assert update == {"reservationId": 2, "reservationUpdateStatus": "Removed"}
    assert cancel(csms, 2) == "Rejected"


def test_connector_type_and_the_device_model(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station(connectors=TWO)
    booted(csms, evses=2)
    names = ("Available", "Enabled", "NonEvseSpecific")
    got = csms.call(
        "GetVariables",
        {
            "getVariableData": [
                {"component": {"name": "ReservationCtrlr"}, "variable": {"name": n}} for n in names
            ]
        },
    )["getVariableResult"]
    assert [(r["variable"]["name"], r["attributeValue"]) for r in got] == [
        (n, "true") for n in names
    ]

    # Without an evseId, the one EVSE with a socket outlet is kept.
    mark = csms.mark()
    assert reserve(csms, 7, CARD2, connectorType="sType2")["status"] == "Accepted"
    connector_status(csms, "Reserved", evse=2, after=mark)
    assert daemon.connector(1)["status"] == "Available"
    assert reserve(csms, 8, CARD, evseId=2, connectorType="cType2")["status"] == "Rejected"

    # Disabled, the station takes no reservation; the one it holds stays.
    change = {
        "component": {"name": "ReservationCtrlr"},
        "variable": {"name": "Enabled"},
        "attributeValue": "false",
    }
    [result] = csms.call("SetVariables", {"setVariableData": [change]})["setVariableResult"]
    assert result["attributeStatus"] == "Accepted"
    assert reserve(csms, 8, CARD, evseId=1)["status"] == "Rejected"
    assert daemon.connector(2)["status"] == "Reserved"
    readonly = change | {"variable": {"name": "NonEvseSpecific"}}
    [result] = csms.call("SetVariables", {"setVariableData": [readonly]})["setVariableResult"]
    assert result["attributeStatus"] == "Rejected"


def test_reservations_survive_a_restart(station: Callable[..., Daemon], csms: CsmsThread) -> None:
    daemon = station(connectors=TWO)
    booted(csms, evses=2)
    mark = csms.mark()
    assert reserve(csms, 5, CARD, evseId=1)["status"] == "Accepted"
    assert reserve(csms, 6, CARD2, seconds=2.5, evseId=2)["status"] == "Accepted"
    connector_status(csms, "Reserved", evse=2, after=mark)

    daemon.kill()  # a power cut: what was accepted had to be on disk already
    time.sleep(2.5)  # reservation 6 expires while the station is off
    restarted = csms.mark()
    daemon.start()
    booted_again = csms.wait_for_record("BootNotification", after=restarted)
    connector_status(csms, "Reserved", evse=1, after=restarted)
    update = csms.wait_for_record("ReservationStatusUpdate", after=restarted)
    assert update.payload == {"reservationId": 6, "reservationUpdateStatus": "Expired"}
    assert update.seq > booted_again.seq
    assert daemon.connector(2)["status"] == "Available"

    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    started = started_event(csms, restarted)
    assert (started["evse"]["id"], started["reservationId"]) == (1, 5)
    assert status_updates(csms) == [(6, "Expired")]


# --- TriggerMessage ----------------------------------------------------------------------------


def trigger(
    csms: CsmsThread, requested: str, evse: dict[str, int] | None = None
) -> tuple[dict[str, Any], int]:
    """Ask for a message: the answer, and the mark to find what followed."""
    mark = csms.mark()
    request: dict[str, Any] = {"requestedMessage": requested}
    if evse is not None:
        request["evse"] = evse
    return csms.call("TriggerMessage", request), mark


def triggered(csms: CsmsThread, action: str, mark: int) -> dict[str, Any]:
    """The message a trigger asked for, checked to follow the trigger's answer."""
    record = csms.wait_for_record(action, after=mark, timeout=5)
    [answer] = [
        r
        for r in csms.records
        if r.seq >= mark
        and r.direction == "in"
        and r.message_type == "CALLRESULT"
        and r.action == "TriggerMessage"
    ]
    assert record.seq > answer.seq, f"{action} sent before the TriggerMessage answer"
    return dict(record.payload)


def refused(answer: dict[str, Any], reason: str) -> bool:
    return answer == {"status": "Rejected", "statusInfo": {"reasonCode": reason}}


def test_every_kind_of_trigger(station: Callable[..., Daemon], csms: CsmsThread) -> None:
    daemon = station(keys={"MeterValuesAlignedData": "Energy.Active.Import.Register,Voltage"})
    booted(csms)
    daemon.wait(lambda s: s["connectors"][0]["meter"] is not None, 5, "a meter reading")

    answer, mark = trigger(csms, "Heartbeat")
    assert answer == {"status": "Accepted"}
    assert triggered(csms, "Heartbeat", mark) == {}

    # The status now, though it has not changed since it was last sent.
    answer, mark = trigger(csms, "StatusNotification", {"id": 1, "connectorId": 1})
    assert answer["status"] == "Accepted"
    status = triggered(csms, "StatusNotification", mark)
    assert (status["evseId"], status["connectorId"], status["connectorStatus"]) == (
        1,
        1,
        "Available",
    )

    answer, mark = trigger(csms, "MeterValues", {"id": 1})
    assert answer["status"] == "Accepted"
    meter = triggered(csms, "MeterValues", mark)
    assert meter["evseId"] == 1
    samples = meter["meterValue"][0]["sampledValue"]
    assert {s["context"] for s in samples} == {"Trigger"}
    assert {s.get("measurand") for s in samples} == {"Energy.Active.Import.Register", "Voltage"}
    answer, mark = trigger(csms, "MeterValues")  # no evse: each EVSE
    assert answer["status"] == "Accepted"
    assert triggered(csms, "MeterValues", mark)["evseId"] == 1

    answer, mark = trigger(csms, "FirmwareStatusNotification")
    assert answer["status"] == "Accepted"
    assert triggered(csms, "FirmwareStatusNotification", mark) == {"status": "Idle"}
    answer, mark = trigger(csms, "LogStatusNotification")
    assert answer["status"] == "Accepted"
    assert triggered(csms, "LogStatusNotification", mark) == {"status": "Idle"}

    # Refusals send nothing.
    before = len(csms.records)
    assert refused(trigger(csms, "BootNotification")[0], "AlreadyAccepted")  # F06.FR.17
    assert refused(trigger(csms, "StatusNotification")[0], "MissingParam")
    assert refused(trigger(csms, "StatusNotification", {"id": 1})[0], "MissingParam")
    assert refused(
        trigger(csms, "StatusNotification", {"id": 2, "connectorId": 1})[0], "UnknownEvse"
    )
    assert refused(
        trigger(csms, "StatusNotification", {"id": 1, "connectorId": 2})[0], "UnknownConnectorId"
    )
    assert refused(trigger(csms, "MeterValues", {"id": 2})[0], "UnknownEvse")
    assert refused(trigger(csms, "TransactionEvent")[0], "NoTransaction")
    for requested in ("SignV2GCertificate", "SignCombinedCertificate"):
        assert trigger(csms, requested)[0] == {"status": "NotImplemented"}
    with pytest.raises(CallErrorReceived) as bad:
        unknown = {"requestedMessage": "DiagnosticsStatusNotification"}
        csms.call("TriggerMessage", unknown, validate=False)
    assert bad.value.code == "PropertyConstraintViolation"
    time.sleep(0.5)
    sent = [r.action for r in csms.records[before:] if r.message_type == "CALL"]
    assert set(sent) == {"TriggerMessage"}, sent

    # The security feature (v201/security.py) sends a certificate signing request.
    answer, mark = trigger(csms, "SignChargingStationCertificate")
    assert answer["status"] == "Accepted"
    assert triggered(csms, "SignCertificate", mark)["csr"].startswith("-----BEGIN")


def test_a_boot_notification_is_triggered_while_pending(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    csms.configure(boot_status="Pending", interval=300)
    station()
    first = csms.wait_for_record("BootNotification")
    assert first.payload["reason"] == "PowerUp"

    csms.configure(boot_status="Accepted")
    answer, mark = trigger(csms, "BootNotification")
    assert answer["status"] == "Accepted"
    assert triggered(csms, "BootNotification", mark)["reason"] == "Triggered"
    connector_status(csms, "Available", after=mark)  # accepted: it reports at once
    assert refused(trigger(csms, "BootNotification")[0], "AlreadyAccepted")


def test_a_triggered_transaction_event_keeps_seq_no_gap_free(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station(keys={"MeterValueSampleInterval": 1})
    booted(csms)
    mark = csms.mark()
    start_session_201(daemon, csms)

    answer, asked = trigger(csms, "TransactionEvent", {"id": 1})
    assert answer["status"] == "Accepted"
    event = csms.wait_for_record(
        "TransactionEvent", lambda p: p["triggerReason"] == "Trigger", after=asked
    ).payload
    assert event["eventType"] == "Updated"
    samples = event["meterValue"][0]["sampledValue"]
    assert {s["context"] for s in samples} == {"Trigger"}
    assert refused(trigger(csms, "TransactionEvent", {"id": 2})[0], "UnknownEvse")
    assert trigger(csms, "TransactionEvent")[0]["status"] == "Accepted"  # each running one
    answer, asked = trigger(csms, "MeterValues", {"id": 1})  # during the transaction too
    assert answer["status"] == "Accepted"
    assert triggered(csms, "MeterValues", asked)["evseId"] == 1

    time.sleep(1.5)  # periodic values interleave with the triggered ones
    daemon.request("unplug", connector=1)
    ended_event(csms, after=mark)
    (view,) = csms.transaction_events().values()
    assert view.gap_free()
    assert view.trigger_reasons.count("Trigger") == 2
    assert "MeterValuePeriodic" in view.trigger_reasons


# --- DataTransfer ------------------------------------------------------------------------------


def test_data_transfer(station: Callable[..., Daemon], csms: CsmsThread) -> None:
    station()
    booted(csms)
    unknown = csms.call("DataTransfer", {"vendorId": "com.example", "messageId": "Hello"})
    assert unknown == {"status": "UnknownVendorId"}
    message = csms.call("DataTransfer", {"vendorId": "org.evsed", "messageId": "NoSuch"})
    assert message == {"status": "UnknownMessageId"}

    # data is any JSON value in 2.0.1: an object is taken as well as a string.
    for data in (None, "", {"verbose": True}, [1, 2]):
        request: dict[str, Any] = {"vendorId": "org.evsed", "messageId": "GetDiagnosticsSnapshot"}
        if data is not None:
            request["data"] = data
        answer = csms.call("DataTransfer", request)
        assert answer["status"] == "Accepted"
        state = json.loads(answer["data"])
        assert state["ocpp"]["version"] == "2.0.1"
        assert state["ocpp"]["registration"] == "Accepted"
        assert [c["status"] for c in state["connectors"]] == ["Available"]
