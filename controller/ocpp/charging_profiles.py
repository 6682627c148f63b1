"""What the OCPP 1.6 and 2.0.1 charging-profile messages share: the checks on JSON
numbers and date-times that a schema cannot make (a limit of 1e300, a date beyond
the calendar), the chargingSchedule (its fields have the same names in both) to and
from the core's, and the station's capacity for profiles, read from the neutral
configuration keys (1.6's read-only SmartCharging keys, 2.0.1's SmartChargingCtrlr
variables are views of them).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from controller.core.smart_charging import Period, RateUnit, Rules, Schedule
from controller.ocpp.v16.keys import ConfigurationKeys

# ChargingScheduleAllowedChargingRateUnit's items (1.6 names) -> the unit
UNIT_NAMES = {"Current": RateUnit.A, "Power": RateUnit.W}
# A remote start may first ask the CSMS (Authorize) before the EV is plugged: its
# profile waits this much longer than the connection timeout.
EXTRA_WAIT_S = 60.0


class Unusable(ValueError):
    """A profile that passed the schema but cannot be one."""


def number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise Unusable(f"not a number: {value!r}")
    try:
        result = float(value)
    except OverflowError as e:
        raise Unusable("number out of range") from e
    if not math.isfinite(result):
        raise Unusable("number out of range")
    return result


def integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unusable(f"not an integer: {value!r}")
    return value


def epoch(value: Any) -> float | None:
    """A date-time as UTC epoch seconds, to the millisecond (OCPP's precision; a finer
    one is cut off), None staying None. One that is not a date of years 1 to 9999 in UTC
    (0001-01-01T00:00+01:00) could not be reported back: unusable."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        return moment.astimezone(UTC).timestamp()
    except (ValueError, OverflowError) as e:
        raise Unusable(f"unusable date-time {value!r}") from e


def parse_schedule(raw: dict[str, Any], schedule_id: int | None = None) -> Schedule:
    """A chargingSchedule (schema-valid) as the core's; raises Unusable, KeyError,
    TypeError or ValueError. `schedule_id`: 2.0.1's id of it (1.6 has none)."""
    duration, min_rate = raw.get("duration"), raw.get("minChargingRate")
    return Schedule(
        RateUnit(raw["chargingRateUnit"]),
        tuple(
            Period(
                integer(p["startPeriod"]),
                number(p["limit"]),
                None if p.get("numberPhases") is None else integer(p["numberPhases"]),
            )
            for p in raw["chargingSchedulePeriod"]
        ),
        epoch(raw.get("startSchedule")),
        None if duration is None else integer(duration),
        None if min_rate is None else number(min_rate),
        schedule_id,
    )


def render_periods(periods: tuple[Period, ...]) -> list[dict[str, Any]]:
    """The chargingSchedulePeriod of `periods` (numberPhases only where a period says)."""
    return [
        {"startPeriod": p.start, "limit": p.limit}
        | ({} if p.phases is None else {"numberPhases": p.phases})
        for p in periods
    ]


def rules_of(keys: ConfigurationKeys) -> Rules:
    """The station's limits for profiles, from the shared configuration keys."""
    return Rules(
        max_stack_level=keys.get_int("ChargeProfileMaxStackLevel"),
        max_periods=keys.get_int("ChargingScheduleMaxPeriods"),
        max_installed=keys.get_int("MaxChargingProfilesInstalled"),
        units=frozenset(
            UNIT_NAMES[u]
            for u in keys.get_list("ChargingScheduleAllowedChargingRateUnit")
            if u in UNIT_NAMES
        ),
    )
