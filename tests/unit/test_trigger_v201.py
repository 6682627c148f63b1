"""OCPP 2.0.1 TriggerMessage answers the daemon cannot be brought to give
(controller.ocpp.v201.trigger): firmware and log statuses set by features still to
come, a certificate hook, messages outside the table; and how a triggered
TransactionEvent row is rendered (controller.ocpp.v201.transactions). The link is a
stand-in; the daemon-level behaviour is in
tests/integration/test_v201_reservation_trigger.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from controller.ocpp.link import Registration
from controller.ocpp.rpc import Reply, validate
from controller.ocpp.v201.id_tokens import TokenTypes
from controller.ocpp.v201.transactions import RECORDS, TransactionEvents
from controller.ocpp.v201.trigger import TriggerFeature
from controller.store import Store


class Core:
    connectors = [object(), object()]


class Station:
    core = Core()


class ChargePoint:
    """The attributes of a ChargePoint201 the trigger reads, and a recording link."""

    def __init__(self) -> None:
        self.station = Station()
        self.registration = Registration.ACCEPTED
        self.firmware_status = "Idle"
        self.firmware_request_id: int | None = None
        self.log_status = "Idle"
        self.log_request_id: int | None = None
        self.sign_certificate_request: Any = None
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.later: list[Awaitable[Any]] = []

    async def _call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        validate("2.0.1", action, payload)  # what the RPC layer would refuse to send
        self.sent.append((action, payload))
        return {}

    def _later(self, coro: Awaitable[Any]) -> None:
        self.later.append(coro)


def ask(cp: ChargePoint, request: dict[str, Any]) -> dict[str, Any]:
    """The trigger's answer (checked against the schema); what it sent is in cp.sent."""
    validate("2.0.1", "TriggerMessage", request)
    handler = TriggerFeature(cp).handlers()["TriggerMessage"]

    async def run() -> dict[str, Any]:
        answer = await handler(request)
        payload = answer.payload if isinstance(answer, Reply) else answer
        validate("2.0.1", "TriggerMessage", payload, response=True)
        if isinstance(answer, Reply):
            answer.then()
        while cp.later:
            await cp.later.pop(0)
        return payload

    return asyncio.run(run())


def test_firmware_and_log_status_are_idle_without_a_request_id() -> None:
    cp = ChargePoint()
    cp.firmware_request_id = 4  # left over from a finished update: not named while Idle
    assert ask(cp, {"requestedMessage": "FirmwareStatusNotification"})["status"] == "Accepted"
    assert ask(cp, {"requestedMessage": "LogStatusNotification"})["status"] == "Accepted"
    assert cp.sent == [
        ("FirmwareStatusNotification", {"status": "Idle"}),
        ("LogStatusNotification", {"status": "Idle"}),
    ]


def test_a_status_at_work_names_its_request() -> None:
    cp = ChargePoint()
    cp.firmware_status, cp.firmware_request_id = "InstallScheduled", 12
    cp.log_status, cp.log_request_id = "Uploading", 3
    ask(cp, {"requestedMessage": "FirmwareStatusNotification"})
    ask(cp, {"requestedMessage": "LogStatusNotification"})
    assert cp.sent == [
        ("FirmwareStatusNotification", {"status": "InstallScheduled", "requestId": 12}),
        ("LogStatusNotification", {"status": "Uploading", "requestId": 3}),
    ]


def test_a_status_2_0_1_does_not_know_is_not_sent() -> None:
    cp = ChargePoint()
    cp.firmware_status = "Sleeping"
    answer = ask(cp, {"requestedMessage": "FirmwareStatusNotification"})
    assert answer == {"status": "Rejected", "statusInfo": {"reasonCode": "InternalError"}}
    assert cp.sent == []


def test_sign_certificate_needs_certificate_management() -> None:
    cp = ChargePoint()
    answer = ask(cp, {"requestedMessage": "SignChargingStationCertificate"})
    assert answer["status"] == "Rejected"

    asked: list[bool] = []

    async def sign() -> None:
        asked.append(True)

    cp.sign_certificate_request = sign
    assert ask(cp, {"requestedMessage": "SignChargingStationCertificate"})["status"] == "Accepted"
    assert asked == [True]


@pytest.mark.parametrize(
    "requested",
    ["SignV2GCertificate", "SignCombinedCertificate", "PublishFirmwareStatusNotification"],
)
def test_the_rest_is_not_implemented(requested: str) -> None:
    cp = ChargePoint()
    assert ask(cp, {"requestedMessage": requested}) == {"status": "NotImplemented"}
    assert cp.sent == []


def test_boot_notification_only_before_acceptance() -> None:
    cp = ChargePoint()
    answer = ask(cp, {"requestedMessage": "BootNotification"})
    assert answer["status"] == "Rejected"
    assert cp.sent == []


# --- the triggered TransactionEvent row -------------------------------------------------------


