"""IEC 61851-1 control-pilot vocabulary and the duty-cycle <-> current rules.

Pure functions only: both the station core (what to offer) and the simulated
EV (what it may draw) use them, so the two sides of the pilot agree by
construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MIN_CURRENT_A = 6.0
MAX_CURRENT_A = 80.0


class PilotState(StrEnum):
    """What the EVSE reads on the control pilot."""

    A = "A"  # no EV (+12 V)
    B = "B"  # EV connected, not asking for energy (+9 V)
    C = "C"  # EV asks for energy (+6 V)
    D = "D"  # EV asks for energy with ventilation (+3 V)
    E = "E"  # CP shorted to PE / no supply (0 V)
    F = "F"  # -12 V constant: EVSE not available (only when we drive it)

    @property
    def plugged(self) -> bool:
        return self in (PilotState.B, PilotState.C, PilotState.D)

    @property
    def wants_energy(self) -> bool:
        return self in (PilotState.C, PilotState.D)


class PilotMode(StrEnum):
    """What the EVSE drives onto the control pilot."""

    X1 = "x1"  # constant +12 V: not offering energy
    PWM = "pwm"  # 1 kHz PWM: offering the current encoded in the duty
    F = "F"  # constant -12 V: EVSE not available


@dataclass(frozen=True, slots=True)
class PilotOutput:
    mode: PilotMode
    duty_percent: float = 100.0

    @classmethod
    def x1(cls) -> PilotOutput:
        return cls(PilotMode.X1, 100.0)

    @classmethod
    def state_f(cls) -> PilotOutput:
        return cls(PilotMode.F, 0.0)

    @classmethod
    def offering(cls, current_a: float) -> PilotOutput:
        return cls(PilotMode.PWM, duty_from_current(current_a))

    @property
    def offered_current_a(self) -> float:
        return current_from_duty(self.duty_percent) if self.mode is PilotMode.PWM else 0.0


def duty_from_current(current_a: float) -> float:
    """Duty cycle in percent that offers `current_a` (EVSE side, IEC 61851-1 Annex A).

    6–51 A: D = I / 0.6; 51–80 A: D = I / 2.5 + 64. The band between 51 A and
    52.5 A has no PWM value of its own and is offered as 51 A. Callers clamp to
    the 6–80 A range first; values outside it are a programming error.
    """
    if not MIN_CURRENT_A <= current_a <= MAX_CURRENT_A:
        raise ValueError(f"offered current {current_a} A outside 6–80 A")
    if current_a <= 51.0:
        return round(current_a / 0.6, 2)
    if current_a < 52.5:
        return 85.0
    return round(current_a / 2.5 + 64.0, 2)


def current_from_duty(duty_percent: float) -> float:
    """Current in A an EV may draw at `duty_percent` (EV side); 0 where charging is not allowed."""
    d = duty_percent
    if 8.0 <= d < 10.0:
        return 6.0
    if 10.0 <= d <= 85.0:
        return round(d * 0.6, 2)
    if 85.0 < d <= 96.0:
        return round((d - 64.0) * 2.5, 2)
    if 96.0 < d <= 97.0:
        return 80.0
    return 0.0
