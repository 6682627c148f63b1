"""The OCPP 2.0.1 device model (controller.ocpp.v201.device_model): a view over the
neutral configuration keys plus the variables 2.0.1 alone has, on a real store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from controller.ocpp.rpc import validate
from controller.ocpp.v16.features import all_keys
from controller.ocpp.v16.keys import ConfigurationKeys
from controller.ocpp.v201.device_model import (
    Attribute,
    DataType,
    DeviceModel,
    EvseDescription,
    Mutability,
    StationDescription,
    StationLive,
    VariableSpec,
    check_initial,
    standard_variables,
)
from controller.ocpp.v201.provisioning import notify_report_payloads
from controller.store import Store

STATION = StationDescription(
    vendor="evsed",
    model="wallbox",
    evses=(EvseDescription(3, 22_000.0, "sType2"), EvseDescription(1, 7_400.0, "cType2")),
)


@dataclass
class Live:
    """The station's live values, changeable by a test."""

    states: dict[int, str] = field(default_factory=lambda: {0: "Available", 1: "Available"})
    problems: set[int] = field(default_factory=set)
    entries: int = 0

    def readers(self) -> StationLive:
        return StationLive(
            availability_state=lambda n: self.states.get(n, "Available"),
            available=lambda n: self.states.get(n, "Available") != "Unavailable",
            problem=lambda n: n in self.problems,
            power_w=lambda n: 3680.04 * n,
            date_time=lambda: "2026-11-21T08:00:00.000Z",
            local_list_entries=lambda: self.entries,
        )


@dataclass
class World:
    store: Store
    keys: ConfigurationKeys
    model: DeviceModel
    live: Live


def build(path: Path, live: Live | None = None, initial: dict[str, str] | None = None) -> World:
    store = Store(path / "evsed.db")
    keys = ConfigurationKeys(
        all_keys(2), persisted=store.config_keys(), persist=store.set_config_key
    )
    live = live or Live()
    model = DeviceModel(keys, store, standard_variables(STATION, live.readers()), initial)
    return World(store, keys, model, live)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build(tmp_path)


def get(model: DeviceModel, component: Any, variable: Any, **extra: Any) -> dict[str, Any]:
    if isinstance(component, str):
        component = {"name": component}
    if isinstance(variable, str):
        variable = {"name": variable}
    results = model.get_variables([{"component": component, "variable": variable, **extra}])
    validate("2.0.1", "GetVariables", {"getVariableResult": results}, response=True)
    return results[0]


def put(model: DeviceModel, component: Any, variable: Any, value: str, **extra: Any) -> Any:
    if isinstance(component, str):
        component = {"name": component}
    if isinstance(variable, str):
        variable = {"name": variable}
    item = {"component": component, "variable": variable, "attributeValue": value, **extra}
    results = model.set_variables([item])
    validate("2.0.1", "SetVariables", {"setVariableResult": results}, response=True)
    return results[0]


# --- GetVariables -----------------------------------------------------------------------


def test_get_reads_the_neutral_key_own_values_and_live_values(world: World) -> None:
    world.keys.change("HeartbeatInterval", "120")
    assert get(world.model, "OCPPCommCtrlr", "HeartbeatInterval") == {
        "component": {"name": "OCPPCommCtrlr"},
        "variable": {"name": "HeartbeatInterval"},
        "attributeStatus": "Accepted",
        "attributeValue": "120",
    }
    start = get(world.model, "TxCtrlr", "TxStartPoint")
    assert start["attributeValue"] == "PowerPathClosed"
    world.live.states[1] = "Occupied"
    evse1 = {"name": "EVSE", "evse": {"id": 1}}
    assert get(world.model, evse1, "AvailabilityState")["attributeValue"] == "Occupied"
    connector = {"name": "Connector", "evse": {"id": 2, "connectorId": 1}}
    assert get(world.model, connector, "ConnectorType")["attributeValue"] == "cType2"
    world.live.entries = 42
    assert get(world.model, "LocalAuthListCtrlr", "Entries")["attributeValue"] == "42"
    assert get(world.model, "ClockCtrlr", "DateTime")["attributeValue"].endswith("Z")


