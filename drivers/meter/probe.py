"""Find the meters on a serial port, for the installer (`evsed meter probe PORT`).

Modbus RTU has no discovery, so probe() tries serial settings, unit ids and
models, and calls a meter identified when a read at the model's addresses, in
its format, gives values plausible only for that format: mains voltage
(80-300 V) and frequency (45-65 Hz). A wrong format turns those registers into
absurd numbers, so the check tells the maps apart unless two models share
the same registers (Eastron SDM630 and SDM72D-M, for one); then the first is
reported with the others as alternatives. Three-phase and single-phase models
with the same registers (SDM630 / SDM120) are told apart by whether L2 and L3
carry a voltage, so a three-phase meter wired to one phase reads as single-phase.

Limits: a unit id that stays silent at the first read is skipped (a meter that
ignores, instead of rejecting, a request for registers it lacks may be missed).
All meters on one bus share one serial setting, so the scan stops at the first
setting where anything answered.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from drivers.meter.modbus import (
    MeterError,
    MeterExceptionResponse,
    MeterNotAnswering,
    ModbusBus,
    ModbusMeter,
    serial_text,
)
from drivers.meter.registermap import MeterMap, Register, available_models, load_map

log = logging.getLogger(__name__)

DEFAULT_BAUDS = (9600, 19200, 2400, 38400, 4800, 115200)
DEFAULT_PARITIES = ("N", "E")
VOLTAGE_RANGE = (80.0, 300.0)
FREQUENCY_RANGE = (45.0, 65.0)
CURRENT_LIMIT = 1000.0  # A; beyond this the format is wrong, not the installation
_SIGNATURE = ("voltage_l1", "current_l1", "frequency", "energy_import")

BusFactory = Callable[[str, int, str, int, float], ModbusBus]


@dataclass(frozen=True, slots=True)
class Found:
    """A meter found on a port, with the settings to put in the configuration."""

    model: str
    port: str
    baud: int
    parity: str
    stopbits: int
    unit_id: int
    voltage_v: float
    frequency_hz: float | None
    alternatives: tuple[str, ...] = ()  # models with the same registers: check the label


def _default_bus(port: str, baud: int, parity: str, stopbits: int, timeout: float) -> ModbusBus:
    return ModbusBus(port, baud, parity, stopbits, timeout=timeout)


def _in(value: float | None, bounds: tuple[float, float]) -> bool:
    return value is not None and bounds[0] <= value <= bounds[1]


def _plausible(values: dict[str, float | None]) -> bool:
    current = values.get("current_l1")
    energy = values.get("energy_import")
    return (
        _in(values.get("voltage_l1"), VOLTAGE_RANGE)
        and ("frequency" not in values or _in(values["frequency"], FREQUENCY_RANGE))
        and (current is None or abs(current) <= CURRENT_LIMIT)
        and energy is not None
        and 0.0 <= energy < 1e12
    )


def _groups(models: Sequence[str]) -> list[list[MeterMap]]:
    """Models grouped by identical identification registers, in the given order."""
    groups: dict[tuple[int, tuple[Register | None, ...]], list[MeterMap]] = {}
    for model in models:
        m = load_map(model)
        key = (m.function_code, tuple(m.registers.get(q) for q in _SIGNATURE))
        groups.setdefault(key, []).append(m)
    return list(groups.values())


async def _identify(
    bus: ModbusBus, group: list[MeterMap], unit_id: int, timeout: float, retries: int
) -> tuple[MeterMap, tuple[str, ...], dict[str, float | None]] | None:
    """Read the group's identification registers; None if implausible."""
    first = group[0]
    meter = ModbusMeter(first, bus=bus, unit_id=unit_id, timeout=timeout, retries=retries)
    values = await meter.read_values([q for q in _SIGNATURE if first.offers(q)])
    if not _plausible(values):
        return None
    three = [m for m in group if m.phases == 3]
    single = [m for m in group if m.phases == 1]
    chosen = group
    if three and single:
        probe_l23 = ModbusMeter(
            three[0], bus=bus, unit_id=unit_id, timeout=timeout, retries=retries
        )
        try:
            more = await probe_l23.read_values(["voltage_l2", "voltage_l3"])
            has_l23 = all(_in(more[q], VOLTAGE_RANGE) for q in ("voltage_l2", "voltage_l3"))
        except MeterError:
            has_l23 = False
        chosen = three if has_l23 else single
    return chosen[0], tuple(m.model for m in chosen[1:]), values


