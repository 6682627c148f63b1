"""Target / MinSet / MaxSet in the OCPP 2.0.1 device model: the electrical variables
(ChargingStation.Power, EVSE.Power, EVSE.ACCurrent) carry them, read-only, from the wiring
and the smart-charging limit in force; every other variable answers
NotSupportedAttributeType for them. GetVariables, SetVariables and the reports, on a real
store (controller.ocpp.v201.device_model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

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
    standard_variables,
)
from controller.store import Store
from tests.unit.test_device_model import assert_valid, get, names, put

# EVSE 1: 32 A on three phases (22 080 W at 230 V); EVSE 2: 16 A on one (3 680 W).
STATION = StationDescription(
    vendor="evsed",
    model="wallbox",
    evses=(
        EvseDescription(3, 32 * 230.0 * 3, "sType2", max_current_a=32),
        EvseDescription(1, 16 * 230.0, "cType2", max_current_a=16),
    ),
)
EVSE1 = {"name": "EVSE", "evse": {"id": 1}}
EVSE2 = {"name": "EVSE", "evse": {"id": 2}}
STATION_COMPONENT = {"name": "ChargingStation"}


@dataclass
class Live:
    """The meters and the smart-charging limits, changeable by a test."""

    power: dict[int, float] = field(default_factory=lambda: {1: 7360.04, 2: 0.0})
    current: dict[int, float] = field(default_factory=lambda: {1: 10.66, 2: 0.0})
    target_a: dict[int, float] = field(default_factory=lambda: {1: 32.0, 2: 16.0})
    target_w: dict[int, float] = field(default_factory=lambda: {0: 25_760.0, 1: 22_080.0})

    def readers(self, smart_charging: bool = True) -> StationLive:
        return StationLive(
            availability_state=lambda n: "Available",
            available=lambda n: True,
            problem=lambda n: False,
            power_w=lambda n: sum(self.power.values()) if n == 0 else self.power[n],
            date_time=lambda: "2026-11-21T08:00:00.000Z",
            local_list_entries=lambda: 0,
            current_a=lambda n: self.current[n],
            target_current_a=(lambda n: self.target_a[n]) if smart_charging else None,
            target_power_w=(lambda n: self.target_w.get(n, 0.0)) if smart_charging else None,
        )


@dataclass
class World:
    store: Store
    model: DeviceModel
    live: Live


def build(path: Path, smart_charging: bool = True) -> World:
    store = Store(path / "evsed.db")
    keys = ConfigurationKeys(
        all_keys(2), persisted=store.config_keys(), persist=store.set_config_key
    )
    live = Live()
    model = DeviceModel(keys, store, standard_variables(STATION, live.readers(smart_charging)))
    return World(store, model, live)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build(tmp_path)


def value(model: DeviceModel, component: Any, variable: str, attribute: str) -> str:
    result = get(model, component, variable, attributeType=attribute)
    assert result["attributeStatus"] == "Accepted", result
    assert result["attributeType"] == attribute
    return str(result["attributeValue"])


def status(model: DeviceModel, component: Any, variable: Any, attribute: str) -> str:
    return str(get(model, component, variable, attributeType=attribute)["attributeStatus"])


# --- GetVariables ----------------------------------------------------------------------


def test_evse_power_has_every_attribute(world: World) -> None:
    assert value(world.model, EVSE1, "Power", "Actual") == "7360"
    assert value(world.model, EVSE1, "Power", "MaxSet") == "22080"
    assert value(world.model, EVSE1, "Power", "MinSet") == "4140"  # 6 A on three phases
    assert value(world.model, EVSE1, "Power", "Target") == "22080"
    assert value(world.model, EVSE2, "Power", "MaxSet") == "3680"
    assert value(world.model, EVSE2, "Power", "MinSet") == "1380"  # 6 A on one phase


def test_evse_power_target_follows_the_smart_charging_limit_within_max_set(
    world: World,
) -> None:
    world.live.target_w[1] = 6900.0
    assert value(world.model, EVSE1, "Power", "Target") == "6900"
    world.live.target_w[1] = 22_176.0  # at 231 V: never above what the wiring delivers
    assert value(world.model, EVSE1, "Power", "Target") == "22080"
    world.live.target_w[1] = -1.0
    assert value(world.model, EVSE1, "Power", "Target") == "0"


def test_evse_ac_current_has_every_attribute(world: World) -> None:
    assert value(world.model, EVSE1, "ACCurrent", "Actual") == "10.7"
    assert value(world.model, EVSE1, "ACCurrent", "Target") == "32"
    assert value(world.model, EVSE1, "ACCurrent", "MinSet") == "6"
    assert value(world.model, EVSE1, "ACCurrent", "MaxSet") == "32"
    world.live.target_a[1] = 10.5
    world.live.current[1] = 10.4
    assert value(world.model, EVSE1, "ACCurrent", "Target") == "10.5"
    assert value(world.model, EVSE1, "ACCurrent", "Actual") == "10.4"
    world.live.target_a[2] = 0.0  # paused by a profile below 6 A
    assert value(world.model, EVSE2, "ACCurrent", "Target") == "0"
    assert value(world.model, EVSE2, "ACCurrent", "MaxSet") == "16"


def test_charging_station_power_sums_the_evses(world: World) -> None:
    assert value(world.model, STATION_COMPONENT, "Power", "Actual") == "7360"
    assert value(world.model, STATION_COMPONENT, "Power", "MaxSet") == "25760"
    assert value(world.model, STATION_COMPONENT, "Power", "Target") == "25760"
    world.live.target_w[0] = 11_040.0  # a ChargingStationMaxProfile of 16 A
    assert value(world.model, STATION_COMPONENT, "Power", "Target") == "11040"


@pytest.mark.parametrize(
    ("component", "variable", "attribute"),
    [
        (STATION_COMPONENT, "Power", "MinSet"),  # no floor for the station as a whole
        (STATION_COMPONENT, "SupplyPhases", "MaxSet"),  # maxLimit is a characteristic
        (EVSE1, "SupplyPhases", "Target"),
        (EVSE1, "AvailabilityState", "Target"),
        ({"name": "Connector", "evse": {"id": 1, "connectorId": 1}}, "ConnectorType", "MaxSet"),
        ({"name": "OCPPCommCtrlr"}, "HeartbeatInterval", "MaxSet"),
        ({"name": "OCPPCommCtrlr"}, "HeartbeatInterval", "MinSet"),
        ({"name": "ClockCtrlr"}, "DateTime", "Target"),
    ],
)
def test_an_attribute_the_variable_lacks_is_not_supported(
    world: World, component: Any, variable: str, attribute: str
) -> None:
    result = get(world.model, component, variable, attributeType=attribute)
    assert result["attributeStatus"] == "NotSupportedAttributeType"
    assert "attributeValue" not in result


def test_without_live_limits_there_is_no_target_and_no_current(tmp_path: Path) -> None:
    world = build(tmp_path, smart_charging=False)
    assert status(world.model, EVSE1, "Power", "Target") == "NotSupportedAttributeType"
    assert status(world.model, STATION_COMPONENT, "Power", "Target") == (
        "NotSupportedAttributeType"
    )
    assert value(world.model, EVSE1, "Power", "MaxSet") == "22080"
    assert status(world.model, EVSE1, "ACCurrent", "Target") == "NotSupportedAttributeType"
    assert value(world.model, EVSE1, "ACCurrent", "MaxSet") == "32"


def test_without_the_installation_limit_power_has_no_floor_and_no_current(
    tmp_path: Path,
) -> None:
    station = StationDescription("evsed", "wallbox", (EvseDescription(3, 11_040.0, "sType2"),))
    store = Store(tmp_path / "evsed.db")
    keys = ConfigurationKeys(all_keys(1), persisted={}, persist=store.set_config_key)
    model = DeviceModel(keys, store, standard_variables(station, Live().readers()))
    assert value(model, EVSE1, "Power", "MaxSet") == "11040"
    assert status(model, EVSE1, "Power", "MinSet") == "NotSupportedAttributeType"
    assert status(model, EVSE1, "ACCurrent", "Actual") == "UnknownVariable"


# --- SetVariables ------------------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["Actual", "Target", "MinSet", "MaxSet"])
@pytest.mark.parametrize("variable", ["Power", "ACCurrent"])
def test_writing_an_electrical_attribute_is_rejected_and_changes_nothing(
    world: World, variable: str, attribute: str
) -> None:
    before = value(world.model, EVSE1, variable, attribute)
    result = put(world.model, EVSE1, variable, "6", attributeType=attribute)
    assert result["attributeStatus"] == "Rejected"
    assert result["attributeStatusInfo"] == {"reasonCode": "ReadOnly"}
    assert value(world.model, EVSE1, variable, attribute) == before
    assert not any(name.startswith("EVSE@1.") for name in world.store.config_keys())


def test_writing_an_attribute_the_variable_lacks_is_not_supported(world: World) -> None:
    result = put(world.model, STATION_COMPONENT, "Power", "1000", attributeType="MinSet")
    assert result["attributeStatus"] == "NotSupportedAttributeType"


# --- reports ---------------------------------------------------------------------------------


def entry(data: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = [e for n, e in zip(names(data), data, strict=True) if n == name]
    return found


def test_full_inventory_lists_every_attribute_with_its_value(world: World) -> None:
    world.live.target_w[1] = 6900.0
    data = world.model.base_report("FullInventory")
    assert data is not None
    assert_valid(data)
    power = entry(data, "EVSE@1.Power")
    live = {"mutability": "ReadOnly", "persistent": False, "constant": False}
    fixed = {"mutability": "ReadOnly", "persistent": True, "constant": True}
    assert power["variableAttribute"] == [
        {"type": "Actual", **live, "value": "7360"},
        {"type": "Target", **live, "value": "6900"},
        {"type": "MinSet", **fixed, "value": "4140"},
        {"type": "MaxSet", **fixed, "value": "22080"},
    ]
    assert power["variableCharacteristics"] == {
        "dataType": "decimal",
        "supportsMonitoring": False,
        "unit": "W",
        "maxLimit": 22080.0,
    }
    current = entry(data, "EVSE@2.ACCurrent")
    assert [(a["type"], a["value"]) for a in current["variableAttribute"]] == [
        ("Actual", "0"),
        ("Target", "16"),
        ("MinSet", "6"),
        ("MaxSet", "16"),
    ]
    assert current["variableCharacteristics"]["unit"] == "A"
    station = entry(data, "ChargingStation.Power")
    assert [a["type"] for a in station["variableAttribute"]] == ["Actual", "Target", "MaxSet"]
    assert station["variableCharacteristics"]["maxLimit"] == 25760.0
    phases = entry(data, "Connector@2@1.SupplyPhases")
    assert phases["variableCharacteristics"]["maxLimit"] == 1
    assert [a["type"] for a in phases["variableAttribute"]] == ["Actual"]


def test_get_report_selects_the_electrical_variables(world: World) -> None:
    selected = world.model.report(
        None,
        [
            {"component": {"name": "EVSE"}, "variable": {"name": "ACCurrent"}},
            {"component": STATION_COMPONENT, "variable": {"name": "Power"}},
        ],
    )
    assert_valid(selected)
    assert names(selected) == [
        "ChargingStation.Power",
        "EVSE@1.ACCurrent",
        "EVSE@2.ACCurrent",
    ]
    assert all(len(e["variableAttribute"]) >= 3 for e in selected)
    evse2 = world.model.report(["Available"], [{"component": EVSE2}])
    assert names(evse2)[:4] == [
        "EVSE@2.AvailabilityState",
        "EVSE@2.Available",
        "EVSE@2.ACCurrent",
        "EVSE@2.Power",
    ]
    assert world.model.report(["Problem"], [{"component": EVSE2}]) == []


def test_the_configuration_inventory_leaves_the_read_only_attributes_out(world: World) -> None:
    data = world.model.base_report("ConfigurationInventory")
    assert data is not None
    assert not {"EVSE@1.Power", "EVSE@1.ACCurrent", "ChargingStation.Power"} & set(names(data))


# --- the catalogue's rule -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "attribute_values",
    [((Attribute.MAX_SET, "9"),), ((Attribute.ACTUAL, "9"),)],
)
def test_a_value_for_an_attribute_the_variable_lacks_is_a_definition_error(
    world: World, attribute_values: tuple[tuple[Attribute, str], ...]
) -> None:
    spec = VariableSpec(
        "VendorCtrlr",
        "Limit",
        DataType.DECIMAL,
        Mutability.READ_ONLY,
        read=lambda: "1",
        attribute_values=attribute_values,
    )
    with pytest.raises(ValueError, match="lacks"):
        world.model.add([spec])