def test_get_with_instances(world: World) -> None:
    te = {"name": "MessageAttempts", "instance": "TransactionEvent"}
    assert get(world.model, "OCPPCommCtrlr", te)["attributeValue"] == "3"
    # B06.FR.15: a variable that exists only with instances, asked without one
    assert get(world.model, "OCPPCommCtrlr", "MessageAttempts")["attributeStatus"] == (
        "UnknownVariable"
    )
    limit = {"name": "ItemsPerMessage", "instance": "GetVariables"}
    assert get(world.model, "DeviceDataCtrlr", limit)["attributeValue"] == "50"


@pytest.mark.parametrize(
    ("component", "variable", "status"),
    [
        ({"name": "NoSuchCtrlr"}, {"name": "HeartbeatInterval"}, "UnknownComponent"),
        ({"name": "EVSE"}, {"name": "AvailabilityState"}, "UnknownComponent"),  # no evse
        ({"name": "EVSE", "evse": {"id": 3}}, {"name": "AvailabilityState"}, "UnknownComponent"),
        ({"name": "Connector", "evse": {"id": 1}}, {"name": "ConnectorType"}, "UnknownComponent"),
        ({"name": "OCPPCommCtrlr", "instance": "x"}, {"name": "ResetRetries"}, "UnknownComponent"),
        ({"name": "OCPPCommCtrlr"}, {"name": "NoSuchVariable"}, "UnknownVariable"),
        ({"name": "TxCtrlr"}, {"name": "TxStartPoint", "instance": "x"}, "UnknownVariable"),
    ],
)
def test_get_unknown(world: World, component: Any, variable: Any, status: str) -> None:
    result = get(world.model, component, variable)
    assert result["attributeStatus"] == status
    assert "attributeValue" not in result
    assert result["component"] == component and result["variable"] == variable


def test_get_an_attribute_the_variable_lacks(world: World) -> None:
    result = get(world.model, "OCPPCommCtrlr", "HeartbeatInterval", attributeType="Target")
    assert result["attributeStatus"] == "NotSupportedAttributeType"
    assert result["attributeType"] == "Target"
    assert "attributeValue" not in result


def test_an_evse_power_reports_what_it_draws_and_the_most_it_can(world: World) -> None:
    """EVSE.Power: Actual is the power now, MaxSet the EVSE's maximum; no MinSet."""
    evse = {"name": "EVSE", "evse": {"id": 2}}
    most = get(world.model, evse, "Power", attributeType="MaxSet")
    assert (most["attributeStatus"], most["attributeValue"]) == ("Accepted", "7400")
    assert get(world.model, evse, "Power")["attributeStatus"] == "Accepted"
    least = get(world.model, evse, "Power", attributeType="MinSet")
    assert least["attributeStatus"] == "NotSupportedAttributeType"
    (data,) = world.model.report([], [{"component": evse, "variable": {"name": "Power"}}])
    assert [a["type"] for a in data["variableAttribute"]] == ["Actual", "MaxSet"]
    assert data["variableAttribute"][1]["value"] == "7400"


def test_get_a_write_only_variable_is_rejected(world: World) -> None:
    world.keys.change("AuthorizationKey", "0123456789abcdef0123")
    result = get(world.model, "SecurityCtrlr", "BasicAuthPassword")
    assert result["attributeStatus"] == "Rejected"
    assert result["attributeStatusInfo"] == {"reasonCode": "WriteOnly"}
    assert "attributeValue" not in result


def test_get_truncates_to_the_reporting_value_size(tmp_path: Path) -> None:
    world = build(tmp_path)
    world.model.add(
        [
            VariableSpec(
                "VendorCtrlr",
                "Long",
                DataType.STRING,
                Mutability.READ_ONLY,
                read=lambda: "x" * 3000,
            )
        ]
    )
    assert len(get(world.model, "VendorCtrlr", "Long")["attributeValue"]) == 2500
    (data,) = world.model.report([], [{"component": {"name": "VendorCtrlr"}}])
    assert len(data["variableAttribute"][0]["value"]) == 2500


