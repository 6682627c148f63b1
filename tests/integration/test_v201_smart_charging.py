"""OCPP 2.0.1 Smart Charging against the real daemon: profiles set over 2.0.1 drive the
simulated pilot through the same arbiter as 1.6, and are reported, cleared and kept
over a restart.

A running session's PWM duty moves at most every 5 s (pausing is immediate): each test
changes the duty of a session at most once or twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hwsim.csms import CsmsThread
from tests.integration.harness import CARD, Daemon
from tests.integration.test_smart_charging import DUTY_8_A, DUTY_10_A, DUTY_16_A, wait_duty

# Fixtures "csms", "station" come with the import of csms_201, station_201.
from tests.integration.v201 import (  # noqa: F401
    csms_201,
    ended_event,
    start_session_201,
    station_201,
)

EXTERNAL = "ChargingStationExternalConstraints"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def profile(
    *periods: tuple[int, float],
    id: int = 1,
    stack: int = 0,
    purpose: str = "TxDefaultProfile",
    kind: str = "Relative",
    unit: str = "A",
    schedule: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    chargingschedule = {
        "id": 100 + id,
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": lim} for s, lim in periods],
    } | (schedule or {})
    return {
        "id": id,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [chargingschedule],
        **extra,
    }


def set_profile(csms: CsmsThread, evse: int, charging_profile: dict[str, Any]) -> dict[str, Any]:
    return csms.call("SetChargingProfile", {"evseId": evse, "chargingProfile": charging_profile})


def reason(answer: dict[str, Any]) -> tuple[str, str]:
    return answer["status"], answer.get("statusInfo", {}).get("reasonCode", "")


def get_profiles(
    csms: CsmsThread, request_id: int, evse: int | None = None, **criteria: Any
) -> tuple[str, list[dict[str, Any]]]:
    """GetChargingProfiles' answer, and the ReportChargingProfiles that followed it."""
    mark = csms.mark()
    request: dict[str, Any] = {"requestId": request_id, "chargingProfile": criteria}
    if evse is not None:
        request["evseId"] = evse
    status = csms.call("GetChargingProfiles", request)["status"]
    if status != "Accepted":
        return status, []
    csms.wait_for(
        "ReportChargingProfiles",
        lambda p: p["requestId"] == request_id and not p.get("tbc", False),
        after=mark,
    )
    reports = [p for p in csms.calls("ReportChargingProfiles") if p["requestId"] == request_id]
    return status, reports


def composite(csms: CsmsThread, evse: int = 1, duration: int = 60, **extra: Any) -> dict[str, Any]:
    return csms.call("GetCompositeSchedule", {"evseId": evse, "duration": duration, **extra})


def limits(answer: dict[str, Any]) -> list[tuple[int, float]]:
    assert answer["status"] == "Accepted", answer
    return [(p["startPeriod"], p["limit"]) for p in answer["schedule"]["chargingSchedulePeriod"]]


