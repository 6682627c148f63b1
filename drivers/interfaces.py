"""The small contracts between the station and each hardware part.

The station core never touches a GPIO: it talks to these interfaces, and a
real driver (drivers/), a simulated part (hw-sim/) or, later, a microcontroller
link implements them. Inputs arrive through callbacks that the driver calls on
the daemon's event loop; outputs are plain method calls that must not block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from controller.core.iec61851 import PilotOutput, PilotState


class FaultKind(StrEnum):
    """Hardware conditions a driver can report. Their OCPP meaning lives in the core."""

    RCD = "rcd"  # residual current monitor tripped
    WELD = "weld"  # contactor feedback disagrees with the command
    DIODE = "diode"  # EV diode missing or shorted (negative level absent while PWM on)
    METER = "meter"  # energy meter not answering
    READER = "reader"  # RFID reader dead or missing
    GENERIC = "generic"  # any other hardware error
    RCM_TEST = "rcm-test"  # the residual current monitor failed its self-test
    EMERGENCY_STOP = "emergency-stop"  # the emergency-stop input is active
    LOCK = "lock"  # the socket lock does not reach the commanded position
    # Not hardware, but a condition reported the same way (connector 0's errorCode):
    LOCAL_LIST_CONFLICT = "local-list-conflict"  # the CSMS contradicted the local list


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One consistent snapshot of an energy meter. Per-phase lists hold L1, L2, L3."""

    energy_wh: float
    power_w: float = 0.0
    current_a: tuple[float, ...] = field(default=(0.0, 0.0, 0.0))
    voltage_v: tuple[float, ...] = field(default=(230.0, 230.0, 230.0))
    frequency_hz: float | None = 50.0


PilotCallback = Callable[[PilotState], None]
FaultCallback = Callable[[FaultKind, bool], None]  # (kind, active)
CardCallback = Callable[[str], None]  # UID as upper-case hex, received byte order
CableCallback = Callable[[float | None], None]  # PP cable rating in A; None: no valid cable


class FaultSource(Protocol):
    """Anything that reports faults (an emergency-stop input, a supervisor)."""

    def on_fault(self, callback: FaultCallback) -> None: ...


class Pilot(Protocol):
    """Control pilot of one connector: drives the PWM, reports the EV's state."""

    def set_output(self, output: PilotOutput) -> None: ...

    def on_state(self, callback: PilotCallback) -> None:
        """Register the callback for every debounced state change (and the first reading)."""

    def on_fault(self, callback: FaultCallback) -> None:
        """Register the callback for pilot faults (diode check)."""

    def on_cable(self, callback: CableCallback) -> None:
        """Register the callback for the cable rating read from the proximity pilot
        (socket outlets). Fixed-cable connectors never call it."""


class Contactor(Protocol):
    """Main contactor of one connector (with its feedback, where present)."""

    def set_closed(self, closed: bool) -> None: ...

    @property
    def closed(self) -> bool:
        """The commanded state."""

    def on_fault(self, callback: FaultCallback) -> None:
        """Register the callback for weld / RCD / other power-path faults."""


class ResidualCurrentMonitor(Protocol):
    """RCM / RDC-DD of one connector: trips are reported as FaultKind.RCD."""

    def on_fault(self, callback: FaultCallback) -> None: ...

    async def self_test(self) -> bool:
        """Pulse the test input and check that the trip is seen (before each session)."""


class Indicator(Protocol):
    """Status LED (or any other signal to the driver)."""

    def show(self, status: str) -> None:
        """`status` is the station's connector-1 status (OCPP vocabulary)."""


class ConnectorLock(Protocol):
    """Socket-outlet lock actuator. Fixed-cable connectors have none.

    lock() and unlock() wait for the feedback (up to about half a second), so
    the station calls them from a worker thread, never on the event loop.
    """

    def on_fault(self, callback: FaultCallback) -> None:
        """Register the callback for FaultKind.LOCK (position not reached)."""

    def unlock(self) -> bool:
        """Unlock; True if the feedback confirms it."""

    def lock(self) -> bool: ...


class Meter(Protocol):
    """Energy meter of one connector."""

    async def read(self) -> MeterReading:
        """Return a fresh reading; raise OSError (or a subclass) when the meter does not answer."""

    def on_fault(self, callback: FaultCallback) -> None: ...


class CardReader(Protocol):
    """RFID reader of the station: reports each presentation once."""

    def on_card(self, callback: CardCallback) -> None: ...

    def on_fault(self, callback: FaultCallback) -> None: ...


class Hardware(Protocol):
    """Everything the daemon drives, built from the configuration."""

    pilots: list[Pilot]
    contactors: list[Contactor]
    locks: list[ConnectorLock | None]
    meters: list[Meter]
    rcms: list[ResidualCurrentMonitor | None]
    reader: CardReader | None
    station_inputs: list[FaultSource]  # faults of the whole station (emergency stop)
    indicator: Indicator | None

    async def start(self) -> None:
        """Start polling loops; call the registered callbacks with initial readings."""

    async def stop(self) -> None:
        """Stop everything and leave every output off."""
