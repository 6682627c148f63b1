"""Control-pilot driver for a Raspberry Pi wallbox: sysfs hardware PWM out, SPI ADC in.

See driver.py for the timing budget, pwm.py for the safe state and adc.py for
the board-specific front-end figures ([VERIFY] on each board).
"""

from drivers.pilot.adc import (
    DEFAULT_CP_FRONT_END,
    DEFAULT_PP_FRONT_END,
    CpReader,
    FrontEnd,
    PpReader,
    open_channel,
)
from drivers.pilot.classify import Classifier, CpSample, Debouncer, cable_rating_a
from drivers.pilot.driver import IecPilot, PollStats
from drivers.pilot.pwm import PERIOD_NS, PwmChipNotFound, SysfsPwm, duty_ns, find_pwmchip

__all__ = [
    "DEFAULT_CP_FRONT_END",
    "DEFAULT_PP_FRONT_END",
    "PERIOD_NS",
    "Classifier",
    "CpReader",
    "CpSample",
    "Debouncer",
    "FrontEnd",
    "IecPilot",
    "PollStats",
    "PpReader",
    "PwmChipNotFound",
    "SysfsPwm",
    "cable_rating_a",
    "duty_ns",
    "find_pwmchip",
    "open_channel",
]
