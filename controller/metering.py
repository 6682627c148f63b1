"""Meter readings turned into OCPP-neutral samples, and when to take them.

A sample is a dict with measurand, value (float), unit, phase, context and
location; each OCPP layer renders it in its own shape (1.6 sends the value as
a string, 2.0.1 as a number).
"""

from __future__ import annotations

import math
from typing import Any

from drivers.interfaces import MeterReading

Sample = dict[str, Any]

PHASES = ("L1", "L2", "L3")


def samples(
    reading: MeterReading,
    measurands: list[str],
    context: str,
    phases: int,
    offered_current_a: float,
) -> list[Sample]:
    """The samples for `measurands`, in the order asked for."""
    out: list[Sample] = []

    def add(measurand: str, value: float, unit: str | None, phase: str | None = None) -> None:
        sample: Sample = {
            "measurand": measurand,
            "value": round(value, 3),
            "context": context,
            "location": "Outlet",
        }
        if unit is not None:
            sample["unit"] = unit
        if phase is not None:
            sample["phase"] = phase
        out.append(sample)

    for measurand in measurands:
        if measurand == "Energy.Active.Import.Register":
            add(measurand, reading.energy_wh, "Wh")
        elif measurand == "Power.Active.Import":
            add(measurand, reading.power_w, "W")
        elif measurand == "Current.Import":
            for phase, amps in zip(PHASES[:phases], reading.current_a, strict=False):
                add(measurand, amps, "A", phase)
        elif measurand == "Voltage":
            for phase, volts in zip(PHASES[:phases], reading.voltage_v, strict=False):
                add(measurand, volts, "V", f"{phase}-N")
        elif measurand == "Current.Offered":
            add(measurand, offered_current_a, "A")
        elif measurand == "Power.Offered":
            volts = sum(reading.voltage_v[:phases]) / max(1, len(reading.voltage_v[:phases]))
            add(measurand, offered_current_a * volts * phases, "W")
        elif measurand == "Frequency" and reading.frequency_hz is not None:
            add(measurand, reading.frequency_hz, None)
    return out


def next_aligned(now_epoch: float, interval_s: int) -> float:
    """The next clock-aligned instant: multiples of the interval since midnight UTC."""
    return (math.floor(now_epoch / interval_s) + 1) * interval_s
