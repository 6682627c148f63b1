"""OCPP 1.6 Smart Charging profile: SetChargingProfile, ClearChargingProfile,
GetCompositeSchedule, and the charging profile a RemoteStartTransaction may bring.

Only translation: 1.6 charging profiles to and from the neutral ones of
controller.core.smart_charging; the station's smart charging (controller.smart_charging)
validates, stores and applies them. The payloads have passed the schema; what the
schema cannot say (a limit of 1e300, a date-time beyond the calendar) is Rejected.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from controller.clock import iso
from controller.core.smart_charging import (
    ChargingProfile,
    CompositeSchedule,
    Kind,
    Purpose,
    RateUnit,
    Recurrency,
    Rules,
)
from controller.ocpp.charging_profiles import (
    EXTRA_WAIT_S,
    UNIT_NAMES,
    Unusable,
    parse_schedule,
    render_periods,
    rules_of,
)
from controller.ocpp.charging_profiles import epoch as _epoch
from controller.ocpp.charging_profiles import integer as _integer
from controller.ocpp.v16.keys import KeySpec
from controller.ocpp.v16.keys import Kind as KeyKind

log = logging.getLogger("evsed.ocpp")

PURPOSES = {
    "ChargePointMaxProfile": Purpose.STATION_MAX,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}


def parse_profile(raw: dict[str, Any]) -> ChargingProfile:
    """A 1.6 csChargingProfiles / chargingProfile; raises Unusable."""
    try:
        recurrency = raw.get("recurrencyKind")
        transaction_id = raw.get("transactionId")
        return ChargingProfile(
            id=_integer(raw["chargingProfileId"]),
            stack_level=_integer(raw["stackLevel"]),
            purpose=PURPOSES[raw["chargingProfilePurpose"]],
            kind=Kind(raw["chargingProfileKind"]),
            schedule=parse_schedule(raw["chargingSchedule"]),
            recurrency=None if recurrency is None else Recurrency(recurrency),
            valid_from=_epoch(raw.get("validFrom")),
            valid_to=_epoch(raw.get("validTo")),
            transaction_id=None if transaction_id is None else str(_integer(transaction_id)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise Unusable(str(e)) from e


def render_composite(connector: int, schedule: CompositeSchedule) -> dict[str, Any]:
    start = iso(datetime.fromtimestamp(schedule.start, UTC))
    periods = render_periods(schedule.periods)
    return {
        "status": "Accepted",
        "connectorId": connector,
        "scheduleStart": start,
        "chargingSchedule": {
            "duration": schedule.duration,
            "startSchedule": start,
            "chargingRateUnit": schedule.unit.value,
            "chargingSchedulePeriod": periods,
        },
    }


class SmartChargingProfile:
    PROFILE = "SmartCharging"

    def __init__(self, cp: Any) -> None:
        self.cp = cp

    @staticmethod
    def keys(number_of_connectors: int) -> dict[str, KeySpec]:
        specs = [
            KeySpec("ChargeProfileMaxStackLevel", KeyKind.INT, "10", readonly=True),
            KeySpec(
                "ChargingScheduleAllowedChargingRateUnit",
                KeyKind.CSL,
                "Current,Power",
                readonly=True,
                allowed_items=tuple(UNIT_NAMES),
            ),
            KeySpec("ChargingScheduleMaxPeriods", KeyKind.INT, "48", readonly=True),
            KeySpec("MaxChargingProfilesInstalled", KeyKind.INT, "32", readonly=True),
            # Optional in 1.6; said plainly: evsed does not switch phases during a session.
            KeySpec("ConnectorSwitch3to1PhaseSupported", KeyKind.BOOL, "false", readonly=True),
        ]
        return {spec.name: spec for spec in specs}

    def handlers(self) -> dict[str, Any]:
        return {
            "SetChargingProfile": self._set_charging_profile,
            "ClearChargingProfile": self._clear_charging_profile,
            "GetCompositeSchedule": self._get_composite_schedule,
        }

    def rules(self) -> Rules:
        return rules_of(self.cp.keys)

    @property
    def _smart(self) -> Any:
        return self.cp.station.smart_charging

    async def _set_charging_profile(self, req: dict[str, Any]) -> dict[str, Any]:
        connector = req["connectorId"]
        try:
            profile = parse_profile(req["csChargingProfiles"])
        except Unusable as e:
            log.warning("SetChargingProfile rejected: %s", e)
            return {"status": "Rejected"}
        why = self._smart.set_profile(profile, connector, self.rules())
        if why is not None:
            log.warning("SetChargingProfile %d rejected: %s", profile.id, why)
            return {"status": "Rejected"}
        return {"status": "Accepted"}

    async def _clear_charging_profile(self, req: dict[str, Any]) -> dict[str, Any]:
        purpose = req.get("chargingProfilePurpose")
        cleared = self._smart.clear(
            profile_id=req.get("id"),
            connector=req.get("connectorId"),
            purpose=None if purpose is None else PURPOSES[purpose],
            stack_level=req.get("stackLevel"),
        )
        return {"status": "Accepted" if cleared else "Unknown"}

    async def _get_composite_schedule(self, req: dict[str, Any]) -> dict[str, Any]:
        connector, duration = req["connectorId"], req["duration"]
        unit_name = req.get("chargingRateUnit", "A")
        unit = RateUnit(unit_name)
        if duration <= 0 or unit not in self.rules().units:
            return {"status": "Rejected"}
        schedule = await self._smart.composite(connector, duration, unit)
        if schedule is None:
            return {"status": "Rejected"}
        return render_composite(connector, schedule)

    def prepare_remote_start(self, req: dict[str, Any], connector: int) -> bool:
        """A RemoteStartTransaction's chargingProfile is kept for the transaction it
        opens on `connector`; False: the profile is not usable and the start is refused."""
        raw = req.get("chargingProfile")
        if raw is None:
            return True
        try:
            profile = parse_profile(raw)
        except Unusable as e:
            log.warning("RemoteStartTransaction's charging profile unusable: %s", e)
            return False
        wait_s = self.cp.keys.get_int("ConnectionTimeOut") + EXTRA_WAIT_S
        why = self._smart.expect_transaction(connector, req["idTag"], profile, self.rules(), wait_s)
        if why is not None:
            log.warning("RemoteStartTransaction's charging profile refused: %s", why)
            return False
        return True
