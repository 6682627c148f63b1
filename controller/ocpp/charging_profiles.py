"""What the OCPP 1.6 and 2.0.1 charging-profile messages share: the checks on JSON
numbers and date-times that a schema cannot make (a limit of 1e300, a date beyond
the calendar), and the station's capacity for profiles, read from the neutral
configuration keys (1.6's read-only SmartCharging keys, 2.0.1's SmartChargingCtrlr
variables are views of them).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from controller.core.smart_charging import RateUnit, Rules
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
