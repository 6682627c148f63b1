"""Which register blocks to read for a poll, and what a poll costs on the wire.

On RS-485 every Modbus transaction pays a fixed price, the 8-byte request, the
5 bytes of response framing and two t3.5 silences, while each extra register
costs only 2 bytes. So reading one longer block across a small gap is cheaper
than two reads, and a large gap is not. plan_reads() finds the split with the
least wire time (hardware reference §5.3), and never reads more than the model
allows in one request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drivers.meter.registermap import QUANTITIES, MeterMap, Register

REQUEST_BYTES = 8  # unit, FC, address (2), count (2), CRC (2)
RESPONSE_OVERHEAD_BYTES = 5  # unit, FC, byte count, CRC (2); plus 2 bytes per register
FIXED_T35_MS = 1.75  # above 19200 baud the spec fixes t3.5 (and t1.5 = 0.75 ms)
FIXED_T15_MS = 0.75


@dataclass(frozen=True, slots=True)
class Block:
    """One FC3/FC4 read: `count` registers from `address`, covering `quantities`."""

    function_code: int
    address: int
    count: int
    quantities: tuple[str, ...]

    @property
    def end(self) -> int:
        return self.address + self.count

    def words(self, reg: Register, registers: Sequence[int]) -> Sequence[int]:
        """The slice of this block's response that holds `reg`."""
        start = reg.address - self.address
        return registers[start : start + reg.width]


def char_bits(parity: str, stopbits: int = 1) -> int:
    """Bits per character: start + 8 data + parity + stop (8N1 = 10, 8E1 = 11)."""
    return 1 + 8 + (0 if parity == "N" else 1) + stopbits


def char_time_ms(baud: int, parity: str, stopbits: int = 1) -> float:
    return char_bits(parity, stopbits) * 1000.0 / baud


def t35_ms(baud: int, parity: str, stopbits: int = 1) -> float:
    """Inter-frame silence: 3.5 characters, fixed 1.75 ms above 19200 baud."""
    return FIXED_T35_MS if baud > 19200 else 3.5 * char_time_ms(baud, parity, stopbits)


def t15_ms(baud: int, parity: str, stopbits: int = 1) -> float:
    """Inter-character timeout: 1.5 characters, fixed 0.75 ms above 19200 baud."""
    return FIXED_T15_MS if baud > 19200 else 1.5 * char_time_ms(baud, parity, stopbits)


def transaction_time_ms(
    count: int, baud: int, parity: str, stopbits: int = 1, *, gaps: bool = True
) -> float:
    """Wire time of one read of `count` registers: request + response (+ 2 x t3.5).

    Excludes the slave's turnaround, which no frame size predicts.
    """
    chars = REQUEST_BYTES + RESPONSE_OVERHEAD_BYTES + 2 * count
    wire = chars * char_time_ms(baud, parity, stopbits)
    return wire + (2 * t35_ms(baud, parity, stopbits) if gaps else 0.0)


def bus_time_ms(blocks: Iterable[Block], baud: int, parity: str, stopbits: int = 1) -> float:
    """Wire time of a poll (all its reads, with their t3.5 gaps)."""
    return sum(transaction_time_ms(b.count, baud, parity, stopbits) for b in blocks)


def plan_reads(
    meter_map: MeterMap,
    wanted: Iterable[str],
    *,
    baud: int | None = None,
    parity: str | None = None,
    stopbits: int | None = None,
    turnaround_ms: float = 0.0,
) -> list[Block]:
    """The contiguous reads that fetch `wanted` in the least wire time.

    Serial settings default to the model's factory settings. `turnaround_ms`
    adds the slave's reply delay to each transaction's cost: 0 decides by wire
    time alone (§5.3); a realistic 30-100 ms makes the planner merge more.
    Ties go to fewer transactions. Maps with read_across_gaps = false are only
    merged where registers are adjacent.
    """
    names = list(dict.fromkeys(wanted))
    for name in names:
        if name not in QUANTITIES:
            raise ValueError(f"unknown quantity {name!r} (known: {', '.join(QUANTITIES)})")
        if not meter_map.offers(name):
            raise ValueError(f"{meter_map.model} does not offer {name}")
    if not names:
        return []
    baud = baud or meter_map.baud
    parity = parity or meter_map.parity
    stopbits = stopbits or meter_map.stopbits
    regs = sorted((meter_map.register(n) for n in names), key=lambda r: r.address)
    n = len(regs)

    def cost(i: int, j: int) -> float | None:
        """Cost of one read covering regs[i..j], or None if it may not be merged."""
        count = regs[j].end - regs[i].address
        if count > meter_map.max_registers:
            return None
        if not meter_map.read_across_gaps and any(
            regs[k + 1].address != regs[k].end for k in range(i, j)
        ):
            return None
        return transaction_time_ms(count, baud, parity, stopbits) + turnaround_ms

    # best[j] = (time, transactions, start of the last block) for regs[0..j-1]
    best: list[tuple[float, int, int]] = [(0.0, 0, 0)]
    for j in range(n):
        options = []
        for i in range(j + 1):
            c = cost(i, j)
            if c is not None:
                t, k, _ = best[i]
                options.append((round(t + c, 9), k + 1, i))
        best.append(min(options))  # a single register always fits: options is not empty
    blocks: list[Block] = []
    j = n
    while j > 0:
        i = best[j][2]
        first, last = regs[i], regs[j - 1]
        blocks.append(
            Block(
                meter_map.function_code,
                first.address,
                last.end - first.address,
                tuple(r.quantity for r in regs[i:j]),
            )
        )
        j = i
    blocks.reverse()
    return blocks