def test_a_supported_attribute_never_set_reads_empty_and_is_stored_apart(world: World) -> None:
    world.model.add(
        [
            VariableSpec(
                "VendorCtrlr",
                "Limit",
                DataType.INTEGER,
                default="5",
                attributes=(Attribute.ACTUAL, Attribute.TARGET),
            )
        ]
    )
    target = get(world.model, "VendorCtrlr", "Limit", attributeType="Target")
    assert (target["attributeStatus"], target["attributeValue"]) == ("Accepted", "")
    assert (
        put(world.model, "VendorCtrlr", "Limit", "7", attributeType="Target")["attributeStatus"]
        == "Accepted"
    )
    assert world.store.config_keys()["VendorCtrlr.Limit/Target"] == "7"
    assert world.model.value("VendorCtrlr", "Limit") == "5"


# --- SetVariables -----------------------------------------------------------------------


def test_set_a_mapped_variable_writes_the_neutral_key(world: World) -> None:
    result = put(world.model, "SampledDataCtrlr", "TxUpdatedInterval", "15")
    assert result == {
        "component": {"name": "SampledDataCtrlr"},
        "variable": {"name": "TxUpdatedInterval"},
        "attributeStatus": "Accepted",
    }
    assert world.keys.get_int("MeterValueSampleInterval") == 15
    assert world.store.config_keys()["MeterValueSampleInterval"] == "15"
    assert put(world.model, "TxCtrlr", "StopTxOnInvalidId", "FALSE")["attributeStatus"] == (
        "Accepted"
    )
    assert world.keys.get("StopTransactionOnInvalidId") == "false"
    members = "Energy.Active.Import.Register, Voltage"
    assert put(world.model, "AlignedDataCtrlr", "Measurands", members)["attributeStatus"] == (
        "Accepted"
    )
    assert world.keys.get("MeterValuesAlignedData") == "Energy.Active.Import.Register,Voltage"


def test_set_an_own_variable_persists_it(world: World) -> None:
    assert put(world.model, "TxCtrlr", "TxStopPoint", "PowerPathClosed")["attributeStatus"] == (
        "Accepted"
    )
    assert world.store.config_keys()["TxCtrlr.TxStopPoint"] == "PowerPathClosed"
    assert world.model.value("TxCtrlr", "TxStopPoint") == "PowerPathClosed"
    assert "TxCtrlr.TxStopPoint" not in dict(world.keys.items())


def test_set_a_change_that_needs_a_new_connection_says_reboot_required(world: World) -> None:
    result = put(world.model, "OCPPCommCtrlr", "WebSocketPingInterval", "30")
    assert result["attributeStatus"] == "RebootRequired"
    assert world.keys.get_int("WebSocketPingInterval") == 30


