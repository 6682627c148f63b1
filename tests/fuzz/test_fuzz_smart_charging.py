"""Fuzzing the Smart Charging profile through the real RPC layer and handlers.

Like test_fuzz_reservation.py: frames go straight into `RpcSession._on_frame` of a
ChargePoint16 with the SmartCharging profile attached, built as the daemon builds
it on simulated hardware, and `check_replies` judges every answer (one well-formed
answer per CALL, schema-valid CALLRESULTs, no InternalError). After each frame the
profiles the station applies must be exactly those in the store, and every
connector's limit must be one the pilot can carry.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from controller.core.smart_charging import installed_from_json
from controller.ocpp.v16.smart_charging import SmartChargingProfile
from controller.smart_charging import RECORDS
from controller.station import Station
from controller.store import Store
from tests.fuzz.ocpp_frames import HANDLED_16, Frame, check_replies, dumps, frames, valid_calls
from tests.fuzz.profile_harness import exchange
from tests.fuzz.profiles import fuzz_settings

ACTIONS = ("ClearChargingProfile", "GetCompositeSchedule", "SetChargingProfile")
HANDLED = (*HANDLED_16, *ACTIONS)
SETTLE_S = 10.0


def applies_what_is_stored(station: Station, store: Store) -> None:
    stored = [installed_from_json(v) for v in store.records(RECORDS).values()]
    applied = station.smart_charging.profiles
    assert sorted(stored, key=repr) == sorted(applied, key=repr), "store and use differ"
    for session in station.core.connectors:
        limit = session.offered_limit_a
        assert limit is None or 0 <= limit < 16, limit
        session.outputs()  # a limit the pilot cannot carry would raise here


def judge(frame_list: list[Frame]) -> None:
    for frame, replies in exchange(
        frame_list, SmartChargingProfile, applies_what_is_stored, (3, 1)
    ):
        check_replies(frame, replies, "1.6", HANDLED)


def set_profile(connector: int = 0, **changes: Any) -> str:
    schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 8}]}
    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": schedule | changes.pop("schedule", {}),
        **changes,
    }
    payload = {"connectorId": connector, "csChargingProfiles": profile}
    return dumps([2, "1", "SetChargingProfile", payload])


def huge_limit() -> str:
    """A limit of 10**400 written as an integer: a multiple of 0.1, beyond any float."""
    frame = json.loads(set_profile())
    frame[3]["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = 0
    return json.dumps(frame).replace('"limit": 0', '"limit": 1' + "0" * 400)


def composite(connector: int = 1, duration: int = 60, unit: str = "W") -> str:
    payload = {"connectorId": connector, "duration": duration, "chargingRateUnit": unit}
    return dumps([2, "2", "GetCompositeSchedule", payload])


@fuzz_settings(80)
@given(st.lists(st.one_of(frames(ACTIONS), valid_calls(ACTIONS).map(dumps)), max_size=5))
@example([set_profile(schedule={"startSchedule": "0001-01-01T00:00:00+00:01"}), composite()])
@example([set_profile(validFrom="9999-12-31T23:59:59-23:00"), composite(0, 2**31 - 1)])
@example([set_profile(schedule={"duration": 2**62}), composite(duration=-(2**63))])
@example([huge_limit(), composite(unit="A")])
@example(
    [
        set_profile(
            chargingProfilePurpose="ChargePointMaxProfile", schedule={"chargingRateUnit": "W"}
        )
    ]
)
@example([set_profile(1, chargingProfileKind="Recurring", recurrencyKind="Weekly")])
@example([set_profile(connector=-(2**31)), composite(connector=2**31)])
def test_smart_charging_frames_are_answered_by_the_rules(frame_list: list[Frame]) -> None:
    judge(frame_list)
