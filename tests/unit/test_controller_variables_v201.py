"""The 2.0.1-only controller variables (controller.ocpp.v201.controller_variables): the
back-off and status rules, and what the station is told to sample, on a real device model."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from controller.ocpp.v16.features import all_keys
from controller.ocpp.v16.keys import ConfigurationKeys
from controller.ocpp.v201.controller_variables import (
    ControllerVariables,
    configured_backoff,
    report_every_status,
    retry_backoff,
    started_measurands,
)
from controller.ocpp.v201.device_model import (
    DeviceModel,
    EvseDescription,
    StationDescription,
    StationLive,
    standard_variables,
)
from controller.store import Store

STATION = StationDescription("evsed", "wallbox", (EvseDescription(3, 22_000.0, "sType2"),))
LIVE = StationLive(
    availability_state=lambda n: "Available",
    available=lambda n: True,
    problem=lambda n: False,
    power_w=lambda n: 0.0,
    date_time=lambda: "2026-11-21T08:00:00.000Z",
    local_list_entries=lambda: 0,
)


def no_jitter(low: float, high: float) -> float:
    return high


# --- the rules ---------------------------------------------------------------------------


def test_back_off_doubles_up_to_the_repeat_times_and_adds_the_random_part() -> None:
    waits = [retry_backoff(n, 2, 3, 2, uniform=no_jitter) for n in range(5)]
    assert waits == [2 + 3, 4 + 3, 8 + 3, 8 + 3, 8 + 3]


def test_back_off_random_part_stays_within_its_range() -> None:
    asked: list[tuple[float, float]] = []

    def record(low: float, high: float) -> float:
        asked.append((low, high))
        return low

    assert retry_backoff(0, 5, 4, 6, uniform=record) == 5
    assert asked == [(0.0, 4.0)]


def test_back_off_survives_huge_and_negative_counts() -> None:
    assert retry_backoff(10**6, 1, 0, 10**6, uniform=no_jitter) == 2**30
    assert retry_backoff(-3, 1, -1, -1, uniform=no_jitter) == 1


def test_every_status_after_a_long_outage_or_the_first_connection_only() -> None:
    assert report_every_status(None, 60)
    assert report_every_status(61.0, 60)
    assert not report_every_status(60.0, 60)
    assert not report_every_status(0.5, 60)
    assert report_every_status(0.1, 0)


def test_the_started_event_always_has_the_energy_register_once() -> None:
    listed = ["Energy.Active.Import.Register", "Voltage", "Power.Active.Import"]
    assert started_measurands(listed) == ["Voltage", "Power.Active.Import"]
    assert started_measurands([]) == []


# --- on a real device model ------------------------------------------------------------------


def build(tmp_path: Path, free_vend: str | None = None) -> tuple[Any, DeviceModel, Store]:
    store = Store(tmp_path / "evsed.db")
    keys = ConfigurationKeys(
        all_keys(1), persisted=store.config_keys(), persist=store.set_config_key
    )
    model = DeviceModel(keys, store, standard_variables(STATION, LIVE))
    settings = SimpleNamespace(free_vend_id_tag=free_vend)
    station = SimpleNamespace(
        core=SimpleNamespace(connectors=[SimpleNamespace(settings=settings)]),
        measurands=None,
        start_measurands=None,
        stop_data_interval=None,
    )
    cp = SimpleNamespace(device_model=model, station=station, keys=keys)
    station.link = cp
    ControllerVariables(cp)
    return cp, model, store


def put(model: DeviceModel, component: str, variable: str, value: str) -> str:
    item = {
        "component": {"name": component},
        "variable": {"name": variable},
        "attributeValue": value,
    }
    return str(model.set_variables([item])[0]["attributeStatus"])


def read(model: DeviceModel, component: str, variable: str) -> dict[str, Any]:
    item = {"component": {"name": component}, "variable": {"name": variable}}
    return model.get_variables([item])[0]


def test_disabled_controllers_sample_nothing(tmp_path: Path) -> None:
    cp, model, _ = build(tmp_path)
    measurands = cp.station.measurands
    assert put(model, "SampledDataCtrlr", "TxEndedMeasurands", "Voltage") == "Accepted"
    assert measurands("MeterValuesSampledData") == [
        "Energy.Active.Import.Register",
        "Power.Active.Import",
    ]
    assert measurands("StopTxnSampledData") == ["Voltage"]
    assert measurands("MeterValuesAlignedData") == ["Energy.Active.Import.Register"]

    assert put(model, "SampledDataCtrlr", "Enabled", "false") == "Accepted"
    assert measurands("MeterValuesSampledData") == []
    assert measurands("StopTxnSampledData") == []
    assert measurands("MeterValuesAlignedData") == ["Energy.Active.Import.Register"]
    assert cp.station.start_measurands() == []
    assert cp.station.stop_data_interval() == 0

    assert put(model, "AlignedDataCtrlr", "Enabled", "false") == "Accepted"
    assert measurands("MeterValuesAlignedData") == []
    assert put(model, "SampledDataCtrlr", "Enabled", "true") == "Accepted"
    assert measurands("StopTxnSampledData") == ["Voltage"]


def test_started_measurands_and_ended_interval_follow_their_variables(tmp_path: Path) -> None:
    cp, model, _ = build(tmp_path)
    assert cp.station.start_measurands() == []  # the default: the energy register only
    assert cp.station.stop_data_interval() == 60
    value = "Energy.Active.Import.Register,Current.Import"
    assert put(model, "SampledDataCtrlr", "TxStartedMeasurands", value) == "Accepted"
    assert put(model, "SampledDataCtrlr", "TxEndedInterval", "15") == "Accepted"
    assert cp.station.start_measurands() == ["Current.Import"]
    assert cp.station.stop_data_interval() == 15
    assert put(model, "SampledDataCtrlr", "TxEndedInterval", "-1") == "Rejected"


@pytest.mark.parametrize(("free_vend", "shown"), [(None, "true"), ("HOME", "false")])
def test_auth_enabled_is_read_only_and_tells_the_truth(
    tmp_path: Path, free_vend: str | None, shown: str
) -> None:
    _, model, _ = build(tmp_path, free_vend)
    assert read(model, "AuthCtrlr", "Enabled")["attributeValue"] == shown
    assert put(model, "AuthCtrlr", "Enabled", "false") == "Rejected"
    assert read(model, "AuthCtrlr", "Enabled")["attributeValue"] == shown


def test_aligned_tx_ended_interval_is_the_aligned_interval(tmp_path: Path) -> None:
    _, model, _ = build(tmp_path)
    assert put(model, "AlignedDataCtrlr", "Interval", "900") == "Accepted"
    assert read(model, "AlignedDataCtrlr", "TxEndedInterval")["attributeValue"] == "900"
    assert put(model, "AlignedDataCtrlr", "TxEndedInterval", "60") == "Rejected"


def test_back_off_is_configured_only_once_a_variable_is_set(tmp_path: Path) -> None:
    _, model, store = build(tmp_path)
    assert configured_backoff(model, store.config_keys(), {}) is None
    initial = {"OCPPCommCtrlr.RetryBackOffRepeatTimes": "2"}
    assert configured_backoff(model, store.config_keys(), initial) == (1, 1, 6)
    assert put(model, "OCPPCommCtrlr", "RetryBackOffWaitMinimum", "7") == "Accepted"
    assert configured_backoff(model, store.config_keys(), {}) == (7, 1, 6)


def test_a_1_6_connection_keeps_the_1_6_rules(tmp_path: Path) -> None:
    cp, model, _ = build(tmp_path)
    assert put(model, "SampledDataCtrlr", "Enabled", "false") == "Accepted"
    cp.station.link = SimpleNamespace()  # the 1.6 layer serves the connection
    assert cp.station.measurands("MeterValuesSampledData") == [
        "Energy.Active.Import.Register",
        "Power.Active.Import",
    ]
    assert cp.station.start_measurands() is None
    assert cp.station.stop_data_interval() is None