@pytest.mark.parametrize(
    ("component", "variable", "value", "reason"),
    [
        ("OCPPCommCtrlr", "HeartbeatInterval", "often", "InvalidValue"),
        ("OCPPCommCtrlr", "HeartbeatInterval", "1.5", "InvalidValue"),
        ("OCPPCommCtrlr", "HeartbeatInterval", "0", "InvalidValue"),  # the 1.6 minimum
        ("OCPPCommCtrlr", "HeartbeatInterval", str(2**31), "ValueOutOfRange"),
        ("OCPPCommCtrlr", "OfflineThreshold", "-1", "ValueTooLow"),
        ("TxCtrlr", "StopTxOnInvalidId", "yes", "InvalidValue"),
        ("TxCtrlr", "TxStartPoint", "ParkingBayOccupancy", "InvalidValue"),  # no bay sensor
        ("TxCtrlr", "TxStartPoint", "DataSigned", "InvalidValue"),  # no signing meter
        ("TxCtrlr", "TxStartPoint", "Sometime", "InvalidValue"),
        ("TxCtrlr", "TxStartPoint", "", "InvalidValue"),
        ("TxCtrlr", "TxStopPoint", " , ", "InvalidValue"),
        ("TxCtrlr", "TxStopPoint", "EnergyTransfer", "InvalidValue"),
        ("TxCtrlr", "TxStopPoint", "EVConnected,DataSigned", "InvalidValue"),
        ("TxCtrlr", "TxStopPoint", "Authorized,Authorized", "InvalidValue"),
        ("SampledDataCtrlr", "TxStartedMeasurands", "Temperature", "InvalidValue"),
        ("SampledDataCtrlr", "TxUpdatedMeasurands", "Voltage,Voltage", "InvalidValue"),
        ("ClockCtrlr", "TimeSource", "GPS", "InvalidValue"),
        ("SecurityCtrlr", "BasicAuthPassword", "short", "InvalidValue"),
        ("SecurityCtrlr", "BasicAuthPassword", "x" * 41, "TooLargeElement"),
        ("SecurityCtrlr", "SecurityProfile", "3", "ReadOnly"),
        ("ClockCtrlr", "DateTime", "2026-01-01T00:00:00Z", "ReadOnly"),
        ("DeviceDataCtrlr", "ReportingValueSize", "10", "ReadOnly"),
        ("LocalAuthListCtrlr", "Entries", "0", "ReadOnly"),
    ],
)
def test_set_refusals(world: World, component: str, variable: str, value: str, reason: str) -> None:
    before, stored = settings(world), world.store.config_keys()
    result = put(world.model, component, variable, value)
    assert result["attributeStatus"] == "Rejected"
    assert result["attributeStatusInfo"]["reasonCode"] == reason
    assert settings(world) == before
    assert world.store.config_keys() == stored


def settings(world: World) -> dict[str, str]:
    """Every stored value: the keys (the secret too) and the own values."""
    values = {spec.name: value for spec, value in world.keys.items()}
    for spec in world.model.specs():
        if spec.read is None and spec.key is None:
            values[spec.storage_name()] = world.model.value(
                spec.component, spec.variable, spec.variable_instance, spec.evse, spec.connector
            )
    return values


def test_set_the_accepted_forms_of_tx_stop_point(world: World) -> None:
    for value in ("Authorized,EVConnected", "PowerPathClosed", "EVConnected,Authorized"):
        assert put(world.model, "TxCtrlr", "TxStopPoint", value)["attributeStatus"] == "Accepted"
    assert world.model.value("TxCtrlr", "TxStopPoint") == "EVConnected,Authorized"


def test_set_the_write_only_password_reaches_the_authorization_key(world: World) -> None:
    password = "0123456789abcdef01234"
    assert (
        put(world.model, "SecurityCtrlr", "BasicAuthPassword", password)["attributeStatus"]
        == "Accepted"
    )
    assert world.keys.get("AuthorizationKey") == password


@pytest.mark.parametrize(
    ("component", "variable", "extra", "status"),
    [
        ({"name": "NoSuchCtrlr"}, {"name": "X"}, {}, "UnknownComponent"),
        ({"name": "TxCtrlr"}, {"name": "NoSuchVariable"}, {}, "UnknownVariable"),
        (
            {"name": "TxCtrlr"},
            {"name": "TxStopPoint"},
            {"attributeType": "MaxSet"},
            "NotSupportedAttributeType",
        ),
    ],
)
def test_set_unknown(world: World, component: Any, variable: Any, extra: Any, status: str) -> None:
    result = put(world.model, component, variable, "PowerPathClosed", **extra)
    assert result["attributeStatus"] == status
    assert world.model.value("TxCtrlr", "TxStopPoint") == "EVConnected,Authorized"


def test_results_come_in_request_order(world: World) -> None:
    items = [
        {
            "component": {"name": "TxCtrlr"},
            "variable": {"name": "TxStopPoint"},
            "attributeValue": "PowerPathClosed",
        },
        {"component": {"name": "X"}, "variable": {"name": "Y"}, "attributeValue": "1"},
        {
            "component": {"name": "TxCtrlr"},
            "variable": {"name": "TxStartPoint"},
            "attributeValue": "ParkingBayOccupancy",
        },
    ]
    statuses = [r["attributeStatus"] for r in world.model.set_variables(items)]
    assert statuses == ["Accepted", "UnknownComponent", "Rejected"]


