"""MFRC522 driver (drivers/rfid) against the register-level emulator (hwsim.mfrc522)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from drivers.interfaces import CardReader, FaultKind
from drivers.rfid import keyboard as kb
from drivers.rfid.mfrc522 import CardError, ChipError, Mfrc522, Mfrc522Reader, format_id_tag
from hwsim import mfrc522 as emu_regs
from hwsim.mfrc522 import FakeSpiDev, Mfrc522Emulator, PiccState, SimCard, crc16_a, crc_a

UID4 = bytes.fromhex("DEADBEEF")
UID7 = bytes.fromhex("04A1B2C3D4E5F6")
UID10 = bytes.fromhex("0102030405060708090A")
FAST = 20.0  # poll rate of the async tests: 50 ms per poll keeps the file short


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def chip_on(emu: Mfrc522Emulator, init: bool = True) -> Mfrc522:
    """A driver chip object on an opened fake device, initialised like the reader does."""
    spi = FakeSpiDev(emu)
    spi.open(0, 0)
    spi.max_speed_hz = 1_000_000
    chip = Mfrc522(spi)
    if init:
        chip.init()
    return chip


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class Station:
    """A reader on an emulated chip, with what its callbacks received."""

    def __init__(self, emu: Mfrc522Emulator | None = None, **options: Any) -> None:
        self.emu = emu if emu is not None else Mfrc522Emulator()
        self.spis: list[FakeSpiDev] = []
        self.spi_threads: set[int] = set()  # threads that talked to the chip
        options.setdefault("poll_hz", FAST)
        self.reader = Mfrc522Reader(spi_factory=self._spi, **options)
        self.cards: list[str] = []
        self.faults: list[tuple[FaultKind, bool]] = []
        reader: CardReader = self.reader  # the driver satisfies the station's contract
        reader.on_card(self.cards.append)
        reader.on_fault(lambda kind, active: self.faults.append((kind, active)))

    def _spi(self) -> FakeSpiDev:
        spi = FakeSpiDev(self.emu)
        transfer = spi.xfer2

        def xfer2(data: list[int]) -> list[int]:
            self.spi_threads.add(threading.get_ident())
            return transfer(data)

        spi.xfer2 = xfer2  # type: ignore[method-assign]
        self.spis.append(spi)
        return spi

    async def polls(self, n: float) -> None:
        await asyncio.sleep(n / self.reader.poll_hz)


# -- idTag formatting -----------------------------------------------------------


def test_format_id_tag_default_is_upper_hex_in_received_order() -> None:
    assert format_id_tag(UID4) == "DEADBEEF"
    assert format_id_tag(UID7) == "04A1B2C3D4E5F6"
    assert len(format_id_tag(UID10)) == 20  # OCPP 1.6 CiString20: fits exactly


def test_format_id_tag_options() -> None:
    assert format_id_tag(UID7, order="reversed") == "F6E5D4C3B2A104"
    assert format_id_tag(UID7, case="lower") == "04a1b2c3d4e5f6"
    assert format_id_tag(UID4, base="dec") == "3735928559"  # 0xDEADBEEF
    assert format_id_tag(UID4, order="reversed", base="dec") == "4022250974"  # 0xEFBEADDE
    assert format_id_tag(bytes.fromhex("00000001"), base="dec") == "0000000001"  # 10 digits
    assert format_id_tag(UID7, base="dec") == f"{0x04A1B2C3:010d}"  # the first 4 bytes only
    bad_options: list[dict[str, Any]] = [{"order": "le"}, {"case": "title"}, {"base": "oct"}]
    for bad in bad_options:
        with pytest.raises(ValueError):
            format_id_tag(UID4, **bad)
    with pytest.raises(ValueError):
        format_id_tag(b"\x01\x02", base="dec")


def test_reader_rejects_bad_options() -> None:
    with pytest.raises(ValueError):
        Mfrc522Reader(speed_hz=20_000_000)  # the chip's maximum is 10 MHz
    with pytest.raises(ValueError):
        Mfrc522Reader(id_base="bcd")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Mfrc522Reader(rx_gain_db=30)
    with pytest.raises(ValueError):
        Mfrc522Reader(absent_polls=0)


# -- CRC_A ---------------------------------------------------------------------


def test_crc_a_known_vectors_in_emulator_and_through_the_chip() -> None:
    vectors = {b"\x50\x00": b"\x57\xcd", b"\x00\x00": b"\xa0\x1e", b"\x12\x34": b"\x26\xcf"}
    chip = chip_on(Mfrc522Emulator(realtime=False))
    for data, crc in vectors.items():
        assert crc_a(data) == crc
        assert chip.calc_crc(data) == crc  # the driver's CRC comes from CalcCRC
    select = bytes.fromhex("9370DEADBEEF22")
    assert chip.calc_crc(select) == crc_a(select)
    assert crc16_a(select + crc_a(select)) == 0  # frame + CRC_A leaves no residue


def test_calc_crc_uses_the_modereg_preset() -> None:
    # Before init ModeReg holds its reset value (preset 0xFFFF), not CRC_A's 0x6363:
    # a driver that forgot ModeReg would send SELECTs every card ignores.
    chip = chip_on(Mfrc522Emulator(realtime=False), init=False)
    crc = crc16_a(b"\x50\x00", preset=0xFFFF)
    assert chip.calc_crc(b"\x50\x00") == bytes((crc & 0xFF, crc >> 8)) != b"\x57\xcd"


# -- reading cards (blocking layer) -----------------------------------------


@pytest.mark.parametrize("uid", [UID4, UID7, UID10], ids=["4-byte", "7-byte", "10-byte"])
def test_read_uid_of_every_size(uid: bytes) -> None:
    emu = Mfrc522Emulator(realtime=False)
    card = emu.place(SimCard(uid))
    chip = chip_on(emu)
    assert chip.read_uid() == uid
    levels = len(card.cascade_levels())
    assert emu.frames["SELECT"] == levels and emu.frames["HLTA"] == 1
    assert card.state is PiccState.HALT
    assert chip.read_uid() is None  # HALTed: silent to REQA ...
    assert chip.read_uid(wake=True) == uid  # ... but answers WUPA


def test_read_uid_of_a_7_byte_card_in_real_time() -> None:
    emu = Mfrc522Emulator()  # RF bit times, frame delays and the 25 ms timer in real time
    emu.place(SimCard(UID7))
    chip = chip_on(emu)
    assert chip.read_uid() == UID7
    started = time.perf_counter()
    assert chip.read_uid() is None  # nobody answers REQA: the driver waits the timer out
    assert time.perf_counter() - started > 0.024


def test_several_cards_are_separated_by_anticollision() -> None:
    emu = Mfrc522Emulator(realtime=False)
    uids = {UID4, UID7, UID10, bytes.fromhex("04A1B2C3D4E5F7")}  # the last two differ in 1 bit
    for uid in uids:
        emu.place(SimCard(uid))
    chip = chip_on(emu)
    read = [chip.read_uid() for _ in range(5)]
    assert set(read[:4]) == uids and read[4] is None  # one per REQA, each HALTed after
    assert emu.frames["ANTICOLLISION"] > emu.frames["SELECT"]  # collisions were resolved


def test_noise_gives_the_right_uid_or_nothing() -> None:
    emu = Mfrc522Emulator(realtime=False, noise=0.03, seed=7)  # 3 % of bytes read get a bit flipped
    chip = chip_on(emu)
    for uid in (UID4, UID7, UID10):
        emu.remove()
        card = emu.place(SimCard(uid))
        good = 0
        for _ in range(150):
            card.power_off()  # a fresh card each time: REQA must see it
            try:
                result = chip.read_uid()
            except (CardError, ChipError):
                continue
            assert result in (uid, None)
            good += result == uid
        assert good > 20  # the reads still mostly get through


# -- the emulator's ISO 14443-3 and chip behaviour ---------------------------


def test_emulator_card_states_follow_iso_14443_3() -> None:
    emu = Mfrc522Emulator(realtime=False)
    card = emu.place(SimCard(UID4))
    chip = chip_on(emu)
    assert chip.transceive(b"\x26") is None  # REQA sent as 8 bits is not a short frame
    assert chip.request() == b"\x04\x00" and card.state is PiccState.READY
    assert chip.request() is None and card.state is PiccState.IDLE  # REQA in READY: back to IDLE
    assert chip.read_uid() == UID4 and card.state is PiccState.HALT
    assert chip.request() is None and card.state is PiccState.HALT
    assert chip.request(wake=True) is not None and card.state is PiccState.READY
    assert card.woken  # READY*: an error now sends it back to HALT, not IDLE
    assert chip.transceive(b"\x30\x04" + crc_a(b"\x30\x04")) is None
    assert card.state is PiccState.HALT
    emu.remove(card)
    emu.place(card)  # leaving the field resets the card
    assert card.state is PiccState.IDLE and chip.read_uid() == UID4


def test_emulator_needs_the_antenna_and_100_percent_ask() -> None:
    emu = Mfrc522Emulator(realtime=False)
    emu.place(SimCard(UID4))
    chip = chip_on(emu)
    chip.antenna_off()
    assert not emu.field_on and chip.read_uid() is None
    chip.init()
    chip.write(emu_regs.TX_ASK_REG, 0x00)
    assert chip.read_uid() is None
    chip.write(emu_regs.TX_ASK_REG, 0x40)
    assert chip.read_uid() == UID4


def test_emulator_rejects_a_bad_speed_and_models_dead_chips() -> None:
    emu = Mfrc522Emulator(realtime=False, version=0x91)
    spi = FakeSpiDev(emu)
    spi.open(0, 0)
    chip = Mfrc522(spi)
    assert chip.version() == 0xFF  # still at the kernel's 125 MHz default: garbage
    spi.max_speed_hz = 10_000_000
    assert chip.version() == 0x91
    emu.dead_value = 0xFF
    emu.dead = True
    assert chip.version() == 0xFF
    emu.io_error = True
    with pytest.raises(OSError):
        chip.version()


# -- the CardReader ------------------------------------------------------------


def test_reader_initialises_the_chip_per_the_reference() -> None:
    async def body() -> None:
        st = Station(rx_gain_db=48)
        await st.reader.start()
        emu, spi = st.emu, st.spis[0]
        assert (spi.max_speed_hz, spi.mode) == (1_000_000, 0)
        assert emu.peek(emu_regs.TX_ASK_REG) == 0x40
        assert emu.peek(emu_regs.MODE_REG) == 0x3D
        assert emu.peek(emu_regs.T_MODE_REG) == 0x80
        assert emu.timer_period_s() == pytest.approx(0.025, abs=0.0001)
        assert emu.peek(emu_regs.TX_CONTROL_REG) & 0x03 == 0x03
        assert (emu.peek(emu_regs.RF_CFG_REG) >> 4) & 0x07 == 7  # 48 dB
        assert st.reader.version == 0x92 and st.faults == []
        await st.reader.stop()
        assert not spi.is_open and not emu.field_on  # antenna off, SPI closed

    run(body)


def test_reader_reports_every_uid_size_as_an_id_tag() -> None:
    async def body() -> None:
        st = Station()
        await st.reader.start()
        for n, uid in enumerate((UID4, UID7, UID10), start=1):
            st.emu.remove()
            st.emu.place(SimCard(uid))
            await until(lambda n=n: len(st.cards) == n)  # type: ignore[misc]
        await st.reader.stop()
        assert st.cards == ["DEADBEEF", "04A1B2C3D4E5F6", "0102030405060708090A"]
        assert [len(c) for c in st.cards] == [8, 14, 20]

    run(body)


def test_reader_applies_the_id_tag_format() -> None:
    async def body() -> None:
        st = Station(id_order="reversed", id_base="dec")
        await st.reader.start()
        st.emu.place(SimCard(UID4))
        await until(lambda: bool(st.cards))
        await st.reader.stop()
        assert st.cards == ["4022250974"]

    run(body)


def test_card_lying_on_the_reader_is_reported_once_and_again_after_removal() -> None:
    async def body() -> None:
        st = Station(absent_polls=3)
        await st.reader.start()
        card = st.emu.place(SimCard(UID7))
        await st.polls(10)
        assert st.cards == ["04A1B2C3D4E5F6"]
        assert st.emu.frames["WUPA"] >= 5  # its presence is confirmed while it lies there
        card.power_off()  # it resets in the field (weak coupling): REQA sees it again ...
        await st.polls(4)
        assert st.cards == ["04A1B2C3D4E5F6"]  # ... but it is the same presentation
        st.emu.remove()
        await st.polls(1)
        st.emu.place(card)  # lifted for about one poll: a bounce, not a new presentation
        await st.polls(4)
        assert st.cards == ["04A1B2C3D4E5F6"]
        st.emu.remove()
        await st.polls(5)  # absent for more than 3 polls
        st.emu.place(card)
        await until(lambda: len(st.cards) == 2)
        await st.polls(4)
        await st.reader.stop()
        assert st.cards == ["04A1B2C3D4E5F6"] * 2

    run(body)


def test_a_new_card_found_by_the_presence_check_is_reported() -> None:
    async def body() -> None:
        st = Station()
        await st.reader.start()
        st.emu.place(SimCard(UID4))
        await until(lambda: st.cards == ["DEADBEEF"])
        st.emu.remove()
        other = st.emu.place(SimCard(UID7))
        other.state = PiccState.HALT  # as a failed read may leave it: only WUPA reaches it
        await until(lambda: len(st.cards) == 2)
        await st.reader.stop()
        assert st.cards == ["DEADBEEF", "04A1B2C3D4E5F6"]

    run(body)


def test_two_cards_are_each_reported_once() -> None:
    async def body() -> None:
        st = Station()
        await st.reader.start()
        st.emu.place(SimCard(UID4))
        st.emu.place(SimCard(UID7))
        await st.polls(8)
        await st.reader.stop()
        assert sorted(st.cards) == ["04A1B2C3D4E5F6", "DEADBEEF"]

    run(body)


@pytest.mark.parametrize("dead_value", [0x00, 0xFF])
def test_dead_chip_is_a_reader_fault_until_it_comes_back(dead_value: int) -> None:
    async def body() -> None:
        st = Station(version_check_s=60.0)  # the failure itself must trigger the check
        await st.reader.start()
        st.emu.place(SimCard(UID4))
        await until(lambda: st.cards == ["DEADBEEF"])
        st.emu.dead_value = dead_value
        st.emu.dead = True
        await until(lambda: st.faults == [(FaultKind.READER, True)], timeout=1.0)
        assert st.reader.fault_active
        await st.polls(3)
        st.emu.dead = False  # power returns: a freshly reset chip the driver must set up again
        await until(lambda: len(st.faults) == 2, timeout=1.0)
        assert st.faults[1] == (FaultKind.READER, False)
        await until(lambda: len(st.cards) == 2)  # reading again; the outage forgot the card
        await st.reader.stop()
        assert st.cards == ["DEADBEEF"] * 2

    run(body)


def test_wrong_version_or_missing_device_at_start_is_a_fault_and_is_retried() -> None:
    async def body() -> None:
        emu = Mfrc522Emulator(version=0x12)
        st = Station(emu)
        await st.reader.start()
        await st.polls(2)
        assert st.faults == [(FaultKind.READER, True)] and st.reader.version == 0x12
        emu.version = 0x88  # an FM17522 clone is accepted
        await until(lambda: len(st.faults) == 2)
        emu.place(SimCard(UID4))
        await until(lambda: st.cards == ["DEADBEEF"])
        emu.io_error = True  # the SPI device disappears
        await until(lambda: len(st.faults) == 3)
        emu.io_error = False
        await until(lambda: len(st.faults) == 4)
        await st.reader.stop()
        assert st.faults == [(FaultKind.READER, True), (FaultKind.READER, False)] * 2
        assert len(st.spis) >= 2 and not any(spi.is_open for spi in st.spis)  # reopened

    run(body)


def test_periodic_check_reinitialises_a_chip_that_reset_silently() -> None:
    async def body() -> None:
        st = Station(version_check_s=0.1)
        await st.reader.start()
        st.emu.dead = True
        st.emu.dead = False  # a brown-out between two polls: version fine, antenna off
        assert not st.emu.field_on
        await until(lambda: st.emu.field_on, timeout=1.0)
        st.emu.place(SimCard(UID4))
        await until(lambda: st.cards == ["DEADBEEF"])
        await st.reader.stop()
        assert st.faults == []

    run(body)


def test_noise_never_reports_a_wrong_id_tag() -> None:
    async def body() -> None:
        st = Station(Mfrc522Emulator(noise=0.02, seed=3))
        await st.reader.start()
        for n, uid in enumerate((UID4, UID7, UID10), start=1):
            st.emu.remove()
            st.emu.place(SimCard(uid))
            await until(lambda n=n: len(st.cards) == n)  # type: ignore[misc]
            await st.polls(5)  # lying there under noise: still reported only once
        await st.reader.stop()
        assert st.cards == ["DEADBEEF", "04A1B2C3D4E5F6", "0102030405060708090A"]
        assert st.faults == []  # a flipped bit is not a dead chip

    run(body)


def test_event_loop_stays_responsive_while_the_reader_polls() -> None:
    async def body() -> None:
        st = Station()  # 20 Hz: each empty poll waits out a 25 ms timer in the worker
        gaps: list[float] = []

        async def tick() -> None:
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.010)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        await st.reader.start()
        card = SimCard(UID10)
        for _ in range(3):
            st.emu.place(card)
            await st.polls(4)
            st.emu.remove()
            await st.polls(5)
        await st.reader.stop()
        ticker.cancel()
        assert len(st.cards) == 3 and st.emu.frames["REQA"] >= 20
        # Every SPI transfer ran off the loop's thread: nothing the chip does can block it.
        assert st.spi_threads and threading.get_ident() not in st.spi_threads
        print(f"longest event-loop gap while polling: {max(gaps) * 1000:.1f} ms")

    run(body)


def test_no_callback_after_stop() -> None:
    async def body() -> None:
        st = Station()
        await st.reader.start()
        await st.reader.stop()
        st.emu.place(SimCard(UID4))
        st.emu.dead = True
        await st.polls(3)
        assert st.cards == [] and st.faults == []

    run(body)


# -- USB keyboard-emulation reader (drivers/rfid/keyboard.py), on a fake evdev device --
# (kept in this file because it shares format_id_tag and the idTag contract)


class FakeEvent:
    def __init__(self, type: int, code: int, value: int) -> None:
        self.type, self.code, self.value = type, code, value


class FakeInputDevice:
    """evdev.InputDevice stand-in: a queue of events; None in the queue = unplugged."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[FakeEvent | None] = asyncio.Queue()
        self.grabbed = False
        self.closed = False

    def grab(self) -> None:
        self.grabbed = True

    def ungrab(self) -> None:
        self.grabbed = False

    def close(self) -> None:
        self.closed = True

    async def async_read_loop(self) -> AsyncIterator[FakeEvent]:
        while True:
            event = await self.events.get()
            if event is None:
                raise OSError(19, "No such device")
            yield event

    def type_line(self, codes: list[int]) -> None:
        for code in [*codes, KEY_ENTER]:
            for value in (1, 0):  # down, up
                self.events.put_nowait(FakeEvent(kb.EV_KEY, code, value))
            self.events.put_nowait(FakeEvent(0, 0, 0))  # EV_SYN


