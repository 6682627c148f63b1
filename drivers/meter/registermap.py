"""Register maps of the supported energy meters, and the codec for their values.

Each model's map is a data file, `maps/<model>.toml`, so that adding a meter, or
fixing an address after checking a datasheet, needs no code change. A map is
validated completely when it is first loaded: a broken map is a bug, and it must
fail loudly with the file and key at fault, not as a wrong reading later.

Map file format (see any file in maps/ for an example)::

    model = "eastron_sdm630"          # must equal the file name
    description = "Eastron SDM630"
    phases = 3                        # 1 or 3
    function_code = 4                 # 3 = holding, 4 = input registers
    max_registers_per_read = 80       # optional, default 125 (the Modbus limit)
    read_across_gaps = true           # optional, default true: unmapped registers
                                      # between mapped ones may be read along
    [serial]                          # factory defaults
    baud = 9600
    parity = "N"                      # N, E or O
    stopbits = 1
    unit_id = 1
    [defaults]                        # optional: applies to every register
    type = "float32"
    word_order = "high_first"
    [registers]
    voltage_l1 = { address = 0x0000, unit = "V" }
    energy_import = { address = 0x5000, type = "uint64", scale = 0.01, unit = "kWh",
                      not_available = "max" }

Register keys: `address` (0-based PDU address), `type` (float32, int16, uint16,
int32, uint32, int64, uint64), `word_order` (high_first or low_first), `scale`
(multiplies the raw number, default 1), `unit` (the unit after scaling: V; A or
mA; W or kW; Wh or kWh; Hz), `not_available` ("max": all-ones for unsigned and
0x7FFF... for signed types, as ABB does, or a list of raw bit patterns).
Values are returned in V, A, W, Wh and Hz. A float NaN or infinity, or a
not-available pattern, decodes to None.
"""

from __future__ import annotations

import functools
import itertools
import math
import struct
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

MAPS_DIR = Path(__file__).with_name("maps")
MODBUS_MAX_READ = 125  # registers per FC3/FC4 read, Modbus Application Protocol

# quantity -> kind; the kind decides which units are allowed.
QUANTITIES: Mapping[str, str] = MappingProxyType(
    {
        "voltage_l1": "voltage",
        "voltage_l2": "voltage",
        "voltage_l3": "voltage",
        "current_l1": "current",
        "current_l2": "current",
        "current_l3": "current",
        "power_total": "power",
        "power_l1": "power",
        "power_l2": "power",
        "power_l3": "power",
        "energy_import": "energy",
        "energy_export": "energy",
        "energy_total": "energy",
        "frequency": "frequency",
    }
)
PHASE_QUANTITIES = frozenset(q for q in QUANTITIES if q[-3:] in ("_l2", "_l3"))

# kind -> {unit: factor to the canonical unit (V, A, W, Wh, Hz)}
UNITS: Mapping[str, Mapping[str, Decimal]] = MappingProxyType(
    {
        "voltage": {"V": Decimal(1)},
        "current": {"A": Decimal(1), "mA": Decimal("0.001")},
        "power": {"W": Decimal(1), "kW": Decimal(1000)},
        "energy": {"Wh": Decimal(1), "kWh": Decimal(1000)},
        "frequency": {"Hz": Decimal(1)},
    }
)

# type -> (registers, signed)
TYPES: Mapping[str, tuple[int, bool]] = MappingProxyType(
    {
        "float32": (2, True),
        "int16": (1, True),
        "uint16": (1, False),
        "int32": (2, True),
        "uint32": (2, False),
        "int64": (4, True),
        "uint64": (4, False),
    }
)
WORD_ORDERS = ("high_first", "low_first")
PARITIES = ("N", "E", "O")
BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)

_REGISTER_KEYS = {"address", "type", "word_order", "scale", "unit", "not_available"}
_DEFAULT_KEYS = _REGISTER_KEYS - {"address", "unit"}
_TOP_KEYS = {
    "model",
    "description",
    "phases",
    "function_code",
    "max_registers_per_read",
    "read_across_gaps",
    "serial",
    "defaults",
    "registers",
}
_SERIAL_KEYS = {"baud", "parity", "stopbits", "unit_id"}


