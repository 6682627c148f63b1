"""OCPP 2.0.1 Smart Charging (functional block K): SetChargingProfile,
GetChargingProfiles (answered, then reported with ReportChargingProfiles),
ClearChargingProfile, GetCompositeSchedule, and the TxProfile a
RequestStartTransaction may bring.

Only translation, as for 1.6 (controller.ocpp.v16.smart_charging): 2.0.1 profiles to
and from the neutral ones of controller.core.smart_charging; the station's smart
charging (controller.smart_charging) validates, stores (the same records 1.6 uses)
and applies them through the one current arbiter. What 2.0.1 says differently is
decided here, before the core sees the profile:

* EVSE n is the core's connector n; evseId 0 is the station (TxDefaultProfile on 0:
  every EVSE; ChargingStationMaxProfile: the grid connection).
* ChargingStationExternalConstraints come from a local energy manager, never from the
  CSMS (K01.FR.22: Rejected; K10: not cleared). evsed has none to report.
* One chargingSchedule per profile: more (up to 3) are only for ISO 15118 schedule
  negotiation, which evsed does not do, so they are Rejected (InvalidSchedule).
* An Absolute or Recurring profile needs a startSchedule, a Relative one has none
  (K01.FR.40/41; 1.6 let an Absolute one start with charging).
* phaseToUse is Rejected: evsed cannot switch phases (ACPhaseSwitchingSupported false).
  numberPhases is taken as the core takes it. salesTariff is ignored.
* A TxProfile names its transaction by the station's transactionId (a UUID,
  controller.ocpp.v201.transactions): it must be the one running on the EVSE
  (TxNotFound otherwise, MissingParam without one). The core keeps the transaction by
  the station's own key; the transactionId is rendered again from it when reported.
* A profile of the same purpose and stackLevel as another one (another id) on the same
  EVSE whose validity period overlaps it is Rejected (DuplicateProfile, K01.FR.06);
  valid at other times, both are kept, each prevailing in its own period (unlike 1.6,
  where the new one replaces the other). So is a TxDefaultProfile with the stackLevel
  of one on the other side of "EVSE 0 / a specific EVSE" (K01.FR.52/53); a TxProfile
  with the stackLevel of another one of the same transaction: InvalidStackLevel. A
  profile with the id of an installed one replaces it (K01.FR.05).
* Every profile comes from the CSMS: chargingLimitSource CSO.

A refusal carries statusInfo: its reasonCode and, in additionalInfo, why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.clock import iso
from controller.core.smart_charging import (
    ChargingProfile,
    CompositeSchedule,
    Installed,
    Kind,
    ProfileSet,
    Purpose,
    RateUnit,
    Recurrency,
    Rules,
)
from controller.ocpp.charging_profiles import (
    EXTRA_WAIT_S,
    Unusable,
    epoch,
    integer,
    parse_schedule,
    render_periods,
    rules_of,
)
from controller.ocpp.rpc import OcppError, Reply
from controller.ocpp.v201.device_model import DataType, Mutability, VariableSpec

log = logging.getLogger("evsed.ocpp")

PURPOSES = {
    "ChargingStationMaxProfile": Purpose.STATION_MAX,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}
PURPOSE_NAMES = {purpose: name for name, purpose in PURPOSES.items()}
EXTERNAL = "ChargingStationExternalConstraints"
SOURCE = "CSO"  # the chargingLimitSource of every profile: the CSMS set it
CTRLR = "SmartChargingCtrlr"
INFO_LENGTH = 512  # StatusInfo.additionalInfo
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a profile is refused: a 2.0.1 reasonCode and the reason in words."""

    reason_code: str
    text: str

    def status_info(self) -> dict[str, str]:
        return {"reasonCode": self.reason_code, "additionalInfo": self.text[:INFO_LENGTH]}


class Refused(ValueError):
    def __init__(self, reason_code: str, text: str) -> None:
        super().__init__(text)
        self.refusal = Refusal(reason_code, text)


def rejected(refusal: Refusal) -> dict[str, Any]:
    return {"status": "Rejected", "statusInfo": refusal.status_info()}


# --- 2.0.1 JSON <-> the core's profiles ------------------------------------------------------


