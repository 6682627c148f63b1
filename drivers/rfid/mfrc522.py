"""MFRC522 RFID reader on SPI, talking to the chip through spidev directly.

Why not the PyPI `mfrc522` package: it reads only 4-byte UIDs, busy-polls and
needs RPi.GPIO, which does not run on a Pi 5. This driver needs only the SPI
bus (no RST or IRQ pin): it soft-resets the chip and polls the IRQ registers.

Two layers:

* `Mfrc522`: blocking, register-level access to one chip (init, CalcCRC,
  Transceive, REQA/WUPA, anticollision and select over all cascade levels,
  HLTA). Usable on its own for diagnostics.
* `Mfrc522Reader`: the station's CardReader. Each poll runs in a one-thread
  executor, so the event loop never waits on SPI; results come back to the
  poll task on the loop, which debounces them and schedules the callbacks
  with call_soon (the task already runs on the loop, so no
  call_soon_threadsafe hop is needed).

Register values and the sequence follow the hardware reference §6
(miguelbalboa/rfid values, ISO 14443-3 sequence).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol

from drivers.interfaces import CardCallback, FaultCallback, FaultKind

log = logging.getLogger("evsed.rfid")

# Registers (MFRC522 datasheet §9.2).
COMMAND_REG = 0x01
COM_IRQ_REG = 0x04
DIV_IRQ_REG = 0x05
ERROR_REG = 0x06
FIFO_DATA_REG = 0x09
FIFO_LEVEL_REG = 0x0A
CONTROL_REG = 0x0C
BIT_FRAMING_REG = 0x0D
COLL_REG = 0x0E
MODE_REG = 0x11
TX_MODE_REG = 0x12
RX_MODE_REG = 0x13
TX_CONTROL_REG = 0x14
TX_ASK_REG = 0x15
CRC_RESULT_REG_H = 0x21
CRC_RESULT_REG_L = 0x22
MOD_WIDTH_REG = 0x24
RF_CFG_REG = 0x26
T_MODE_REG = 0x2A
T_PRESCALER_REG = 0x2B
T_RELOAD_REG_H = 0x2C
T_RELOAD_REG_L = 0x2D
VERSION_REG = 0x37

# Commands.
CMD_IDLE = 0x00
CMD_CALC_CRC = 0x03
CMD_TRANSCEIVE = 0x0C
CMD_SOFT_RESET = 0x0F

# Register bits.
POWER_DOWN = 0x10
TX_IRQ, RX_IRQ, IDLE_IRQ, ERR_IRQ, TIMER_IRQ = 0x40, 0x20, 0x10, 0x02, 0x01
CRC_IRQ = 0x04
TEMP_ERR, BUFFER_OVFL, COLL_ERR, CRC_ERR, PARITY_ERR, PROTOCOL_ERR = (
    0x40,
    0x10,
    0x08,
    0x04,
    0x02,
    0x01,
)
COLL_POS_NOT_VALID = 0x20
START_SEND = 0x80

# Init values (§6.2): TAuto, 40 kHz timer tick, 1000 ticks = 25 ms, 100 % ASK,
# CRC preset 0x6363 (CRC_A).
T_MODE = 0x80
T_PRESCALER = 0xA9
T_RELOAD = 0x03E8
TX_ASK = 0x40
MODE = 0x3D

# PICC commands (ISO 14443-3).
REQA = 0x26
WUPA = 0x52
SEL_CODES = (0x93, 0x95, 0x97)
CASCADE_TAG = 0x88
SAK_CASCADE = 0x04

KNOWN_VERSIONS = {0x91: "MFRC522 v1.0", 0x92: "MFRC522 v2.0", 0x88: "FM17522 clone"}
RX_GAIN_CODES = {18: 0, 23: 1, 33: 4, 38: 5, 43: 6, 48: 7}  # RFCfgReg RxGain[6:4]

TRANSCEIVE_DEADLINE_S = 0.036  # timer is 25 ms; miguelbalboa's software deadline
CRC_DEADLINE_S = 0.090
RESET_DEADLINE_S = 0.050
FIELD_GUARD_S = 0.005  # ISO 14443-3: let cards power up before the first command
HLTA_GUARD_S = 0.001  # a PICC NAK would arrive within ~0.1 ms after HLTA
IRQ_POLL_S = 0.0003  # pause between ComIrqReg reads: keeps the CPU and GIL free
MAX_SPEED_HZ = 10_000_000

IdOrder = Literal["received", "reversed"]
IdCase = Literal["upper", "lower"]
IdBase = Literal["hex", "dec"]


def format_id_tag(
    uid: bytes, order: IdOrder = "received", case: IdCase = "upper", base: IdBase = "hex"
) -> str:
    """The idTag a backend expects for `uid`.

    The default (upper-case hex, UID0 first) is the usual OCPP form and fits
    CiString20 for 10-byte UIDs. Some backends and card printers use the
    reversed byte order, lower case, or the 10-digit decimal of the first four
    bytes (base="dec": uid[0..3] read most significant first, or least
    significant first with order="reversed").
    """
    if order not in ("received", "reversed"):
        raise ValueError(f"order must be 'received' or 'reversed', not {order!r}")
    if case not in ("upper", "lower"):
        raise ValueError(f"case must be 'upper' or 'lower', not {case!r}")
    if base not in ("hex", "dec"):
        raise ValueError(f"base must be 'hex' or 'dec', not {base!r}")
    if not uid:
        raise ValueError("empty UID")
    if base == "dec":
        if len(uid) < 4:
            raise ValueError("a decimal idTag needs at least 4 UID bytes")
        first = uid[:4] if order == "received" else uid[3::-1]
        return f"{int.from_bytes(first, 'big'):010d}"
    ordered = uid if order == "received" else uid[::-1]
    text = ordered.hex()
    return text.upper() if case == "upper" else text


class SpiDevice(Protocol):
    """The part of spidev.SpiDev the driver uses (FakeSpiDev implements it too)."""

    max_speed_hz: int
    mode: int

    def open(self, bus: int, device: int) -> None: ...

    def xfer2(self, values: list[int]) -> list[int]: ...

    def close(self) -> None: ...


class ChipError(Exception):
    """The MFRC522 did not behave: a command never finished, or it reports overheating."""


class CardError(Exception):
    """A card answered, but the exchange was inconsistent (BCC, CRC, length, collision)."""


@dataclass(frozen=True, slots=True)
class Received:
    """One Transceive answer as the chip left it."""

    data: bytes
    last_bits: int  # valid bits in the last byte; 0 = all eight
    error: int  # ErrorReg
    coll: int  # CollReg (read only when ErrorReg says CollErr)


class Mfrc522:
    """Blocking register-level access to one MFRC522 on an opened SPI device.

    Not thread-safe: one thread owns it (the reader's worker).
    """

    def __init__(
        self,
        spi: SpiDevice,
        *,
        rx_gain_db: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rx_gain_db is not None and rx_gain_db not in RX_GAIN_CODES:
            raise ValueError(f"rx_gain_db must be one of {sorted(RX_GAIN_CODES)}")
        self.spi = spi
        self.rx_gain_db = rx_gain_db
        self._sleep = sleep
        self._clock = clock

    # -- registers (§6.1 address byte) -------------------------------------

    def read(self, reg: int) -> int:
        return self.spi.xfer2([((reg << 1) & 0x7E) | 0x80, 0x00])[1] & 0xFF

    def write(self, reg: int, value: int) -> None:
        self.spi.xfer2([(reg << 1) & 0x7E, value & 0xFF])

    def read_fifo(self, count: int) -> bytes:
        if count <= 0:
            return b""
        addr = ((FIFO_DATA_REG << 1) & 0x7E) | 0x80
        return bytes(b & 0xFF for b in self.spi.xfer2([addr] * count + [0x00])[1:])

    def write_fifo(self, data: bytes) -> None:
        self.spi.xfer2([(FIFO_DATA_REG << 1) & 0x7E, *data])

    # -- chip ------------------------------------------------------------------

    def version(self) -> int:
        return self.read(VERSION_REG)

    def init(self) -> None:
        """Soft reset and configure (§6.2). The antenna comes on last; cards get 5 ms."""
        self.write(COMMAND_REG, CMD_SOFT_RESET)
        deadline = self._clock() + RESET_DEADLINE_S
        self._sleep(0.001)
        while self.read(COMMAND_REG) & POWER_DOWN:
            if self._clock() > deadline:
                raise ChipError("soft reset did not finish")
            self._sleep(0.001)
        self.write(TX_MODE_REG, 0x00)  # 106 kBd, no hardware CRC: CalcCRC is used instead
        self.write(RX_MODE_REG, 0x00)
        self.write(MOD_WIDTH_REG, 0x26)
        self.write(T_MODE_REG, T_MODE)
        self.write(T_PRESCALER_REG, T_PRESCALER)
        self.write(T_RELOAD_REG_H, T_RELOAD >> 8)
        self.write(T_RELOAD_REG_L, T_RELOAD & 0xFF)
        self.write(TX_ASK_REG, TX_ASK)
        self.write(MODE_REG, MODE)
        self.write(COLL_REG, 0x00)  # ValuesAfterColl = 0, for bit-oriented anticollision
        if self.rx_gain_db is not None:
            cfg = self.read(RF_CFG_REG) & 0x8F
            self.write(RF_CFG_REG, cfg | (RX_GAIN_CODES[self.rx_gain_db] << 4))
        self.write(TX_CONTROL_REG, self.read(TX_CONTROL_REG) | 0x03)
        self._sleep(FIELD_GUARD_S)

    def config_ok(self) -> bool:
        """Whether the chip still holds init()'s settings (a brown-out resets it silently)."""
        expected = {
            T_MODE_REG: T_MODE,
            T_PRESCALER_REG: T_PRESCALER,
            TX_ASK_REG: TX_ASK,
            MODE_REG: MODE,
        }
        checks = [(reg, 0xFF, value) for reg, value in expected.items()]
        checks.append((TX_CONTROL_REG, 0x03, 0x03))  # antenna on
        for reg, mask, value in checks:
            # A mismatch must be read twice: one flipped bit on SPI is not a reset chip.
            if self.read(reg) & mask != value and self.read(reg) & mask != value:
                return False
        return True

    def antenna_off(self) -> None:
        self.write(TX_CONTROL_REG, self.read(TX_CONTROL_REG) & ~0x03 & 0xFF)

    def calc_crc(self, data: bytes) -> bytes:
        """CRC_A of `data` from the chip's coprocessor, low byte first as transmitted."""
        self.write(COMMAND_REG, CMD_IDLE)
        self.write(DIV_IRQ_REG, CRC_IRQ)  # Set2 = 0: clear CRCIRq
        self.write(FIFO_LEVEL_REG, 0x80)  # flush
        self.write_fifo(data)
        self.write(COMMAND_REG, CMD_CALC_CRC)
        deadline = self._clock() + CRC_DEADLINE_S
        while not self.read(DIV_IRQ_REG) & CRC_IRQ:
            if self._clock() > deadline:
                self.write(COMMAND_REG, CMD_IDLE)
                raise ChipError("CalcCRC did not finish")
            self._sleep(IRQ_POLL_S)
        self.write(COMMAND_REG, CMD_IDLE)
        return bytes((self.read(CRC_RESULT_REG_L), self.read(CRC_RESULT_REG_H)))

    def transceive(
        self,
        data: bytes,
        *,
        tx_last_bits: int = 0,
        rx_align: int = 0,
        expect_answer: bool = True,
    ) -> Received | None:
        """Send one frame and collect the answer; None when the 25 ms timer expires.

        With expect_answer=False (HLTA) success is silence: wait for the end of
        transmission plus a short guard instead of the whole timeout.
        """
        framing = (rx_align << 4) | tx_last_bits
        self.write(COMMAND_REG, CMD_IDLE)
        self.write(COM_IRQ_REG, 0x7F)  # Set1 = 0: clear every IRQ bit
        self.write(FIFO_LEVEL_REG, 0x80)
        self.write_fifo(data)
        self.write(BIT_FRAMING_REG, framing)
        self.write(COMMAND_REG, CMD_TRANSCEIVE)
        self.write(BIT_FRAMING_REG, START_SEND | framing)
        deadline = self._clock() + TRANSCEIVE_DEADLINE_S
        guard_until: float | None = None
        try:
            while True:
                irq = self.read(COM_IRQ_REG)
                if irq & (RX_IRQ | IDLE_IRQ):
                    break
                if irq & TIMER_IRQ:
                    return None
                now = self._clock()
                if not expect_answer and irq & TX_IRQ:
                    if guard_until is None:
                        guard_until = now + HLTA_GUARD_S
                    elif now > guard_until:
                        return None
                if now > deadline:
                    raise ChipError("Transceive neither answered nor timed out")
                self._sleep(IRQ_POLL_S)
            error = self.read(ERROR_REG)
            if error & TEMP_ERR and self.read(ERROR_REG) & TEMP_ERR:  # twice: not an SPI glitch
                raise ChipError("overheated: the chip switched the antenna off")
            data_in = self.read_fifo(self.read(FIFO_LEVEL_REG) & 0x7F)
            last_bits = self.read(CONTROL_REG) & 0x07
            coll = self.read(COLL_REG) if error & COLL_ERR else 0
            return Received(data_in, last_bits, error, coll)
        finally:
            self.write(COMMAND_REG, CMD_IDLE)

    # -- ISO 14443-3 -----------------------------------------------------------

    def request(self, wake: bool = False) -> bytes | None:
        """REQA (IDLE cards) or WUPA (also HALTed ones): ATQA, or None if nobody answered.

        A collision in the ATQA means several cards: that is still "present".
        """
        rx = self.transceive(bytes([WUPA if wake else REQA]), tx_last_bits=7)
        if rx is None:
            return None
        if rx.error & COLL_ERR:
            return rx.data[:2].ljust(2, b"\x00")
        if rx.error & (PROTOCOL_ERR | PARITY_ERR | BUFFER_OVFL | CRC_ERR):
            raise CardError(f"ATQA with error {rx.error:#04x}")
        if len(rx.data) != 2 or rx.last_bits:
            raise CardError(f"ATQA of {len(rx.data)} bytes / {rx.last_bits} bits")
        return rx.data

    def anticollision(self, level: int) -> bytes:
        """Bit-oriented anticollision at one cascade level: 4 UID bytes + BCC (checked).

        On a collision the branch with a 1 at the collided bit is taken, so
        with several cards one of them is read now and the others later.
        CollPos is taken as counted in the received byte stream, RxAlign
        offset included (datasheet: "bit position ... in a received frame");
        on real hardware this is only exercised with several cards in the field.
        """
        sel = SEL_CODES[level]
        known = bytearray(5)
        known_bits = 0
        for _ in range(33):
            full, extra = divmod(known_bits, 8)
            nvb = ((2 + full) << 4) | extra
            frame = bytes([sel, nvb]) + bytes(known[: full + (1 if extra else 0)])
            rx = self.transceive(frame, tx_last_bits=extra, rx_align=extra)
            if rx is None:
                raise CardError(f"no answer to anticollision CL{level + 1}")
            if rx.error & (PROTOCOL_ERR | PARITY_ERR | BUFFER_OVFL | CRC_ERR):
                raise CardError(f"anticollision answer with error {rx.error:#04x}")
            if not rx.data or full + len(rx.data) > 5:
                raise CardError(f"anticollision answer of {len(rx.data)} bytes")
            merged = bytearray(known)
            for i, byte in enumerate(rx.data):
                if i == 0 and extra:
                    keep = (1 << extra) - 1
                    merged[full] = (known[full] & keep) | (byte & ~keep & 0xFF)
                else:
                    merged[full + i] = byte
            received_bits = 8 * len(rx.data) - ((8 - rx.last_bits) if rx.last_bits else 0)
            if not rx.error & COLL_ERR:
                if 8 * full + received_bits != 40:
                    raise CardError(f"anticollision answer ends at bit {8 * full + received_bits}")
                if merged[0] ^ merged[1] ^ merged[2] ^ merged[3] != merged[4]:
                    raise CardError("anticollision BCC mismatch")
                return bytes(merged)
            if rx.coll & COLL_POS_NOT_VALID:
                raise CardError("collision without a valid position")
            position = 8 * full + ((rx.coll & 0x1F) or 32)  # 1-based bit of the 40
            if position <= known_bits or position > 32:
                raise CardError(f"collision at bit {position} makes no progress")
            bit = position - 1
            known = bytearray(5)
            for i in range(bit):
                known[i // 8] |= merged[i // 8] & (1 << (i % 8))
            known[bit // 8] |= 1 << (bit % 8)
            known_bits = position
        raise CardError("anticollision did not converge")

    def select(self, level: int, cl: bytes) -> int:
        """SELECT one cascade level with 4 UID bytes + BCC; return the CRC-checked SAK."""
        frame = bytes([SEL_CODES[level], 0x70]) + cl
        rx = self.transceive(frame + self.calc_crc(frame))
        if rx is None:
            raise CardError(f"no SAK at CL{level + 1}")
        if rx.error or len(rx.data) != 3 or rx.last_bits:
            raise CardError(f"SAK of {len(rx.data)} bytes, error {rx.error:#04x}")
        if self.calc_crc(rx.data[:1]) != rx.data[1:]:
            raise CardError("SAK CRC_A mismatch")
        return rx.data[0]

    def halt(self) -> None:
        """HLTA: the card goes to HALT and ignores REQA until it leaves the field."""
        frame = b"\x50\x00"
        if self.transceive(frame + self.calc_crc(frame), expect_answer=False) is not None:
            raise CardError("the card answered HLTA")

    def read_uid(self, wake: bool = False) -> bytes | None:
        """REQA/WUPA, anticollision and select through all cascade levels, then HLTA.

        Returns the UID (4, 7 or 10 bytes) or None when no card answered.
        Raises CardError when a card answered but could not be read cleanly;
        every UID byte returned was confirmed by the card's SAK to a SELECT
        carrying it, so a garbled read cannot produce a wrong UID.
        """
        if self.request(wake) is None:
            return None
        uid = bytearray()
        for level in range(3):
            cl = self.anticollision(level)
            sak = self.select(level, cl)
            if sak & SAK_CASCADE:
                if cl[0] != CASCADE_TAG or level == 2:
                    raise CardError(f"SAK {sak:#04x} asks for a level after CL{level + 1}")
                uid += cl[1:4]
                continue
            if cl[0] == CASCADE_TAG:
                raise CardError(f"cascade tag at CL{level + 1}, but the SAK says complete")
            uid += cl[:4]
            break
        try:
            self.halt()
        except CardError as exc:  # the UID is confirmed; a failed HLTA costs a re-read
            log.debug("HLTA failed: %s", exc)
        return bytes(uid)


@dataclass(frozen=True, slots=True)
class _Cycle:
    """What one worker cycle learned, handed back to the event loop."""

    chip_ok: bool | None  # None: unknown this time (a glitch; the next cycle checks)
    seen: frozenset[bytes] = frozenset()  # UIDs read this cycle (through REQA or WUPA)
    conclusive: bool = False  # False: a card answered but could not be read


class _Worker:
    """The SPI side of the reader: owns the device and chip health; runs in one thread."""

    def __init__(
        self,
        open_spi: Callable[[], SpiDevice],
        rx_gain_db: int | None,
        version_check_s: float,
        accepted_versions: frozenset[int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open_spi = open_spi
        self._rx_gain_db = rx_gain_db
        self._version_check_s = version_check_s
        self._accepted = accepted_versions
        self._clock = clock
        self._chip: Mfrc522 | None = None
        self._ready = False
        self._next_check = 0.0
        self._suspect = False  # the last poll failed to read a card that answered
        self._last_bug = ""
        self.version: int | None = None

    def cycle(self, tracked: frozenset[bytes]) -> _Cycle:
        now = self._clock()
        try:
            if not self._ready or now >= self._next_check:
                if not self._check_chip():
                    return _Cycle(chip_ok=False)
                self._next_check = now + self._version_check_s
            return self._poll(tracked)
        except OSError as exc:
            log.warning("MFRC522 SPI error: %s", exc)
            self._drop()
            return _Cycle(chip_ok=None)
        except ChipError as exc:
            log.warning("MFRC522 misbehaves: %s; checking it again", exc)
            self._ready = False
            return _Cycle(chip_ok=None)
        except Exception as exc:  # a bug must not end polling for good: log it, start over
            if repr(exc) != self._last_bug:  # a traceback per poll would flood the journal
                self._last_bug = repr(exc)
                log.exception("MFRC522 poll failed")
            self._drop()
            return _Cycle(chip_ok=None)

    def _check_chip(self) -> bool:
        """Open, identify and (re)initialise the chip as needed; False if it is not usable."""
        try:
            if self._chip is None:
                self._chip = Mfrc522(self._open_spi(), rx_gain_db=self._rx_gain_db)
            chip = self._chip
            version = chip.version()
            for _ in range(2):  # one garbled read is not a dead chip
                if version in self._accepted:
                    break
                version = chip.version()
            if version not in self._accepted:
                if self.version != version:
                    log.warning("MFRC522 not answering: VersionReg = %#04x", version)
                self.version = version
                self._ready = False
                return False
            if version != self.version:
                log.info("MFRC522 found: %s", KNOWN_VERSIONS.get(version, f"{version:#04x}"))
            self.version = version
            if not self._ready or not chip.config_ok():
                if self._ready:
                    log.warning("MFRC522 lost its configuration; initialising it again")
                chip.init()
                self._ready = True
            return True
        except OSError as exc:
            if self._chip is not None or self.version is not None:
                log.warning("MFRC522 SPI device unusable: %s", exc)
            self.version = None
            self._drop()
            return False
        except ChipError as exc:
            log.warning("MFRC522 init failed: %s", exc)
            self._ready = False
            return False

    def _poll(self, tracked: frozenset[bytes]) -> _Cycle:
        seen: set[bytes] = set()
        uid, conclusive = self._read(wake=False)
        if uid is not None:
            seen.add(uid)
        if tracked - seen or self._suspect:
            # A reported card is HALTed and silent to REQA: WUPA asks whether it is still
            # here. After a failed read it also reaches a card the failure left HALTed.
            uid, ok = self._read(wake=True)
            conclusive = conclusive and ok
            if uid is not None:
                seen.add(uid)
        self._suspect = not conclusive
        return _Cycle(True, frozenset(seen), conclusive)

    def _read(self, wake: bool) -> tuple[bytes | None, bool]:
        """One read, retried once through WUPA; (UID or None, whether the answer is clear)."""
        chip = self._chip
        assert chip is not None
        for retry in (False, True):
            try:
                return chip.read_uid(wake or retry), True
            except CardError as exc:
                log.debug("card read failed: %s", exc)
            # HLTA sends a card stuck half-way back (READY → IDLE, ACTIVE → HALT), so
            # the WUPA of the retry, or of the next poll (_suspect), reaches it again.
            with contextlib.suppress(CardError):
                chip.halt()
        return None, False

    def _drop(self) -> None:
        chip, self._chip = self._chip, None
        self._ready = False
        if chip is not None:
            with contextlib.suppress(OSError):
                chip.spi.close()

    def close(self) -> None:
        """Antenna off (no RF while the daemon is down) and release the SPI device."""
        if self._chip is not None and self._ready:
            with contextlib.suppress(OSError):
                self._chip.antenna_off()
        self._drop()


class Mfrc522Reader:
    """CardReader on an MFRC522: reports each card presentation once, as an idTag.

    A card is reported when it is read and was not seen in the last
    `absent_polls` polls. After a read the card is HALTed, so it stays
    silent to REQA while it lies on the reader; as long as a reported card is
    tracked, a WUPA read per poll confirms it is still there, so a card that
    resets in the field (weak coupling, antenna re-init) is not reported again.
    A reader outage (FaultKind.READER) forgets what lay on the reader.

    bus, device: /dev/spidevB.D. speed_hz: SPI clock, at most the chip's 10 MHz.
    poll_hz: polls per second (an empty poll waits out the 25 ms timer).
    absent_polls: polls a card must be away before it counts as presented again.
    id_order / id_case / id_base: the idTag form, see format_id_tag.
    rx_gain_db: RFCfgReg receiver gain (18/23/33/38/43/48 dB); None keeps 33 dB.
    version_check_s: how often VersionReg and the settings are re-checked.
    accepted_versions: VersionReg values taken as a working chip.
    spi_factory: makes the unopened SPI object (default spidev.SpiDev).
    """

    def __init__(
        self,
        bus: int = 0,
        device: int = 0,
        *,
        speed_hz: int = 1_000_000,
        poll_hz: float = 5.0,
        absent_polls: int = 3,
        id_order: IdOrder = "received",
        id_case: IdCase = "upper",
        id_base: IdBase = "hex",
        rx_gain_db: int | None = None,
        version_check_s: float = 5.0,
        accepted_versions: Iterable[int] = tuple(KNOWN_VERSIONS),
        spi_factory: Callable[[], SpiDevice] | None = None,
    ) -> None:
        if not 0 < speed_hz <= MAX_SPEED_HZ:
            raise ValueError(f"speed_hz must be in (0, {MAX_SPEED_HZ}], not {speed_hz}")
        if not 0 < poll_hz <= 20:
            raise ValueError(f"poll_hz must be in (0, 20], not {poll_hz}")
        if absent_polls < 1:
            raise ValueError("absent_polls must be at least 1")
        if version_check_s <= 0:
            raise ValueError("version_check_s must be positive")
        if rx_gain_db is not None and rx_gain_db not in RX_GAIN_CODES:
            raise ValueError(f"rx_gain_db must be one of {sorted(RX_GAIN_CODES)}")
        format_id_tag(b"\x00\x00\x00\x00", id_order, id_case, id_base)  # validates the options
        self.bus, self.device, self.speed_hz = bus, device, speed_hz
        self.poll_hz = poll_hz
        self.absent_polls = absent_polls
        self._id_format: tuple[IdOrder, IdCase, IdBase] = (id_order, id_case, id_base)
        self._spi_factory = spi_factory
        self._worker = _Worker(
            self._open_spi, rx_gain_db, version_check_s, frozenset(accepted_versions)
        )
        self._card_callbacks: list[CardCallback] = []
        self._fault_callbacks: list[FaultCallback] = []
        self._fault = False
        self._present: dict[bytes, int] = {}  # UID → conclusive-poll count when last seen
        self._polls = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = False

    # -- CardReader --------------------------------------------------------------

    def on_card(self, callback: CardCallback) -> None:
        self._card_callbacks.append(callback)

    def on_fault(self, callback: FaultCallback) -> None:
        self._fault_callbacks.append(callback)

    @property
    def fault_active(self) -> bool:
        return self._fault

    @property
    def version(self) -> int | None:
        """The last VersionReg value read (None before the first read or with no device)."""
        return self._worker.version

    def format(self, uid: bytes) -> str:
        return format_id_tag(uid, *self._id_format)

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Open and check the chip (reporting a fault if it is unusable), then poll."""
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mfrc522")
        self._running = True
        self._apply(await loop.run_in_executor(self._executor, self._worker.cycle, frozenset()))
        self._task = loop.create_task(self._run(), name="mfrc522-poll")

    async def stop(self) -> None:
        """End polling, switch the antenna off and close SPI; no callback runs afterwards."""
        self._running = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        executor, self._executor = self._executor, None
        if executor is not None:
            # Queued behind any cycle still running, so SPI is never closed mid-transfer.
            await asyncio.get_running_loop().run_in_executor(executor, self._worker.close)
            executor.shutdown(wait=False)

    def _open_spi(self) -> SpiDevice:
        factory = self._spi_factory
        if factory is None:
            try:
                import spidev  # deferred: only the real hardware path needs the C extension
            except ImportError as exc:  # a missing module is a reader fault, not a crash
                raise OSError(f"spidev is not installed: {exc}") from exc
            factory = spidev.SpiDev
        spi = factory()
        try:
            spi.open(self.bus, self.device)
            spi.max_speed_hz = self.speed_hz
            spi.mode = 0
        except BaseException:
            with contextlib.suppress(OSError):
                spi.close()
            raise
        return spi

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.poll_hz
        next_at = loop.time() + period
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at = max(next_at + period, loop.time())  # never burst to catch up
            tracked = frozenset(self._present)
            cycle = await loop.run_in_executor(self._executor, self._worker.cycle, tracked)
            self._apply(cycle)

    # -- results (on the event loop) ------------------------------------------

    def _apply(self, cycle: _Cycle) -> None:
        if cycle.chip_ok is False:
            self._present.clear()
            self._set_fault(True)
            return
        if cycle.chip_ok:
            self._set_fault(False)
        for uid in cycle.seen:
            if uid not in self._present:
                self._emit_card(uid)
        if cycle.conclusive:
            self._polls += 1
        for uid in cycle.seen:
            self._present[uid] = self._polls
        if cycle.conclusive:
            gone = [
                u for u, seen in self._present.items() if self._polls - seen >= self.absent_polls
            ]
            for uid in gone:
                del self._present[uid]

    def _set_fault(self, active: bool) -> None:
        if self._fault == active:
            return
        self._fault = active
        log.log(
            logging.WARNING if active else logging.INFO,
            "RFID reader fault %s",
            "active" if active else "cleared",
        )
        for callback in self._fault_callbacks:
            self._schedule(callback, FaultKind.READER, active)

    def _emit_card(self, uid: bytes) -> None:
        id_tag = self.format(uid)
        log.info("card %s", id_tag)
        for callback in self._card_callbacks:
            self._schedule(callback, id_tag)

    def _schedule(self, callback: Callable[..., None], *args: object) -> None:
        assert self._loop is not None

        def deliver() -> None:
            if self._running:
                callback(*args)

        self._loop.call_soon(deliver)
