"""Simulated control-pilot hardware for the real pilot driver (drivers.pilot).

Unlike hwsim.hardware.SimPilot, which replaces the driver, these pieces sit
*under* it, so the driver's own sysfs and SPI code runs:

* FakePwmSysfs: a fake /sys/class/pwm tree in a directory; a watcher thread
  plays the kernel's part for `export`/`unexport`, and output() reads back what
  the driver wrote (mode and duty) for the EV model;
* SimCpLine: the CP wire between that generator and a hwsim.ev.SimEV: the
  state the EV presents over (monotonic) time, with its reaction delays, and
  the voltage of each sample;
* McpResponder: the slave side of an MCP3008/MCP3208 on gpiozero's mock SPI,
  answering every conversion from a per-channel voltage source;
* PilotSim: all of it wired up, with the PP cable on a second channel.

Sampling is deterministic: each CP conversion advances the PWM phase by the
golden ratio (mod 1), a low-discrepancy sequence, so any burst of 40 samples
sees the high phase in 40·duty ± 2 of them (at least one at 5 % duty),
whatever the real-time speed of the mock SPI: no aliasing with the wall clock.
Noise comes from a seeded generator.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockSPIDevice

from controller.core.iec61851 import PilotMode, PilotOutput, PilotState
from drivers.pilot.adc import (
    DEFAULT_ADC_VREF_V,
    DEFAULT_CP_FRONT_END,
    DEFAULT_PP_FRONT_END,
    DEFAULT_PP_PULLUP_OHM,
    DEFAULT_PP_VREF_V,
    AdcChip,
    FrontEnd,
)
from hwsim.ev import SimEV

PI5_PWM_DEVICE = "devices/platform/axi/1000120000.pcie/1f00098000.pwm"  # RP1 PWM0
PI4_PWM_DEVICE = "devices/platform/soc/7e20c000.pwm"  # BCM2711 PWM0
PI5_OTHER_DEVICE = "devices/platform/axi/1000120000.pcie/1f0009c000.pwm"  # a second chip

OUTPUT_CACHE_S = 0.0005  # how stale the EV's view of the PWM files may be
GOLDEN_STEP = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618…: phase step per conversion

# EV resistances seen from CP (hardware reference §1.1): R3 alone, R3 ∥ 1.3 kΩ, R3 ∥ 270 Ω.
EV_RESISTANCE_OHM = {PilotState.B: 2740.0, PilotState.C: 882.0, PilotState.D: 246.0}
SOURCE_OHM = 1000.0  # the EVSE's series resistor R1
DIODE_DROP_V = 0.7
# PP cable resistances (hardware reference §2) by rating.
CABLE_OHM = {13.0: 1500.0, 20.0: 680.0, 32.0: 220.0, 63.0: 100.0}


# --- sysfs -----------------------------------------------------------------------


class FakePwmSysfs:
    """A fake sysfs PWM class directory, with a thread acting as the kernel for export.

    `chips` maps a pwmchip index to its device path (relative to the fake /sys);
    each chip appears as class/pwm/pwmchipN -> ../../devices/…/<dev>/pwm/pwmchipN
    with `device` -> ../.. as on a real kernel. The driver is given `class_dir`.
    Writing N to `export` creates pwmN/{period,duty_cycle,enable,polarity} after
    `export_delay_s` (a real kernel is synchronous, but udev's permission change
    is not, so the driver must wait either way). `react=False` leaves export to
    pre_export(), for a driver that finds the channel already exported.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        chips: Mapping[int, str] | None = None,
        npwm: int = 4,
        react: bool = True,
        export_delay_s: float = 0.005,
        inverted: bool = False,
    ) -> None:
        self.root = Path(root)
        self.sys = self.root / "sys"
        self.class_dir = self.sys / "class" / "pwm"
        self.class_dir.mkdir(parents=True, exist_ok=True)
        self.inverted = inverted
        self.export_delay_s = export_delay_s
        self._chips: dict[int, Path] = {}
        for index, device in (chips if chips is not None else {2: PI5_PWM_DEVICE}).items():
            chip = self.sys / device / "pwm" / f"pwmchip{index}"
            self._chips[index] = chip
            if chip.exists():
                continue  # made by an earlier run: sysfs outlives a restart of the daemon
            chip.mkdir(parents=True)
            (chip / "npwm").write_text(f"{npwm}\n")
            (chip / "export").write_text("")
            (chip / "unexport").write_text("")
            (chip / "device").symlink_to(Path("..") / "..")
            (self.class_dir / f"pwmchip{index}").symlink_to(os.path.relpath(chip, self.class_dir))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if react:
            self._thread = threading.Thread(target=self._watch, name="fake-pwm-sysfs", daemon=True)
            self._thread.start()

    def chip_dir(self, index: int) -> Path:
        """The chip's class entry (what the driver sees)."""
        return self.class_dir / f"pwmchip{index}"

    def channel_dir(self, index: int, channel: int = 0) -> Path:
        return self.chip_dir(index) / f"pwm{channel}"

    def pre_export(self, index: int, channel: int = 0) -> Path:
        """Create the channel as if exported earlier (by a previous run, say).

        The directory is built aside and renamed into place, so that a driver
        never sees it half-made (the kernel creates it within the export write).
        """
        directory = self._chips[index] / f"pwm{channel}"
        if directory.exists():
            return directory
        staging = self._chips[index] / f".pwm{channel}.new"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for name, value in (("period", "0"), ("duty_cycle", "0"), ("enable", "0")):
            (staging / name).write_text(f"{value}\n")
        (staging / "polarity").write_text("normal\n")
        staging.rename(directory)
        return directory

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            for index, chip in self._chips.items():
                for name, action in (("export", "add"), ("unexport", "remove")):
                    path = chip / name
                    try:
                        text = path.read_text().strip()
                    except OSError:
                        continue
                    if not text.isdigit():
                        continue  # empty, or caught half-written: look again next round
                    path.write_text("")
                    if action == "add":
                        if self.export_delay_s:
                            time.sleep(self.export_delay_s)
                        self.pre_export(index, int(text))
                    else:
                        shutil.rmtree(chip / f"pwm{text}", ignore_errors=True)

    def read(self, index: int, channel: int, name: str) -> str:
        return (self.channel_dir(index, channel) / name).read_text().strip()

    def output(self, index: int, channel: int = 0) -> PilotOutput | None:
        """What the generator drives now; None when not exported, disabled or invalid.

        The kernel would refuse a duty above the period; here it can only be
        written, so it reads back as None (no defined output) rather than a guess.
        """
        directory = self.channel_dir(index, channel)
        try:
            enable = (directory / "enable").read_text().strip()
            period = int((directory / "period").read_text().strip() or 0)
            duty = int((directory / "duty_cycle").read_text().strip() or 0)
        except (OSError, ValueError):
            return None
        if enable != "1" or period <= 0 or not 0 <= duty <= period:
            return None
        if self.inverted:
            duty = period - duty
        if duty == period:
            return PilotOutput.x1()
        if duty == 0:
            return PilotOutput.state_f()
        return PilotOutput(PilotMode.PWM, round(100.0 * duty / period, 2))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None

    def __enter__(self) -> FakePwmSysfs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the CP wire and the EV ----------------------------------------------------------