def test_listeners_hear_accepted_changes_only(world: World) -> None:
    heard: list[tuple[str, str]] = []
    world.model.subscribe(lambda spec, value: heard.append((spec.storage_name(), value)))
    put(world.model, "SampledDataCtrlr", "Enabled", "false")
    put(world.model, "SampledDataCtrlr", "Enabled", "maybe")
    assert heard == [("SampledDataCtrlr.Enabled", "false")]


# --- persistence and initial values ---------------------------------------------------------


def test_values_survive_a_restart(tmp_path: Path) -> None:
    first = build(tmp_path)
    put(first.model, "TxCtrlr", "TxStopPoint", "PowerPathClosed")
    put(first.model, "SampledDataCtrlr", "TxEndedInterval", "900")
    put(first.model, "OCPPCommCtrlr", "HeartbeatInterval", "77")
    first.store.close()
    second = build(tmp_path)
    assert second.model.value("TxCtrlr", "TxStopPoint") == "PowerPathClosed"
    assert second.model.value("SampledDataCtrlr", "TxEndedInterval") == "900"
    assert second.model.value("OCPPCommCtrlr", "HeartbeatInterval") == "77"
    assert second.keys.get_int("HeartbeatInterval") == 77


def test_initial_values_below_persisted_ones(tmp_path: Path) -> None:
    initial = {"SampledDataCtrlr.TxEndedInterval": "300", "OCPPCommCtrlr.OfflineThreshold": "x"}
    world = build(tmp_path, initial=initial)
    assert world.model.value("SampledDataCtrlr", "TxEndedInterval") == "300"
    assert world.model.value("OCPPCommCtrlr", "OfflineThreshold") == "60"  # invalid: default
    put(world.model, "SampledDataCtrlr", "TxEndedInterval", "600")
    world.store.close()
    again = build(tmp_path, initial=initial)
    assert again.model.value("SampledDataCtrlr", "TxEndedInterval") == "600"


def test_check_initial() -> None:
    assert check_initial("TxCtrlr.TxStopPoint", "PowerPathClosed") is None
    assert check_initial("OCPPCommCtrlr.OfflineThreshold", "120") is None
    assert "at least 0" in str(check_initial("OCPPCommCtrlr.OfflineThreshold", "-5"))
    assert "valuesList" in str(check_initial("TxCtrlr.TxStartPoint", "Nonsense"))
    assert check_initial("TxCtrlr.TxStartPoint", "EVConnected,Authorized") is None
    assert "at least one" in str(check_initial("TxCtrlr.TxStopPoint", ""))
    assert "[ocpp.keys]" in str(check_initial("OCPPCommCtrlr.HeartbeatInterval", "60"))
    assert "read-only" in str(check_initial("DeviceDataCtrlr.ReportingValueSize", "10"))
    assert "unknown" in str(check_initial("TxCtrlr.Nonsense", "1"))
    assert "unknown" in str(check_initial("HeartbeatInterval", "60"))


# --- the catalogue --------------------------------------------------------------------------


def test_a_variable_is_defined_once(world: World) -> None:
    with pytest.raises(ValueError, match="defined twice"):
        world.model.add([VariableSpec("TxCtrlr", "TxStartPoint", DataType.MEMBER_LIST)])
    with pytest.raises(ValueError, match="no configuration key"):
        world.model.add([VariableSpec("X", "Y", DataType.INTEGER, key="NoSuchKey")])


def test_every_mapped_variable_names_a_key(world: World) -> None:
    mapped = [spec for spec in world.model.specs() if spec.key is not None]
    assert {spec.key for spec in mapped} >= {
        "HeartbeatInterval",
        "WebSocketPingInterval",
        "TransactionMessageAttempts",
        "TransactionMessageRetryInterval",
        "ResetRetries",
        "ConnectionTimeOut",
        "StopTransactionOnEVSideDisconnect",
        "StopTransactionOnInvalidId",
        "MaxEnergyOnInvalidId",
        "MeterValueSampleInterval",
        "MeterValuesSampledData",
        "StopTxnSampledData",
        "ClockAlignedDataInterval",
        "MeterValuesAlignedData",
        "StopTxnAlignedData",
        "LocalAuthorizeOffline",
        "LocalPreAuthorize",
        "AllowOfflineTxForUnknownId",
        "AuthorizeRemoteTxRequests",
        "AuthorizationCacheEnabled",
        "LocalAuthListEnabled",
        "SecurityProfile",
        "AuthorizationKey",
        "UnlockConnectorOnEVSideDisconnect",
        "CpoName",
    }


