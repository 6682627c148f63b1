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


class Pilot(Protocol):
    """Control pilot of one connector: drives the PWM, reports the EV's state."""

    def set_output(self, output: PilotOutput) -> None: ...

    def on_state(self, callback: PilotCallback) -> None:
        """Register the callback for every debounced state change (and the first reading)."""

    def on_fault(self, callback: FaultCallback) -> None:
        """Register the callback for pilot faults (diode check)."""


class Contactor(Protocol):
    """Main contactor of one connector (with its feedback, where present)."""

    def set_closed(self, closed: bool) -> None: ...

    @property
    def closed(self) -> bool:
        """The commanded state."""

    def on_fault(self, callback: FaultCallback) -> None:
        """Register the callback for weld / RCD / other power-path faults."""


class ConnectorLock(Protocol):
    """Socket-outlet lock actuator. Fixed-cable connectors have none."""

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
    reader: CardReader | None

    async def start(self) -> None:
        """Start polling loops; call the registered callbacks with initial readings."""

    async def stop(self) -> None:
        """Stop everything and leave every output off."""