KEY_ENTER = 28
DIGIT_KEYS = {str((code - 1) % 10): code for code in range(2, 12)}


def keys(text: str) -> list[int]:
    return [DIGIT_KEYS[c] for c in text]


def test_parse_keyboard_uid_inverts_format_id_tag() -> None:
    assert kb.parse_keyboard_uid("3735928559") == UID4
    assert kb.parse_keyboard_uid("4022250974", input_order="reversed") == UID4
    assert kb.parse_keyboard_uid("12") == bytes.fromhex("0000000C")  # leading zeros dropped
    assert kb.parse_keyboard_uid("04a1b2c3d4e5f6", "hex") == UID7
    for order in ("received", "reversed"):
        typed = format_id_tag(UID4, order=order, base="dec")  # what such a reader types
        assert kb.parse_keyboard_uid(typed, input_order=order) == UID4
    for bad in ("", "4294967296", "12a4", "12345678901"):
        with pytest.raises(ValueError):
            kb.parse_keyboard_uid(bad)
    with pytest.raises(ValueError):
        kb.parse_keyboard_uid("DEADBE", "hex")


def test_key_line_decoder() -> None:
    decoder = kb.KeyLineDecoder(timeout_s=0.5)

    def feed(codes: list[int], t: float = 0.0) -> list[str]:
        lines = []
        for code in codes:
            for value in (1, 2, 0):  # down, autorepeat, up
                line = decoder.feed(code, value, t)
                if line is not None:
                    lines.append(line)
        return lines

    assert feed([*keys("0012"), KEY_ENTER]) == ["0012"]
    assert feed([79, 80, 82, 96]) == ["120"]  # keypad digits and keypad Enter
    assert feed([42, 30, 42, 48, KEY_ENTER]) == ["AB"]  # Shift is ignored
    assert feed([*keys("12"), 16, KEY_ENTER]) == []  # a 'Q' in the line: garbage
    assert feed(keys("99"), t=1.0) == []
    assert feed([*keys("42"), KEY_ENTER], t=2.0) == ["42"]  # the stale "99" was dropped