def parse_profile(raw: dict[str, Any]) -> tuple[ChargingProfile, str | None]:
    """A 2.0.1 ChargingProfileType (schema-valid) as a core profile and the transactionId
    it names; raises Refused. The core profile names no transaction: the station's
    key of it is bound when the profile is installed."""
    if raw["chargingProfilePurpose"] == EXTERNAL:
        raise Refused("InvalidValue", f"{EXTERNAL} are set by a local energy manager, not the CSMS")
    schedules = raw["chargingSchedule"]
    if len(schedules) != 1:
        raise Refused(
            "InvalidSchedule", "one chargingSchedule only: several are for ISO 15118, not done here"
        )
    schedule = schedules[0]
    try:
        kind = Kind(raw["chargingProfileKind"])
        if kind is not Kind.RELATIVE and schedule.get("startSchedule") is None:
            raise Refused("InvalidSchedule", f"kind {kind.value} needs a startSchedule")
        if kind is Kind.RELATIVE and schedule.get("startSchedule") is not None:
            raise Refused("InvalidSchedule", "a Relative profile has no startSchedule")
        if any(p.get("phaseToUse") is not None for p in schedule["chargingSchedulePeriod"]):
            raise Refused("InvalidSchedule", "phaseToUse: this station cannot switch phases")
        recurrency = raw.get("recurrencyKind")
        profile = ChargingProfile(
            id=integer(raw["id"]),
            stack_level=integer(raw["stackLevel"]),
            purpose=PURPOSES[raw["chargingProfilePurpose"]],
            kind=kind,
            schedule=parse_schedule(schedule, integer(schedule["id"])),
            recurrency=None if recurrency is None else Recurrency(recurrency),
            valid_from=epoch(raw.get("validFrom")),
            valid_to=epoch(raw.get("validTo")),
        )
    except (Unusable, KeyError, TypeError, ValueError) as e:
        if isinstance(e, Refused):
            raise
        raise Refused("InvalidValue", str(e)) from e
    transaction_id = raw.get("transactionId")
    return profile, None if transaction_id is None else str(transaction_id)


def _time(moment: float) -> str:
    """A stored epoch as it was sent: by whole milliseconds, as a float epoch does not
    hold every millisecond exactly (in 9999, ...59.9 comes back as ...59.899994)."""
    return iso(EPOCH + timedelta(milliseconds=round(moment * 1000)))


def render_profile(item: Installed, transaction_id: str | None = None) -> dict[str, Any]:
    """An installed profile as a 2.0.1 ChargingProfileType (one set over 1.6 has no
    schedule id: it is given the profile's)."""
    p, s = item.profile, item.profile.schedule
    schedule: dict[str, Any] = {
        "id": p.id if s.id is None else s.id,
        "chargingRateUnit": s.unit.value,
        "chargingSchedulePeriod": render_periods(s.periods),
    }
    if s.start is not None:
        schedule["startSchedule"] = _time(s.start)
    if s.duration is not None:
        schedule["duration"] = s.duration
    if s.min_rate is not None:
        schedule["minChargingRate"] = s.min_rate
    out: dict[str, Any] = {
        "id": p.id,
        "stackLevel": p.stack_level,
        "chargingProfilePurpose": PURPOSE_NAMES[p.purpose],
        "chargingProfileKind": p.kind.value,
        "chargingSchedule": [schedule],
    }
    if p.recurrency is not None:
        out["recurrencyKind"] = p.recurrency.value
    if p.valid_from is not None:
        out["validFrom"] = _time(p.valid_from)
    if p.valid_to is not None:
        out["validTo"] = _time(p.valid_to)
    if transaction_id is not None:
        out["transactionId"] = transaction_id
    return out


def render_composite(evse: int, schedule: CompositeSchedule) -> dict[str, Any]:
    return {
        "status": "Accepted",
        "schedule": {
            "evseId": evse,
            "duration": schedule.duration,
            "scheduleStart": _time(schedule.start),
            "chargingRateUnit": schedule.unit.value,
            "chargingSchedulePeriod": render_periods(schedule.periods),
        },
    }


# --- 2.0.1's own rules -------------------------------------------------------------------------


