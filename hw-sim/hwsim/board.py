"""A whole wallbox board in software, at the level the real drivers talk to.

The real drivers (sysfs PWM, MCP3x08 on SPI, gpiozero contactor/RCM/lock,
Modbus RTU meter, MFRC522 over spidev) run unchanged against:

- a fake sysfs PWM tree and an MCP3x08 responder on gpiozero's mock SPI,
  whose CP voltage comes from the simulated EV's resistor network;
- gpiozero mock pins whose contactor feedback follows the coil (or stays
  welded), an RCM that answers its test pulse, a lock with feedback;
- a Modbus RTU slave on a pseudo-terminal whose registers follow the EV's draw;
- an MFRC522 register-level emulator behind a fake spidev device.

It offers the same control surface as `hwsim.hardware.SimHardware`, so the
control socket drives it unchanged. One connector (the pilot simulator owns
one PWM channel and one ADC).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from controller.config import Config
from controller.core.iec61851 import PilotMode, PilotOutput
from drivers.interfaces import FaultKind
from drivers.pilot.adc import FrontEnd
from hwsim.ev import SimEV
from hwsim.gpio_sim import ContactorSim, EStopSim, LockSim, RcmSim, SimPinFactory
from hwsim.hardware import normalise_uid
from hwsim.mfrc522 import FakeSpiDev, Mfrc522Emulator, SimCard
from hwsim.modbus_meter import ModbusMeterSim
from hwsim.pilot_sim import PilotSim

PHYSICS_S = 0.05  # how often the meter follows the EV's draw
CARD_HELD_S = 1.0  # how long a presented card lies on the reader
SPI0_CE = {0: 8, 1: 7}


class SimulatedBoard:
    def __init__(self, config: Config, workdir: Path, voltage_v: float = 230.0) -> None:
        if len(config.connectors) != 1:
            raise ValueError("the simulated board models one connector")
        c = config.connectors[0]
        board = config.board
        self.voltage_v = voltage_v
        self.factory = SimPinFactory()
        self.ev = SimEV(reaction_s=0.2)
        # The ADC responder must claim the SPI pins before any other part.
        self.pilot = PilotSim(
            workdir / "sysfs",
            self.ev,
            adc_chip="MCP3208" if board.adc == "mcp3208" else "MCP3008",
            cp_channel=c.cp_adc_channel,
            pp_channel=c.pp_adc_channel,
            cable_a=32.0 if c.cable == "socket" else None,
            pwm_channel=c.pwm_channel,
            cp_front_end=FrontEnd(board.cp_offset, board.cp_gain),
            adc_vref_v=board.adc_vref,
            pp_pullup_ohm=board.pp_pullup_ohm,
            pp_pullup_vref_v=board.pp_vref,
            pin_factory=self.factory,
            adc_select_pin=SPI0_CE.get(board.adc_spi_device, 8),
        )
        self.contactor = ContactorSim(self.factory, c.contactor_pin, c.contactor_feedback_pin)
        self.rcm = (
            RcmSim(self.factory, c.rcm_fault_pin, c.rcm_test_pin)
            if c.rcm_fault_pin is not None and c.rcm_test_pin is not None
            else None
        )
        self.lock = (
            LockSim(self.factory, c.lock_pin, c.lock_feedback_pin)
            if c.lock and c.lock_pin is not None and c.lock_feedback_pin is not None
            else None
        )
        self.estop = (
            EStopSim(self.factory, board.emergency_stop_pin)
            if board.emergency_stop_pin is not None
            else None
        )
        self.reader_chip = Mfrc522Emulator()
        self.meter_bus = ModbusMeterSim().start()
        self.meter_ports: dict[str, str] = {}
        self.meters = []
        for m in config.meters:
            self.meters.append(self.meter_bus.add(m.model, m.unit_id, energy_wh=0.0))
            self.meter_ports[m.port] = self.meter_bus.port
        self._running = True
        self._physics = threading.Thread(target=self._follow_ev, name="board-physics", daemon=True)
        self._physics.start()

    # --- what the drivers are given ------------------------------------------------

    @property
    def pwm_root(self) -> str:
        return str(self.pilot.pwm_root)

    def spi_factory(self) -> FakeSpiDev:
        return FakeSpiDev(self.reader_chip)

    def driver_overrides(self) -> dict[str, Any]:
        return {
            "pin_factory": self.factory,
            "spi_factory": self.spi_factory,
            "pwm_root": self.pwm_root,
            "meter_ports": self.meter_ports,
        }

    # --- physics ------------------------------------------------------------------

    def _output(self) -> PilotOutput:
        return self.pilot.output() or PilotOutput.x1()

    def _follow_ev(self) -> None:
        """The meter measures what the EV draws through the (actually) closed contactor."""
        last = time.monotonic()
        while self._running:
            time.sleep(PHYSICS_S)
            now = time.monotonic()
            currents = self.ev.phase_currents(
                self._output(), self.pilot.line.state(), self.contactor.closed
            )
            for meter in self.meters:
                meter.advance(now - last)
                meter.set(
                    current_a=currents,
                    voltage_v=(self.voltage_v,) * 3,
                    power_w=sum(a * self.voltage_v for a in currents),
                )
            last = now

    # --- the control surface (as SimHardware) -----------------------------------------

    def _check(self, n: int) -> None:
        if n != 1:
            raise ValueError(f"no connector {n}: the simulated board has connector 1")

    def plug(self, n: int) -> None:
        self._check(n)
        self.ev.plugged = True

    def unplug(self, n: int) -> None:
        self._check(n)
        self.ev.asking = False
        self.ev.plugged = False

    def ev_charge(self, n: int, on: bool) -> None:
        self._check(n)
        self.ev.asking = on

    def ev_current(self, n: int, amps: float) -> None:
        self._check(n)
        self.ev.max_current_a = amps

    def ev_stubborn(self, n: int, on: bool) -> None:
        self._check(n)
        self.ev.stubborn = on

    def present_card(self, uid: str) -> bool:
        card = SimCard(bytes.fromhex(normalise_uid(uid)))
        self.reader_chip.place(card)
        timer = threading.Timer(CARD_HELD_S, self.reader_chip.remove, args=(card,))
        timer.daemon = True
        timer.start()
        return not self.reader_chip.dead

    def set_meter(self, n: int, wh: float) -> None:
        self._check(n)
        for meter in self.meters:
            meter.set(energy_wh=wh)

    def raise_fault(self, kind: FaultKind | str, connector: int | None = None) -> None:
        self._fault(FaultKind(kind), True)

    def clear_fault(self, kind: FaultKind | str, connector: int | None = None) -> None:
        self._fault(FaultKind(kind), False)

    def _fault(self, kind: FaultKind, active: bool) -> None:
        if kind is FaultKind.RCD:
            if self.rcm is None:
                raise ValueError("this board has no RCM wired")
            self.rcm.trip() if active else self.rcm.clear()
        elif kind is FaultKind.WELD:
            self.contactor.welded = active
        elif kind is FaultKind.DIODE:
            self.ev.diode_ok = not active
        elif kind is FaultKind.METER:
            for meter in self.meters:
                meter.go_silent(None) if active else meter.clear_faults()
        elif kind is FaultKind.READER:
            self.reader_chip.dead = active
        elif kind is FaultKind.GENERIC:
            self.pilot.line.short_to_pe = active  # the CP shorted to PE: state E
        elif kind is FaultKind.EMERGENCY_STOP and self.estop is not None:
            self.estop.press() if active else self.estop.release()
        else:
            raise ValueError(f"the simulated board cannot raise {kind.value}")

    def snapshot(self) -> dict[str, Any]:
        out = self._output()
        currents = self.ev.phase_currents(out, self.pilot.line.state(), self.contactor.closed)
        meter = self.meters[0].values() if self.meters else {}
        return {
            "connectors": [
                {
                    "connector": 1,
                    "pilot": {
                        "mode": out.mode.value,
                        "duty_percent": out.duty_percent if out.mode is PilotMode.PWM else None,
                        "state": self.pilot.line.state().value,
                    },
                    "contactor": {
                        "energised": self.contactor.energised,
                        "actually_closed": self.contactor.closed,
                        "welded": self.contactor.welded,
                    },
                    "lock": None if self.lock is None else {"locked": self.lock.locked},
                    "ev": {
                        "plugged": self.ev.plugged,
                        "asking": self.ev.asking,
                        "current_a": list(currents),
                    },
                    "meter": meter,
                }
            ],
            "reader": {"online": not self.reader_chip.dead},
        }

    def close(self) -> None:
        self._running = False
        self._physics.join(1.0)
        self.meter_bus.stop()
        for part in (self.contactor, self.rcm, self.lock, self.estop):
            if part is not None:
                part.close()
        self.pilot.close()
