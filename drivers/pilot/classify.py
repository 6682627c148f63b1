"""Pure control-pilot signal processing: voltages -> CP state, diode check, debounce.

No I/O and no clock of its own (time is passed in), so every rule here can be
tested over voltage sweeps and scripted timelines. Levels and practice follow the
hardware reference §1.2 (windows), §1.4 (timing, debounce) and §1.6 (diode check).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from controller.core.iec61851 import PilotState

# Nominal CP(+) levels (hardware reference §1.2). An EV with the usual 0.7 V
# diode gives B 8.98, C 6.00, D 2.93 V, well inside the windows below.
NOMINAL_V: dict[PilotState, float] = {
    PilotState.A: 12.0,
    PilotState.B: 9.0,
    PilotState.C: 6.0,
    PilotState.D: 3.0,
    PilotState.E: 0.0,
    PilotState.F: -12.0,
}

# Contiguous bands, highest first: (state, lower edge in V). The IEC windows are
# nominal ± 1 V; the gaps between them are split at the midpoint so that every
# level has a state (as OpenEVSE and SmartEVSE do): a non-rail-to-rail generator
# at +10.7 V is still A, not "invalid". E/F split at -6 V (nothing lives there).
BANDS: tuple[tuple[PilotState, float], ...] = (
    (PilotState.A, 10.5),
    (PilotState.B, 7.5),
    (PilotState.C, 4.5),
    (PilotState.D, 1.5),
    (PilotState.E, -6.0),
    (PilotState.F, -math.inf),
)

# With the 1.5 V half-bands, leaving a state needs a level in a neighbour's ±1 V window.
DEFAULT_HYSTERESIS_V = 0.5
DEFAULT_DIODE_LOW_MAX_V = -10.0  # Tinkerforge: negative level above -10 V with PWM on = diode fault


@dataclass(frozen=True, slots=True)
class CpSample:
    """One burst of CP readings: the highest and lowest level seen (volts at the CP)."""

    high_v: float
    low_v: float
    count: int = 1  # samples in the burst
    span_s: float = 0.0  # time the burst took

    def merged(self, other: CpSample) -> CpSample:
        """Two bursts read back to back, seen as one longer burst."""
        return CpSample(
            max(self.high_v, other.high_v),
            min(self.low_v, other.low_v),
            self.count + other.count,
            self.span_s + other.span_s,
        )


def _band_bounds(state: PilotState) -> tuple[float, float]:
    upper = math.inf
    for band_state, lower in BANDS:
        if band_state is state:
            return lower, upper
        upper = lower
    raise ValueError(f"no band for {state!r}")  # pragma: no cover - every state has one


class Classifier:
    """Maps the CP high level to a state, with hysteresis; checks the EV's diode.

    Hysteresis: the previous state is kept while the level stays strictly within
    its band widened by `hysteresis_v` on each side, so a level hovering at a
    boundary (noise, a drifting divider) does not flap between two states. With
    the default 0.5 V a level inside a state's IEC ±1 V window (A 11–13, B 8–10,
    C 5–7, D 2–4, E −1…1, F −13…−11 V) gives that state whatever came before.
    """

    def __init__(
        self,
        *,
        hysteresis_v: float = DEFAULT_HYSTERESIS_V,
        diode_low_max_v: float = DEFAULT_DIODE_LOW_MAX_V,
    ) -> None:
        if not 0.0 <= hysteresis_v < 1.5:
            raise ValueError(f"hysteresis {hysteresis_v!r} V must be in [0, 1.5)")
        self.hysteresis_v = hysteresis_v
        self.diode_low_max_v = diode_low_max_v

    @staticmethod
    def band(level_v: float) -> PilotState:
        """The state of `level_v` without history (no hysteresis)."""
        for state, lower in BANDS:
            if level_v >= lower:
                return state
        return PilotState.F  # NaN ends up here: the least permissive reading

    def classify(self, high_v: float, previous: PilotState | None = None) -> PilotState:
        """State for the CP high level; `previous` is kept near its band's edges."""
        if previous is not None and not math.isnan(high_v):
            lower, upper = _band_bounds(previous)
            if lower - self.hysteresis_v < high_v < upper + self.hysteresis_v:
                return previous
        return self.band(high_v)

    def diode_fault(self, sample: CpSample, pwm_on: bool, state: PilotState) -> bool | None:
        """True: diode missing/shorted; False: check passed; None: cannot tell now.

        Only meaningful with PWM on and an EV present (B/C/D): then the low half
        of the square wave must reach about -12 V through the EV's diode. A low
        level far above that (a shorted diode gives hi ≈ -lo) is the fault.
        """
        if not pwm_on or not state.plugged:
            return None
        return not sample.low_v < self.diode_low_max_v


