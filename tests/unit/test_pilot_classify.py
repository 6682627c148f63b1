"""CP classification, diode check, debounce and PP bands (drivers.pilot.classify): pure rules."""

from __future__ import annotations

import math
import random

import pytest

from controller.core.iec61851 import PilotState
from drivers.pilot.classify import (
    Classifier,
    CpSample,
    Debouncer,
    cable_rating_a,
    pp_resistance_ohm,
)

S = PilotState
# IEC windows as commonly cited (hardware reference §1.2): inside them the state is certain.
IEC_WINDOWS = {S.A: (11.0, 13.0), S.B: (8.0, 10.0), S.C: (5.0, 7.0), S.D: (2.0, 4.0),
               S.E: (-1.0, 1.0), S.F: (-13.0, -11.0)}  # fmt: skip
# Sweep transitions with the default 0.5 V hysteresis (band edges 10.5/7.5/4.5/1.5/-6 V).
UP_EDGES = [(-5.5, S.E), (2.0, S.D), (5.0, S.C), (8.0, S.B), (11.0, S.A)]
DOWN_EDGES = [(10.0, S.B), (7.0, S.C), (4.0, S.D), (1.0, S.E), (-6.5, S.F)]
SWEEP = [round(i * 0.1, 1) for i in range(-130, 131)]  # -13.0 … +13.0 V every 0.1 V


def sample(high: float, pwm: bool) -> CpSample:
    """A burst with PWM on sees −12 V in the low half; without PWM the level is constant."""
    return CpSample(high, -12.0 if pwm else high)


@pytest.mark.parametrize("pwm", [False, True])
def test_sweep_without_history_gives_the_nearest_band(pwm: bool) -> None:
    c = Classifier()
    for v in SWEEP:
        got = c.classify(sample(v, pwm).high_v)
        for state, (lo, hi) in IEC_WINDOWS.items():
            if lo <= v <= hi:
                assert got is state, v
        expected = (S.A if v >= 10.5 else S.B if v >= 7.5 else S.C if v >= 4.5
                    else S.D if v >= 1.5 else S.E if v >= -6.0 else S.F)  # fmt: skip
        assert got is expected, v


@pytest.mark.parametrize("pwm", [False, True])
@pytest.mark.parametrize("direction", ["up", "down"])
def test_sweep_with_hysteresis(pwm: bool, direction: str) -> None:
    c = Classifier()
    levels = SWEEP if direction == "up" else SWEEP[::-1]
    state: PilotState | None = None
    changes: list[tuple[float, PilotState]] = []
    for v in levels:
        new = c.classify(sample(v, pwm).high_v, state)
        if new is not state:
            changes.append((v, new))
        state = new
        # whatever came before, a level in a state's IEC window is that state
        for window_state, (lo, hi) in IEC_WINDOWS.items():
            if lo <= v <= hi:
                assert new is window_state, (direction, v)
    first = (-13.0, S.F) if direction == "up" else (13.0, S.A)
    assert changes == [first, *(UP_EDGES if direction == "up" else DOWN_EDGES)]


@pytest.mark.parametrize(("edge", "below", "above"), [
    (10.5, S.B, S.A), (7.5, S.C, S.B), (4.5, S.D, S.C), (1.5, S.E, S.D), (-6.0, S.F, S.E),
])  # fmt: skip
def test_level_oscillating_around_a_boundary_does_not_flap(
    edge: float, below: PilotState, above: PilotState
) -> None:
    c = Classifier()
    for start in (below, above):
        state = start
        for i in range(200):
            state = c.classify(edge + (0.45 if i % 2 else -0.45), state)
            assert state is start


def test_no_false_states_with_noise() -> None:
    """σ 0.2 V on 40-sample bursts (max = high level), 2000 bursts per state."""
    rng = random.Random(1)
    c = Classifier()
    levels = {S.A: 12.0, S.B: 8.98, S.C: 6.0, S.D: 2.93, S.E: 0.0, S.F: -12.0}
    for state, level in levels.items():
        current: PilotState | None = None
        for _ in range(2000):
            high = max(level + rng.gauss(0.0, 0.2) for _ in range(40))
            current = c.classify(high, current)
            assert current is state, (state, high)


def test_diode_check() -> None:
    c = Classifier()
    ok = CpSample(9.0, -12.0)
    shorted = CpSample(8.8, -8.8)  # hi ≈ −lo: R2/R3 load the negative half too
    weak = CpSample(9.0, -9.5)
    for state in (S.B, S.C, S.D):
        assert c.diode_fault(ok, True, state) is False
        assert c.diode_fault(shorted, True, state) is True
        assert c.diode_fault(weak, True, state) is True
        assert c.diode_fault(shorted, False, state) is None  # no PWM: nothing to see
    assert c.diode_fault(CpSample(12.0, -12.0), True, S.A) is None  # no EV
    assert c.diode_fault(CpSample(-12.0, -12.0), True, S.F) is None
    assert c.diode_fault(CpSample(9.0, -10.7), True, S.B) is False  # non-rail-to-rail stage