def rendered(tmp_path: Path, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    store = Store(tmp_path / "evsed.db")
    events = TransactionEvents(store, TokenTypes(store), lambda s: s, lambda _t, _c, s: s)
    stamp = "2025-01-01T00:00:00.000Z"
    tx_id = store.begin_transaction(1, "04A1B2C3", None, 100.0, stamp)
    store.enqueue("trigger", {"connector": 1, "timestamp": stamp, "samples": samples}, tx_id)
    payloads = []
    while (message := store.next_message()) is not None:
        result = events.render(message, store.transaction(tx_id))
        assert result is not None
        action, payload = result
        validate("2.0.1", action, payload)
        payloads.append(payload)
        store.mark_delivered(message.id)
    return payloads


def test_a_triggered_row_is_an_updated_event_with_the_next_seq_no(tmp_path: Path) -> None:
    sample = {"measurand": "Energy.Active.Import.Register", "value": 120.5, "context": "Trigger"}
    started, triggered = rendered(tmp_path, [sample | {"unit": "Wh", "location": "Outlet"}])
    assert (started["eventType"], started["seqNo"]) == ("Started", 0)
    assert (triggered["eventType"], triggered["triggerReason"]) == ("Updated", "Trigger")
    assert triggered["seqNo"] == 1
    assert triggered["meterValue"][0]["sampledValue"][0]["value"] == 120.5
    assert (
        triggered["transactionInfo"]["transactionId"]
        == (started["transactionInfo"]["transactionId"])
    )


def test_a_triggered_row_without_a_reading_still_goes(tmp_path: Path) -> None:
    _, triggered = rendered(tmp_path, [])
    assert (triggered["triggerReason"], triggered["seqNo"]) == ("Trigger", 1)
    assert "meterValue" not in triggered


# --- nothing of a transaction after its Ended event ---------------------------------------------

STAMP = "2025-01-01T00:00:00.000Z"


def deliver(store: Store, events: TransactionEvents, tx_id: int) -> list[str]:
    """Send the queue as the link does (given up on ValueError); each event's type."""
    sent = []
    while (message := store.next_message()) is not None:
        try:
            result = events.render(message, store.transaction(tx_id))
        except ValueError:
            store.mark_failed(message.id, "refused")
            continue
        assert result is not None
        sent.append(result[1]["eventType"])
        events.delivered(message)
        store.mark_delivered(message.id)
    return sent


def events_of(tmp_path: Path) -> tuple[Store, TransactionEvents, int]:
    store = Store(tmp_path / "evsed.db")
    events = TransactionEvents(store, TokenTypes(store), lambda s: s, lambda _t, _c, s: s)
    tx_id = store.begin_transaction(1, "04A1B2C3", None, 100.0, STAMP)
    return store, events, tx_id


def trigger_row(store: Store, tx_id: int) -> None:
    store.enqueue("trigger", {"connector": 1, "timestamp": STAMP, "samples": []}, tx_id)


def test_an_event_queued_after_the_ended_one_is_given_up(tmp_path: Path) -> None:
    store, events, tx_id = events_of(tmp_path)
    trigger_row(store, tx_id)  # before the stop: sent, though the transaction has stopped
    store.end_transaction(tx_id, 200.0, STAMP, "Local", None)
    trigger_row(store, tx_id)  # after it: a late TriggerMessage
    assert deliver(store, events, tx_id) == ["Started", "Updated", "Ended"]
    assert [error for _, _, error in store.failed_messages()] == ["refused"]
    assert store.records(RECORDS) == {}  # nothing kept once the late row is given up


def test_an_event_after_an_ended_one_the_csms_never_took_is_given_up(tmp_path: Path) -> None:
    store, events, tx_id = events_of(tmp_path)
    store.end_transaction(tx_id, 200.0, STAMP, "Local", None)
    trigger_row(store, tx_id)
    start = store.next_message()
    assert start is not None and events.render(start, store.transaction(tx_id)) is not None
    events.delivered(start)
    store.mark_delivered(start.id)
    stop = store.next_message()
    assert stop is not None and stop.kind == "stop"
    assert events.render(stop, store.transaction(tx_id)) is not None
    store.mark_failed(stop.id, "no answer")  # TransactionMessageAttempts used up
    late = store.next_message()
    assert late is not None and late.kind == "trigger"
    with pytest.raises(ValueError, match="Ended"):
        events.render(late, store.transaction(tx_id))


class RunningStation(Station):
    """A station with transaction `tx_id` on EVSE 1 until it ends."""

    def __init__(self, tx_id: int) -> None:
        self.running: dict[int, int] = {1: tx_id}
        self.clock = type("Clock", (), {"stamp": staticmethod(lambda: STAMP)})()

    def transaction_id(self, number: int) -> int | None:
        return self.running.get(number)

    def current_samples(self, number: int, measurands: list[str], context: str) -> list[Any]:
        return []


def test_a_triggered_event_is_not_queued_for_a_transaction_that_ended_meanwhile(
    tmp_path: Path,
) -> None:
    cp = ChargePoint()
    store = cp.store = Store(tmp_path / "evsed.db")  # type: ignore[attr-defined]
    tx_id = store.begin_transaction(1, "04A1B2C3", None, 100.0, STAMP)  # queues its start
    station = cp.station = RunningStation(tx_id)  # type: ignore[assignment]
    cp.keys = type("Keys", (), {"get_list": staticmethod(lambda key: [])})()  # type: ignore[attr-defined]
    cp.events_queued = lambda: None  # type: ignore[attr-defined]
    cp.events = TransactionEvents(store, TokenTypes(store), str, lambda _t, _c, s: s)  # type: ignore[attr-defined]
    handler = TriggerFeature(cp).handlers()["TriggerMessage"]
    answer = asyncio.run(handler({"requestedMessage": "TransactionEvent", "evse": {"id": 1}}))
    assert isinstance(answer, Reply) and answer.payload == {"status": "Accepted"}
    station.running.clear()  # the transaction ends (its stop row queued) before the answer is out
    answer.then()

    async def run_later() -> None:
        while cp.later:
            await cp.later.pop(0)

    asyncio.run(run_later())
    assert store.pending_count() == 1  # the start alone
