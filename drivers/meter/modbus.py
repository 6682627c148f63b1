"""Energy meters over Modbus RTU: one ModbusBus per serial port, one ModbusMeter per meter.

Several meters usually hang on one RS-485 pair, so the bus, not the meter,
owns the serial client: requests are serialised by a lock (RTU has no
transaction ids, an interleaved answer would be taken for another meter's),
the port is opened lazily and reopened after a transport error, and the
t3.5 silence is kept between frames.

The driver only reports what happened on one read: after its retries,
read() raises an OSError subclass. When silence becomes a PowerMeterFailure
is the station's decision (its poller times the silence), not the driver's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import termios
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from drivers.interfaces import FaultCallback, MeterReading
from drivers.meter.planning import Block, bus_time_ms, plan_reads, t35_ms
from drivers.meter.registermap import BAUDS, PARITIES, MeterMap, load_map

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 0.5  # s; cheap meters answer within tens of ms to ~100 ms (§5.3)
DEFAULT_RETRIES = 2
_PYMODBUS_TIMEOUT = 60.0  # pymodbus's own wait must never fire before ours

# What a MeterReading needs. Per-phase power is read only when there is no total.
READING_QUANTITIES = (
    "voltage_l1",
    "voltage_l2",
    "voltage_l3",
    "current_l1",
    "current_l2",
    "current_l3",
    "power_total",
    "energy_import",
    "frequency",
)
_PHASE_POWER = ("power_l1", "power_l2", "power_l3")

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class MeterError(OSError):
    """A meter read failed. Subclasses say how; all are OSError, as Meter.read() promises."""


class MeterNotAnswering(MeterError):
    """No valid answer: silence, or only garbled frames (CRC errors, wrong serial settings)."""

    def __init__(self, message: str, *, garbled: bool = False) -> None:
        super().__init__(message)
        self.garbled = garbled


class MeterExceptionResponse(MeterError):
    """The meter answered with a Modbus exception (wrong model, map or address?)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class MeterPortError(MeterError):
    """The serial port cannot be opened or failed (adapter unplugged, wrong path, in use)."""


class MeterValueError(MeterError):
    """The meter answered, but a mandatory value (the energy register) is not available."""


def exception_text(code: int) -> str:
    return f"Modbus exception {code:#04x} ({EXCEPTION_NAMES.get(code, 'unknown')})"


def serial_text(baud: int, parity: str, stopbits: int) -> str:
    return f"{baud} 8{parity}{stopbits}"


_PTY_SLAVE_MAJORS = range(136, 144)  # Linux UNIX98 pty slaves (/dev/pts/N)


def is_pty(port: str) -> bool:
    """True for a pseudo-terminal (a simulator, or socat/ser2net bridges)."""
    try:
        st = os.stat(port)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) in _PTY_SLAVE_MAJORS


