"""Register-level Modbus RTU slave simulating the energy meters of drivers/meter/maps.

The driver under test opens a pseudo-terminal like a serial port and sees the
bytes a real meter would send: the RTU framing (CRC16, FC3/FC4, exception
responses, frames delimited by t3.5 of silence) is implemented here rather
than taken from pymodbus's server, so the driver's decoding is checked against
an independent implementation of the wire protocol.

Usage (tests, or the daemon's simulated board)::

    sim = ModbusMeterSim([SimModbusMeter("eastron_sdm630", unit_id=1)]).start()
    meter = ModbusMeter("eastron_sdm630", sim.port)
    sim.meter(1).set(current_a=(16.0, 16.0, 16.0))
    sim.meter(1).advance(60.0)  # integrate the power into the energy register
    ...
    sim.stop()

Several SimModbusMeters with different unit ids on one ModbusMeterSim share a
pty, i.e. one RS-485 bus.

Serial settings: a pty has no line, so a wrong baud rate cannot garble
anything. The simulator emulates it: it answers only when the speed the driver
set on the pty (termios, which Linux keeps for ptys) is the simulated bus's.
Linux ptys, however, clear PARENB, so the parity the driver chose cannot be
seen at all. For parity, use the test hook set_master_parity(): whoever opens
the port tells the simulator which parity it used (e.g. from a probe
bus_factory); with None (the default) any parity is accepted.
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
import termios
import threading
import time
import tty
from collections.abc import Iterable
from typing import Any

from drivers.interfaces import MeterReading
from drivers.meter.planning import char_time_ms, t35_ms
from drivers.meter.registermap import MODBUS_MAX_READ, MeterMap, load_map

ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03
SERVER_DEVICE_FAILURE = 0x04

_SPEEDS = {
    getattr(termios, f"B{b}"): b
    for b in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
    if hasattr(termios, f"B{b}")
}
_UNSET: Any = object()


def crc16(data: bytes) -> int:
    """Modbus CRC16 (poly 0xA001 reflected, init 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(body: bytes) -> bytes:
    return body + crc16(body).to_bytes(2, "little")


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")


class SimModbusMeter:
    """One simulated meter: live values, encoded per its map on every request.

    Values are in V, A, W, Wh and Hz, like MeterReading. Per-phase power
    defaults to V x I and total power to the sum of the phases, unless set.
    None makes a value "not available" (NaN, or the map's sentinel).
    Thread-safe: tests and the EV model set values while the bus thread reads.
    """

    def __init__(
        self,
        model: str | MeterMap,
        unit_id: int | None = None,
        *,
        energy_wh: float | None = 0.0,
        export_wh: float | None = 0.0,
        voltage_v: tuple[float | None, ...] = (230.0, 230.0, 230.0),
        current_a: tuple[float | None, ...] = (0.0, 0.0, 0.0),
        power_w: float | None = None,
        power_phase_w: tuple[float | None, ...] | None = None,
        frequency_hz: float | None = 50.0,
    ) -> None:
        self.map = model if isinstance(model, MeterMap) else load_map(model)
        self.unit_id = self.map.unit_id if unit_id is None else unit_id
        if not 1 <= self.unit_id <= 247:
            raise ValueError(f"unit_id must be 1..247, got {self.unit_id}")
        self._lock = threading.Lock()
        self.energy_wh = energy_wh
        self.export_wh = export_wh
        self.voltage_v = tuple(voltage_v)
        self.current_a = tuple(current_a)
        self.power_w = power_w
        self.power_phase_w = power_phase_w
        self.frequency_hz = frequency_hz
        self.requests = 0  # requests addressed to this unit, answered or not
        self.answers = 0
        self._silent: float = 0  # requests still to ignore (inf: until cleared)
        self._corrupt = 0
        self._exception_code = 0
        self._exception_left: float = 0

    def __repr__(self) -> str:
        return f"SimModbusMeter({self.map.model!r}, unit {self.unit_id})"

    # --- live values ---------------------------------------------------------------

    def set(
        self,
        *,
        energy_wh: float | None = _UNSET,
        export_wh: float | None = _UNSET,
        voltage_v: tuple[float | None, ...] = _UNSET,
        current_a: tuple[float | None, ...] = _UNSET,
        power_w: float | None = _UNSET,
        power_phase_w: tuple[float | None, ...] | None = _UNSET,
        frequency_hz: float | None = _UNSET,
    ) -> None:
        """Change any values at once (a request never sees half an update)."""
        with self._lock:
            for name, value in (
                ("energy_wh", energy_wh),
                ("export_wh", export_wh),
                ("voltage_v", voltage_v),
                ("current_a", current_a),
                ("power_w", power_w),
                ("power_phase_w", power_phase_w),
                ("frequency_hz", frequency_hz),
            ):
                if value is not _UNSET:
                    setattr(self, name, tuple(value) if isinstance(value, list) else value)

    def apply(self, reading: MeterReading) -> None:
        """Mirror a MeterReading (e.g. from the simulated station's EV model)."""
        self.set(
            energy_wh=reading.energy_wh,
            voltage_v=tuple(reading.voltage_v),
            current_a=tuple(reading.current_a),
            power_w=reading.power_w,
            frequency_hz=reading.frequency_hz,
        )

    def _phase_power(self) -> list[float | None]:
        if self.power_phase_w is not None:
            return list(self.power_phase_w)
        out: list[float | None] = []
        for v, i in zip(self.voltage_v, self.current_a, strict=False):
            out.append(None if v is None or i is None else v * i)
        return out

    def _total_power(self) -> float | None:
        if self.power_w is not None:
            return self.power_w
        phases = self._phase_power()[: self.map.phases]
        return None if any(p is None for p in phases) else sum(p or 0.0 for p in phases)

    def advance(self, seconds: float) -> None:
        """Integrate the current total power over `seconds` into import (or export) energy."""
        with self._lock:
            power = self._total_power() or 0.0
            if power >= 0:
                self.energy_wh = (self.energy_wh or 0.0) + power * seconds / 3600.0
            else:
                self.export_wh = (self.export_wh or 0.0) - power * seconds / 3600.0

    def values(self) -> dict[str, float | None]:
        """Every quantity the map offers, as the meter would report it now."""
        with self._lock:
            return self._values()

    def _values(self) -> dict[str, float | None]:
        phase_power = self._phase_power()
        source: dict[str, float | None] = {
            "power_total": self._total_power(),
            "energy_import": self.energy_wh,
            "energy_export": self.export_wh,
            "energy_total": (
                None if self.energy_wh is None else self.energy_wh + (self.export_wh or 0.0)
            ),
            "frequency": self.frequency_hz,
        }
        for n in (1, 2, 3):
            source[f"voltage_l{n}"] = self.voltage_v[n - 1]
            source[f"current_l{n}"] = self.current_a[n - 1]
            source[f"power_l{n}"] = phase_power[n - 1]
        return {q: source[q] for q in self.map.registers}

    def register_image(self) -> dict[int, int]:
        """address -> 16-bit value of every mapped register, encoded per the map."""
        image: dict[int, int] = {}
        for name, value in self.values().items():
            reg = self.map.registers[name]
            for k, word in enumerate(reg.encode(value)):
                image[reg.address + k] = word
        return image

    # --- fault injection -------------------------------------------------------------

    def corrupt_crc(self, n: int = 1) -> None:
        """Send the next `n` answers with a wrong CRC (the driver must drop them)."""
        with self._lock:
            self._corrupt = n

    def go_silent(self, n: int | None = None) -> None:
        """Ignore the next `n` requests (None: until clear_faults())."""
        with self._lock:
            self._silent = float("inf") if n is None else n

    def fail_with(self, code: int = SERVER_DEVICE_FAILURE, n: int | None = 1) -> None:
        """Answer the next `n` requests (None: until cleared) with exception `code`."""
        with self._lock:
            self._exception_code = code
            self._exception_left = float("inf") if n is None else n

    def clear_faults(self) -> None:
        with self._lock:
            self._silent = 0
            self._corrupt = 0
            self._exception_left = 0

    # --- protocol ------------------------------------------------------------------

    def _readable(self, address: int, count: int) -> bool:
        """First and last register mapped; gaps only where the map allows reading across."""
        last = address + count - 1
        if self.map.mapped(address) is None or self.map.mapped(last) is None:
            return False
        if self.map.read_across_gaps:
            return True
        return all(self.map.mapped(a) is not None for a in range(address, last + 1))

    def respond(self, pdu: bytes) -> tuple[bytes | None, bool]:
        """Request PDU -> (answer PDU or None for silence, corrupt the CRC?)."""
        with self._lock:
            self.requests += 1
            if self._silent > 0:
                self._silent -= 1
                return None, False
            corrupt = self._corrupt > 0
            if corrupt:
                self._corrupt -= 1
            fc = pdu[0] if pdu else 0
            if self._exception_left > 0:
                self._exception_left -= 1
                answer = bytes([fc | 0x80, self._exception_code])
            else:
                answer = self._read(pdu)
            self.answers += 1
            return answer, corrupt

    def _read(self, pdu: bytes) -> bytes:
        fc = pdu[0]
        if fc not in (3, 4):
            return bytes([fc | 0x80, ILLEGAL_FUNCTION])
        if len(pdu) != 5:
            return bytes([fc | 0x80, ILLEGAL_DATA_VALUE])
        address, count = struct.unpack(">HH", pdu[1:5])
        if not 1 <= count <= min(MODBUS_MAX_READ, self.map.max_registers):
            return bytes([fc | 0x80, ILLEGAL_DATA_VALUE])
        if fc != self.map.function_code or not self._readable(address, count):
            return bytes([fc | 0x80, ILLEGAL_DATA_ADDRESS])
        image: dict[int, int] = {}
        for name, value in self._values().items():
            reg = self.map.registers[name]
            if reg.end > address and reg.address < address + count:
                for k, word in enumerate(reg.encode(value)):
                    image[reg.address + k] = word
        data = b"".join(image.get(a, 0).to_bytes(2, "big") for a in range(address, address + count))
        return bytes([fc, 2 * count]) + data


class ModbusMeterSim:
    """One simulated RS-485 bus on a pty, with any number of SimModbusMeters on it.

    Args:
        meters: the meters on the bus (unit ids must differ); more via add().
        baud, parity, stopbits: the bus's settings (default: the first meter's
            factory settings). Only the baud rate can be checked on a pty; see
            the module docstring and set_master_parity().
        check_line: ignore requests sent at another baud rate (or parity, when
            told), as a real meter would not understand them.
        turnaround_s: delay before each answer (a meter's processing time).
        realtime: also delay each answer by its wire time at `baud`.
    """

    def __init__(
        self,
        meters: Iterable[SimModbusMeter] = (),
        *,
        baud: int | None = None,
        parity: str | None = None,
        stopbits: int | None = None,
        check_line: bool = True,
        turnaround_s: float = 0.0,
        realtime: bool = False,
    ) -> None:
        self._meters: dict[int, SimModbusMeter] = {}
        self._baud, self._parity, self._stopbits = baud, parity, stopbits
        self.check_line = check_line
        self.turnaround_s = turnaround_s
        self.realtime = realtime
        self.master_parity: str | None = None
        self.stats = {"frames": 0, "bad_frames": 0, "wrong_settings": 0, "answers": 0}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._fds: tuple[int, int, int, int] | None = None  # master, slave, wake r, wake w
        self._stopping = False
        self._port: str | None = None
        for meter in meters:
            self.add_meter(meter)

    # --- configuration -----------------------------------------------------------------

    def add_meter(self, meter: SimModbusMeter) -> SimModbusMeter:
        with self._lock:
            if meter.unit_id in self._meters:
                raise ValueError(f"unit id {meter.unit_id} is already on this bus")
            self._meters[meter.unit_id] = meter
        return meter

    def add(
        self, model: str | MeterMap, unit_id: int | None = None, **values: Any
    ) -> SimModbusMeter:
        """Create a SimModbusMeter on this bus (keyword values as SimModbusMeter)."""
        return self.add_meter(SimModbusMeter(model, unit_id, **values))

    def meter(self, unit_id: int) -> SimModbusMeter:
        return self._meters[unit_id]

    @property
    def meters(self) -> list[SimModbusMeter]:
        return list(self._meters.values())

    def _first_map(self) -> MeterMap | None:
        return next(iter(self._meters.values())).map if self._meters else None

    @property
    def baud(self) -> int:
        first = self._first_map()
        return self._baud or (first.baud if first else 9600)

    @property
    def parity(self) -> str:
        first = self._first_map()
        return self._parity or (first.parity if first else "N")

    @property
    def stopbits(self) -> int:
        first = self._first_map()
        return self._stopbits or (first.stopbits if first else 1)

    def set_master_parity(self, parity: str | None) -> None:
        """Test hook: the parity the driver opened the pty with (a pty cannot carry it).

        With None, parity is not checked.
        """
        self.master_parity = parity

    # --- lifecycle -------------------------------------------------------------------

    @property
    def port(self) -> str:
        """The pty path to open like a serial port (after start())."""
        if self._port is None:
            raise RuntimeError("ModbusMeterSim is not started")
        return self._port

    def start(self) -> ModbusMeterSim:
        if self._thread is not None:
            raise RuntimeError("ModbusMeterSim is already started")
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: bytes pass unchanged
        wake_r, wake_w = os.pipe()
        self._fds = (master, slave, wake_r, wake_w)
        self._port = os.ttyname(slave)
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"modbus-meter-sim {self._port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None or self._fds is None:
            return
        self._stopping = True
        os.write(self._fds[3], b"x")
        self._thread.join(timeout=5)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._thread = None
        self._fds = None

    def __enter__(self) -> ModbusMeterSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the bus thread ------------------------------------------------------------------

    def _run(self) -> None:
        assert self._fds is not None
        master, _slave, wake_r, _ = self._fds
        silence_s = t35_ms(self.baud, self.parity, self.stopbits) / 1000.0
        buffer = bytearray()
        while not self._stopping:
            ready, _, _ = select.select([master, wake_r], [], [], silence_s if buffer else None)
            if wake_r in ready:
                return
            if master in ready:
                try:
                    buffer += os.read(master, 4096)
                except OSError:  # no slave side open: nothing to read
                    time.sleep(0.01)
                continue
            if buffer:  # t3.5 of silence: the frame is complete
                request = bytes(buffer)
                buffer.clear()
                self._handle(request)

    def _line_matches(self) -> bool:
        if not self.check_line or self._fds is None:
            return True
        speed = termios.tcgetattr(self._fds[1])[4]
        if _SPEEDS.get(speed) != self.baud:
            return False
        return self.master_parity is None or self.master_parity == self.parity

    def _handle(self, request: bytes) -> None:
        self.stats["frames"] += 1
        if not crc_ok(request):
            self.stats["bad_frames"] += 1  # a real slave ignores it and waits for a retry
            return
        if not self._line_matches():
            self.stats["wrong_settings"] += 1  # at a wrong baud rate the meter hears noise
            return
        unit = request[0]
        meter = self._meters.get(unit)
        if meter is None:  # another unit's request, or a broadcast (no answer to reads)
            return
        answer, corrupt = meter.respond(request[1:-2])
        if answer is None:
            return
        frame = bytearray(with_crc(bytes([unit]) + answer))
        if corrupt:
            frame[-1] ^= 0xFF
        delay = self.turnaround_s
        if self.realtime:
            delay += len(frame) * char_time_ms(self.baud, self.parity, self.stopbits) / 1000.0
        if delay > 0:
            time.sleep(delay)
        assert self._fds is not None
        master, slave = self._fds[0], self._fds[1]
        # Bytes the driver never read (an answer it gave up on) are gone on a real wire.
        with contextlib.suppress(termios.error):
            termios.tcflush(slave, termios.TCIFLUSH)
        os.write(master, bytes(frame))
        self.stats["answers"] += 1