def needs_close_confirm(reported: PilotState | None, target: PilotState) -> bool:
    """Whether reporting `target` may let the core close the contactor (C or D).

    C -> D is not a closing step (the contactor is already closed, and an
    unsupported D must open it quickly); D -> C and anything -> C/D is.
    """
    return target.wants_energy and not (reported is PilotState.C and target is PilotState.D)


def is_opening(reported: PilotState | None, target: PilotState) -> bool:
    """Leaving C/D for a state without energy: the contactor must open within 100 ms."""
    return reported is not None and reported.wants_energy and not target.wants_energy


class Debouncer:
    """Asymmetric time debounce of the classified state (hardware reference §1.4).

    * Entering C/D (closing) needs the new state in `close_bursts` consecutive
      bursts spanning at least `close_confirm_s` (SmartEVSE and Tinkerforge use
      ~500 ms): a glitch must not close a contactor.
    * Leaving C/D (opening) is reported after `open_confirm_s` (default 0: the
      first burst that sees it), since IEC 61851-1 gives 100 ms to open.
    * Other changes (A <-> B, -> E/F without energy) need `settle_bursts`
      consecutive agreeing bursts (default 2, ~20 ms more): a single glitch
      reading A in B would otherwise end a session and unlock the plug.
    """

    def __init__(
        self,
        *,
        close_confirm_s: float = 0.5,
        open_confirm_s: float = 0.0,
        settle_bursts: int = 2,
        close_bursts: int = 2,
    ) -> None:
        if close_confirm_s < 0 or open_confirm_s < 0:
            raise ValueError("confirm times must be >= 0")
        if settle_bursts < 1 or close_bursts < 1:
            raise ValueError("burst counts must be >= 1")
        self.close_confirm_s = close_confirm_s
        self.open_confirm_s = open_confirm_s
        self.settle_bursts = settle_bursts
        self.close_bursts = close_bursts
        self.reported: PilotState | None = None
        self._candidate: PilotState | None = None
        self._since = 0.0
        self._count = 0

    @property
    def candidate(self) -> PilotState | None:
        """The state waiting for confirmation, if any."""
        return self._candidate

    def reset_pending(self) -> None:
        """Forget the candidate (e.g. at a duty change: its history is not trustworthy)."""
        self._candidate = None
        self._count = 0

    def update(self, state: PilotState, now: float) -> PilotState | None:
        """Feed one burst's state; return the state to report now, or None."""
        if state is self.reported:
            self.reset_pending()
            return None
        if state is not self._candidate:
            self._candidate = state
            self._since = now
            self._count = 0
        self._count += 1
        if needs_close_confirm(self.reported, state):
            hold_s, bursts = self.close_confirm_s, self.close_bursts
        elif is_opening(self.reported, state):
            hold_s, bursts = self.open_confirm_s, 1
        else:
            hold_s, bursts = 0.0, self.settle_bursts
        if self._count >= bursts and now - self._since >= hold_s:
            self.reported = state
            self.reset_pending()
            return state
        return None

    def is_opening(self, state: PilotState) -> bool:
        """Whether `state` would be an opening change from what was reported."""
        return is_opening(self.reported, state)


# --- proximity pilot (hardware reference §2) ---------------------------------

# EVerest's "conservative interpretation" of IEC 61851-1 Table B.2: (low, high, A).
PP_BANDS: tuple[tuple[float, float, float], ...] = (
    (80.0, 140.0, 63.0),
    (140.0, 308.0, 32.0),
    (308.0, 936.0, 20.0),
    (936.0, 2460.0, 13.0),
)


def pp_resistance_ohm(volts: float, vref_v: float, pullup_ohm: float) -> float:
    """Cable resistance Rc from the PP voltage of a pull-up divider (inf: open).

    The PP input is pulled up to `vref_v` through `pullup_ohm`; the cable's Rc
    goes to PE, so V = Vref·R/(R + Rpu) and R = Rpu·V/(Vref − V).
    """
    if volts >= vref_v:
        return math.inf
    return pullup_ohm * max(volts, 0.0) / (vref_v - volts)


def cable_rating_a(resistance_ohm: float) -> float | None:
    """Cable rating for Rc per EVerest's bands; None outside them (no or bad cable)."""
    for low, high, amps in PP_BANDS:
        if low <= resistance_ohm < high or (amps == 13.0 and resistance_ohm == high):
            return amps
    return None
