"""Fuzzing the hardware drivers' input paths with hypothesis.

Modbus: the real driver (drivers/meter/modbus.py) reads the register-level meter
simulator through `CorruptingLine`, a second pty that forwards requests
unchanged and, by a plan hypothesis draws, flips bits in, truncates, extends,
replaces, duplicates or drops the answers coming back (the simulator itself is
not touched). Property: a read returns exactly the values of a clean read, or
raises an OSError subclass; never another exception, never wrong values (the
CRC must catch the damage); and the next clean read works again.

MFRC522: the real driver against the register-level emulator with SPI noise
(`Mfrc522Emulator.noise`: a bit flipped in bytes read from the chip). With the
random stream under hypothesis's control, `Mfrc522.read_uid` returns the card's
UID, None, or raises CardError / ChipError; the station's `Mfrc522Reader`,
polling for real with a seeded noise stream, reports the card's idTag or
nothing, never another idTag, and nothing escapes its poll task.

Default suite: derandomized, fixed example counts (see profiles.py). Long run:
`.venv/bin/python -m fuzz.run --minutes 10`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import select
import termios
import threading
import tty
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.meter import ModbusMeter
from drivers.rfid.mfrc522 import CardError, ChipError, Mfrc522, Mfrc522Reader, format_id_tag
from hwsim.mfrc522 import FakeSpiDev, Mfrc522Emulator, SimCard
from hwsim.modbus_meter import ModbusMeterSim, SimModbusMeter
from tests.fuzz.profiles import fuzz_settings

# --- Modbus ----------------------------------------------------------------------------------

TIMEOUT = 0.1  # s per attempt: the simulator answers within milliseconds
SILENCE_S = 0.002  # end of an answer on the simulator's side (it writes each in one go)
MODELS = ("eastron_sdm630", "abb_b23")  # float32 on FC4; scaled integers on FC3


@dataclass(frozen=True)
class Flip:
    bits: tuple[tuple[int, int], ...]  # (byte index modulo the length, bit)


@dataclass(frozen=True)
class Truncate:
    keep: int  # bytes kept, modulo the length


@dataclass(frozen=True)
class Extend:
    tail: bytes


@dataclass(frozen=True)
class Replace:
    data: bytes


@dataclass(frozen=True)
class Drop:
    pass


@dataclass(frozen=True)
class Duplicate:
    pass


Mutation = Flip | Truncate | Extend | Replace | Drop | Duplicate


def mutate(answer: bytes, mutation: Mutation | None) -> bytes | None:
    """The answer as the line delivers it (None: lost)."""
    if mutation is None:
        return answer
    if isinstance(mutation, Flip):
        data = bytearray(answer)
        for index, bit in mutation.bits:
            data[index % len(data)] ^= 1 << bit
        return bytes(data)
    if isinstance(mutation, Truncate):
        return answer[: mutation.keep % len(answer)]
    if isinstance(mutation, Extend):
        return answer + mutation.tail
    if isinstance(mutation, Replace):
        return mutation.data
    if isinstance(mutation, Duplicate):
        return answer + answer
    return None


mutations: st.SearchStrategy[Mutation] = st.one_of(
    st.builds(
        Flip,
        st.lists(st.tuples(st.integers(0, 255), st.integers(0, 7)), min_size=1, max_size=4).map(
            tuple
        ),
    ),
    st.builds(Truncate, st.integers(0, 255)),
    st.builds(Extend, st.binary(min_size=1, max_size=16)),
    st.builds(Replace, st.binary(max_size=40)),
    st.just(Drop()),
    st.just(Duplicate()),
)
# What happens to successive answers; None passes one clean, and after the plan all are clean.
plans = st.lists(st.one_of(st.none(), mutations), min_size=1, max_size=5)


class CorruptingLine:
    """A pty between the driver and ModbusMeterSim that corrupts answers by a plan.

    Requests pass unchanged. An answer is what the simulator wrote before
    SILENCE_S of quiet; like the simulator, the line discards bytes the driver
    left unread before it delivers the next answer (they are gone on a wire).
    """

    def __init__(self, sim: ModbusMeterSim) -> None:
        self._sim_fd = os.open(sim.port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self._sim_fd)
        attrs = termios.tcgetattr(self._sim_fd)  # the simulator answers only at its baud rate
        attrs[4] = attrs[5] = getattr(termios, f"B{sim.baud}")
        termios.tcsetattr(self._sim_fd, termios.TCSANOW, attrs)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        self._lock = threading.Lock()
        self._plan: deque[Mutation | None] = deque()
        self.answers = 0
        self._thread = threading.Thread(target=self._run, name="corrupting-line", daemon=True)
        self._thread.start()

    def set_plan(self, plan: list[Mutation | None]) -> None:
        with self._lock:
            self._plan = deque(plan)

    def close(self) -> None:
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        for fd in (self._sim_fd, self._master, self._slave, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        answer = bytearray()
        while True:
            ready, _, _ = select.select(
                [self._master, self._sim_fd, self._wake_r], [], [], SILENCE_S if answer else None
            )
            if self._wake_r in ready:
                return
            if self._master in ready:
                os.write(self._sim_fd, os.read(self._master, 4096))
            if self._sim_fd in ready:
                answer += os.read(self._sim_fd, 4096)
            elif answer and not ready:
                self._deliver(bytes(answer))
                answer.clear()

    def _deliver(self, answer: bytes) -> None:
        with self._lock:
            mutation = self._plan.popleft() if self._plan else None
            self.answers += 1
        out = mutate(answer, mutation)
        if out is None:
            return
        with contextlib.suppress(termios.error):
            termios.tcflush(self._slave, termios.TCIFLUSH)
        if out:
            os.write(self._master, out)


@dataclass
class MeterRig:
    meter: ModbusMeter
    line: CorruptingLine
    expected: dict[str, float | None]


@contextlib.contextmanager
def meter_rig(model: str) -> Iterator[MeterRig]:
    sim_meter = SimModbusMeter(
        model,
        energy_wh=123456.7,
        voltage_v=(229.5, 231.25, 233.0),
        current_a=(10.5, 11.75, 13.0),
        frequency_hz=49.98,
    )
    with ModbusMeterSim([sim_meter]) as sim:
        line = CorruptingLine(sim)
        meter = ModbusMeter(model, line.port, timeout=TIMEOUT, retries=2)
        try:
            expected = asyncio.run(meter.read_values())
            assert expected["energy_import"] is not None
            yield MeterRig(meter, line, expected)
        finally:
            asyncio.run(meter.close())
            line.close()


@pytest.fixture(scope="module", params=MODELS)
def rig(request: pytest.FixtureRequest) -> Iterator[MeterRig]:
    with meter_rig(request.param) as made:
        yield made


@fuzz_settings(30)
@given(plan=plans)
def test_modbus_corrupted_answers_give_right_values_or_oserror(
    rig: MeterRig, plan: list[Mutation | None]
) -> None:
    """Flipped, cut, extended, replaced, doubled or lost answers: right values or OSError."""

    async def reads() -> None:
        rig.line.set_plan(plan)
        try:
            values = await rig.meter.read_values()
        except OSError:
            pass  # what the driver promises for any failure (MeterError)
        else:
            assert values == rig.expected, f"wrong values through {plan}"
        rig.line.set_plan([])
        assert await rig.meter.read_values() == rig.expected, "no recovery on a clean line"

    asyncio.run(reads())


# --- MFRC522 -----------------------------------------------------------------------------------

UIDS = st.one_of(
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=7, max_size=7),
    st.binary(min_size=10, max_size=10),
).filter(lambda uid: _valid_card(uid))


def _valid_card(uid: bytes) -> bool:
    try:
        SimCard(uid)
    except ValueError:  # the cascade tag 0x88 cannot open the last level
        return False
    return True


def chip_with(uid: bytes, noise: float, rng: random.Random) -> Mfrc522:
    """A driver on an emulated chip (no RF timing) with `uid` in the field."""
    emulator = Mfrc522Emulator(realtime=False)
    spi = FakeSpiDev(emulator)
    spi.open(0, 0)
    spi.max_speed_hz = 1_000_000
    chip = Mfrc522(spi, sleep=lambda s: None)
    chip.init()  # clean: noise during set-up is the reader's business, tested below
    emulator.place(SimCard(uid))
    emulator.rng = rng
    emulator.noise = noise
    return chip


@fuzz_settings(200)
@given(
    uid=UIDS,
    noise=st.floats(0.0, 0.3),
    rng=st.randoms(use_true_random=False),
    wake=st.booleans(),
)
def test_mfrc522_noisy_spi_reads_right_uid_or_nothing(
    uid: bytes, noise: float, rng: random.Random, wake: bool
) -> None:
    """Every bit the noise flips is hypothesis's choice: a read gives the card's UID,
    None, or one of the driver's own errors (the reader retries those)."""
    chip = chip_with(uid, noise, rng)
    for _ in range(3):
        try:
            got = chip.read_uid(wake=wake)
        except (CardError, ChipError):
            continue
        assert got is None or got == uid, f"read {got.hex()} for {uid.hex()}"
        wake = True  # a read card is HALTed: only WUPA reaches it again


