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
from controller.ocpp.v201.transactions import TransactionEvents
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
