"""Duty cycle <-> current, both directions (hardware reference §1.3)."""

import pytest

from controller.core.iec61851 import current_from_duty, duty_from_current


@pytest.mark.parametrize(
    ("amps", "duty"),
    [(6, 10.0), (16, 26.67), (32, 53.33), (51, 85.0), (52, 85.0), (63, 89.2), (80, 96.0)],
)
def test_duty_from_current(amps: float, duty: float) -> None:
    assert duty_from_current(amps) == pytest.approx(duty, abs=0.01)


@pytest.mark.parametrize("amps", [5.9, 80.1, 0, -1])
def test_duty_outside_range_is_refused(amps: float) -> None:
    with pytest.raises(ValueError):
        duty_from_current(amps)


@pytest.mark.parametrize(
    ("duty", "amps"),
    [
        (5.0, 0.0),
        (8.0, 6.0),
        (9.9, 6.0),
        (10.0, 6.0),
        (26.67, 16.0),
        (85.0, 51.0),
        (89.2, 63.0),
        (96.0, 80.0),
        (96.5, 80.0),
        (97.5, 0.0),
        (100.0, 0.0),
    ],
)
def test_current_from_duty(duty: float, amps: float) -> None:
    assert current_from_duty(duty) == pytest.approx(amps, abs=0.01)


@pytest.mark.parametrize("amps", [6, 10, 16, 20, 25, 32, 40, 50, 51, 53, 63, 70, 80])
def test_round_trip(amps: float) -> None:
    assert current_from_duty(duty_from_current(amps)) == pytest.approx(amps, abs=0.05)