def conflict(
    profile: ChargingProfile, evse: int, tx_key: int | None, installed: ProfileSet
) -> Refusal | None:
    """Why `profile` may not join the installed ones on `evse` (K01.FR.06/39/52/53), or
    None; `tx_key`: the transaction a TxProfile is for."""
    for item in installed:
        other = item.profile
        if (
            other.id == profile.id
            or other.purpose is not profile.purpose
            or other.stack_level != profile.stack_level
        ):
            continue
        if profile.purpose is Purpose.TX:
            if item.tx_key == tx_key:
                return Refusal(
                    "InvalidStackLevel",
                    f"TxProfile {other.id} of this transaction has stackLevel {other.stack_level}",
                )
            continue
        if item.connector == evse:
            if not overlap(profile, other):
                continue  # K01.FR.06: valid at other times, both are kept
            return Refusal(
                "DuplicateProfile",
                f"{PURPOSE_NAMES[profile.purpose]} {other.id} on EVSE {evse} has this stackLevel"
                " and is valid at the same time",
            )
        if profile.purpose is Purpose.TX_DEFAULT and (item.connector == 0) != (evse == 0):
            return Refusal(
                "DuplicateProfile",
                f"TxDefaultProfile {other.id} on EVSE {item.connector} has this stackLevel",
            )
    return None


def overlap(a: ChargingProfile, b: ChargingProfile) -> bool:
    """Whether the validity periods [validFrom, validTo) share a moment (none: unbounded)."""
    inf = float("inf")

    def span(p: ChargingProfile) -> tuple[float, float]:
        return (
            -inf if p.valid_from is None else p.valid_from,
            inf if p.valid_to is None else p.valid_to,
        )

    (a_from, a_to), (b_from, b_to) = span(a), span(b)
    return a_from < b_to and b_from < a_to


def check_limits(profile: ChargingProfile, rules: Rules) -> Refusal | None:
    """The checks whose reasonCode 2.0.1 names (the core checks the rest)."""
    if not 0 <= profile.stack_level <= rules.max_stack_level:
        return Refusal("InvalidStackLevel", f"stackLevel must be 0..{rules.max_stack_level}")
    if profile.schedule.unit not in rules.units:
        return Refusal("UnsupportedRateUnit", f"chargingRateUnit {profile.schedule.unit.value}")
    return None


def selected(items: ProfileSet, evse: int | None, criterion: dict[str, Any]) -> list[Installed]:
    """The installed profiles a GetChargingProfiles asks for: on `evse` (None: any; 0:
    the station's own) and meeting every criterion given."""
    sources = criterion.get("chargingLimitSource")
    purpose_name = criterion.get("chargingProfilePurpose")
    if (sources is not None and SOURCE not in sources) or purpose_name == EXTERNAL:
        return []
    purpose = None if purpose_name is None else PURPOSES[purpose_name]
    ids, level = criterion.get("chargingProfileId"), criterion.get("stackLevel")
    return [
        i
        for i in items
        if (evse is None or i.connector == evse)
        and (purpose is None or i.profile.purpose is purpose)
        and (level is None or i.profile.stack_level == level)
        and (ids is None or i.profile.id in ids)
    ]


