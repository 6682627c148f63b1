"""Status LED: one LED or an RGB LED showing the connector status with simple patterns.

Patterns run in gpiozero's background blink thread, so show() never blocks the
loop. One LED distinguishes states by rhythm; an RGB LED by colour and rhythm.
"""

from __future__ import annotations

import atexit
import logging
from dataclasses import dataclass
from typing import Any

from gpiozero import LED, RGBLED

from drivers.gpio._base import PinSpec

log = logging.getLogger(__name__)

Colour = tuple[int, int, int]
OFF: Colour = (0, 0, 0)
RED: Colour = (1, 0, 0)
GREEN: Colour = (0, 1, 0)
BLUE: Colour = (0, 0, 1)
YELLOW: Colour = (1, 1, 0)


@dataclass(frozen=True, slots=True)
class Pattern:
    """`colour` while on; off_s == 0 means steady. OFF colour means dark."""

    colour: Colour
    on_s: float = 1.0
    off_s: float = 0.0


DARK = Pattern(OFF)

# Keys are OCPP 1.6 ChargePointStatus values (controller.core.status.ConnectorStatus).
RGB_PATTERNS: dict[str, Pattern] = {
    "Available": Pattern(GREEN),
    "Preparing": Pattern(BLUE, 0.5, 0.5),
    "Charging": Pattern(BLUE),
    "SuspendedEV": Pattern(BLUE, 0.2, 1.8),
    "SuspendedEVSE": Pattern(BLUE, 0.2, 1.8),
    "Finishing": Pattern(GREEN, 0.5, 0.5),
    "Reserved": Pattern(YELLOW),
    "Unavailable": DARK,
    "Faulted": Pattern(RED, 0.1, 0.1),
    # Not a connector status: the configuration on the boot partition was rejected.
    "ProvisioningFailed": Pattern(YELLOW, 0.1, 0.1),
}

# A single LED only has rhythm: steady, slow, mostly-on, short flash, fast.
MONO_PATTERNS: dict[str, Pattern] = {
    "Available": Pattern(RED),
    "Preparing": Pattern(RED, 0.5, 0.5),
    "Charging": Pattern(RED, 1.5, 0.5),
    "SuspendedEV": Pattern(RED, 0.2, 1.8),
    "SuspendedEVSE": Pattern(RED, 0.2, 1.8),
    "Finishing": Pattern(RED, 0.5, 0.5),
    "Reserved": Pattern(RED, 0.1, 0.9),
    "Unavailable": DARK,
    "Faulted": Pattern(RED, 0.1, 0.1),
    "ProvisioningFailed": Pattern(RED, 0.3, 0.3),
}


class StatusLed:
    """Indicator on one LED (`pin`) or an RGB LED (`rgb=(red, green, blue)`).

    An unknown status shows dark (and is logged) rather than raising: the
    indicator must never take the daemon down.
    """

    def __init__(
        self,
        pin: PinSpec | None = None,
        *,
        rgb: tuple[PinSpec, PinSpec, PinSpec] | None = None,
        active_high: bool = True,
        pin_factory: Any = None,
    ) -> None:
        if (pin is None) == (rgb is None):
            raise ValueError("give exactly one of pin or rgb")
        self._led: LED | None = None
        self._rgb: RGBLED | None = None
        if rgb is not None:
            red, green, blue = rgb
            self._rgb = RGBLED(
                red, green, blue, active_high=active_high, pwm=False, pin_factory=pin_factory
            )
        else:
            self._led = LED(pin, active_high=active_high, pin_factory=pin_factory)
        self._patterns = RGB_PATTERNS if self._rgb is not None else MONO_PATTERNS
        self._pattern: Pattern | None = None
        atexit.register(self.close)

    @property
    def pattern(self) -> Pattern | None:
        return self._pattern

    def show(self, status: str) -> None:
        pattern = self._patterns.get(str(status))
        if pattern is None:
            log.warning("status LED: unknown status %r", status)
            pattern = DARK
        if pattern == self._pattern:
            return  # don't restart a running blink
        self._pattern = pattern
        try:
            self._apply(pattern)
        except Exception:
            log.exception("status LED: could not show %s", status)

    def _apply(self, p: Pattern) -> None:
        if self._rgb is not None:
            if p.colour == OFF:
                self._rgb.off()
            elif p.off_s == 0:
                self._rgb.color = p.colour
            else:
                self._rgb.blink(on_time=p.on_s, off_time=p.off_s, on_color=p.colour)
        elif self._led is not None:
            if p.colour == OFF:
                self._led.off()
            elif p.off_s == 0:
                self._led.on()
            else:
                self._led.blink(on_time=p.on_s, off_time=p.off_s)

    def close(self) -> None:
        """Stop any blink thread, switch off and release the pins. Idempotent."""
        for dev in (self._led, self._rgb):
            if dev is not None and not dev.closed:
                dev.off()
                dev.close()
        atexit.unregister(self.close)

    def __enter__(self) -> StatusLed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
