"""Register-level MFRC522 emulator behind a fake spidev device.

The real driver (drivers/rfid/mfrc522.py) runs unchanged against it: the driver
talks SPI to FakeSpiDev, which decodes the address bytes and reads or writes
the emulated register file; the command engine then plays the ISO 14443-3
PICC side for the cards placed in the field. Register numbers and protocol
constants are written out here independently of the driver on purpose, so a
wrong constant in one cannot silently agree with the other.

Covered:

* register file with datasheet reset values; SPI read bursts (one address per
  MOSI byte) and write bursts (all data to one address, e.g. the FIFO);
* ComIrqReg / DivIrqReg set/clear semantics (bit 7), 64-byte FIFO with flush
  and overflow, ControlReg RxLastBits, BitFramingReg TxLastBits / RxAlign /
  StartSend, CollReg (ValuesAfterColl, CollPos, CollPosNotValid), ErrorReg;
* commands Idle, CalcCRC (CRC_A with the ModeReg preset, fed by later FIFO
  writes too), Transceive, SoftReset (PowerDown bit set briefly, antenna off);
  other commands end at once with IdleIRq, as the datasheet says of unknown ones;
* the timer: with TAuto, TimerIRq fires TPrescaler/TReload after the end of a
  transmission nobody answers; RF timing (bit times, frame delay) in real time
  unless realtime=False;
* the RF field: cards only answer with the antenna on, 100 % ASK, and at least
  5 ms after the field came up; the field going off resets every card;
* PICCs: REQA/WUPA (7-bit short frames only), bit-oriented anticollision with
  real collisions between several cards, SELECT with CRC_A check, cascade
  levels for 4/7/10-byte UIDs, SAK with the cascade bit, HLTA; card states
  IDLE / READY / ACTIVE / HALT (and the "*" variants reached through WUPA).

Not covered: MIFARE authentication and memory, ISO 14443-4, TxCRCEn/RxCRCEn
hardware CRC, the IRQ pin, ModeReg MSBFirst, the Mem / Transmit / Receive /
GenerateRandomID commands, SPI wire timing.
"""

from __future__ import annotations

import enum
import errno
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Register addresses (datasheet §9.2).
COMMAND_REG = 0x01
COM_IEN_REG = 0x02
DIV_IEN_REG = 0x03
COM_IRQ_REG = 0x04
DIV_IRQ_REG = 0x05
ERROR_REG = 0x06
STATUS1_REG = 0x07
STATUS2_REG = 0x08
FIFO_DATA_REG = 0x09
FIFO_LEVEL_REG = 0x0A
WATER_LEVEL_REG = 0x0B
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

_RESET_VALUES = {
    COMMAND_REG: 0x20,
    COM_IEN_REG: 0x80,
    COM_IRQ_REG: 0x14,
    STATUS1_REG: 0x21,
    WATER_LEVEL_REG: 0x08,
    CONTROL_REG: 0x10,
    COLL_REG: 0xA0,
    MODE_REG: 0x3F,
    TX_CONTROL_REG: 0x80,
    0x16: 0x10,  # TxSelReg
    0x17: 0x84,  # RxSelReg
    0x18: 0x84,  # RxThresholdReg
    0x19: 0x4D,  # DemodReg
    0x1C: 0x62,  # MfTxReg
    0x1F: 0xEB,  # SerialSpeedReg
    CRC_RESULT_REG_H: 0xFF,
    CRC_RESULT_REG_L: 0xFF,
    MOD_WIDTH_REG: 0x26,
    RF_CFG_REG: 0x48,
    0x27: 0x88,  # GsNReg
    0x28: 0x20,  # CWGsPReg
    0x29: 0x20,  # ModGsPReg
}

# Commands (datasheet §10.3).
CMD_IDLE = 0x00
CMD_CALC_CRC = 0x03
CMD_NO_CMD_CHANGE = 0x07
CMD_TRANSCEIVE = 0x0C
CMD_SOFT_RESET = 0x0F

# Bits.
RCV_OFF = 0x20
POWER_DOWN = 0x10
TX_IRQ = 0x40
RX_IRQ = 0x20
IDLE_IRQ = 0x10
ERR_IRQ = 0x02
TIMER_IRQ = 0x01
CRC_IRQ = 0x04
BUFFER_OVFL = 0x10
COLL_ERR = 0x08
VALUES_AFTER_COLL = 0x80
COLL_POS_NOT_VALID = 0x20
START_SEND = 0x80
T_AUTO = 0x80
FORCE_100_ASK = 0x40

