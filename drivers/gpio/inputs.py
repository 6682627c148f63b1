"""Station-wide fault inputs on GPIO: the emergency stop."""

from __future__ import annotations

import atexit
from typing import Any

from drivers.gpio._base import FilteredInput, PinSpec
from drivers.interfaces import FaultKind


class EmergencyStopInput(FilteredInput):
    """FaultSource for an emergency-stop switch: FaultKind.EMERGENCY_STOP while pressed.

    The defaults fit the fail-safe wiring: an NC contact to GND with the pull-up
    on, so a pressed button *or a broken wire* reads high = stop. The core
    clears the fault when the input returns to normal (Latch.NONE); a short
    filter keeps contact bounce from producing stop/start pairs.
    """

    def __init__(
        self,
        pin: PinSpec,
        *,
        active_high: bool = True,
        pull_up: bool | None = True,
        filter_s: float = 0.005,
        poll_s: float = 0.5,
        pin_factory: Any = None,
        name: str = "emergency-stop",
    ) -> None:
        super().__init__(
            pin,
            active_high=active_high,
            pull_up=pull_up,
            filter_s=filter_s,
            poll_s=poll_s,
            pin_factory=pin_factory,
            name=name,
        )
        atexit.register(self.close)

    @property
    def pressed(self) -> bool:
        """The filtered state (as last reported)."""
        return self._stable_active

    def _stable(self) -> None:
        self._faults.set(FaultKind.EMERGENCY_STOP, self._stable_active)

    def close(self) -> None:
        super().close()
        atexit.unregister(self.close)

    def __enter__(self) -> EmergencyStopInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