class ModbusBus:
    """One RS-485 port (one pymodbus client) shared by every meter on it.

    Args:
        port: serial device, e.g. /dev/ttyUSB0 (a pty path works too).
        baud, parity, stopbits: the bus's settings; every meter on it must use them.
        timeout: default reply timeout in seconds (a read may pass its own).

    A pseudo-terminal has no parity (Linux clears PARENB and may refuse the
    request), so on a pty the port is opened without parity; `parity` then only
    counts for the wire-time figures.
    """

    def __init__(
        self,
        port: str,
        baud: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if baud not in BAUDS:
            raise ValueError(f"baud {baud!r} is not one of {', '.join(map(str, BAUDS))}")
        if parity not in PARITIES:
            raise ValueError(f"parity {parity!r} is not one of {', '.join(PARITIES)}")
        if stopbits not in (1, 2):
            raise ValueError(f"stopbits {stopbits!r} is not 1 or 2")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 s, got {timeout!r}")
        self.port = port
        self.baud = baud
        self.parity = parity
        self.stopbits = stopbits
        self.timeout = timeout
        self._client: AsyncModbusSerialClient | None = None
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._received = False  # bytes seen since the current request was sent
        self._last_frame_at = 0.0
        self._t35_s = t35_ms(baud, parity, stopbits) / 1000.0

    def __repr__(self) -> str:
        return f"ModbusBus({self.port!r}, {serial_text(self.baud, self.parity, self.stopbits)})"

    @property
    def settings(self) -> str:
        return f"{self.port} ({serial_text(self.baud, self.parity, self.stopbits)})"

    def _bind(self) -> asyncio.Lock:
        """Lock and client belong to one event loop; start afresh under a new one (tests)."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._drop()
            self._lock = asyncio.Lock()
            self._loop = loop
        return self._lock

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending and data:
            self._received = True
        return data

    def _drop(self) -> None:
        """Forget the client so that the next request reopens the port (and its buffers)."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception as e:  # closing a dead port must not hide the original error
                log.debug("closing %s: %s", self.port, e)

    async def _connected(self) -> AsyncModbusSerialClient:
        if self._client is not None and self._client.connected:
            return self._client
        self._drop()
        client = AsyncModbusSerialClient(
            self.port,
            baudrate=self.baud,
            parity="N" if is_pty(self.port) else self.parity,
            stopbits=self.stopbits,
            bytesize=8,
            timeout=_PYMODBUS_TIMEOUT,  # the reply timeout is ours (wait_for), per request
            retries=0,  # ModbusMeter retries, with the reasons in its error
            reconnect_delay=0,  # reconnection is ours, on the next request
            trace_packet=self._trace,
        )
        error = ""
        try:
            ok = await client.connect()
        except (OSError, termios.error) as e:  # termios.error is no OSError
            ok, error = False, f": {e}"
        if not ok:
            client.close()
            raise MeterPortError(f"cannot open serial port {self.settings}{error}")
        self._client = client
        return client

    async def read_registers(
        self,
        unit_id: int,
        function_code: int,
        address: int,
        count: int,
        *,
        timeout: float | None = None,
    ) -> list[int]:
        """One FC3/FC4 read, one attempt. Raises a MeterError subclass on any failure."""
        if function_code not in (3, 4):
            raise ValueError(f"function code {function_code} is not a register read (3 or 4)")
        if not 1 <= count <= 125:
            raise ValueError(f"count {count} is outside 1..125 (the Modbus limit per read)")
        what = f"unit {unit_id} FC{function_code} {address:#06x}+{count}"
        async with self._bind():
            wait = self._last_frame_at + self._t35_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            client = await self._connected()
            wait_s = timeout or self.timeout
            self._received = False
            try:
                if function_code == 3:
                    request = client.read_holding_registers(address, count=count, device_id=unit_id)
                else:
                    request = client.read_input_registers(address, count=count, device_id=unit_id)
                rr = await asyncio.wait_for(request, wait_s)
            except (TimeoutError, ModbusIOException) as e:
                self._drop()  # a late answer must not be taken for the next one
                if self._received:
                    raise MeterNotAnswering(
                        f"{what}: garbled answer (CRC error or wrong serial settings)", garbled=True
                    ) from e
                raise MeterNotAnswering(f"{what}: no answer within {wait_s:g} s") from e
            except (ConnectionException, OSError) as e:
                self._drop()
                raise MeterPortError(f"{what}: serial port {self.settings} failed: {e}") from e
            except ModbusException as e:
                self._drop()
                raise MeterNotAnswering(f"{what}: {e}", garbled=True) from e
            finally:
                self._last_frame_at = time.monotonic()
            if rr.isError():
                code = int(getattr(rr, "exception_code", 0))
                raise MeterExceptionResponse(f"{what}: {exception_text(code)}", code)
            registers = list(rr.registers)
            if len(registers) != count:
                self._drop()
                raise MeterNotAnswering(
                    f"{what}: answer holds {len(registers)} registers", garbled=True
                )
            return registers

    async def close(self) -> None:
        """Close the port; the next request reopens it."""
        self._drop()


class ModbusMeter:
    """The Meter of drivers.interfaces for any model with a map in drivers/meter/maps.

    Args:
        model: model name (a maps/<model>.toml) or a loaded MeterMap.
        port: serial device; creates a private ModbusBus. Give `bus` instead to
            share one port between several meters.
        bus: a shared ModbusBus (its serial settings apply).
        baud, parity, stopbits: serial settings for a private bus (default: the
            model's factory settings). With `bus`, they must match it if given.
        unit_id: Modbus address (default: the model's factory setting).
        timeout: reply timeout per attempt, seconds.
        retries: extra attempts after a timeout, CRC error or exception response.
        quantities: what read_values() reads (default: what a MeterReading needs).
        turnaround_ms: the meter's reply delay, for block planning (see plan_reads).
    """

    def __init__(
        self,
        model: str | MeterMap,
        port: str | None = None,
        *,
        bus: ModbusBus | None = None,
        baud: int | None = None,
        parity: str | None = None,
        stopbits: int | None = None,
        unit_id: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        quantities: Iterable[str] | None = None,
        turnaround_ms: float = 0.0,
    ) -> None:
        self.map = model if isinstance(model, MeterMap) else load_map(model)
        if bus is None:
            if port is None:
                raise ValueError("ModbusMeter needs a port or a bus")
            bus = ModbusBus(
                port,
                baud or self.map.baud,
                parity or self.map.parity,
                stopbits or self.map.stopbits,
                timeout=timeout,
            )
        else:
            given = {"port": port, "baud": baud, "parity": parity, "stopbits": stopbits}
            for key, value in given.items():
                if value is not None and value != getattr(bus, key):
                    raise ValueError(f"{key}={value!r} disagrees with the shared {bus!r}")
        self.bus = bus
        self.unit_id = self.map.unit_id if unit_id is None else unit_id
        if isinstance(self.unit_id, bool) or not 1 <= self.unit_id <= 247:
            raise ValueError(f"unit_id must be 1..247, got {self.unit_id!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 s, got {timeout!r}")
        if isinstance(retries, bool) or retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        self.timeout = timeout
        self.retries = retries
        self.turnaround_ms = turnaround_ms
        if quantities is None:
            wanted = [q for q in READING_QUANTITIES if self.map.offers(q)]
            if not self.map.offers("power_total"):
                wanted += [q for q in _PHASE_POWER if self.map.offers(q)]
        else:
            wanted = list(quantities)
        self.quantities = tuple(wanted)
        self._plans: dict[frozenset[str], list[Block]] = {}
        self.blocks = self._plan(self.quantities)
        self._fault_callbacks: list[FaultCallback] = []

    def __repr__(self) -> str:
        return f"ModbusMeter({self.map.model!r}, unit {self.unit_id} on {self.bus.settings})"

    def _plan(self, quantities: Iterable[str]) -> list[Block]:
        key = frozenset(quantities)
        if key not in self._plans:
            self._plans[key] = plan_reads(
                self.map,
                sorted(key),
                baud=self.bus.baud,
                parity=self.bus.parity,
                stopbits=self.bus.stopbits,
                turnaround_ms=self.turnaround_ms,
            )
        return self._plans[key]

    def poll_time_ms(self) -> float:
        """Wire time of one read() on this bus (without the meter's turnaround)."""
        return bus_time_ms(self.blocks, self.bus.baud, self.bus.parity, self.bus.stopbits)

    async def _read_block(self, block: Block) -> list[int]:
        failures: list[str] = []
        last: MeterNotAnswering | MeterExceptionResponse | MeterPortError | None = None
        for _attempt in range(self.retries + 1):
            try:
                return await self.bus.read_registers(
                    self.unit_id,
                    block.function_code,
                    block.address,
                    block.count,
                    timeout=self.timeout,
                )
            except (MeterNotAnswering, MeterExceptionResponse, MeterPortError) as e:
                last = e
                failures.append(str(e).split(": ", 1)[-1])
                log.debug("%r: %s", self, e)
        assert last is not None  # the loop runs at least once
        attempts = self.retries + 1
        summary = "; ".join(dict.fromkeys(failures))
        where = (
            f"{self.map.model} unit {self.unit_id} on {self.bus.settings}: "
            f"FC{block.function_code} {block.address:#06x}+{block.count} failed "
            f"{attempts} time{'s' if attempts > 1 else ''} ({summary})"
        )
        if isinstance(last, MeterExceptionResponse):
            raise MeterExceptionResponse(where, last.code) from last
        if isinstance(last, MeterPortError):
            raise MeterPortError(where) from last
        raise MeterNotAnswering(where, garbled=last.garbled) from last

    async def read_values(self, quantities: Iterable[str] | None = None) -> dict[str, float | None]:
        """Read and decode `quantities` (default: the configured ones); None = not available."""
        blocks = self.blocks if quantities is None else self._plan(quantities)
        values: dict[str, float | None] = {}
        for block in blocks:
            registers = await self._read_block(block)
            for name in block.quantities:
                reg = self.map.register(name)
                values[name] = reg.decode(block.words(reg, registers))
        return values

    async def read(self) -> MeterReading:
        """A fresh reading; raises a MeterError (OSError) when the meter does not answer.

        Quantities the model does not offer, or reports as not available, read as
        0.0 (frequency: None); single-phase meters fill L1 and leave L2/L3 at 0.
        """
        values = await self.read_values()
        energy = values.get("energy_import")
        if energy is None:
            raise MeterValueError(
                f"{self.map.model} unit {self.unit_id} on {self.bus.settings}: "
                "the import energy register reports 'not available'"
            )
        return reading_from_values(values, energy)

    def on_fault(self, callback: FaultCallback) -> None:
        """Kept for the Meter protocol. This driver never calls it: read() raises, and
        the station's poller decides when silence becomes a meter fault."""
        self._fault_callbacks.append(callback)

    async def close(self) -> None:
        await self.bus.close()


def reading_from_values(values: Mapping[str, float | None], energy_wh: float) -> MeterReading:
    """Build a MeterReading from decoded values (missing -> 0.0, frequency -> None)."""

    def get(name: str) -> float:
        value = values.get(name)
        return 0.0 if value is None else value

    power = values.get("power_total")
    if power is None:
        power = sum(get(q) for q in _PHASE_POWER)
    return MeterReading(
        energy_wh=energy_wh,
        power_w=power,
        current_a=tuple(get(f"current_l{i}") for i in (1, 2, 3)),
        voltage_v=tuple(get(f"voltage_l{i}") for i in (1, 2, 3)),
        frequency_hz=values.get("frequency"),
    )


def meters_from_config(
    entries: Sequence[Mapping[str, Any]],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
) -> list[ModbusMeter]:
    """ModbusMeters for `[[meters]]` config entries (model, port, baud, parity, stopbits,
    unit_id), sharing one ModbusBus per port. Meters on one port must agree on its settings."""
    buses: dict[str, ModbusBus] = {}
    meters: list[ModbusMeter] = []
    for n, entry in enumerate(entries, 1):
        meter_map = load_map(str(entry["model"]))
        port = str(entry["port"])
        # Missing, 0 or "" means the model's factory setting, as in ModbusMeter.
        baud = int(entry.get("baud") or meter_map.baud)
        parity = str(entry.get("parity") or meter_map.parity)
        stopbits = int(entry.get("stopbits") or meter_map.stopbits)
        bus = buses.get(port)
        if bus is None:
            bus = buses[port] = ModbusBus(port, baud, parity, stopbits, timeout=timeout)
        elif (bus.baud, bus.parity, bus.stopbits) != (baud, parity, stopbits):
            raise ValueError(
                f"meters entry {n}: {port} is already used at "
                f"{serial_text(bus.baud, bus.parity, bus.stopbits)}, not "
                f"{serial_text(baud, parity, stopbits)}: one bus has one serial setting"
            )
        unit_id = int(entry.get("unit_id") or meter_map.unit_id)
        if any(m.bus is bus and m.unit_id == unit_id for m in meters):
            raise ValueError(f"meters entry {n}: unit_id {unit_id} is used twice on {port}")
        meters.append(
            ModbusMeter(meter_map, bus=bus, unit_id=unit_id, timeout=timeout, retries=retries)
        )
    return meters