def test_limits(world: World) -> None:
    limits = world.model.limits()
    assert limits.items_get_variables == limits.items_set_variables == 50
    assert limits.items_get_report == 50
    assert limits.bytes_get_report == 65536


# --- reports --------------------------------------------------------------------------------


def names(data: list[dict[str, Any]]) -> list[str]:
    out = []
    for entry in data:
        component = entry["component"]
        evse = component.get("evse", {})
        where = "".join(f"@{evse[k]}" for k in ("id", "connectorId") if k in evse)
        instance = entry["variable"].get("instance")
        out.append(
            f"{component['name']}{where}.{entry['variable']['name']}"
            + (f"[{instance}]" if instance else "")
        )
    return out


def assert_valid(data: list[dict[str, Any]]) -> None:
    for payload in notify_report_payloads(7, "2026-11-21T08:00:00.000Z", data, 20):
        validate("2.0.1", "NotifyReport", payload)


def test_full_inventory_reports_every_variable_validly(world: World) -> None:
    data = world.model.base_report("FullInventory")
    assert data is not None
    assert len(data) == len(world.model.specs())
    assert_valid(data)
    by_name = dict(zip(names(data), data, strict=True))
    password = by_name["SecurityCtrlr.BasicAuthPassword"]["variableAttribute"][0]
    assert password == {
        "type": "Actual",
        "mutability": "WriteOnly",
        "persistent": True,
        "constant": False,
    }
    heartbeat = by_name["OCPPCommCtrlr.HeartbeatInterval"]
    assert heartbeat["variableAttribute"][0]["value"] == "300"
    assert heartbeat["variableCharacteristics"] == {
        "dataType": "integer",
        "supportsMonitoring": False,
        "unit": "s",
        "minLimit": 1,
    }
    power = by_name["EVSE@1.Power"]
    assert power["variableCharacteristics"]["maxLimit"] == 22_000.0
    assert power["variableAttribute"][0] == {
        "type": "Actual",
        "mutability": "ReadOnly",
        "persistent": False,
        "constant": False,
        "value": "3680",
    }
    stop = by_name["TxCtrlr.TxStopPoint"]["variableCharacteristics"]
    assert stop["valuesList"] == "EVConnected,Authorized,PowerPathClosed"
    assert stop["dataType"] == "MemberList"


def test_configuration_inventory_holds_the_writable_variables(world: World) -> None:
    data = world.model.base_report("ConfigurationInventory")
    assert data is not None
    assert_valid(data)
    mutabilities = {entry["variableAttribute"][0]["mutability"] for entry in data}
    assert mutabilities == {"ReadWrite", "WriteOnly"}
    assert "TxCtrlr.TxStopPoint" in names(data)
    assert "ClockCtrlr.DateTime" not in names(data)


def test_summary_inventory_holds_availability_and_problems(world: World) -> None:
    data = world.model.base_report("SummaryInventory")
    assert data is not None
    assert_valid(data)
    assert set(names(data)) == {
        "ChargingStation.AvailabilityState",
        "ChargingStation.Available",
        "ChargingStation.Problem",
        "EVSE@1.AvailabilityState",
        "EVSE@1.Available",
        "EVSE@1.Problem",
        "EVSE@2.AvailabilityState",
        "EVSE@2.Available",
        "EVSE@2.Problem",
        "Connector@1@1.AvailabilityState",
        "Connector@1@1.Available",
        "Connector@2@1.AvailabilityState",
        "Connector@2@1.Available",
        "AuthCacheCtrlr.Available",
        "LocalAuthListCtrlr.Available",
    }
    assert world.model.base_report("NoSuchInventory") is None