def test_classifier_rejects_silly_hysteresis() -> None:
    with pytest.raises(ValueError):
        Classifier(hysteresis_v=1.5)


def test_nan_reads_as_f() -> None:
    assert Classifier().classify(math.nan, S.C) is S.F


# --- debounce ----------------------------------------------------------------------


def feed(
    d: Debouncer, script: list[tuple[float, PilotState]], poll: float = 0.02
) -> list[tuple[float, PilotState]]:
    """Feed each state for the given seconds at one burst per poll; return (t, reported)."""
    t = 0.0
    out: list[tuple[float, PilotState]] = []
    for seconds, state in script:
        end = t + seconds
        while t < end - 1e-9:
            reported = d.update(state, t)
            if reported is not None:
                out.append((round(t, 3), reported))
            t += poll
    return out


def test_a_b_c_needs_close_confirm_and_c_b_is_at_once() -> None:
    d = Debouncer()
    events = feed(d, [(0.2, S.A), (0.3, S.B), (1.0, S.C), (0.1, S.B), (0.1, S.A)])
    assert [s for _, s in events] == [S.A, S.B, S.C, S.B, S.A]
    t = dict((s, t) for t, s in reversed(events))
    assert t[S.A] == 0.02  # first reading: two agreeing bursts
    assert t[S.B] == pytest.approx(0.22)  # A -> B: second B burst
    assert t[S.C] - 0.5 >= 0.5  # C first seen at 0.5 s, reported 0.5 s later
    assert t[S.C] == pytest.approx(1.0)
    c_to_b = [t for t, s in events if s is S.B][1]
    assert c_to_b == pytest.approx(1.5)  # the first B burst after C: no delay at all
    assert events[-1][0] == pytest.approx(1.62)  # B -> A: two bursts


def test_glitches_are_filtered_but_opening_is_not() -> None:
    d = Debouncer()
    feed(d, [(0.1, S.B)])
    # a single A burst in B (would unlock the plug) and a short C (would close) are dropped
    assert feed(d, [(0.02, S.A), (0.1, S.B), (0.3, S.C), (0.1, S.B)]) == []
    assert d.reported is S.B
    feed(d, [(0.6, S.C)])
    assert d.reported is S.C
    # leaving C is reported on the very first burst, even a lone one: opening is safe
    assert feed(d, [(0.02, S.B)]) == [(0.0, S.B)]


@pytest.mark.parametrize("target", [S.A, S.B, S.E, S.F])
def test_every_opening_change_is_reported_on_the_first_burst(target: PilotState) -> None:
    d = Debouncer()
    feed(d, [(0.1, S.B), (0.6, S.C)])
    assert d.reported is S.C
    assert d.update(target, 10.0) is target


def test_c_to_d_is_quick_d_to_c_is_confirmed() -> None:
    d = Debouncer()
    feed(d, [(0.1, S.B), (0.6, S.C)])
    assert d.update(S.D, 5.0) is None  # second burst needed (not an opening, not a close)
    assert d.update(S.D, 5.02) is S.D
    assert d.update(S.C, 6.0) is None
    assert d.update(S.C, 6.4) is None
    assert d.update(S.C, 6.5) is S.C


def test_configurable_close_confirm() -> None:
    d = Debouncer(close_confirm_s=1.0)
    events = feed(d, [(0.1, S.B), (2.0, S.C)])
    assert events[-1] == (pytest.approx(1.1), S.C)


def test_reset_pending_restarts_the_close_confirm() -> None:
    d = Debouncer()
    feed(d, [(0.1, S.B)])
    assert d.update(S.C, 1.0) is None
    d.reset_pending()
    assert d.update(S.C, 1.6) is None  # 0.6 s since the first C, but the history was dropped
    assert d.update(S.C, 2.1) is S.C


# --- proximity pilot -------------------------------------------------------------------


@pytest.mark.parametrize(("ohm", "amps"), [
    (79.9, None), (80.0, 63.0), (100.0, 63.0), (139.9, 63.0), (140.0, 32.0), (220.0, 32.0),
    (307.9, 32.0), (308.0, 20.0), (680.0, 20.0), (935.9, 20.0), (936.0, 13.0), (1500.0, 13.0),
    (2460.0, 13.0), (2460.1, None), (math.inf, None), (0.0, None),
])  # fmt: skip
def test_pp_bands(ohm: float, amps: float | None) -> None:
    assert cable_rating_a(ohm) == amps


@pytest.mark.parametrize("ohm", [100.0, 220.0, 680.0, 1500.0])
def test_pp_resistance_from_the_divider(ohm: float) -> None:
    volts = 3.3 * ohm / (ohm + 1000.0)
    assert pp_resistance_ohm(volts, 3.3, 1000.0) == pytest.approx(ohm)
    assert pp_resistance_ohm(3.3, 3.3, 1000.0) == math.inf
    assert pp_resistance_ohm(-0.01, 3.3, 1000.0) == 0.0