async def _scan_unit(
    bus: ModbusBus, groups: list[list[MeterMap]], unit_id: int, timeout: float, retries: int
) -> tuple[bool, Found | None]:
    """Try every model group at one unit id: (did anything answer?, what was identified)."""
    heard = False
    for group in groups:
        try:
            hit = await _identify(bus, group, unit_id, timeout, retries)
        except MeterNotAnswering:
            if not heard:
                return False, None  # nobody (intelligible) at this unit id
            continue
        except MeterExceptionResponse:
            heard = True  # someone is there, but not with these registers
            continue
        heard = True
        if hit is not None:
            model, alternatives, values = hit
            return True, Found(
                model=model.model,
                port=bus.port,
                baud=bus.baud,
                parity=bus.parity,
                stopbits=bus.stopbits,
                unit_id=unit_id,
                voltage_v=values.get("voltage_l1") or 0.0,
                frequency_hz=values.get("frequency"),
                alternatives=alternatives,
            )
    return heard, None


async def probe(
    port: str,
    models: Iterable[str] | None = None,
    bauds: Iterable[int] = DEFAULT_BAUDS,
    parities: Iterable[str] = DEFAULT_PARITIES,
    unit_ids: Iterable[int] = range(1, 4),
    timeout: float = 0.2,
    *,
    stopbits: int = 1,
    retries: int = 0,
    bus_factory: BusFactory = _default_bus,
) -> list[Found]:
    """Scan `port` for meters of `models` (default: all shipped maps).

    Tries each baud rate and parity in the order given, each unit id, and each
    group of models; returns what it found at the first serial setting where
    any device answered. Worst case (nothing connected) costs
    len(bauds) * len(parities) * len(unit_ids) * timeout seconds.
    `bus_factory(port, baud, parity, stopbits, timeout)` builds the bus for each
    setting (a hook for simulators and tests). Raises MeterPortError if the
    port cannot be opened.
    """
    groups = _groups(list(models) if models is not None else available_models())
    units = list(unit_ids)
    parity_list = list(parities)
    for baud in bauds:
        for parity in parity_list:
            bus = bus_factory(port, baud, parity, stopbits, timeout)
            found: list[Found] = []
            answered = False
            try:
                for unit_id in units:
                    heard, hit = await _scan_unit(bus, groups, unit_id, timeout, retries)
                    answered = answered or heard
                    if hit is not None:
                        found.append(hit)
                        log.info("%s unit %d: %s (%.1f V)", bus.settings, unit_id, hit.model,
                                 hit.voltage_v)  # fmt: skip
                    elif heard:
                        log.warning("%s unit %d answers but matches no known meter model",
                                    bus.settings, unit_id)  # fmt: skip
            finally:
                await bus.close()
            if answered:
                return found
            log.debug("%s: nothing answered", bus.settings)
    return []


def probe_sync(
    port: str,
    models: Iterable[str] | None = None,
    bauds: Iterable[int] = DEFAULT_BAUDS,
    parities: Iterable[str] = DEFAULT_PARITIES,
    unit_ids: Iterable[int] = range(1, 4),
    timeout: float = 0.2,
    *,
    stopbits: int = 1,
    retries: int = 0,
    bus_factory: BusFactory = _default_bus,
) -> list[Found]:
    """probe() for synchronous callers (the CLI); must not run inside an event loop."""
    return asyncio.run(
        probe(
            port,
            models,
            bauds,
            parities,
            unit_ids,
            timeout,
            stopbits=stopbits,
            retries=retries,
            bus_factory=bus_factory,
        )
    )


def _toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML escapes)."""
    return json.dumps(text, ensure_ascii=True)


def config_snippet(found: Found | Iterable[Found]) -> str:
    """TOML `[[meters]]` entries for the configuration, one per found meter."""
    items = [found] if isinstance(found, Found) else list(found)
    parts: list[str] = []
    for f in items:
        freq = "" if f.frequency_hz is None else f", {f.frequency_hz:.1f} Hz"
        lines = [
            f"# found on {f.port} at {serial_text(f.baud, f.parity, f.stopbits)}, "
            f"unit {f.unit_id}: L1 {f.voltage_v:.1f} V{freq}",
            "[[meters]]",
            f"model = {_toml_string(f.model)}",
            f"port = {_toml_string(f.port)}",
            f"baud = {f.baud}",
            f"parity = {_toml_string(f.parity)}",
            f"stopbits = {f.stopbits}",
            f"unit_id = {f.unit_id}",
        ]
        if f.alternatives:
            lines.insert(
                2, f"# same registers as: {', '.join(f.alternatives)}; check the meter's label"
            )
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