class MeterMapError(ValueError):
    """A map file is missing, unreadable or inconsistent (a bug in the shipped maps)."""


def _float32_decimal(bits: int) -> Decimal | None:
    """The shortest decimal that reads back as these float32 bits (None: NaN/inf).

    A float32 230.1 is 230.100006103515625 as a double; printing that in an OCPP
    meter value would look like noise, so use the digits the meter meant.
    """
    raw = bits.to_bytes(4, "big")
    (value,) = struct.unpack(">f", raw)
    if not math.isfinite(value):
        return None
    for digits in range(6, 10):
        text = f"{value:.{digits}g}"
        if struct.pack(">f", float(text)) == raw:
            return Decimal(text)
    return Decimal(repr(value))  # pragma: no cover - 9 digits always round-trip


@dataclass(frozen=True, slots=True)
class Register:
    """Where and how one quantity is stored, and how to turn it into V, A, W, Wh or Hz."""

    quantity: str
    address: int
    type: str
    word_order: str
    scale: Decimal
    unit: str
    not_available: frozenset[int] = frozenset()

    @property
    def width(self) -> int:
        """Number of 16-bit registers."""
        return TYPES[self.type][0]

    @property
    def end(self) -> int:
        """One past the last register."""
        return self.address + self.width

    @property
    def factor(self) -> Decimal:
        """Raw number -> canonical unit (scale times unit conversion)."""
        return self.scale * UNITS[QUANTITIES[self.quantity]][self.unit]

    @property
    def signed(self) -> bool:
        return TYPES[self.type][1]

    def _bits(self, words: Sequence[int]) -> int:
        if len(words) != self.width:
            raise ValueError(f"{self.quantity}: need {self.width} registers, got {len(words)}")
        ordered = words if self.word_order == "high_first" else list(reversed(words))
        bits = 0
        for word in ordered:
            if not 0 <= word <= 0xFFFF:
                raise ValueError(f"{self.quantity}: register value {word!r} is not 16-bit")
            bits = (bits << 16) | word
        return bits

    def decode(self, words: Sequence[int]) -> float | None:
        """Registers as read (in address order) -> value in the canonical unit, or None."""
        bits = self._bits(words)
        if bits in self.not_available:
            return None
        if self.type == "float32":
            number = _float32_decimal(bits)
            if number is None:
                return None
        else:
            nbits = 16 * self.width
            if self.signed and bits >= 1 << (nbits - 1):
                bits -= 1 << nbits
            number = Decimal(bits)
        return float(number * self.factor)

    def encode(self, value: float | None) -> list[int]:
        """Value in the canonical unit -> registers in address order (for simulators).

        None encodes as NaN (float) or the first not-available pattern (integers).
        """
        nbits = 16 * self.width
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if self.type == "float32":
                bits = 0x7FC00000
            elif self.not_available:
                bits = min(self.not_available)
            else:
                raise ValueError(f"{self.quantity}: this map has no 'not available' marker")
        elif self.type == "float32":
            raw = float(Decimal(repr(float(value))) / self.factor)
            (bits,) = struct.unpack(">I", struct.pack(">f", raw))
        else:
            number = (Decimal(repr(float(value))) / self.factor).to_integral_value()
            top = 1 << (nbits - 1) if self.signed else 1 << nbits
            lo = -top if self.signed else 0
            if not lo <= number < top:
                raise ValueError(f"{self.quantity}: {value} does not fit in {self.type}")
            bits = int(number) & ((1 << nbits) - 1)
        words = [(bits >> (16 * i)) & 0xFFFF for i in reversed(range(self.width))]
        return words if self.word_order == "high_first" else list(reversed(words))