FIFO_SIZE = 64
FC_HZ = 13.56e6
_BIT_S = 128 / FC_HZ  # 106 kbit/s
_FDT_S = 1236 / FC_HZ  # PICC frame delay time
FIELD_GUARD_S = 0.005  # ISO 14443-3: cards need 5 ms of field before the first command
RESET_S = 0.0005  # PowerDown stays visible this long after SoftReset

_CRC_PRESETS = (0x0000, 0x6363, 0xA671, 0xFFFF)  # ModeReg CRCPreset[1:0]

# PICC commands (ISO 14443-3).
REQA = 0x26
WUPA = 0x52
HLTA = 0x50
SEL_CODES = (0x93, 0x95, 0x97)
CASCADE_TAG = 0x88
SAK_CASCADE = 0x04


def crc16_a(data: bytes, preset: int = 0x6363) -> int:
    """CRC of ISO 14443-3 Annex B (reflected x^16+x^12+x^5+1), as a 16-bit number."""
    crc = preset
    for byte in data:
        b = byte ^ (crc & 0xFF)
        b = (b ^ (b << 4)) & 0xFF
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)
    return crc & 0xFFFF


def crc_a(data: bytes) -> bytes:
    """CRC_A as transmitted after a frame: low byte first (HLTA 50 00 → 57 CD)."""
    crc = crc16_a(data)
    return bytes((crc & 0xFF, crc >> 8))