@fuzz_settings(12)
@given(uid=UIDS, noise=st.floats(0.0, 0.2), seed=st.integers(0, 2**32 - 1))
def test_mfrc522_reader_reports_only_the_card_under_noise(
    uid: bytes, noise: float, seed: int
) -> None:
    """The station's reader, polling in its worker thread under a seeded noise stream."""

    async def poll() -> tuple[list[str], list[dict[str, Any]], bool]:
        loop_errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: loop_errors.append(ctx))
        emulator = Mfrc522Emulator(realtime=False, noise=noise, seed=seed)
        emulator.place(SimCard(uid))
        cards: list[str] = []
        reader = Mfrc522Reader(
            poll_hz=20, version_check_s=0.1, spi_factory=lambda: FakeSpiDev(emulator)
        )
        reader.on_card(cards.append)
        await reader.start()
        await asyncio.sleep(0.4)
        task = reader._task  # the poll loop: it must still run
        alive = task is not None and not task.done()
        await reader.stop()
        return cards, loop_errors, alive

    cards, loop_errors, alive = asyncio.run(poll())
    expected = format_id_tag(uid)
    assert set(cards) <= {expected}, f"reported {cards} for {expected}"
    assert not loop_errors, f"errors escaped the reader: {loop_errors}"
    assert alive, "the poll task ended"
