"""The OCPP 2.0.1 device-model handlers (controller.ocpp.v201.provisioning) on a real device
model and store, with a stand-in for the ChargePoint201's sending."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from controller.ocpp.rpc import OcppError, Reply, redact, validate
from controller.ocpp.v16.features import all_keys
from controller.ocpp.v16.keys import ConfigurationKeys
from controller.ocpp.v201.device_model import (
    DeviceModel,
    EvseDescription,
    StationDescription,
    StationLive,
    standard_variables,
)
from controller.ocpp.v201.network import ConnectionProfile, NetworkProfiles
from controller.ocpp.v201.provisioning import NOTIFY_REPORT_ITEMS, DeviceModelFeature
from controller.store import Store


class FakeChargePoint:
    """Records the CALLs; `fail_at` makes the n-th call raise what a lost link raises."""

    def __init__(self, path: Path) -> None:
        self.store = Store(path / "evsed.db")
        keys = ConfigurationKeys(
            all_keys(1), persisted=self.store.config_keys(), persist=self.store.set_config_key
        )
        live = StationLive(
            availability_state=lambda n: "Available",
            available=lambda n: True,
            problem=lambda n: False,
            power_w=lambda n: 0.0,
            date_time=lambda: "2026-11-21T08:00:00.123Z",
            local_list_entries=lambda: 0,
        )
        station = StationDescription("evsed", "wallbox", (EvseDescription(3, 11_000, "sType2"),))
        self.device_model = DeviceModel(keys, self.store, standard_variables(station, live))
        builtin = ConnectionProfile(0, "ws://installer.example/ocpp", 0, 30)
        self.network_profiles = NetworkProfiles(self.store, keys, self.device_model, builtin)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.later: list[Coroutine[Any, Any, None]] = []
        self.fail_at: int | None = None
        self.error: BaseException = ConnectionError("connection closed")

    async def _call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        validate("2.0.1", action, payload)
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            self.calls.append((action, payload))
            raise self.error
        self.calls.append((action, payload))
        return {}

    def _later(self, coro: Coroutine[Any, Any, None]) -> None:
        self.later.append(coro)

    async def run_later(self) -> None:
        while self.later:
            await self.later.pop(0)


@pytest.fixture
def cp(tmp_path: Path) -> FakeChargePoint:
    return FakeChargePoint(tmp_path)


def answer(action: str, request: dict[str, Any], cp: FakeChargePoint) -> Any:
    """Validate the request, run the handler, validate and return its answer."""
    validate("2.0.1", action, request)
    handler = DeviceModelFeature(cp).handlers()[action]
    result = asyncio.run(handler(request))
    payload = result.payload if isinstance(result, Reply) else result
    validate("2.0.1", action, payload, response=True)
    return result


def variable_data(n: int, value: str | None = None) -> list[dict[str, Any]]:
    item: dict[str, Any] = {
        "component": {"name": "OCPPCommCtrlr"},
        "variable": {"name": "OfflineThreshold"},
    }
    if value is not None:
        item["attributeValue"] = value
    return [item] * n


def test_the_handlers() -> None:
    names = {"GetVariables", "SetVariables", "GetBaseReport", "GetReport", "SetNetworkProfile"}
    assert set(DeviceModelFeature(object()).handlers()) == names  # type: ignore[arg-type]


def test_get_and_set_variables(cp: FakeChargePoint) -> None:
    result = answer("SetVariables", {"setVariableData": variable_data(1, "120")}, cp)
    assert result["setVariableResult"][0]["attributeStatus"] == "Accepted"
    result = answer("GetVariables", {"getVariableData": variable_data(1)}, cp)
    assert result["getVariableResult"][0]["attributeValue"] == "120"


def test_more_items_than_allowed_are_all_rejected_and_nothing_set(cp: FakeChargePoint) -> None:
    limit = cp.device_model.limits().items_set_variables
    result = answer("SetVariables", {"setVariableData": variable_data(limit + 1, "5")}, cp)
    assert len(result["setVariableResult"]) == limit + 1
    for item in result["setVariableResult"]:
        assert item["attributeStatus"] == "Rejected"
        assert item["attributeStatusInfo"]["reasonCode"] == "TooManyElements"
    assert cp.device_model.value("OCPPCommCtrlr", "OfflineThreshold") == "60"
    limit = cp.device_model.limits().items_get_variables
    result = answer("GetVariables", {"getVariableData": variable_data(limit + 1)}, cp)
    assert {r["attributeStatus"] for r in result["getVariableResult"]} == {"Rejected"}
    exactly = answer("GetVariables", {"getVariableData": variable_data(limit)}, cp)
    assert {r["attributeStatus"] for r in exactly["getVariableResult"]} == {"Accepted"}


def test_a_request_larger_than_allowed_is_a_format_violation(cp: FakeChargePoint) -> None:
    # customData admits any property: the way a request grows past BytesPerMessage
    padding = {"customData": {"vendorId": "org.example", "padding": "x" * 65536}}
    requests: list[tuple[str, dict[str, Any]]] = [
        ("SetVariables", {"setVariableData": variable_data(1, "5"), **padding}),
        ("GetVariables", {"getVariableData": variable_data(1), **padding}),
        ("GetReport", {"requestId": 1, **padding}),
    ]
    for action, request in requests:
        with pytest.raises(OcppError) as raised:
            answer(action, request, cp)
        assert raised.value.code == "FormatViolation"
    assert cp.device_model.value("OCPPCommCtrlr", "OfflineThreshold") == "60"
    assert cp.later == []
    smaller = {"customData": {"vendorId": "org.example", "padding": "x" * 60000}}
    result = answer("SetVariables", {"setVariableData": variable_data(1, "5"), **smaller}, cp)
    assert result["setVariableResult"][0]["attributeStatus"] == "Accepted"


def test_get_report_with_too_many_selectors(cp: FakeChargePoint) -> None:
    selectors = [{"component": {"name": "TxCtrlr"}}] * 51
    with pytest.raises(OcppError) as raised:
        answer("GetReport", {"requestId": 1, "componentVariable": selectors}, cp)
    assert raised.value.code == "OccurrenceConstraintViolation"
    assert cp.later == []


def test_base_report_is_answered_then_sent_in_parts(cp: FakeChargePoint) -> None:
    reply = answer("GetBaseReport", {"requestId": 9, "reportBase": "FullInventory"}, cp)
    assert isinstance(reply, Reply)
    assert reply.payload == {"status": "Accepted"}
    assert cp.later == [] and cp.calls == []  # nothing before the answer is sent
    reply.then()
    asyncio.run(cp.run_later())
    total = len(cp.device_model.specs())
    parts = -(-total // NOTIFY_REPORT_ITEMS)
    assert [action for action, _ in cp.calls] == ["NotifyReport"] * parts
    assert [p["seqNo"] for _, p in cp.calls] == list(range(parts))
    assert [p["tbc"] for _, p in cp.calls] == [True] * (parts - 1) + [False]
    assert {p["requestId"] for _, p in cp.calls} == {9}
    assert {p["generatedAt"] for _, p in cp.calls} == {"2026-11-21T08:00:00.123Z"}
    assert sum(len(p["reportData"]) for _, p in cp.calls) == total


def test_a_lost_connection_ends_the_report_quietly(cp: FakeChargePoint) -> None:
    cp.fail_at = 1
    reply = answer("GetBaseReport", {"requestId": 9, "reportBase": "FullInventory"}, cp)
    reply.then()
    asyncio.run(cp.run_later())  # does not raise
    assert [p["seqNo"] for _, p in cp.calls] == [0, 1]
    cp.calls.clear()
    cp.fail_at, cp.error = 0, OcppError("InternalError", "no")
    answer("GetBaseReport", {"requestId": 10, "reportBase": "SummaryInventory"}, cp).then()
    asyncio.run(cp.run_later())
    assert len(cp.calls) == 1


def test_custom_report_and_an_empty_result(cp: FakeChargePoint) -> None:
    request = {
        "requestId": 4,
        "componentVariable": [{"component": {"name": "EVSE"}, "variable": {"name": "Power"}}],
    }
    reply = answer("GetReport", request, cp)
    assert reply.payload == {"status": "Accepted"}
    reply.then()
    asyncio.run(cp.run_later())
    ((_, sent),) = cp.calls
    assert [d["component"] for d in sent["reportData"]] == [{"name": "EVSE", "evse": {"id": 1}}]
    assert answer("GetReport", {**request, "componentCriteria": ["Problem"]}, cp) == {
        "status": "EmptyResultSet"
    }
    nothing = {"requestId": 5, "componentVariable": [{"component": {"name": "NoSuchCtrlr"}}]}
    assert answer("GetReport", nothing, cp) == {"status": "EmptyResultSet"}


def test_set_network_profile(cp: FakeChargePoint) -> None:
    data = {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": "wss://csms.example/ocpp",
        "messageTimeout": 20,
        "securityProfile": 2,
        "ocppInterface": "Wired0",
    }
    request = {"configurationSlot": 1, "connectionData": data}
    assert answer("SetNetworkProfile", request, cp) == {"status": "Accepted"}
    assert cp.store.records("network_profiles") == {"1": data}
    refused = answer("SetNetworkProfile", {**request, "configurationSlot": 7}, cp)
    assert refused["status"] == "Rejected"
    assert refused["statusInfo"]["reasonCode"] == "InvalidConfSlot"


def test_the_password_never_reaches_the_frame_log() -> None:
    secret = "supersecretpassword1"
    item = {
        "component": {"name": "SecurityCtrlr"},
        "variable": {"name": "BasicAuthPassword"},
        "attributeValue": secret,
    }
    for order in (item, dict(reversed(item.items()))):
        frame = json.dumps([2, "1", "SetVariables", {"setVariableData": [order]}])
        assert secret not in redact(frame)
        assert "BasicAuthPassword" in redact(frame)
    other = json.dumps(
        [
            2,
            "1",
            "SetVariables",
            {
                "setVariableData": [
                    {**item, "variable": {"name": "HeartbeatInterval"}, "attributeValue": "300"}
                ]
            },
        ]
    )
    assert redact(other) == other
