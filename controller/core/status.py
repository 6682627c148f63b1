"""Connector status as the station reports it (OCPP 1.6 ChargePointStatus vocabulary)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ConnectorStatus(StrEnum):
    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


NO_ERROR = "NoError"


@dataclass(frozen=True, slots=True)
class Status:
    status: ConnectorStatus
    error_code: str = NO_ERROR
    info: str | None = None


class StopReason(StrEnum):
    """Why a transaction ended (OCPP 1.6 Reason)."""

    LOCAL = "Local"
    REMOTE = "Remote"
    EV_DISCONNECTED = "EVDisconnected"
    POWER_LOSS = "PowerLoss"
    REBOOT = "Reboot"
    HARD_RESET = "HardReset"
    SOFT_RESET = "SoftReset"
    DEAUTHORIZED = "DeAuthorized"
    EMERGENCY_STOP = "EmergencyStop"
    UNLOCK_COMMAND = "UnlockCommand"
    OTHER = "Other"
