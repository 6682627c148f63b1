"""Fuzzing the OCPP 2.0.1 charging-profile translation with schema-valid profiles
(controller.ocpp.v201.smart_charging): every one is either refused with a reasonCode
a StatusInfo can carry, or becomes a core profile that renders back as a schema-valid
2.0.1 profile meaning the same (parsing the rendering gives the same profile).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controller.core.smart_charging import Installed
from controller.ocpp.rpc import validate
from controller.ocpp.v201.smart_charging import Refused, parse_profile, render_profile
from tests.fuzz.profiles import fuzz_settings
from tests.fuzz.schema_strategies import payloads


def shaped(request: dict[str, Any]) -> dict[str, Any]:
    """Most drawn profiles fail the shape 2.0.1 asks (one schedule, a startSchedule by
    kind, no phaseToUse, not ExternalConstraints): half are given it, so the rest of
    the translation is reached too."""
    profile = request["chargingProfile"]
    if profile["chargingProfilePurpose"] == "ChargingStationExternalConstraints":
        profile["chargingProfilePurpose"] = "TxDefaultProfile"
    schedule = profile["chargingSchedule"] = profile["chargingSchedule"][:1]
    if profile["chargingProfileKind"] == "Relative":
        schedule[0].pop("startSchedule", None)
    else:
        schedule[0].setdefault("startSchedule", "2025-03-01T06:00:00Z")
    for period in schedule[0]["chargingSchedulePeriod"]:
        period.pop("phaseToUse", None)
    return request


@fuzz_settings(100)
@given(
    st.one_of(
        payloads("2.0.1", "SetChargingProfile").map(shaped), payloads("2.0.1", "SetChargingProfile")
    )
)
def test_a_schema_valid_profile_is_refused_or_round_trips(request: dict[str, Any]) -> None:
    try:
        profile, transaction_id = parse_profile(request["chargingProfile"])
    except Refused as e:
        info = e.refusal.status_info()
        assert 0 < len(info["reasonCode"]) <= 20 and len(info["additionalInfo"]) <= 512
        return
    rendered = render_profile(Installed(request["evseId"], profile), transaction_id)
    validate("2.0.1", "SetChargingProfile", {"evseId": 0, "chargingProfile": rendered})
    assert parse_profile(rendered) == (profile, transaction_id)
