"""The TxProfile a remote start brings is held for the transaction it is to open
(controller.smart_charging.SmartCharging.expect_transaction) and counts in the station
max profile's share meanwhile; a remote start that fails drops it at once
(forget_expected, called by controller.station.Station.remote_start), whichever OCPP
version asked. The daemon-level test: tests/integration/test_remote_start_profile_refused.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from controller.authorizer import Authorizer
from controller.core.connector import AuthorizationExpired, ConnectorSettings
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

DRIVER = "DRIVER"


@pytest.fixture
def station(tmp_path: Path) -> Station:
    store = Store(tmp_path / "evsed.db")
    keys = ConfigurationKeys(features.all_keys(2), persisted={}, persist=store.set_config_key)
    return Station(
        SimHardware(2, has_lock=[False, False], ev_reaction_s=0.0),
        store,
        keys,
        [ConnectorSettings(max_current_a=16), ConnectorSettings(max_current_a=16)],
        [3, 3],
        Authorizer(tmp_path / "auth.db"),
    )


def expect_on_evse_1(station: Station) -> None:
    """A 16 A station max profile, then a remote start on EVSE 1 bringing a TxProfile."""
    smart, rules = station.smart_charging, rules_of(station.keys)
    now = smart._now()
    cap = ChargingProfile(
        1, 0, Purpose.STATION_MAX, Kind.ABSOLUTE, Schedule(RateUnit.A, (Period(0, 16.0),), now)
    )
    assert smart.set_profile(cap, 0, rules) is None
    assert station.core.connector(2).offered_limit_a is None  # alone: the whole 16 A
    tx = ChargingProfile(9, 0, Purpose.TX, Kind.RELATIVE, Schedule(RateUnit.A, (Period(0, 16.0),)))
    assert smart.expect_transaction(1, DRIVER, tx, rules, 180.0) is None
    assert station.core.connector(2).offered_limit_a == 8.0  # shared with the coming one


def test_a_remote_start_refused_at_admission_gives_the_share_back(station: Station) -> None:
    expect_on_evse_1(station)
    station.core.connector(1).operative = False  # no longer free when the start is carried out
    asyncio.run(station.remote_start(1, DRIVER, authorize_first=False))
    assert station.core.connector(1).auth is None
    assert station.core.connector(2).offered_limit_a is None


def test_a_remote_start_that_is_not_authorized_gives_the_share_back(station: Station) -> None:
    expect_on_evse_1(station)
    asyncio.run(station.remote_start(1, DRIVER, authorize_first=True))  # offline: unknown
    assert station.core.connector(1).auth is None
    assert station.core.connector(2).offered_limit_a is None


def test_an_authorization_expiring_without_a_cable_gives_the_share_back(station: Station) -> None:
    expect_on_evse_1(station)
    station._after([AuthorizationExpired(1, "someone else")])  # not the remote start's
    assert station.core.connector(2).offered_limit_a == 8.0
    station._after([AuthorizationExpired(1, DRIVER.lower())])  # idTags: case-insensitive
    assert station.core.connector(2).offered_limit_a is None


def test_forgetting_on_another_connector_changes_nothing(station: Station) -> None:
    expect_on_evse_1(station)
    station.smart_charging.forget_expected(2)
    assert station.core.connector(2).offered_limit_a == 8.0
    station.smart_charging.forget_expected(1)
    assert station.core.connector(2).offered_limit_a is None
