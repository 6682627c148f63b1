"""Reading the control and proximity pilots through an MCP3008/MCP3208 SPI ADC.

The Pi cannot phase-lock ADC samples to the 1 kHz PWM from user space, so the
CP is read in bursts spread over more than one PWM period and reduced to the
highest level (CP high phase) and the lowest (low phase), as OpenEVSE does
(hardware reference §1.5, §4.2). The conversions go through gpiozero's MCP3xxx
classes, so the same code runs on spidev and on gpiozero's mock SPI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from drivers.pilot.classify import CpSample, cable_rating_a, pp_resistance_ohm

AdcChip = Literal["MCP3008", "MCP3208"]


@dataclass(frozen=True, slots=True)
class FrontEnd:
    """Analogue front end between a pilot line and the ADC pin.

    volts_line = (adc_volts − offset_v) × gain; `to_adc` is the inverse, which
    the simulator uses to encode the line voltage it wants the driver to see.
    """

    offset_v: float
    gain: float

    def to_line(self, adc_v: float) -> float:
        return (adc_v - self.offset_v) * self.gain

    def to_adc(self, line_v: float) -> float:
        return line_v / self.gain + self.offset_v


# [VERIFY] Board-specific: the common CP divider maps −12…+12 V linearly onto
# 0…3.3 V (mid-rail offset 1.65 V, gain 24 V / 3.3 V). Measure your board at
# +12 V and −12 V (CP open, x1 and F) and put its own offset and gain here or in
# the configuration; every other figure in this package is in CP volts.
DEFAULT_CP_FRONT_END = FrontEnd(offset_v=1.65, gain=24.0 / 3.3)
# [VERIFY] Board-specific: PP read directly at the ADC pin (no extra divider).
DEFAULT_PP_FRONT_END = FrontEnd(offset_v=0.0, gain=1.0)
DEFAULT_ADC_VREF_V = 3.3  # MCP3x08 VREF tied to 3.3 V [VERIFY]
DEFAULT_PP_PULLUP_OHM = 1000.0  # PP pull-up resistor [VERIFY]
DEFAULT_PP_VREF_V = 3.3  # the rail the PP pull-up goes to [VERIFY]


class AnalogChannel(Protocol):
    """What this module needs of gpiozero's MCP3008 / MCP3208 (one channel)."""

    @property
    def value(self) -> float:
        """0.0 … 1.0 of full scale."""

    def close(self) -> None: ...


def open_channel(
    chip: AdcChip,
    channel: int,
    *,
    vref_v: float = DEFAULT_ADC_VREF_V,
    spi_port: int = 0,
    spi_device: int = 0,
    pin_factory: Any = None,
) -> AnalogChannel:
    """One single-ended ADC channel through gpiozero (hardware SPI where available)."""
    import gpiozero  # late: importing the drivers must not need the GPIO stack

    cls: Callable[..., Any] = {"MCP3008": gpiozero.MCP3008, "MCP3208": gpiozero.MCP3208}[chip]
    device: AnalogChannel = cls(
        channel=channel,
        max_voltage=vref_v,
        port=spi_port,
        device=spi_device,
        pin_factory=pin_factory,
    )
    return device


class CpReader:
    """Burst reader of the CP voltage.

    A burst reads at least `samples` conversions and keeps going until at least
    `min_span_s` has elapsed (so it covers more than one 1 ms PWM period even on
    a fast SPI bus), but never more than `max_samples`. With no sync to the PWM,
    a 5 % duty (50 µs high) needs sample spacing below ~50 µs to be seen reliably
    [VERIFY on the target: spidev per-transfer time].
    """

    def __init__(
        self,
        channel: AnalogChannel,
        *,
        vref_v: float = DEFAULT_ADC_VREF_V,
        front_end: FrontEnd = DEFAULT_CP_FRONT_END,
        samples: int = 40,
        min_span_s: float = 0.0012,
        max_samples: int = 400,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if samples < 2 or max_samples < samples:
            raise ValueError("need 2 <= samples <= max_samples")
        self._channel = channel
        self._vref_v = vref_v
        self.front_end = front_end
        self.samples = samples
        self.min_span_s = min_span_s
        self.max_samples = max_samples
        self._clock = clock

    def burst(self) -> CpSample:
        """Read one burst; return the CP high and low levels in volts."""
        read = self._channel
        clock = self._clock
        start = clock()
        hi = -1.0
        lo = 2.0
        n = 0
        while True:
            v = read.value
            if v > hi:
                hi = v
            if v < lo:
                lo = v
            n += 1
            if n >= self.samples:
                span = clock() - start
                if span >= self.min_span_s or n >= self.max_samples:
                    break
        fe = self.front_end
        return CpSample(fe.to_line(hi * self._vref_v), fe.to_line(lo * self._vref_v), n, span)

    def close(self) -> None:
        self._channel.close()


class PpReader:
    """Proximity-pilot reader: cable resistance through a pull-up divider -> rating."""

    def __init__(
        self,
        channel: AnalogChannel,
        *,
        vref_v: float = DEFAULT_ADC_VREF_V,
        front_end: FrontEnd = DEFAULT_PP_FRONT_END,
        pullup_ohm: float = DEFAULT_PP_PULLUP_OHM,
        pullup_vref_v: float = DEFAULT_PP_VREF_V,
        samples: int = 4,
    ) -> None:
        self._channel = channel
        self._vref_v = vref_v
        self.front_end = front_end
        self.pullup_ohm = pullup_ohm
        self.pullup_vref_v = pullup_vref_v
        self.samples = max(1, samples)

    def resistance_ohm(self) -> float:
        """Rc from the mean of a few conversions (PP is a DC level: averaging is fine)."""
        total = 0.0
        for _ in range(self.samples):
            total += self._channel.value
        volts = self.front_end.to_line(total / self.samples * self._vref_v)
        return pp_resistance_ohm(volts, self.pullup_vref_v, self.pullup_ohm)

    def rating_a(self) -> float | None:
        """The plugged cable's rating in A, or None (no cable / out of every band)."""
        return cable_rating_a(self.resistance_ohm())

    def close(self) -> None:
        self._channel.close()