def test_keyboard_reader_grabs_normalises_and_debounces() -> None:
    async def body() -> None:
        devices: list[FakeInputDevice] = []
        present = True

        def factory(path: str) -> FakeInputDevice:
            if not present:
                raise FileNotFoundError(2, "No such file or directory", path)
            devices.append(FakeInputDevice())
            return devices[-1]

        reader = kb.KeyboardReader(
            "/dev/input/by-id/rfid", repeat_s=0.2, retry_s=0.05, device_factory=factory
        )
        cards: list[str] = []
        faults: list[tuple[FaultKind, bool]] = []
        as_reader: CardReader = reader
        as_reader.on_card(cards.append)
        as_reader.on_fault(lambda kind, active: faults.append((kind, active)))
        await reader.start()
        await until(lambda: bool(devices) and devices[0].grabbed)
        devices[0].type_line(keys("3735928559"))
        devices[0].type_line(keys("3735928559"))  # the reader repeats while the card lies there
        await until(lambda: cards == ["DEADBEEF"])  # the MFRC522's idTag for this card
        await asyncio.sleep(0.3)
        devices[0].type_line(keys("3735928559"))  # presented again after the window
        await until(lambda: len(cards) == 2)
        present = False
        devices[0].events.put_nowait(None)  # unplugged
        await until(lambda: faults == [(FaultKind.READER, True)])
        assert devices[0].closed and not devices[0].grabbed
        present = True
        await until(lambda: len(faults) == 2 and devices[-1].grabbed)
        await reader.stop()
        assert cards == ["DEADBEEF"] * 2
        assert faults == [(FaultKind.READER, True), (FaultKind.READER, False)]

    run(body)