def _to_bits(data: bytes, nbits: int) -> list[int]:
    """Bits in air order: LSB of each byte first, as ISO 14443A transmits them."""
    return [(data[i // 8] >> (i % 8)) & 1 for i in range(nbits)]


def _from_bits(bits: Sequence[int]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


class PiccState(enum.Enum):
    """ISO 14443-3 card states (READY* / ACTIVE* are READY / ACTIVE with `woken`)."""

    IDLE = "idle"
    READY = "ready"
    ACTIVE = "active"
    HALT = "halt"


def _default_sak(size: int) -> int:
    # MIFARE Classic 1K, Ultralight/NTAG, and an ISO 14443-4 card.
    return {4: 0x08, 7: 0x00, 10: 0x20}[size]


@dataclass(eq=False)
class SimCard:
    """A type A card: its UID (4, 7 or 10 bytes), SAK and ATQA, and its protocol state."""

    uid: bytes
    sak: int | None = None  # final-level SAK; None: typical value for the UID size
    atqa: bytes | None = None  # None: 0x0004 / 0x0044 / 0x0084 by UID size
    state: PiccState = field(default=PiccState.IDLE, init=False)
    woken: bool = field(default=False, init=False)  # READY*/ACTIVE*: came from HALT
    level: int = field(default=0, init=False)  # current cascade level (0 = CL1)

    def __post_init__(self) -> None:
        self.uid = bytes(self.uid)
        size = len(self.uid)
        if size not in (4, 7, 10):
            raise ValueError(f"a type A UID has 4, 7 or 10 bytes, not {size}")
        if self.sak is None:
            self.sak = _default_sak(size)
        if self.sak & SAK_CASCADE or not 0 <= self.sak <= 0xFF:
            raise ValueError(f"final SAK {self.sak:#04x} must not carry the cascade bit")
        if self.atqa is None:
            self.atqa = bytes(({4: 0x00, 7: 0x40, 10: 0x80}[size] | 0x04, 0x00))
        # ISO 14443-3: the byte that opens the last cascade level is never the cascade tag.
        if self.cascade_levels()[-1][0] == CASCADE_TAG:
            raise ValueError("the cascade tag 0x88 cannot open the UID's last cascade level")

    def cascade_levels(self) -> list[bytes]:
        """The 4 UID bytes of each cascade level (CT-prefixed where more follow)."""
        uid = self.uid
        if len(uid) == 4:
            return [uid]
        if len(uid) == 7:
            return [bytes([CASCADE_TAG]) + uid[:3], uid[3:]]
        return [bytes([CASCADE_TAG]) + uid[:3], bytes([CASCADE_TAG]) + uid[3:6], uid[6:]]

    def _level_bits(self, level: int) -> list[int]:
        cl = self.cascade_levels()[level]
        bcc = cl[0] ^ cl[1] ^ cl[2] ^ cl[3]
        return _to_bits(cl + bytes([bcc]), 40)

    def power_off(self) -> None:
        """Leaving the field (or the field going off) resets the card completely."""
        self.state = PiccState.IDLE
        self.woken = False
        self.level = 0

    def _error(self) -> None:
        # Any unexpected frame in READY/ACTIVE: back to IDLE, or to HALT if woken from it.
        self.state = PiccState.HALT if self.woken else PiccState.IDLE
        self.woken = False
        self.level = 0

    def receive(self, frame: bytes, nbits: int) -> list[int] | None:
        """Process one PCD frame; return the answer's bits (air order) or None for silence."""
        state = self.state
        if nbits == 7:
            cmd = frame[0] & 0x7F
            wakes = (PiccState.IDLE,) if cmd == REQA else (PiccState.IDLE, PiccState.HALT)
            if cmd in (REQA, WUPA) and state in wakes:
                self.woken = state is PiccState.HALT
                self.state = PiccState.READY
                self.level = 0
                assert self.atqa is not None
                return _to_bits(self.atqa, 16)
            if state in (PiccState.READY, PiccState.ACTIVE):
                self._error()
            return None
        if state in (PiccState.IDLE, PiccState.HALT):
            return None  # only REQA / WUPA wake a card
        if state is PiccState.ACTIVE:
            if nbits == 32 and frame[:2] == bytes((HLTA, 0x00)) and frame[2:4] == crc_a(frame[:2]):
                self.state = PiccState.HALT
                self.woken = False
                return None
            self._error()  # ISO 14443-4 and MIFARE commands are not modelled
            return None
        # READY: anticollision or select at the current cascade level.
        if nbits < 16 or frame[0] != SEL_CODES[self.level]:
            self._error()
            return None
        nvb = frame[1]
        mine = self._level_bits(self.level)
        if nvb == 0x70:
            if nbits != 72 or frame[7:9] != crc_a(frame[:7]):
                self._error()
                return None
            if _to_bits(frame[2:7], 40) != mine:
                return None  # another card is being selected
            levels = len(self.cascade_levels())
            if self.level + 1 < levels:
                self.level += 1
                sak = SAK_CASCADE
            else:
                self.state = PiccState.ACTIVE
                assert self.sak is not None
                sak = self.sak
            return _to_bits(bytes([sak]) + crc_a(bytes([sak])), 24)
        known = ((nvb >> 4) - 2) * 8 + (nvb & 0x0F)
        if not 2 <= nvb >> 4 <= 6 or nvb & 0x0F > 7 or nbits != 16 + known or known > 32:
            self._error()
            return None
        if _to_bits(frame[2:], nbits - 16) != mine[:known]:
            return None  # not our branch of the anticollision tree: stay silent in READY
        return mine[known:]


def classify(frame: bytes, nbits: int) -> str:
    """Name of a PCD frame, for the emulator's frame counter."""
    if nbits == 7:
        return {REQA: "REQA", WUPA: "WUPA"}.get(frame[0] & 0x7F, "SHORT")
    if nbits == 32 and frame[:2] == bytes((HLTA, 0x00)):
        return "HLTA"
    if nbits >= 16 and frame[0] in SEL_CODES:
        return "SELECT" if frame[1] == 0x70 else "ANTICOLLISION"
    return "OTHER"


@dataclass(slots=True)
class _Transceive:
    """An RF exchange in flight: what the PCD will see, and when."""

    tx_end: float
    rx_end: float | None  # None: nobody answers
    timeout_at: float | None  # TimerIRq (None: timer not started)
    bits: list[int]
    collision: int | None  # index of the first collided bit
    rx_align: int
    tx_done: bool = False


class Mfrc522Emulator:
    """The chip: register file, FIFO, CRC coprocessor, timer and Transceive engine.

    Thread-safe, because the driver touches it from its worker thread while a
    test moves cards on the event loop. Test hooks: place()/remove() cards,
    `dead`, `dead_value`, `io_error`, `version`, `noise`.
    """

    def __init__(
        self,
        *,
        version: int = 0x92,
        realtime: bool = True,
        noise: float = 0.0,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.RLock()
        self.version = version  # what VersionReg reads: 0x91 / 0x92 real, 0x88 FM17522 clone
        self.realtime = realtime  # False: RF exchanges and timeouts complete at once
        self.noise = noise  # probability that FakeSpiDev flips one bit of a byte it reads
        self.rng = random.Random(seed)
        self.dead_value = 0x00  # what a dead chip returns on MISO (0x00 or 0xFF)
        self.io_error = False  # the SPI device itself fails: open() and xfer2() raise OSError
        self.frames: Counter[str] = Counter()  # PCD frames that went out, by classify()
        self._clock = clock
        self._cards: list[SimCard] = []
        self._dead = False
        self._regs = bytearray(64)
        self._fifo: list[int] = []
        self._pending: _Transceive | None = None
        self._crc = 0
        self._reset_until = 0.0
        self._field_since: float | None = None
        self._power_on()

    # -- test hooks -------------------------------------------------------

    @property
    def cards(self) -> tuple[SimCard, ...]:
        return tuple(self._cards)

    def place(self, card: SimCard | bytes) -> SimCard:
        """Bring a card into the field (it starts unpowered-fresh, in IDLE)."""
        if not isinstance(card, SimCard):
            card = SimCard(card)
        with self._lock:
            if card not in self._cards:
                card.power_off()
                self._cards.append(card)
        return card

    def remove(self, card: SimCard | None = None) -> None:
        """Take one card (or every card) out of the field; leaving it resets the card."""
        with self._lock:
            for c in list(self._cards):
                if card is None or c is card:
                    c.power_off()
                    self._cards.remove(c)

    @property
    def dead(self) -> bool:
        return self._dead

    @dead.setter
    def dead(self, value: bool) -> None:
        """A dead chip answers dead_value to everything; reviving it is a power-on reset."""
        with self._lock:
            if value and not self._dead:
                self._dead = True
                self._update_field()
            elif not value and self._dead:
                self._dead = False
                self._power_on()

    def peek(self, reg: int) -> int:
        """A register's stored value without read side effects (FIFO, noise)."""
        with self._lock:
            return self._regs[reg]

    def timer_period_s(self) -> float:
        """The receive timeout the timer registers currently program."""
        prescaler = ((self._regs[T_MODE_REG] & 0x0F) << 8) | self._regs[T_PRESCALER_REG]
        reload = (self._regs[T_RELOAD_REG_H] << 8) | self._regs[T_RELOAD_REG_L]
        return (2 * prescaler + 1) * (reload + 1) / FC_HZ

    @property
    def field_on(self) -> bool:
        return self._field_since is not None

    # -- SPI side (called by FakeSpiDev under the lock) -----------------

    def read_register(self, reg: int) -> int:
        with self._lock:
            self._advance()
            if reg == FIFO_DATA_REG:
                return self._fifo.pop(0) if self._fifo else 0x00
            if reg == FIFO_LEVEL_REG:
                return len(self._fifo)
            if reg == VERSION_REG:
                return self.version & 0xFF
            if reg == COMMAND_REG:
                value = self._regs[COMMAND_REG]
                if self._clock() < self._reset_until:
                    value |= POWER_DOWN
                return value
            if reg == STATUS1_REG:
                value = 0x01  # LoAlert: the FIFO is nearly empty most of the time
                if self._regs[COMMAND_REG] & 0x0F == CMD_CALC_CRC:
                    value |= 0x20 | (0x40 if self._crc == 0 else 0)  # CRCReady, CRCOk
                if self._pending is not None and self._pending.timeout_at is not None:
                    value |= 0x08  # TRunning
                return value
            return self._regs[reg & 0x3F]

    def write_register(self, reg: int, value: int) -> None:
        with self._lock:
            self._advance()
            value &= 0xFF
            if reg == COMMAND_REG:
                self._command(value)
            elif reg in (COM_IRQ_REG, DIV_IRQ_REG):
                if value & 0x80:
                    self._regs[reg] |= value & 0x7F
                else:
                    self._regs[reg] &= ~value & 0x7F
            elif reg == FIFO_DATA_REG:
                self._fifo_write(value)
            elif reg == FIFO_LEVEL_REG:
                if value & 0x80:
                    self._fifo.clear()
                    self._regs[ERROR_REG] &= ~BUFFER_OVFL & 0xFF
            elif reg == CONTROL_REG:
                pass  # TStopNow / TStartNow: the timer is only used through TAuto here
            elif reg == COLL_REG:
                self._regs[COLL_REG] = (self._regs[COLL_REG] & 0x7F) | (value & VALUES_AFTER_COLL)
            elif reg in (ERROR_REG, STATUS1_REG, VERSION_REG, CRC_RESULT_REG_H, CRC_RESULT_REG_L):
                pass  # read-only
            elif reg == BIT_FRAMING_REG:
                self._regs[reg] = value
                if value & START_SEND and self._regs[COMMAND_REG] & 0x0F == CMD_TRANSCEIVE:
                    self._start_transceive()
            else:
                self._regs[reg & 0x3F] = value
                if reg == TX_CONTROL_REG:
                    self._update_field()

    # -- internals ----------------------------------------------------------

    def _power_on(self) -> None:
        self._regs = bytearray(64)
        for reg, value in _RESET_VALUES.items():
            self._regs[reg] = value
        self._fifo.clear()
        self._pending = None
        self._crc = 0
        self._update_field()

    def _update_field(self) -> None:
        on = not self._dead and bool(self._regs[TX_CONTROL_REG] & 0x03)
        if on and self._field_since is None:
            self._field_since = self._clock()
        elif not on and self._field_since is not None:
            self._field_since = None
            for card in self._cards:
                card.power_off()

    def _command(self, value: int) -> None:
        cmd = value & 0x0F
        if cmd == CMD_NO_CMD_CHANGE:
            self._regs[COMMAND_REG] = (self._regs[COMMAND_REG] & 0x0F) | (value & 0x30)
            return
        if cmd == CMD_SOFT_RESET:
            self._power_on()
            self._reset_until = self._clock() + (RESET_S if self.realtime else 0.0)
            return
        self._pending = None  # a new command ends whatever ran
        self._regs[COMMAND_REG] = value & 0x3F
        if cmd == CMD_CALC_CRC:
            self._crc = _CRC_PRESETS[self._regs[MODE_REG] & 0x03]
            data, self._fifo = bytes(self._fifo), []
            self._crc_feed(data)
        elif cmd not in (CMD_IDLE, CMD_TRANSCEIVE):
            # Mem, Transmit, Receive, MFAuthent, GenerateRandomID: not modelled; end at once.
            self._regs[COMMAND_REG] = value & 0x30
            self._regs[COM_IRQ_REG] |= IDLE_IRQ

    def _crc_feed(self, data: bytes) -> None:
        # Continue the running CRC over `data` (CalcCRC also takes bytes written later).
        crc = crc16_a(data, self._crc)
        self._crc = crc
        self._regs[CRC_RESULT_REG_L] = crc & 0xFF
        self._regs[CRC_RESULT_REG_H] = crc >> 8
        self._regs[DIV_IRQ_REG] |= CRC_IRQ

    def _fifo_write(self, value: int) -> None:
        if self._regs[COMMAND_REG] & 0x0F == CMD_CALC_CRC:
            self._crc_feed(bytes([value]))
        elif len(self._fifo) < FIFO_SIZE:
            self._fifo.append(value)
        else:
            self._regs[ERROR_REG] |= BUFFER_OVFL

    def _air_s(self, nbits: int) -> float:
        # 9 bits per byte with parity, plus start and end of frame.
        return 0.0 if not self.realtime else (nbits * 9 / 8 + 2) * _BIT_S

    def _start_transceive(self) -> None:
        framing = self._regs[BIT_FRAMING_REG]
        tx_last, rx_align = framing & 0x07, (framing >> 4) & 0x07
        frame, self._fifo = bytes(self._fifo), []
        self._regs[ERROR_REG] &= BUFFER_OVFL
        if not frame:
            return
        nbits = 8 * len(frame) - ((8 - tx_last) if tx_last else 0)
        self.frames[classify(frame, nbits)] += 1
        now = self._clock()
        answers: list[list[int]] = []
        if self._cards_hear(now):
            for card in self._cards:
                answer = card.receive(frame, nbits)
                if answer is not None:
                    answers.append(answer)
        if self._regs[COMMAND_REG] & RCV_OFF:
            answers = []  # the receiver is switched off: the cards talk to nobody
        tx_end = now + self._air_s(nbits)
        if answers:
            bits, collision = self._superpose(answers)
            rx_end = tx_end + (_FDT_S if self.realtime else 0.0) + self._air_s(len(bits))
            self._pending = _Transceive(tx_end, rx_end, None, bits, collision, rx_align)
        else:
            timeout_at = None
            if self._regs[T_MODE_REG] & T_AUTO:
                timeout_at = tx_end + (self.timer_period_s() if self.realtime else 0.0)
            self._pending = _Transceive(tx_end, None, timeout_at, [], None, rx_align)
        self._advance()

    def _cards_hear(self, now: float) -> bool:
        # Type A cards only decode 100 % ASK, and need power for FIELD_GUARD_S first.
        if self._field_since is None or not self._regs[TX_ASK_REG] & FORCE_100_ASK:
            return False
        return not self.realtime or now - self._field_since >= FIELD_GUARD_S

    def _superpose(self, answers: list[list[int]]) -> tuple[list[int], int | None]:
        """What the PCD demodulates when several cards answer at once."""
        length = max(len(a) for a in answers)
        collision: int | None = None
        bits: list[int] = []
        for i in range(length):
            values = {a[i] if i < len(a) else 2 for a in answers}
            if len(values) > 1 and collision is None:
                collision = i
            bits.append(1 if 1 in values else 0)
        if collision is not None and not self._regs[COLL_REG] & VALUES_AFTER_COLL:
            bits[collision:] = [0] * (length - collision)
        return bits, collision

    def _advance(self) -> None:
        """Apply the RF events whose time has come."""
        p = self._pending
        if p is None:
            return
        now = self._clock()
        if not p.tx_done and now >= p.tx_end:
            p.tx_done = True
            self._regs[COM_IRQ_REG] |= TX_IRQ
        if p.rx_end is not None and now >= p.rx_end:
            self._pending = None
            self._receive(p)
        elif p.timeout_at is not None and now >= p.timeout_at:
            self._pending = None
            self._regs[COM_IRQ_REG] |= TIMER_IRQ

    def _receive(self, p: _Transceive) -> None:
        total = p.rx_align + len(p.bits)
        data = bytearray(_from_bits([0] * p.rx_align + p.bits))
        data[0] |= (1 << p.rx_align) - 1  # bits below RxAlign hold no received data: junk
        for byte in data:
            self._fifo_write(byte)
        self._regs[CONTROL_REG] = 0x10 | (total % 8)
        error = 0
        coll = self._regs[COLL_REG] & VALUES_AFTER_COLL
        if p.collision is None:
            coll |= COLL_POS_NOT_VALID
        else:
            error |= COLL_ERR
            position = p.rx_align + p.collision + 1  # 1-based, in the received byte stream
            coll |= (position & 0x1F) if position <= 32 else COLL_POS_NOT_VALID
        self._regs[COLL_REG] = coll
        self._regs[ERROR_REG] |= error
        self._regs[COM_IRQ_REG] |= RX_IRQ | (ERR_IRQ if self._regs[ERROR_REG] else 0)


class FakeSpiDev:
    """spidev.SpiDev stand-in wired to an emulator (open / max_speed_hz / mode / xfer2 / close).

    Like the real chip it garbles everything (reads 0xFF) when clocked above
    10 MHz or in an SPI mode other than 0, and after open() the speed is the
    kernel's default (125 MHz on a Pi), so a driver must set it.
    """

    MAX_HZ = 10_000_000

    def __init__(self, chip: Mfrc522Emulator | None = None) -> None:
        self.chip = chip if chip is not None else Mfrc522Emulator()
        self.mode = 0
        self.max_speed_hz = 0
        self.bus: int | None = None
        self.device: int | None = None
        self.is_open = False
        self.transfers = 0

    def open(self, bus: int, device: int) -> None:
        if self.chip.io_error:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        self.bus, self.device = bus, device
        self.is_open = True
        self.max_speed_hz = 125_000_000

    def close(self) -> None:
        self.is_open = False

    def xfer2(self, values: Sequence[int]) -> list[int]:
        chip = self.chip
        if not self.is_open:
            raise OSError(errno.EBADF, "SPI device is not open")
        if chip.io_error:
            raise OSError(errno.EIO, "Input/output error")
        self.transfers += 1
        values = list(values)
        if chip.dead:
            return [chip.dead_value] * len(values)
        if self.mode != 0 or not 0 < self.max_speed_hz <= self.MAX_HZ:
            return [0xFF] * len(values)
        out = [0] * len(values)
        if not values:
            return out
        with chip._lock:
            if values[0] & 0x80:
                # Read burst: each MOSI byte addresses the register read on the next one.
                for i in range(1, len(values)):
                    out[i] = self._noisy(chip.read_register((values[i - 1] >> 1) & 0x3F))
            else:
                reg = (values[0] >> 1) & 0x3F
                for value in values[1:]:
                    chip.write_register(reg, value)
        return out

    def _noisy(self, value: int) -> int:
        chip = self.chip
        if chip.noise and chip.rng.random() < chip.noise:
            value ^= 1 << chip.rng.randrange(8)
        return value