def test_a_tx_default_profile_lowers_the_duty_and_is_reported(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station()
    csms.wait_for("BootNotification")
    # Right after boot, with nothing installed: answered at once.
    assert get_profiles(csms, 1) == ("NoProfiles", [])
    variables = csms.call(
        "GetVariables",
        {
            "getVariableData": [
                {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": name}}
                for name in ("Available", "Enabled", "RateUnit", "ProfileStackLevel")
            ]
            + [
                {
                    "component": {"name": "SmartChargingCtrlr"},
                    "variable": {"name": "Entries", "instance": "ChargingProfiles"},
                }
            ]
        },
    )["getVariableResult"]
    assert [v["attributeValue"] for v in variables] == ["true", "true", "A,W", "10", "0"]

    start_session_201(daemon, csms)
    wait_duty(daemon, DUTY_16_A)
    default = profile((0, 10.0))
    assert set_profile(csms, 0, default) == {"status": "Accepted"}  # EVSE 0: every EVSE
    wait_duty(daemon, DUTY_10_A)
    assert daemon.connector(1)["status"] == "Charging"

    status, reports = get_profiles(csms, 7)
    assert status == "Accepted"
    assert reports == [
        {
            "requestId": 7,
            "chargingLimitSource": "CSO",
            "evseId": 0,
            "chargingProfile": [default],
            "tbc": False,
        }
    ]
    assert get_profiles(csms, 8, chargingProfileId=[1])[0] == "Accepted"
    assert get_profiles(csms, 9, evse=1) == ("NoProfiles", [])  # it is on EVSE 0
    assert get_profiles(csms, 10, chargingProfilePurpose="TxProfile") == ("NoProfiles", [])
    assert get_profiles(csms, 11, chargingLimitSource=["EMS"]) == ("NoProfiles", [])

    assert limits(composite(csms)) == [(0, 10.0)]
    watts = composite(csms, chargingRateUnit="W")
    assert limits(watts) == [(0, 6900.0)]  # 10 A x 230 V x 3 phases
    assert {k: watts["schedule"][k] for k in ("evseId", "duration", "chargingRateUnit")} == {
        "evseId": 1,
        "duration": 60,
        "chargingRateUnit": "W",
    }
    assert reason(composite(csms, evse=2)) == ("Rejected", "UnknownEvse")
    assert reason(composite(csms, duration=0)) == ("Rejected", "InvalidValue")


def test_a_tx_profile_below_6_a_suspends_the_transaction(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station()
    csms.wait_for("BootNotification")
    started = start_session_201(daemon, csms)
    uid = started["transactionInfo"]["transactionId"]

    tx = profile((0, 3.0), id=5, purpose="TxProfile")
    assert reason(set_profile(csms, 1, tx)) == ("Rejected", "MissingParam")
    assert reason(set_profile(csms, 1, tx | {"transactionId": "no-such"})) == (
        "Rejected",
        "TxNotFound",
    )
    assert reason(set_profile(csms, 0, tx | {"transactionId": uid})) == ("Rejected", "InvalidValue")

    mark = csms.mark()
    assert set_profile(csms, 1, tx | {"transactionId": uid}) == {"status": "Accepted"}
    suspended = csms.wait_for_record(
        "TransactionEvent",
        lambda p: p["transactionInfo"].get("chargingState") == "SuspendedEVSE",
        after=mark,
    ).payload
    assert suspended["triggerReason"] == "ChargingStateChanged"
    state = daemon.connector(1)
    assert (state["pilot_mode"], state["contactor_closed"]) == ("x1", False)
    _, reports = get_profiles(csms, 3, evse=1)
    assert reports[0]["chargingProfile"] == [tx | {"transactionId": uid}]

    assert csms.call("ClearChargingProfile", {"chargingProfileId": 5}) == {"status": "Accepted"}
    daemon.wait_status("Charging", timeout=15.0)  # resumes once 5 s have passed since the pause
    assert csms.call("ClearChargingProfile", {"chargingProfileId": 5}) == {"status": "Unknown"}


def test_a_request_start_brings_its_tx_profile_which_ends_with_the_transaction(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station()
    csms.wait_for("BootNotification")
    daemon.request("plug", connector=1)
    daemon.wait_status("Preparing")
    csms.configure(id_tags={CARD: "Accepted", "DRIVER-7": "Accepted"})
    request = {"remoteStartId": 42, "idToken": {"idToken": "DRIVER-7", "type": "Central"}}
    request |= {"evseId": 1}
    not_tx = profile((0, 8.0), id=9, purpose="TxDefaultProfile")
    tx = profile((0, 8.0), id=9, purpose="TxProfile")
    refused = (not_tx, tx | {"transactionId": "x"}, tx | {"chargingProfileKind": "Absolute"})
    for charging_profile in refused:
        answer = csms.call(
            "RequestStartTransaction", request | {"chargingProfile": charging_profile}
        )
        assert answer["status"] == "Rejected"
    assert daemon.connector(1)["transaction"] is None

    mark = csms.mark()
    answer = csms.call("RequestStartTransaction", request | {"chargingProfile": tx})
    assert answer["status"] == "Accepted"
    started = csms.wait_for_record(
        "TransactionEvent", lambda p: p["eventType"] == "Started", after=mark
    ).payload
    daemon.request("ev_charge", connector=1, on=True)
    daemon.wait_status("Charging")
    wait_duty(daemon, DUTY_8_A)
    uid = started["transactionInfo"]["transactionId"]
    _, reports = get_profiles(csms, 4, chargingProfilePurpose="TxProfile")
    assert reports[0]["evseId"] == 1
    assert reports[0]["chargingProfile"] == [tx | {"transactionId": uid}]

    assert csms.call("RequestStopTransaction", {"transactionId": uid})["status"] == "Accepted"
    ended_event(csms, after=mark)
    assert get_profiles(csms, 5) == ("NoProfiles", [])


def test_invalid_profiles_are_rejected_with_nothing_stored(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    station()
    csms.wait_for("BootNotification")
    soon = iso(datetime.now(UTC) + timedelta(hours=1))
    two = profile((0, 10.0))
    two["chargingSchedule"].append(two["chargingSchedule"][0] | {"id": 2})
    phase_to_use = profile((0, 10.0))
    phase_to_use["chargingSchedule"][0]["chargingSchedulePeriod"][0] |= {
        "numberPhases": 1,
        "phaseToUse": 2,
    }
    cases = [
        (1, profile((0, 10.0), kind="Absolute"), "InvalidSchedule"),  # no startSchedule
        (1, profile((0, 10.0), schedule={"startSchedule": soon}), "InvalidSchedule"),
        (1, two, "InvalidSchedule"),
        (1, phase_to_use, "InvalidSchedule"),
        (1, profile((0, 10.0), (0, 8.0)), "InvalidSchedule"),  # startPeriod not increasing
        (1, profile((5, 10.0)), "InvalidSchedule"),  # the first period starts later
        (0, profile((0, 10.0), purpose="ChargingStationExternalConstraints"), "InvalidValue"),
        (
            1,
            profile(
                (0, 10.0),
                purpose="ChargingStationMaxProfile",
                kind="Absolute",
                schedule={"startSchedule": soon},
            ),
            "InvalidValue",
        ),
        (1, profile((0, 10.0), stack=11), "InvalidStackLevel"),
        (2, profile((0, 10.0)), "UnknownEvse"),
        (1, profile((0, -1.0)), "InvalidSchedule"),  # a negative limit
    ]
    for evse, charging_profile, code in cases:
        assert reason(set_profile(csms, evse, charging_profile)) == ("Rejected", code), code
    assert get_profiles(csms, 1) == ("NoProfiles", [])


def test_duplicates_are_rejected_clearing_by_criteria_and_profiles_survive_a_restart(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station()
    csms.wait_for("BootNotification")
    begin = iso(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1))
    cap = profile(
        (0, 20.0),
        id=3,
        purpose="ChargingStationMaxProfile",
        kind="Recurring",
        recurrencyKind="Daily",
        schedule={"startSchedule": begin},
        validTo=iso(datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)),
    )
    assert set_profile(csms, 0, cap) == {"status": "Accepted"}
    assert set_profile(csms, 1, profile((0, 12.0), id=1)) == {"status": "Accepted"}
    # Both valid for ever, so their validity periods overlap (K01.FR.06).
    assert reason(set_profile(csms, 1, profile((0, 11.0), id=2))) == (
        "Rejected",
        "DuplicateProfile",
    )
    assert reason(set_profile(csms, 0, profile((0, 11.0), id=2))) == (
        "Rejected",
        "DuplicateProfile",
    )
    assert set_profile(csms, 1, profile((0, 11.0), id=1)) == {"status": "Accepted"}  # replaces

    external = {"chargingProfileCriteria": {"chargingProfilePurpose": EXTERNAL}}
    assert reason(csms.call("ClearChargingProfile", external)) == ("Unknown", "InvalidValue")
    criteria = {"evseId": 1, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 1}
    clear = {"chargingProfileCriteria": criteria}
    assert csms.call("ClearChargingProfile", clear) == {"status": "Unknown"}  # stackLevel 0
    clear["chargingProfileCriteria"]["stackLevel"] = 0
    assert csms.call("ClearChargingProfile", clear) == {"status": "Accepted"}
    assert csms.call("ClearChargingProfile", clear) == {"status": "Unknown"}

    daemon.kill()  # SIGKILL: what was accepted had to be on disk already
    mark = csms.mark()
    daemon.start()
    csms.wait_for("BootNotification", after=mark)
    _, reports = get_profiles(csms, 2)
    assert [r["evseId"] for r in reports] == [0]
    assert reports[0]["chargingProfile"] == [cap]
    assert limits(composite(csms, evse=0, chargingRateUnit="A")) == [(0, 16.0)]
    assert limits(composite(csms, evse=1)) == [(0, 16.0)]


def test_profiles_of_one_level_valid_at_other_times_are_both_installed_and_followed(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    station()
    csms.wait_for("BootNotification")
    now = datetime.now(UTC).replace(microsecond=0)
    switch = now + timedelta(seconds=120)
    day = profile((0, 10.0), id=4, stack=1, validFrom=iso(now - timedelta(minutes=1)))
    day |= {"validTo": iso(switch)}
    night = profile((0, 8.0), id=5, stack=1, validFrom=iso(switch))
    night |= {"validTo": iso(now + timedelta(days=1))}
    assert set_profile(csms, 1, day) == {"status": "Accepted"}
    assert set_profile(csms, 1, night) == {"status": "Accepted"}  # K01.FR.06: no overlap
    overlapping = profile((0, 6.0), id=6, stack=1, validFrom=iso(switch - timedelta(seconds=1)))
    assert reason(set_profile(csms, 1, overlapping)) == ("Rejected", "DuplicateProfile")

    _, reports = get_profiles(csms, 1, evse=1)
    assert [p["id"] for r in reports for p in r["chargingProfile"]] == [4, 5]
    periods = limits(composite(csms, evse=1, duration=600))
    assert [limit for _, limit in periods] == [10.0, 8.0]
    assert 118 <= periods[1][0] <= 120  # where the day's validity ends and the night's begins
