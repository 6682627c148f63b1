"""GPIO drivers (gpiozero) for a Raspberry Pi wallbox.

Every driver takes `pin_factory` (None: gpiozero's default), so tests and the
simulated board use gpiozero's MockFactory (see hwsim.gpio_sim). Every driver
starts with its outputs off and switches them off on close(); fault callbacks
are delivered on the asyncio loop captured by start().
"""

from drivers.gpio.contactor import GpioContactor
from drivers.gpio.inputs import EmergencyStopInput
from drivers.gpio.led import StatusLed
from drivers.gpio.lock import GpioLock
from drivers.gpio.rcm import GpioRcm
from drivers.gpio.watchdog import HardwareWatchdog

__all__ = [
    "EmergencyStopInput",
    "GpioContactor",
    "GpioLock",
    "GpioRcm",
    "HardwareWatchdog",
    "StatusLed",
]