@dataclass(frozen=True, slots=True, eq=False)
class MeterMap:
    """One meter model's register map and factory serial settings."""

    model: str
    description: str
    phases: int
    function_code: int
    max_registers: int
    read_across_gaps: bool
    baud: int
    parity: str
    stopbits: int
    unit_id: int
    registers: Mapping[str, Register]
    source: str

    def offers(self, quantity: str) -> bool:
        return quantity in self.registers

    def register(self, quantity: str) -> Register:
        try:
            return self.registers[quantity]
        except KeyError:
            raise KeyError(f"{self.model} has no {quantity} register") from None

    def mapped(self, address: int) -> Register | None:
        """The register that covers `address`, if any."""
        for reg in self.registers.values():
            if reg.address <= address < reg.end:
                return reg
        return None

    def __repr__(self) -> str:
        return f"MeterMap({self.model!r})"


class _Checker:
    """Collects every problem of a map file so that one error lists them all."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def bad(self, where: str, text: str) -> None:
        self.problems.append(f"{where}: {text}")

    def unknown_keys(self, where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
        for key in sorted(set(table) - allowed):
            self.bad(f"{where}{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def int_in(self, where: str, value: Any, lo: int, hi: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad(where, f"expected an integer, got {value!r}")
            return None
        if not lo <= value <= hi:
            self.bad(where, f"{value} is outside {lo}..{hi}")
            return None
        return value

    def choice(self, where: str, value: Any, allowed: Sequence[Any]) -> Any:
        if value not in allowed:
            self.bad(where, f"{value!r} is not one of {', '.join(map(repr, allowed))}")
            return None
        return value

    def table(self, where: str, value: Any) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            self.bad(where, f"expected a table, got {value!r}")
            return {}
        return value

    def fail_if_any(self) -> None:
        if self.problems:
            lines = "\n  ".join(self.problems)
            raise MeterMapError(f"invalid meter map {self.source}:\n  {lines}")


def _not_available(c: _Checker, where: str, value: Any, type_: str | None) -> frozenset[int] | None:
    if value is None or type_ is None:
        return frozenset()
    width, signed = TYPES[type_]
    nbits = 16 * width
    if value == "max":
        if type_ == "float32":
            c.bad(where, '"max" applies to integer types only (NaN is always "not available")')
            return None
        return frozenset({(1 << (nbits - 1)) - 1 if signed else (1 << nbits) - 1})
    if isinstance(value, list) and value:
        patterns = [c.int_in(f"{where}[{i}]", v, 0, (1 << nbits) - 1) for i, v in enumerate(value)]
        if any(p is None for p in patterns):
            return None
        return frozenset(p for p in patterns if p is not None)
    c.bad(where, f'expected "max" or a non-empty list of raw bit patterns, got {value!r}')
    return None


def parse_map(data: Mapping[str, Any], source: str, expected_model: str | None = None) -> MeterMap:
    """Validate a parsed map file and build the MeterMap.

    Raises MeterMapError listing every problem, so one run shows them all.
    """
    c = _Checker(source)
    c.unknown_keys("", data, _TOP_KEYS)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        c.bad("model", f"expected a non-empty string, got {model!r}")
        model = expected_model or "?"
    elif expected_model is not None and model != expected_model:
        c.bad("model", f"{model!r} does not match the file name ({expected_model!r})")
    description = data.get("description", model)
    if not isinstance(description, str):
        c.bad("description", f"expected a string, got {description!r}")
    phases = c.choice("phases", data.get("phases"), (1, 3))
    fc = c.choice("function_code", data.get("function_code"), (3, 4))
    max_regs = c.int_in(
        "max_registers_per_read", data.get("max_registers_per_read", MODBUS_MAX_READ), 4, 125
    )
    across = data.get("read_across_gaps", True)
    if not isinstance(across, bool):
        c.bad("read_across_gaps", f"expected true or false, got {across!r}")

    serial = c.table("serial", data.get("serial"))
    c.unknown_keys("serial.", serial, _SERIAL_KEYS)
    baud = c.choice("serial.baud", serial.get("baud"), BAUDS)
    parity = c.choice("serial.parity", serial.get("parity"), PARITIES)
    stopbits = c.choice("serial.stopbits", serial.get("stopbits"), (1, 2))
    unit_id = c.int_in("serial.unit_id", serial.get("unit_id"), 1, 247)

    defaults = c.table("defaults", data.get("defaults", {}))
    c.unknown_keys("defaults.", defaults, _DEFAULT_KEYS)

    registers: dict[str, Register] = {}
    for name, spec in c.table("registers", data.get("registers")).items():
        where = f"registers.{name}"
        if name not in QUANTITIES:
            c.bad(where, f"unknown quantity (known: {', '.join(QUANTITIES)})")
            continue
        spec = c.table(where, spec)
        c.unknown_keys(f"{where}.", spec, _REGISTER_KEYS)
        merged = {**defaults, **spec}
        address = c.int_in(f"{where}.address", merged.get("address"), 0, 0xFFFF)
        type_ = c.choice(f"{where}.type", merged.get("type"), tuple(TYPES))
        order = c.choice(f"{where}.word_order", merged.get("word_order", "high_first"), WORD_ORDERS)
        units = UNITS[QUANTITIES[name]]
        unit = c.choice(f"{where}.unit", merged.get("unit"), tuple(units))
        scale_value = merged.get("scale", 1)
        scale: Decimal | None = None
        if isinstance(scale_value, bool) or not isinstance(scale_value, int | float):
            c.bad(f"{where}.scale", f"expected a number, got {scale_value!r}")
        elif not math.isfinite(scale_value) or scale_value == 0:
            c.bad(f"{where}.scale", f"must be finite and non-zero, got {scale_value!r}")
        else:
            scale = Decimal(repr(scale_value))
        na = _not_available(c, f"{where}.not_available", merged.get("not_available"), type_)
        if address is None or type_ is None or order is None or unit is None:
            continue
        if scale is None or na is None:
            continue
        if address + TYPES[type_][0] > 0x10000:
            c.bad(f"{where}.address", "the value runs past register 0xFFFF")
            continue
        registers[name] = Register(name, address, type_, order, scale, unit, na)

    if "energy_import" not in registers and not any(
        p.startswith("registers.energy_import") for p in c.problems
    ):
        c.bad("registers.energy_import", "missing: the import energy register is mandatory")
    if phases == 1:
        for name in sorted(PHASE_QUANTITIES & set(registers)):
            c.bad(f"registers.{name}", "a single-phase meter has no L2/L3 values")
    ordered = sorted(registers.values(), key=lambda r: r.address)
    for a, b in itertools.pairwise(ordered):
        if b.address < a.end:
            c.bad(f"registers.{b.quantity}", f"overlaps registers.{a.quantity}")
    if max_regs is not None:
        for reg in ordered:
            if reg.width > max_regs:
                c.bad(f"registers.{reg.quantity}", "wider than max_registers_per_read")
    c.fail_if_any()
    assert phases is not None and fc is not None and max_regs is not None  # checked above
    assert baud is not None and parity is not None and stopbits is not None and unit_id is not None
    return MeterMap(
        model=model,
        description=str(description),
        phases=phases,
        function_code=fc,
        max_registers=max_regs,
        read_across_gaps=bool(across),
        baud=baud,
        parity=parity,
        stopbits=stopbits,
        unit_id=unit_id,
        registers=MappingProxyType(dict(sorted(registers.items(), key=lambda i: i[1].address))),
        source=source,
    )


def load_map_file(path: str | Path) -> MeterMap:
    """Load and validate one map file (the model must equal the file name)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise MeterMapError(f"meter map {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise MeterMapError(f"cannot read meter map {path}: {e}") from e
    return parse_map(data, str(path), expected_model=path.stem)


def available_models() -> list[str]:
    """Models with a shipped map file, sorted."""
    return sorted(p.stem for p in MAPS_DIR.glob("*.toml"))


@functools.cache
def load_map(model: str) -> MeterMap:
    """The shipped map of `model`, validated on first use and cached."""
    path = MAPS_DIR / f"{model}.toml"
    if not model or "/" in model or not path.is_file():
        known = ", ".join(available_models())
        raise MeterMapError(f"unknown meter model {model!r} (known: {known})")
    return load_map_file(path)


def load_all_maps() -> dict[str, MeterMap]:
    """Every shipped map, validated: the test that no shipped map is broken."""
    return {model: load_map(model) for model in available_models()}
