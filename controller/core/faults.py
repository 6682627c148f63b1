"""What each hardware fault means for charging: its OCPP error code, whether it
blocks energy, and when it may clear (hardware reference §3, §7.2)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controller.core.status import StopReason
from drivers.interfaces import FaultKind


class Latch(StrEnum):
    NONE = "none"  # clears with the condition
    UNTIL_UNPLUG = "until-unplug"  # clears once the condition is gone and the EV was unplugged
    UNTIL_RESTART = "until-restart"  # only a restart of the station clears it


@dataclass(frozen=True, slots=True)
class FaultRule:
    error_code: str  # OCPP 1.6 ChargePointErrorCode
    blocking: bool  # opens the contactor and makes the connector Faulted
    latch: Latch
    stop_reason: StopReason = StopReason.OTHER  # for a transaction a blocking fault ends


FAULT_RULES: dict[FaultKind, FaultRule] = {
    FaultKind.RCD: FaultRule("GroundFailure", True, Latch.UNTIL_UNPLUG),
    FaultKind.WELD: FaultRule("PowerSwitchFailure", True, Latch.UNTIL_RESTART),
    FaultKind.DIODE: FaultRule("EVCommunicationError", True, Latch.UNTIL_UNPLUG),
    FaultKind.METER: FaultRule("PowerMeterFailure", False, Latch.NONE),
    FaultKind.READER: FaultRule("ReaderFailure", False, Latch.NONE),
    FaultKind.GENERIC: FaultRule("OtherError", True, Latch.NONE),
    # A failed RCM self-test is tried again with the next session (after an unplug).
    FaultKind.RCM_TEST: FaultRule("GroundFailure", True, Latch.UNTIL_UNPLUG),
    FaultKind.EMERGENCY_STOP: FaultRule("OtherError", True, Latch.NONE, StopReason.EMERGENCY_STOP),
    FaultKind.LOCK: FaultRule("ConnectorLockFailure", True, Latch.NONE),
    FaultKind.LOCAL_LIST_CONFLICT: FaultRule("LocalListConflict", False, Latch.NONE),
}


@dataclass(slots=True)
class ActiveFault:
    """A fault that is present: its condition may be gone while its latch holds."""

    kind: FaultKind
    condition: bool = True
    unplugged_since: bool = False

    @property
    def rule(self) -> FaultRule:
        return FAULT_RULES[self.kind]

    @property
    def releasable(self) -> bool:
        if self.condition:
            return False
        latch = self.rule.latch
        return latch is Latch.NONE or (latch is Latch.UNTIL_UNPLUG and self.unplugged_since)


class FaultSet:
    """The faults present on one connector (or on the station as a whole)."""

    def __init__(self) -> None:
        self._faults: dict[FaultKind, ActiveFault] = {}

    def update(self, kind: FaultKind, active: bool, unplugged: bool) -> None:
        fault = self._faults.get(kind)
        if active:
            if fault is None:
                self._faults[kind] = ActiveFault(kind, unplugged_since=unplugged)
            else:
                fault.condition = True
        elif fault is not None:
            fault.condition = False
        self._release()

    def saw_unplug(self) -> None:
        for fault in self._faults.values():
            fault.unplugged_since = True
        self._release()

    def _release(self) -> None:
        for kind in [k for k, f in self._faults.items() if f.releasable]:
            del self._faults[kind]

    @property
    def blocking(self) -> ActiveFault | None:
        return next((f for f in self._faults.values() if f.rule.blocking), None)

    @property
    def non_blocking(self) -> ActiveFault | None:
        return next((f for f in self._faults.values() if not f.rule.blocking), None)

    def __contains__(self, kind: object) -> bool:
        return kind in self._faults

    def kinds(self) -> list[FaultKind]:
        return list(self._faults)
