"""The OCPP 2.0.1 smart charging translation (controller.ocpp.v201.smart_charging):
2.0.1 profiles to and from the core's, 2.0.1's own refusals, report selection."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from controller.core.smart_charging import (
    ChargingProfile,
    CompositeSchedule,
    Installed,
    Kind,
    Period,
    ProfileSet,
    Purpose,
    RateUnit,
    Rules,
    Schedule,
    installed_from_json,
    installed_to_json,
)
from controller.ocpp.rpc import validate
from controller.ocpp.v16.features import all_keys
from controller.ocpp.v16.keys import ConfigurationKeys
from controller.ocpp.v201.device_model import DeviceModel
from controller.ocpp.v201.smart_charging import (
    Refusal,
    Refused,
    SmartCharging201,
    check_limits,
    conflict,
    parse_profile,
    render_composite,
    render_profile,
    report_payloads,
    selected,
)
from controller.store import Store

START = "2025-03-01T06:00:00.000Z"
START_EPOCH = 1740808800.0


def raw_profile(**changes: Any) -> dict[str, Any]:
    schedule = {
        "id": 7,
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 16.0},
            {"startPeriod": 3600, "limit": 8.5, "numberPhases": 1},
        ],
    } | changes.pop("schedule", {})
    return {
        "id": 3,
        "stackLevel": 2,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [schedule],
    } | changes


def core_profile(
    id: int = 1, stack: int = 0, purpose: Purpose = Purpose.TX_DEFAULT, **changes: Any
) -> ChargingProfile:
    schedule = Schedule(RateUnit.A, (Period(0, 10.0),))
    return replace(ChargingProfile(id, stack, purpose, Kind.RELATIVE, schedule), **changes)


def refusal_of(raw: dict[str, Any]) -> Refusal:
    with pytest.raises(Refused) as caught:
        parse_profile(raw)
    return caught.value.refusal


# --- 2.0.1 JSON <-> core ------------------------------------------------------------------------


def test_a_relative_profile_becomes_the_core_profile_and_renders_back_the_same() -> None:
    raw = raw_profile()
    profile, transaction_id = parse_profile(raw)
    assert transaction_id is None
    assert profile == ChargingProfile(
        3,
        2,
        Purpose.TX_DEFAULT,
        Kind.RELATIVE,
        Schedule(RateUnit.A, (Period(0, 16.0), Period(3600, 8.5, 1)), id=7),
    )
    assert render_profile(Installed(1, profile)) == raw
    validate("2.0.1", "SetChargingProfile", {"evseId": 1, "chargingProfile": raw})


def test_absolute_and_recurring_profiles_keep_every_field() -> None:
    absolute = raw_profile(
        chargingProfilePurpose="ChargingStationMaxProfile",
        chargingProfileKind="Absolute",
        validFrom="2025-03-01T00:00:00.000Z",
        validTo="2025-04-01T00:00:00.000Z",
        schedule={
            "startSchedule": START,
            "duration": 7200,
            "minChargingRate": 1400.0,
            "chargingRateUnit": "W",
        },
    )
    recurring = raw_profile(
        chargingProfileKind="Recurring", recurrencyKind="Weekly", schedule={"startSchedule": START}
    )
    for raw in (absolute, recurring):
        profile, _ = parse_profile(raw)
        assert render_profile(Installed(0, profile)) == raw
    profile, _ = parse_profile(absolute)
    assert (profile.purpose, profile.schedule.start, profile.schedule.unit) == (
        Purpose.STATION_MAX,
        START_EPOCH,
        RateUnit.W,
    )


def test_times_are_kept_to_the_millisecond_and_reported_as_sent() -> None:
    raw = raw_profile(
        chargingProfileKind="Absolute",
        validTo="9999-12-31T23:59:59.9999+00:00",
        schedule={"startSchedule": "2025-03-01T07:00:00.1239+01:00"},
    )
    rendered = render_profile(Installed(1, parse_profile(raw)[0]))
    assert rendered["chargingSchedule"][0]["startSchedule"] == "2025-03-01T06:00:00.123Z"
    assert rendered["validTo"] == "9999-12-31T23:59:59.999Z"


def test_a_tx_profile_gives_its_transaction_id_apart_and_gets_it_back_when_reported() -> None:
    raw = raw_profile(chargingProfilePurpose="TxProfile", transactionId="tx-uuid")
    profile, transaction_id = parse_profile(raw)
    assert transaction_id == "tx-uuid"
    assert profile.transaction_id is None  # the core binds the station's key instead
    assert render_profile(Installed(1, profile, tx_key=12), "tx-uuid") == raw


def test_a_profile_set_over_1_6_is_reported_with_its_own_id_as_schedule_id() -> None:
    rendered = render_profile(Installed(1, core_profile(id=42)))
    assert rendered["chargingSchedule"][0]["id"] == 42
    validate("2.0.1", "SetChargingProfile", {"evseId": 1, "chargingProfile": rendered})


def test_the_schedule_id_is_stored_and_an_older_record_without_it_still_loads() -> None:
    profile, _ = parse_profile(raw_profile())
    item = Installed(1, profile)
    stored = installed_to_json(item)
    assert installed_from_json(stored) == item
    del stored["schedule"]["id"]
    assert installed_from_json(stored).profile.schedule.id is None


@pytest.mark.parametrize(
    ("changes", "code", "text"),
    [
        ({"chargingProfilePurpose": "ChargingStationExternalConstraints"}, "InvalidValue", "local"),
        ({"chargingProfileKind": "Absolute"}, "InvalidSchedule", "needs a startSchedule"),
        ({"chargingProfileKind": "Recurring"}, "InvalidSchedule", "needs a startSchedule"),
        ({"schedule": {"startSchedule": START}}, "InvalidSchedule", "has no startSchedule"),
        ({"validTo": "2025-13-01T00:00:00Z"}, "InvalidValue", "unusable date-time"),
        ({"stackLevel": True}, "InvalidValue", "not an integer"),
        ({"validFrom": "0001-01-01T00:00:00+00:01"}, "InvalidValue", "unusable date-time"),
    ],
)
def test_what_2_0_1_forbids_is_refused_with_its_reason_code(
    changes: dict[str, Any], code: str, text: str
) -> None:
    refusal = refusal_of(raw_profile(**changes))
    assert refusal.reason_code == code and text in refusal.text


def test_more_than_one_schedule_and_phase_to_use_are_refused() -> None:
    raw = raw_profile()
    raw["chargingSchedule"].append(raw["chargingSchedule"][0] | {"id": 8})
    assert refusal_of(raw).reason_code == "InvalidSchedule"
    raw = raw_profile()
    raw["chargingSchedule"][0]["chargingSchedulePeriod"][1]["phaseToUse"] = 2
    assert refusal_of(raw) == Refusal("InvalidSchedule", refusal_of(raw).text)
    assert "phaseToUse" in refusal_of(raw).text
    assert Refusal("X", "y" * 600).status_info() == {"reasonCode": "X", "additionalInfo": "y" * 512}


def test_the_composite_schedule_is_a_2_0_1_one() -> None:
    schedule = CompositeSchedule(START_EPOCH, 600, RateUnit.W, (Period(0, 6900.0), Period(60, 0.0)))
    answer = render_composite(1, schedule)
    assert answer == {
        "status": "Accepted",
        "schedule": {
            "evseId": 1,
            "duration": 600,
            "scheduleStart": START,
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 6900.0},
                {"startPeriod": 60, "limit": 0.0},
            ],
        },
    }
    validate("2.0.1", "GetCompositeSchedule", answer, response=True)


# --- 2.0.1's own rules --------------------------------------------------------------------------

RULES = Rules(max_stack_level=10, max_periods=48, max_installed=32, units=frozenset({RateUnit.A}))


def test_stack_level_and_rate_unit_are_refused_with_their_reason_codes() -> None:
    assert check_limits(core_profile(stack=10), RULES) is None
    assert check_limits(core_profile(stack=11), RULES).reason_code == "InvalidStackLevel"  # type: ignore[union-attr]
    watts = core_profile()
    watts = replace(watts, schedule=replace(watts.schedule, unit=RateUnit.W))
    assert check_limits(watts, RULES).reason_code == "UnsupportedRateUnit"  # type: ignore[union-attr]


def test_one_profile_per_purpose_and_stack_level_on_an_evse_at_a_time() -> None:
    installed = ProfileSet((Installed(1, core_profile(id=1)),))
    assert conflict(core_profile(id=1), 1, None, installed) is None  # the same id replaces
    assert conflict(core_profile(id=2, stack=1), 1, None, installed) is None
    assert conflict(core_profile(id=2), 2, None, installed) is None  # another EVSE
    assert conflict(core_profile(id=2), 1, None, installed).reason_code == "DuplicateProfile"  # type: ignore[union-attr]
    # A TxDefaultProfile on EVSE 0 and one on an EVSE with the same stackLevel clash.
    assert conflict(core_profile(id=2), 0, None, installed).reason_code == "DuplicateProfile"  # type: ignore[union-attr]
    cap = core_profile(id=5, purpose=Purpose.STATION_MAX, kind=Kind.ABSOLUTE)
    assert conflict(cap, 0, None, installed) is None


def test_profiles_of_one_purpose_and_stack_level_valid_at_other_times_may_share_an_evse() -> None:
    # K01.FR.06: only overlapping validity periods clash; [from, to) as the core reads them.
    day = core_profile(id=1, valid_from=1000.0, valid_to=2000.0)
    installed = ProfileSet((Installed(1, day),))
    for valid_from, valid_to in ((2000.0, 3000.0), (None, 1000.0), (0.0, 1000.0)):
        night = core_profile(id=2, valid_from=valid_from, valid_to=valid_to)
        assert conflict(night, 1, None, installed) is None, (valid_from, valid_to)
    overlaps = ((1999.0, 3000.0), (None, None), (None, 1001.0), (1500.0, None), (0.0, 1001.0))
    for valid_from, valid_to in overlaps:
        overlapping = core_profile(id=2, valid_from=valid_from, valid_to=valid_to)
        refusal = conflict(overlapping, 1, None, installed)
        assert refusal is not None and refusal.reason_code == "DuplicateProfile"


def test_tx_profiles_clash_only_within_their_transaction() -> None:
    tx = core_profile(id=1, purpose=Purpose.TX)
    installed = ProfileSet((Installed(1, tx, tx_key=7),))
    other = core_profile(id=2, purpose=Purpose.TX)
    assert conflict(other, 1, 7, installed).reason_code == "InvalidStackLevel"  # type: ignore[union-attr]
    assert conflict(other, 2, 8, installed) is None
    assert conflict(replace(other, stack_level=1), 1, 7, installed) is None


def test_get_charging_profiles_selects_by_evse_and_every_criterion() -> None:
    a = Installed(0, core_profile(id=1, purpose=Purpose.STATION_MAX))
    b = Installed(1, core_profile(id=2, stack=3))
    c = Installed(1, core_profile(id=3, purpose=Purpose.TX), tx_key=4)
    items = ProfileSet((a, b, c))
    assert selected(items, None, {}) == [a, b, c]
    assert selected(items, 0, {}) == [a]
    assert selected(items, 1, {}) == [b, c]
    assert selected(items, 2, {}) == []
    assert selected(items, None, {"chargingProfilePurpose": "TxProfile"}) == [c]
    assert selected(items, None, {"chargingProfilePurpose": "ChargingStationMaxProfile"}) == [a]
    external = {"chargingProfilePurpose": "ChargingStationExternalConstraints"}
    assert selected(items, None, external) == []
    assert selected(items, None, {"stackLevel": 3}) == [b]
    assert selected(items, None, {"chargingProfileId": [1, 3, 9]}) == [a, c]
    assert selected(items, 1, {"chargingProfileId": [1, 3]}) == [c]
    assert selected(items, None, {"chargingLimitSource": ["EMS", "SO"]}) == []
    assert selected(items, None, {"chargingLimitSource": ["CSO"]}) == [a, b, c]


def test_a_report_is_one_message_per_evse_and_tbc_until_the_last() -> None:
    profile = render_profile(Installed(0, core_profile()))
    payloads = report_payloads(5, {1: [profile], 0: [profile, profile]})
    assert [(p["evseId"], p["tbc"], len(p["chargingProfile"])) for p in payloads] == [
        (0, True, 2),
        (1, False, 1),
    ]
    for payload in payloads:
        assert payload["requestId"] == 5 and payload["chargingLimitSource"] == "CSO"
        validate("2.0.1", "ReportChargingProfiles", payload)


# --- the device model -------------------------------------------------------------------------


def test_smart_charging_ctrlr_reads_the_shared_keys_and_the_installed_profiles(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "evsed.db")
    keys = ConfigurationKeys(all_keys(1), persisted={}, persist=store.set_config_key)
    smart = SimpleNamespace(profiles=ProfileSet((Installed(1, core_profile()),)))
    cp = SimpleNamespace(keys=keys, station=SimpleNamespace(smart_charging=smart))
    model = DeviceModel(keys, store, SmartCharging201(cp).variables(1))

    def value(variable: str, instance: str | None = None) -> str:
        return model.value("SmartChargingCtrlr", variable, instance)

    assert value("ProfileStackLevel") == keys.get("ChargeProfileMaxStackLevel") == "10"
    assert value("PeriodsPerSchedule") == "48"
    assert value("RateUnit") == "A,W"
    assert value("Entries", "ChargingProfiles") == "1"
    assert (value("Available"), value("Enabled"), value("ACPhaseSwitchingSupported")) == (
        "true",
        "true",
        "false",
    )
    entries = model.spec("SmartChargingCtrlr", "Entries", "ChargingProfiles")
    assert entries.max_limit == 32

    def set_value(variable: str, value: str) -> dict[str, Any]:
        item = {
            "component": {"name": "SmartChargingCtrlr"},
            "variable": {"name": variable},
            "attributeValue": value,
        }
        return model.set_variables([item])[0]

    assert set_value("Enabled", "false")["attributeStatus"] == "Rejected"
    assert set_value("Enabled", "true")["attributeStatus"] == "Accepted"
    assert set_value("ProfileStackLevel", "20")["attributeStatus"] == "Rejected"
    assert set_value("LimitChangeSignificance", "25")["attributeStatus"] == "Accepted"
    assert set_value("LimitChangeSignificance", "101")["attributeStatus"] == "Rejected"
    assert value("LimitChangeSignificance") == "25"
