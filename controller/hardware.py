"""The real hardware of a Raspberry Pi wallbox, built from the board wiring.

Part of the composition root: it reads the configuration, the drivers do not.

One object that satisfies `drivers.interfaces.Hardware`: the pilot (sysfs
PWM + SPI ADC), the contactors, RCMs and locks (gpiozero), the Modbus meters,
the MFRC522 reader, the emergency-stop input and the status LED. The
register-level simulators plug in through the same constructor arguments a
test would use (`pin_factory`, `spi_factory`, `pwm_root`, `meter_ports`), so
the driver code that runs in a hardware-in-the-loop test is the production code.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

from controller.config import Config
from drivers.gpio import (
    EmergencyStopInput,
    GpioContactor,
    GpioLock,
    GpioRcm,
    StatusLed,
)
from drivers.interfaces import (
    CardReader,
    ConnectorLock,
    Contactor,
    FaultSource,
    Indicator,
    Meter,
    Pilot,
    ResidualCurrentMonitor,
)
from drivers.meter import meters_from_config
from drivers.pilot.adc import FrontEnd
from drivers.pilot.driver import IecPilot
from drivers.rfid.mfrc522 import Mfrc522Reader

log = logging.getLogger("evsed.board")


class BoardHardware:
    def __init__(
        self,
        config: Config,
        *,
        pin_factory: Any = None,
        spi_factory: Callable[[], Any] | None = None,
        pwm_root: str | None = None,
        meter_ports: Mapping[str, str] | None = None,
    ) -> None:
        board = config.board
        self._parts: list[Any] = []  # everything with a lifecycle, in start order
        self.pilots: list[Pilot] = []
        self.contactors: list[Contactor] = []
        self.rcms: list[ResidualCurrentMonitor | None] = []
        self.locks: list[ConnectorLock | None] = []
        try:
            for c in config.connectors:
                pilot = IecPilot.open(
                    pwm_root=pwm_root or board.pwm_sysfs,
                    pwm_device=board.pwm_chip or None,
                    pwm_channel=c.pwm_channel,
                    cp_disconnect_pin=c.cp_disconnect_pin,
                    adc_chip="MCP3208" if board.adc == "mcp3208" else "MCP3008",
                    spi_port=board.adc_spi_bus,
                    spi_device=board.adc_spi_device,
                    adc_vref_v=board.adc_vref,
                    cp_channel=c.cp_adc_channel,
                    cp_front_end=FrontEnd(board.cp_offset, board.cp_gain),
                    pp_channel=c.pp_adc_channel,
                    pp_pullup_ohm=board.pp_pullup_ohm,
                    pp_pullup_vref_v=board.pp_vref,
                    pin_factory=pin_factory,
                    cable_rating_a=c.fixed_cable_rating,
                )
                self._own(pilot)
                self.pilots.append(pilot)
                contactor = GpioContactor(
                    c.contactor_pin,
                    feedback_pin=c.contactor_feedback_pin,
                    phase_pin=c.phase_contactor_pin,
                    phase_feedback_pin=c.phase_feedback_pin,
                    settle_s=c.contactor_settle,
                    pin_factory=pin_factory,
                )
                self._own(contactor)
                self.contactors.append(contactor)
                rcm = None
                if c.rcm_fault_pin is not None and c.rcm_test_pin is not None:
                    rcm = self._own(
                        GpioRcm(c.rcm_fault_pin, c.rcm_test_pin, pin_factory=pin_factory)
                    )
                self.rcms.append(rcm)
                lock = None
                if c.lock and c.lock_pin is not None and c.lock_feedback_pin is not None:
                    lock = self._own(
                        GpioLock(c.lock_pin, c.lock_feedback_pin, pin_factory=pin_factory)
                    )
                self.locks.append(lock)
            ports = meter_ports or {}
            entries = [
                {
                    "model": m.model,
                    "port": ports.get(m.port, m.port),
                    "baud": m.baud,
                    "parity": m.parity,
                    "stopbits": m.stopbits,
                    "unit_id": m.unit_id,
                }
                for m in config.meters
            ]
            timeout = max((m.timeout for m in config.meters), default=0.3)
            retries = max((m.retries for m in config.meters), default=2)
            self.meters: list[Meter] = list(
                meters_from_config(entries, timeout=timeout, retries=retries)
            )
            self._parts.extend(self.meters)
            self.reader: CardReader | None = None
            if config.hardware.reader == "mfrc522":
                if board.reader_reset_pin is not None:
                    from gpiozero import DigitalOutputDevice

                    # The chip runs only while NRSTPD is high.
                    self._own(
                        DigitalOutputDevice(
                            board.reader_reset_pin, initial_value=True, pin_factory=pin_factory
                        )
                    )
                self.reader = self._own(
                    Mfrc522Reader(
                        board.reader_spi_bus,
                        board.reader_spi_device,
                        poll_hz=board.reader_poll_hz,
                        spi_factory=spi_factory,
                    )
                )
            self.station_inputs: list[FaultSource] = []
            if board.emergency_stop_pin is not None:
                self.station_inputs.append(
                    self._own(
                        EmergencyStopInput(
                            board.emergency_stop_pin,
                            active_high=board.emergency_stop_active_high,
                            pin_factory=pin_factory,
                        )
                    )
                )
            self.indicator: Indicator | None = None
            if board.led_pin is not None:
                self.indicator = self._own(StatusLed(board.led_pin, pin_factory=pin_factory))
        except BaseException:
            self._close_all()
            raise

    def _own(self, part: Any) -> Any:
        self._parts.append(part)
        return part

    async def start(self) -> None:
        for part in self._parts:
            if hasattr(part, "start"):
                await part.start()

    async def stop(self) -> None:
        """Stop in reverse order; every part leaves its outputs off."""
        for part in reversed(self._parts):
            try:
                if hasattr(part, "stop"):
                    await part.stop()
                elif inspect.iscoroutinefunction(getattr(part, "close", None)):
                    await part.close()
            except Exception:
                log.exception("stopping %s failed", type(part).__name__)
        self._close_all()

    def _close_all(self) -> None:
        """Release every synchronous part (also after a failed construction)."""
        for part in reversed(self._parts):
            close = getattr(part, "close", None)
            if close is not None and not inspect.iscoroutinefunction(close):
                with contextlib.suppress(Exception):
                    close()