def ev_high_v(state: PilotState, diode_ok: bool = True) -> float:
    """CP(+) with the EV's resistance (plus its diode drop) behind the 1 kΩ source."""
    if state is PilotState.A:
        return 12.0
    if state is PilotState.E:
        return 0.0
    if state is PilotState.F:
        return -12.0
    r = EV_RESISTANCE_OHM[state]
    if diode_ok:
        return DIODE_DROP_V + (12.0 - DIODE_DROP_V) * r / (r + SOURCE_OHM)
    return 12.0 * r / (r + SOURCE_OHM)


class SimCpLine:
    """The CP wire: the state a SimEV presents given the generator's output, over time.

    The EV model has no clock; like hwsim.hardware.SimPilot this follows its
    next_state() and keeps its reaction delays, but lazily: every sample brings
    the state up to date with time.monotonic(). It does not take the EV's
    watcher slot, so a whole-board simulation can keep it for the meter.
    A disabled (None) output is taken as −12 V (F), the idle level of a
    non-inverting stage. `short_to_pe` forces state E (CP shorted to PE);
    `ventilation` makes an EV in C ask for ventilation (D, 270 Ω for R2).
    """

    def __init__(
        self,
        ev: SimEV,
        output: Callable[[], PilotOutput | None],
        *,
        noise_v: float = 0.0,
        seed: int = 0,
        phase_step: float = GOLDEN_STEP,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ev = ev
        self._output = output
        self.noise_v = noise_v
        self._random = random.Random(seed)
        self.phase_step = phase_step
        self._phase = 0.0
        self._clock = clock
        self.short_to_pe = False
        self.ventilation = False
        self._state = PilotState.A
        self._pending: tuple[PilotState, float] | None = None
        self._lock = threading.Lock()
        self.conversions = 0

    def output(self) -> PilotOutput:
        out = self._output()
        return out if out is not None else PilotOutput.state_f()

    def state(self) -> PilotState:
        """The CP state the EV presents now (E while shorted)."""
        with self._lock:
            return self._advance(self.output())

    def _advance(self, output: PilotOutput) -> PilotState:
        now = self._clock()
        for _ in range(8):  # a few immediate hops at most (A -> B -> …)
            target, delay = self.ev.next_state(output, self._state)
            if target is self._state:
                self._pending = None
                break
            if delay > 0:
                if self._pending is None or self._pending[0] is not target:
                    self._pending = (target, now + delay)
                if now < self._pending[1]:
                    break
            self._pending = None
            self._state = target
        if self.short_to_pe:
            return PilotState.E
        if self.ventilation and self._state is PilotState.C:
            return PilotState.D
        return self._state

    def levels(self) -> tuple[float, float]:
        """(high, low) CP volts for the present output and EV state."""
        with self._lock:
            output = self.output()
            return self._levels(output, self._advance(output))

    def _levels(self, output: PilotOutput, state: PilotState) -> tuple[float, float]:
        if output.mode is PilotMode.F or state is PilotState.F:
            return -12.0, -12.0
        if state is PilotState.E:
            return 0.0, 0.0
        diode_ok = self.ev.diode_ok or state is PilotState.A
        high = ev_high_v(state, diode_ok)
        if output.mode is PilotMode.X1:
            return high, high
        # PWM: the low half is −12 V through the EV's diode; a shorted diode lets
        # R2/R3 load it too, so it mirrors the high half (hi ≈ −lo, "DF").
        return high, (-12.0 if diode_ok else -high)

    def sample_v(self) -> float:
        """One CP sample: the level at the next phase of the PWM, plus noise."""
        with self._lock:
            output = self.output()
            high, low = self._levels(output, self._advance(output))
            self.conversions += 1
            self._phase = (self._phase + self.phase_step) % 1.0
            if output.mode is PilotMode.PWM:
                value = high if self._phase < output.duty_percent / 100.0 else low
            else:
                value = high
            if self.noise_v:
                value += self._random.gauss(0.0, self.noise_v)
        return value


# --- the ADC -----------------------------------------------------------------------


class McpResponder(MockSPIDevice):
    """Slave side of an MCP3008 (10-bit) / MCP3208 (12-bit) on gpiozero's mock SPI.

    `inputs` maps a channel to a callable giving the volts at that ADC pin for
    the conversion being made; codes are round(2^bits · V / Vref), clamped, as
    the datasheet's transfer function. Build it before the gpiozero MCP3xxx
    objects: it must own the clock and select pins first.
    """

    rx_buf: list[int]
    tx_buf: list[int]

    def __init__(
        self,
        inputs: Mapping[int, Callable[[], float]],
        *,
        bits: int = 10,
        vref_v: float = DEFAULT_ADC_VREF_V,
        pin_factory: MockFactory,
        clock_pin: int = 11,
        mosi_pin: int = 10,
        miso_pin: int = 9,
        select_pin: int = 8,
    ) -> None:
        super().__init__(clock_pin, mosi_pin, miso_pin, select_pin, pin_factory=pin_factory)
        self.inputs = dict(inputs)
        self.bits = bits
        self.vref_v = vref_v
        self._phase = "idle"
        self.conversions = 0

    def code(self, volts: float) -> int:
        full = 1 << self.bits
        if math.isnan(volts):
            return 0
        return min(full - 1, max(0, round(full * volts / self.vref_v)))

    def on_start(self) -> None:
        super().on_start()
        self._phase = "idle"

    def on_bit(self) -> None:
        # Tx: leading zeros, start 1, SGL/DIFF, D2 D1 D0; Rx: null bit + result (datasheet §6).
        if self._phase == "idle":
            if self.rx_buf[-1]:
                self._phase = "mode"
                self.rx_buf = []
        elif self._phase == "mode":
            self._phase = "channel"
            self.rx_buf = []
        elif self._phase == "channel":
            if len(self.rx_buf) == 3:
                channel = self.rx_word()
                source = self.inputs.get(channel)
                volts = source() if source is not None else 0.0
                self.conversions += 1
                self.tx_word(self.code(volts), self.bits + 2)
                self._phase = "result"
        elif self._phase == "result" and not self.tx_buf:
            self._phase = "idle"
            self.rx_buf = []


class PilotSim:
    """Fake PWM sysfs + MCP3x08 on mock SPI + SimEV on the CP line + PP cable.

    Give the driver `pwm_root`, `pin_factory` and the same chip/channels and
    front ends. The PP cable is seen while the EV is plugged and `cable_a` is
    set (13/20/32/63 A -> its nominal Rc), or `pp_ohm` overrides Rc directly
    (math.inf = open).

    gpiozero's software SPI bus (which its mock SPI uses) looks up the global
    Device.pin_factory whatever factory it is given, so the mock factory is
    installed there too while the simulator is open; close() restores it.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        ev: SimEV | None = None,
        *,
        adc_chip: AdcChip = "MCP3008",
        cp_channel: int = 0,
        pp_channel: int | None = 1,
        cable_a: float | None = 32.0,
        noise_v: float = 0.0,
        seed: int = 0,
        chips: Mapping[int, str] | None = None,
        pwm_chip: int = 2,
        pwm_channel: int = 0,
        react: bool = True,
        cp_front_end: FrontEnd = DEFAULT_CP_FRONT_END,
        pp_front_end: FrontEnd = DEFAULT_PP_FRONT_END,
        adc_vref_v: float = DEFAULT_ADC_VREF_V,
        pp_pullup_ohm: float = DEFAULT_PP_PULLUP_OHM,
        pp_pullup_vref_v: float = DEFAULT_PP_VREF_V,
        pin_factory: MockFactory | None = None,
        adc_select_pin: int = 8,  # CE0; CE1 (the ADC on SPI0 device 1) is GPIO7
    ) -> None:
        self.ev = ev if ev is not None else SimEV(reaction_s=0.05)
        self.factory = pin_factory if pin_factory is not None else MockFactory()
        self._previous_factory = Device.pin_factory
        Device.pin_factory = self.factory
        self.pwm = FakePwmSysfs(
            root, chips=chips if chips is not None else {pwm_chip: PI5_PWM_DEVICE}, react=react
        )
        self.pwm_chip = pwm_chip
        self.pwm_channel = pwm_channel
        self.cp_front_end = cp_front_end
        self.pp_front_end = pp_front_end
        self.pp_pullup_ohm = pp_pullup_ohm
        self.pp_pullup_vref_v = pp_pullup_vref_v
        self.cable_a = cable_a
        self.pp_ohm: float | None = None
        self._cached: tuple[float, PilotOutput | None] = (-math.inf, None)
        self.line = SimCpLine(self.ev, self._cached_output, noise_v=noise_v, seed=seed)
        inputs: dict[int, Callable[[], float]] = {cp_channel: self._cp_adc_v}
        if pp_channel is not None:
            inputs[pp_channel] = self._pp_adc_v
        bits = 12 if adc_chip == "MCP3208" else 10
        self.adc = McpResponder(
            inputs,
            bits=bits,
            vref_v=adc_vref_v,
            pin_factory=self.factory,
            select_pin=adc_select_pin,
        )

    @property
    def pwm_root(self) -> Path:
        return self.pwm.class_dir

    def output(self) -> PilotOutput | None:
        """What the generator drives now (read from the fake sysfs files)."""
        return self.pwm.output(self.pwm_chip, self.pwm_channel)

    def _cached_output(self) -> PilotOutput | None:
        # Reading three sysfs files per conversion would double the mock's time
        # per sample; re-reading every OUTPUT_CACHE_S delays a change by far less
        # than the driver's 20 ms poll.
        now = time.monotonic()
        if now - self._cached[0] >= OUTPUT_CACHE_S:
            self._cached = (now, self.output())
        return self._cached[1]

    def _cp_adc_v(self) -> float:
        return self.cp_front_end.to_adc(self.line.sample_v())

    def pp_resistance_ohm(self) -> float:
        if self.pp_ohm is not None:
            return self.pp_ohm
        if not self.ev.plugged or self.cable_a is None:
            return math.inf
        return CABLE_OHM[self.cable_a]

    def _pp_adc_v(self) -> float:
        r = self.pp_resistance_ohm()
        volts = (
            self.pp_pullup_vref_v
            if math.isinf(r)
            else self.pp_pullup_vref_v * r / (r + self.pp_pullup_ohm)
        )
        return self.pp_front_end.to_adc(volts)

    def close(self) -> None:
        self.pwm.close()
        with contextlib.suppress(Exception):
            self.adc.close()
        if Device.pin_factory is self.factory:
            Device.pin_factory = self._previous_factory

    def __enter__(self) -> PilotSim:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