def test_custom_report_selects_by_component_variable_instance_and_evse(world: World) -> None:
    def report(*selectors: dict[str, Any]) -> list[str]:
        data = world.model.report(None, list(selectors))
        assert_valid(data) if data else None
        return names(data)

    limits = {"component": {"name": "DeviceDataCtrlr"}, "variable": {"name": "ItemsPerMessage"}}
    assert report(limits) == [
        "DeviceDataCtrlr.ItemsPerMessage[GetReport]",
        "DeviceDataCtrlr.ItemsPerMessage[GetVariables]",
        "DeviceDataCtrlr.ItemsPerMessage[SetVariables]",
    ]
    one = {
        "component": {"name": "DeviceDataCtrlr"},
        "variable": {"name": "ItemsPerMessage", "instance": "GetReport"},
    }
    assert report(one) == ["DeviceDataCtrlr.ItemsPerMessage[GetReport]"]
    evses = {"component": {"name": "EVSE"}, "variable": {"name": "AvailabilityState"}}
    assert report(evses) == ["EVSE@1.AvailabilityState", "EVSE@2.AvailabilityState"]
    evse2 = {"component": {"name": "EVSE", "evse": {"id": 2}}}
    assert report(evse2) == [
        "EVSE@2.AvailabilityState",
        "EVSE@2.Available",
        "EVSE@2.Power",
        "EVSE@2.Problem",
        "EVSE@2.SupplyPhases",
    ]
    connector = {
        "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
        "variable": {"name": "ConnectorType"},
    }
    assert report(connector) == ["Connector@1@1.ConnectorType"]
    assert report({"component": {"name": "NoSuchCtrlr"}}) == []
    assert report({"component": {"name": "TxCtrlr"}, "variable": {"name": "Nope"}}) == []


def test_custom_report_criteria(world: World) -> None:
    evse1 = [
        {
            "component": {"name": "EVSE", "evse": {"id": 1}},
            "variable": {"name": "AvailabilityState"},
        }
    ]
    assert names(world.model.report(["Available"], evse1)) == ["EVSE@1.AvailabilityState"]
    assert world.model.report(["Problem"], evse1) == []
    world.live.problems.add(1)
    assert names(world.model.report(["Problem"], evse1)) == ["EVSE@1.AvailabilityState"]
    assert names(world.model.report(["Problem"])) == [
        "EVSE@1.AvailabilityState",
        "EVSE@1.Available",
        "EVSE@1.Power",
        "EVSE@1.Problem",
        "EVSE@1.SupplyPhases",
    ]
    world.live.states[1] = "Unavailable"
    assert world.model.report(["Available"], evse1) == []
    assert names(world.model.report(["Available", "Problem"], evse1)) == [
        "EVSE@1.AvailabilityState"
    ]
    # Enabled: components whose Enabled is true, or that have none
    put(world.model, "SampledDataCtrlr", "Enabled", "false")
    enabled = names(world.model.report(["Enabled"]))
    assert not any(name.startswith("SampledDataCtrlr.") for name in enabled)
    assert "AlignedDataCtrlr.Enabled" in enabled and "TxCtrlr.TxStartPoint" in enabled
    # Active: no component has an Active variable, so all of them qualify
    assert len(world.model.report(["Active"])) == len(world.model.specs())


def test_notify_report_chunks(world: World) -> None:
    data = world.model.base_report("FullInventory")
    assert data is not None and len(data) > 40
    payloads = notify_report_payloads(3, "2026-11-21T08:00:00.000Z", data[:45], 20)
    assert [(p["seqNo"], p["tbc"], len(p["reportData"])) for p in payloads] == [
        (0, True, 20),
        (1, True, 20),
        (2, False, 5),
    ]
    assert [entry for p in payloads for entry in p["reportData"]] == data[:45]
    (single,) = notify_report_payloads(3, "2026-11-21T08:00:00.000Z", data[:20], 20)
    assert (single["seqNo"], single["tbc"]) == (0, False)
    assert notify_report_payloads(3, "2026-11-21T08:00:00.000Z", [], 20) == []
