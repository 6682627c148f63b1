"""GpioLock against gpiozero's MockFactory with a simulated lock (hwsim.gpio_sim)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from drivers.gpio import GpioLock
from drivers.interfaces import FaultKind
from hwsim.gpio_sim import LockSim, SimPinFactory

LOCK, FEEDBACK, UNLOCK = 12, 13, 16
TRAVEL = 0.02

Events = list[tuple[FaultKind, bool]]


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


@pytest.fixture
def factory() -> Iterator[SimPinFactory]:
    f = SimPinFactory()
    yield f
    f.reset()


def make(factory: SimPinFactory, motor: bool, **kwargs: Any) -> tuple[GpioLock, Events]:
    options: dict[str, Any] = dict(pulse_s=0.05, timeout_s=0.2, poll_s=0.05, pin_factory=factory)
    options.update(kwargs)
    lock = GpioLock(LOCK, FEEDBACK, UNLOCK if motor else None, **options)
    events: Events = []
    lock.on_fault(lambda kind, active: events.append((kind, active)))
    return lock, events


def test_outputs_off_at_construction_and_close(factory: SimPinFactory) -> None:
    lock, _ = make(factory, motor=True)
    assert factory.pin(LOCK).state is False and factory.pin(UNLOCK).state is False
    lock.close()
    assert factory.pin(LOCK).state is False and factory.pin(UNLOCK).state is False


def test_timeout_over_half_a_second_is_refused(factory: SimPinFactory) -> None:
    with pytest.raises(ValueError):
        GpioLock(LOCK, FEEDBACK, timeout_s=1.0, pin_factory=factory)


@pytest.mark.parametrize("motor", [False, True])
def test_lock_and_unlock_confirmed_by_feedback(factory: SimPinFactory, motor: bool) -> None:
    async def scenario() -> None:
        sim = LockSim(factory, LOCK, FEEDBACK, UNLOCK if motor else None, travel_s=TRAVEL)
        lock, events = make(factory, motor)
        await lock.start()
        assert lock.lock() is True
        assert sim.locked and lock.locked and lock.commanded is True
        if motor:  # the pulse has ended
            assert factory.pin(LOCK).state is False and factory.pin(UNLOCK).state is False
        else:  # the solenoid is held
            assert factory.pin(LOCK).state is True
        assert lock.unlock() is True
        assert not sim.locked
        assert sim.shoot_through == 0
        await asyncio.sleep(0.12)  # periodic feedback checks agree
        assert events == []
        lock.close()

    run(scenario)


@pytest.mark.parametrize("motor", [False, True])
def test_jammed_lock_reports_lock_fault(factory: SimPinFactory, motor: bool) -> None:
    async def scenario() -> None:
        sim = LockSim(factory, LOCK, FEEDBACK, UNLOCK if motor else None, travel_s=TRAVEL)
        sim.jammed = True
        lock, events = make(factory, motor)
        await lock.start()
        assert lock.lock() is False
        assert factory.pin(LOCK).state is (not motor)  # motor pulse ended on timeout
        await asyncio.sleep(0.01)
        assert events == [(FaultKind.LOCK, True)]
        sim.jammed = False
        assert lock.lock() is True
        await asyncio.sleep(0.01)
        assert events == [(FaultKind.LOCK, True), (FaultKind.LOCK, False)]
        lock.close()

    run(scenario)


def test_async_variants(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = LockSim(factory, LOCK, FEEDBACK, UNLOCK, travel_s=TRAVEL)
        lock, events = make(factory, motor=True)
        await lock.start()
        assert await lock.lock_async() is True
        assert sim.locked
        sim.jammed = True
        assert await lock.unlock_async() is False
        await asyncio.sleep(0.01)
        assert events == [(FaultKind.LOCK, True)]
        lock.close()

    run(scenario)


def test_lock_forced_open_later_reports_lock_fault(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = LockSim(factory, LOCK, FEEDBACK, travel_s=TRAVEL)
        lock, events = make(factory, motor=False)
        await lock.start()
        assert lock.lock()
        sim.jammed = True  # the held solenoid cannot push it back
        sim.force(False)
        await asyncio.sleep(0.1)
        assert events == [(FaultKind.LOCK, True)]
        sim.force(True)
        await asyncio.sleep(0.1)
        assert events == [(FaultKind.LOCK, True), (FaultKind.LOCK, False)]
        lock.close()

    run(scenario)


def test_exception_inside_with_block_releases_solenoid(factory: SimPinFactory) -> None:
    LockSim(factory, LOCK, FEEDBACK, travel_s=TRAVEL)
    with pytest.raises(KeyError), GpioLock(LOCK, FEEDBACK, pin_factory=factory) as lock:
        assert lock.lock()
        assert factory.pin(LOCK).state is True
        raise KeyError("boom")
    assert factory.pin(LOCK).state is False
