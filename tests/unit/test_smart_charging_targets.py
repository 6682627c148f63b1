"""What the station's smart charging steers each connector to (SmartCharging.target_current
and target_power, controller.smart_charging): the device model's Target of EVSE.ACCurrent,
EVSE.Power and ChargingStation.Power. On a real Station with simulated hardware."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.authorizer import Authorizer
from controller.core.connector import ConnectorSettings
from controller.core.smart_charging import (
    ChargingProfile,
    Kind,
    Period,
    Purpose,
    RateUnit,
    Schedule,
)
from controller.ocpp.charging_profiles import rules_of
from controller.ocpp.v16 import features
from controller.ocpp.v16.keys import ConfigurationKeys
from controller.station import Station
from controller.store import Store
from hwsim.hardware import SimHardware


@pytest.fixture
def station(tmp_path: Path) -> Station:
    """Connector 1: 16 A on three phases; connector 2: 32 A on one."""
    store = Store(tmp_path / "evsed.db")
    keys = ConfigurationKeys(features.all_keys(2), persisted={}, persist=store.set_config_key)
    return Station(
        SimHardware(2, has_lock=[False, False], ev_reaction_s=0.0),
        store,
        keys,
        [ConnectorSettings(max_current_a=16), ConnectorSettings(max_current_a=32)],
        [3, 1],
        Authorizer(tmp_path / "auth.db"),
    )


def install(
    station: Station, connector: int, purpose: Purpose, limit: float, unit: RateUnit
) -> None:
    smart = station.smart_charging
    profile = ChargingProfile(
        connector + 10 * len(smart.profiles),
        0,
        purpose,
        Kind.ABSOLUTE,
        Schedule(unit, (Period(0, limit),), smart._now()),
    )
    assert smart.set_profile(profile, connector, rules_of(station.keys)) is None


def test_without_profiles_the_target_is_the_installation_limit(station: Station) -> None:
    smart = station.smart_charging
    assert smart.target_current(1) == 16.0  # before the first evaluation too
    smart.evaluate()
    assert (smart.target_current(1), smart.target_current(2)) == (16.0, 32.0)
    assert smart.target_power(1) == 16 * 3 * 230.0  # no reading yet: the nominal voltage
    assert smart.target_power(2) == 32 * 230.0
    assert smart.target_power(0) == 16 * 3 * 230.0 + 32 * 230.0


def test_a_tx_default_profile_sets_its_connectors_target(station: Station) -> None:
    smart = station.smart_charging
    install(station, 1, Purpose.TX_DEFAULT, 10.0, RateUnit.A)
    assert smart.target_current(1) == 10.0
    assert smart.target_power(1) == 10 * 3 * 230.0
    assert smart.target_current(2) == 32.0  # another connector's profile
    install(station, 2, Purpose.TX_DEFAULT, 2760.0, RateUnit.W)
    assert smart.target_current(2) == 12.0
    assert smart.target_power(2) == 2760.0
    assert smart.target_power(0) == 10 * 3 * 230.0 + 2760.0
    smart.clear()
    assert (smart.target_current(1), smart.target_current(2)) == (16.0, 32.0)


def test_the_target_is_what_the_profile_allows_within_the_installation_limit(
    station: Station,
) -> None:
    smart = station.smart_charging
    install(station, 1, Purpose.TX_DEFAULT, 40.0, RateUnit.A)  # above the installation
    assert smart.target_current(1) == 16.0
    install(station, 1, Purpose.TX_DEFAULT, 3.0, RateUnit.A)
    assert smart.target_current(1) == 3.0  # what the profile allows: the EVSE pauses


def test_the_station_target_is_its_max_profile(station: Station) -> None:
    smart = station.smart_charging
    install(station, 0, Purpose.STATION_MAX, 9200.0, RateUnit.W)
    assert smart.target_power(0) == 9200.0
    # An idle connector counts as if it started alone: the whole cap, to 0.1 A below.
    assert smart.target_current(1) == 13.3
    assert smart.target_current(2) == 32.0  # 9200 W on one phase is 40 A: its installation