def report_payloads(
    request_id: int, by_evse: dict[int, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The ReportChargingProfiles requests: one per EVSE (one source, CSO), tbc on all
    but the last."""
    evses = sorted(by_evse)
    return [
        {
            "requestId": request_id,
            "chargingLimitSource": SOURCE,
            "evseId": evse,
            "chargingProfile": by_evse[evse],
            "tbc": n < len(evses) - 1,
        }
        for n, evse in enumerate(evses)
    ]


def _always_enabled(value: str) -> tuple[str, str] | None:
    if value == "true":
        return None
    return "InvalidValue", "evsed always holds its EVSEs to their charging profiles"


# --- the feature -------------------------------------------------------------------------------


class SmartCharging201:
    """Functional block K for a ChargePoint201 (cp.station.smart_charging does the work)."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp

    def variables(self, number_of_evses: int) -> list[VariableSpec]:
        """SmartChargingCtrlr; the limits are views of the 1.6 keys (one setting, both
        versions). An instance method: Entries and RateUnit are read live."""
        ro, boolean, integer_ = Mutability.READ_ONLY, DataType.BOOLEAN, DataType.INTEGER
        return [
            VariableSpec(CTRLR, "Available", boolean, ro, "true", constant=True),
            VariableSpec(CTRLR, "Enabled", boolean, default="true", check=_always_enabled),
            VariableSpec(CTRLR, "ACPhaseSwitchingSupported", boolean, ro, "false", constant=True),
            VariableSpec(CTRLR, "Phases3to1", boolean, ro, key="ConnectorSwitch3to1PhaseSupported"),
            VariableSpec(
                CTRLR, "ProfileStackLevel", integer_, ro, key="ChargeProfileMaxStackLevel"
            ),
            VariableSpec(
                CTRLR, "PeriodsPerSchedule", integer_, ro, key="ChargingScheduleMaxPeriods"
            ),
            VariableSpec(
                CTRLR,
                "RateUnit",
                DataType.MEMBER_LIST,
                ro,
                read=lambda: ",".join(sorted(u.value for u in self.rules().units)),
                values_list=("A", "W"),
            ),
            VariableSpec(
                CTRLR,
                "Entries",
                integer_,
                ro,
                variable_instance="ChargingProfiles",
                read=lambda: str(len(self._smart.profiles)),
                max_limit=self.cp.keys.get_int("MaxChargingProfilesInstalled"),
            ),
            VariableSpec(
                CTRLR,
                "LimitChangeSignificance",
                DataType.DECIMAL,
                default="10",
                unit="Percent",
                min_limit=0,
                max_limit=100,
            ),
            VariableSpec(CTRLR, "NotifyChargingLimitWithSchedules", boolean, default="false"),
            VariableSpec(
                CTRLR, "ExternalControlSignalsEnabled", boolean, ro, "false", constant=True
            ),
        ]

    def handlers(self) -> dict[str, Any]:
        return {
            "SetChargingProfile": self._set_charging_profile,
            "GetChargingProfiles": self._get_charging_profiles,
            "ClearChargingProfile": self._clear_charging_profile,
            "GetCompositeSchedule": self._get_composite_schedule,
        }

    def rules(self) -> Rules:
        return rules_of(self.cp.keys)

    @property
    def _smart(self) -> Any:
        return self.cp.station.smart_charging

    @property
    def _evses(self) -> int:
        return len(self.cp.station.core.connectors)

    # --- SetChargingProfile ---------------------------------------------------------------

    async def _set_charging_profile(self, req: dict[str, Any]) -> dict[str, Any]:
        evse = req["evseId"]
        refusal = self._install(evse, req["chargingProfile"])
        if refusal is not None:
            log.warning("SetChargingProfile on EVSE %s rejected: %s", evse, refusal.text)
            return rejected(refusal)
        return {"status": "Accepted"}

    def _install(self, evse: int, raw: dict[str, Any]) -> Refusal | None:
        if not 0 <= evse <= self._evses:
            return Refusal("UnknownEvse", f"no EVSE {evse}")
        try:
            profile, transaction_id = parse_profile(raw)
        except Refused as e:
            return e.refusal
        tx_key, refusal = self._transaction(profile, evse, transaction_id)
        rules = self.rules()
        refusal = (
            refusal
            or check_limits(profile, rules)
            or conflict(profile, evse, tx_key, self._smart.profiles)
        )
        if refusal is not None:
            return refusal
        why = self._smart.set_profile(profile, evse, rules, same_level_replaces=False)
        return None if why is None else Refusal("InvalidSchedule", why)

    def _transaction(
        self, profile: ChargingProfile, evse: int, transaction_id: str | None
    ) -> tuple[int | None, Refusal | None]:
        """The station's key of the transaction a TxProfile is for."""
        if profile.purpose is not Purpose.TX:
            if transaction_id is not None:
                return None, Refusal("InvalidValue", "only a TxProfile names a transactionId")
            if profile.purpose is Purpose.STATION_MAX and evse != 0:
                return None, Refusal("InvalidValue", "a ChargingStationMaxProfile is for EVSE 0")
            return None, None
        if evse == 0:
            return None, Refusal("InvalidValue", "a TxProfile is for an EVSE, not 0")
        if transaction_id is None:
            return None, Refusal("MissingParam", "a TxProfile names its transactionId")
        running = self._smart.site().running.get(evse)
        if running is None or running.key not in self.cp.events.txs_of(transaction_id):
            return None, Refusal(
                "TxNotFound", f"transaction {transaction_id} is not on EVSE {evse}"
            )
        return running.key, None

    # --- GetChargingProfiles ---------------------------------------------------------------

    async def _get_charging_profiles(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        items = selected(self._smart.profiles, req.get("evseId"), req["chargingProfile"])
        if not items:
            return {"status": "NoProfiles"}
        by_evse: dict[int, list[dict[str, Any]]] = {}
        for item in sorted(items, key=lambda i: (i.connector, i.profile.id)):
            by_evse.setdefault(item.connector, []).append(self._render(item))
        payloads = report_payloads(req["requestId"], by_evse)
        return Reply({"status": "Accepted"}, lambda: self.cp._later(self._report(payloads)))

    def _render(self, item: Installed) -> dict[str, Any]:
        uid = None
        if item.profile.purpose is Purpose.TX and item.tx_key is not None:
            uid = self.cp.events.uid(item.tx_key)
        return render_profile(item, uid)

    async def _report(self, payloads: list[dict[str, Any]]) -> None:
        """Send the report in order; a refusal or a lost link ends it (logged)."""
        for payload in payloads:
            try:
                await self.cp._call("ReportChargingProfiles", payload)
            except (OcppError, TimeoutError, ConnectionError, OSError) as e:
                log.warning(
                    "charging profile report %s stopped at EVSE %s: %s",
                    payload["requestId"],
                    payload["evseId"],
                    e or type(e).__name__,
                )
                return

    # --- ClearChargingProfile ----------------------------------------------------------------

    async def _clear_charging_profile(self, req: dict[str, Any]) -> dict[str, Any]:
        criteria = req.get("chargingProfileCriteria") or {}
        purpose = criteria.get("chargingProfilePurpose")
        if purpose == EXTERNAL:
            refusal = Refusal("InvalidValue", f"{EXTERNAL} are not the CSMS's to clear")
            return {"status": "Unknown", "statusInfo": refusal.status_info()}
        cleared = self._smart.clear(
            profile_id=req.get("chargingProfileId"),
            connector=criteria.get("evseId"),
            purpose=None if purpose is None else PURPOSES[purpose],
            stack_level=criteria.get("stackLevel"),
        )
        return {"status": "Accepted" if cleared else "Unknown"}

    # --- GetCompositeSchedule ------------------------------------------------------------------

    async def _get_composite_schedule(self, req: dict[str, Any]) -> dict[str, Any]:
        evse, duration = req["evseId"], req["duration"]
        units = self.rules().units
        default = RateUnit.A if RateUnit.A in units or not units else RateUnit.W
        unit = RateUnit(req.get("chargingRateUnit", default.value))
        if not 0 <= evse <= self._evses:
            return rejected(Refusal("UnknownEvse", f"no EVSE {evse}"))
        if unit not in units:
            return rejected(Refusal("UnsupportedRateUnit", f"chargingRateUnit {unit.value}"))
        if duration <= 0:
            return rejected(Refusal("InvalidValue", "duration must be positive"))
        schedule = await self._smart.composite(evse, duration, unit)
        if schedule is None:
            return rejected(Refusal("UnknownEvse", f"no EVSE {evse}"))
        return render_composite(evse, schedule)

    # --- RequestStartTransaction ----------------------------------------------------------------

    def prepare_remote_start(self, req: dict[str, Any], connector: int) -> bool:
        """A RequestStartTransaction's chargingProfile (a TxProfile without a
        transactionId) is kept for the transaction it opens on `connector`; False: it is
        not usable and the start is refused."""
        raw = req.get("chargingProfile")
        if raw is None:
            return True
        try:
            profile, transaction_id = parse_profile(raw)
        except Refused as e:
            log.warning("RequestStartTransaction's charging profile unusable: %s", e)
            return False
        if transaction_id is not None:
            log.warning("RequestStartTransaction's charging profile names a transaction")
            return False
        id_tag = str(req["idToken"]["idToken"])
        wait_s = self.cp.keys.get_int("ConnectionTimeOut") + EXTRA_WAIT_S
        why = self._smart.expect_transaction(connector, id_tag, profile, self.rules(), wait_s)
        if why is not None:
            log.warning("RequestStartTransaction's charging profile refused: %s", why)
            return False
        return True
