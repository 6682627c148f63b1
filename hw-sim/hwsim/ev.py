"""A simulated electric vehicle on one connector.

The EV is a plain model with no timers of its own: given what the EVSE drives
on the control pilot and the CP state it presents now, it says which state it
moves to next and after how long. The simulated pilot (hwsim.hardware) owns
the clock, so tests and the daemon see one consistent timeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from controller.core.iec61851 import PilotMode, PilotOutput, PilotState

Hook = Callable[[], None]


class SimEV:
    """An IEC 61851 basic-charging EV: resistor R2 when plugged, switch S2 to ask for energy.

    Every setter notifies the watcher before and after the change, so the meter
    can integrate the old power up to this instant and the pilot can re-evaluate
    the CP state; the EV itself never needs to know about either.
    """

    def __init__(
        self,
        *,
        max_current_a: float = 32.0,
        phases: int = 3,
        reaction_s: float = 0.2,
        stubborn: bool = False,
        plugged: bool = False,
        asking: bool = False,
        diode_ok: bool = True,
    ) -> None:
        _check_current(max_current_a)
        _check_phases(phases)
        if not math.isfinite(reaction_s) or reaction_s < 0:
            raise ValueError(f"reaction time {reaction_s!r} s must be >= 0")
        self.reaction_s = reaction_s
        self._max_current_a = float(max_current_a)
        self._phases = phases
        self._stubborn = stubborn
        self._plugged = plugged
        self._asking = asking
        self._diode_ok = diode_ok
        self._before: Hook | None = None
        self._after: Hook | None = None

    def watch(self, before: Hook | None, after: Hook | None) -> None:
        """Register the hooks called around every effective change (one watcher only)."""
        self._before = before
        self._after = after

    def _change(self, apply: Hook) -> None:
        if self._before is not None:
            self._before()
        apply()
        if self._after is not None:
            self._after()

    @property
    def plugged(self) -> bool:
        return self._plugged

    @plugged.setter
    def plugged(self, value: bool) -> None:
        if value != self._plugged:
            self._change(lambda: setattr(self, "_plugged", value))

    @property
    def asking(self) -> bool:
        """Whether the EV wants energy (it still waits for PWM before closing S2)."""
        return self._asking

    @asking.setter
    def asking(self, value: bool) -> None:
        if value != self._asking:
            self._change(lambda: setattr(self, "_asking", value))

    @property
    def max_current_a(self) -> float:
        """The most the EV draws per phase, whatever the EVSE offers."""
        return self._max_current_a

    @max_current_a.setter
    def max_current_a(self, value: float) -> None:
        _check_current(value)
        if value != self._max_current_a:
            self._change(lambda: setattr(self, "_max_current_a", float(value)))

    @property
    def phases(self) -> int:
        return self._phases

    @phases.setter
    def phases(self, value: int) -> None:
        _check_phases(value)
        if value != self._phases:
            self._change(lambda: setattr(self, "_phases", value))

    @property
    def stubborn(self) -> bool:
        """A stubborn EV keeps S2 closed when PWM stops, so the EVSE must open under load."""
        return self._stubborn

    @stubborn.setter
    def stubborn(self, value: bool) -> None:
        if value != self._stubborn:
            self._change(lambda: setattr(self, "_stubborn", value))

    @property
    def diode_ok(self) -> bool:
        """False simulates a shorted diode, which the EVSE's pilot must report."""
        return self._diode_ok

    @diode_ok.setter
    def diode_ok(self, value: bool) -> None:
        if value != self._diode_ok:
            self._change(lambda: setattr(self, "_diode_ok", value))

    def next_state(self, output: PilotOutput, current: PilotState) -> tuple[PilotState, float]:
        """The CP state presented next, and the delay (s) before it appears.

        Plugging in and the EVSE's own -12 V are seen at once; closing S2 (and
        opening it because PWM stopped) takes the EV's reaction time; an EV that
        stops asking opens S2 at once, since that is its own decision.
        """
        if not self._plugged:
            return PilotState.A, 0.0
        if output.mode is PilotMode.F:
            return PilotState.F, 0.0
        if current not in (PilotState.B, PilotState.C, PilotState.D):
            return PilotState.B, 0.0  # R2 appears as soon as the plug or the +12 V is back
        offered = output.offered_current_a > 0.0
        if current in (PilotState.C, PilotState.D):
            if not self._asking:
                return PilotState.B, 0.0
            if offered or self._stubborn:
                return current, 0.0
            return PilotState.B, self.reaction_s
        if self._asking and offered:
            return PilotState.C, self.reaction_s
        return PilotState.B, 0.0

    def draw_a(self, output: PilotOutput, state: PilotState, powered: bool) -> float:
        """Current per phase (A): the offer capped by the EV's own limit, only in C with power."""
        if state not in (PilotState.C, PilotState.D) or not powered:
            return 0.0
        return min(self._max_current_a, output.offered_current_a)

    def phase_currents(
        self, output: PilotOutput, state: PilotState, powered: bool
    ) -> tuple[float, float, float]:
        """Per-phase draw on L1, L2, L3; a single-phase EV loads L1 only."""
        amps = self.draw_a(output, state, powered)
        return (amps, amps, amps) if self._phases == 3 else (amps, 0.0, 0.0)


def _check_current(value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"EV current limit {value!r} A must be a finite number >= 0")


def _check_phases(value: int) -> None:
    if value not in (1, 3):
        raise ValueError(f"EV phases {value!r} must be 1 or 3")
