"""EmergencyStopInput and StatusLed against gpiozero's MockFactory."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from drivers.gpio import EmergencyStopInput, StatusLed
from drivers.interfaces import FaultKind
from hwsim.gpio_sim import EStopSim, SimPinFactory

ESTOP, LED_PIN = 4, 18
RGB = (19, 20, 21)
STATUSES = [
    "Available",
    "Preparing",
    "Charging",
    "SuspendedEV",
    "SuspendedEVSE",
    "Finishing",
    "Reserved",
    "Unavailable",
    "Faulted",
    "NoSuchStatus",
]


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


@pytest.fixture
def factory() -> Iterator[SimPinFactory]:
    f = SimPinFactory()
    yield f
    f.reset()


def test_estop_reported_on_the_loop_thread(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = EStopSim(factory, ESTOP)
        estop = EmergencyStopInput(ESTOP, poll_s=0.05, pin_factory=factory)
        events: list[tuple[FaultKind, bool, int]] = []
        estop.on_fault(lambda kind, active: events.append((kind, active, threading.get_ident())))
        await estop.start()
        await asyncio.sleep(0.02)
        assert events == []
        loop_thread = threading.get_ident()
        await asyncio.to_thread(sim.press)  # gpiozero calls back from another thread
        await asyncio.sleep(0.03)
        assert events == [(FaultKind.EMERGENCY_STOP, True, loop_thread)]
        assert estop.pressed
        await asyncio.to_thread(sim.release)
        await asyncio.sleep(0.03)
        assert [e[:2] for e in events] == [
            (FaultKind.EMERGENCY_STOP, True),
            (FaultKind.EMERGENCY_STOP, False),
        ]
        estop.close()

    run(scenario)


def test_estop_pressed_at_start_is_reported_by_start(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = EStopSim(factory, ESTOP)
        sim.press()
        estop = EmergencyStopInput(ESTOP, pin_factory=factory)
        events: list[tuple[FaultKind, bool]] = []
        estop.on_fault(lambda kind, active: events.append((kind, active)))
        await asyncio.sleep(0.01)
        assert events == []  # nothing before start()
        await estop.start()
        await asyncio.sleep(0.01)
        assert events == [(FaultKind.EMERGENCY_STOP, True)]
        await estop.stop()
        estop.close()

    run(scenario)


def test_estop_broken_wire_reads_as_stop(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        # No simulator: nothing pulls the input low, the pull-up wins.
        estop = EmergencyStopInput(ESTOP, pin_factory=factory)
        events: list[tuple[FaultKind, bool]] = []
        estop.on_fault(lambda kind, active: events.append((kind, active)))
        await estop.start()
        await asyncio.sleep(0.01)
        assert events == [(FaultKind.EMERGENCY_STOP, True)]
        estop.close()

    run(scenario)


def test_estop_active_low(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = EStopSim(factory, ESTOP, active_high=False)
        estop = EmergencyStopInput(ESTOP, active_high=False, pull_up=None, pin_factory=factory)
        events: list[tuple[FaultKind, bool]] = []
        estop.on_fault(lambda kind, active: events.append((kind, active)))
        await estop.start()
        sim.press()
        await asyncio.sleep(0.03)
        assert events == [(FaultKind.EMERGENCY_STOP, True)]
        estop.close()

    run(scenario)


def test_single_led_patterns(factory: SimPinFactory) -> None:
    led = StatusLed(LED_PIN, pin_factory=factory)
    pin = factory.pin(LED_PIN)
    assert pin.state is False
    for status in STATUSES:
        led.show(status)
    led.show("Available")
    assert pin.state is True
    led.show("Unavailable")
    assert pin.state is False
    led.show("Faulted")
    pin.clear_states()
    threading.Event().wait(0.35)
    assert len(pin.states) >= 3  # blinking in the background
    led.close()
    assert pin.state is False
    led.close()


def test_rgb_led_patterns(factory: SimPinFactory) -> None:
    led = StatusLed(rgb=RGB, pin_factory=factory)
    red, green, blue = (factory.pin(p) for p in RGB)
    for status in STATUSES:
        led.show(status)
    led.show("Available")
    assert (red.state, green.state, blue.state) == (False, True, False)
    led.show("Charging")
    assert (red.state, green.state, blue.state) == (False, False, True)
    led.show("Faulted")
    red.clear_states()
    threading.Event().wait(0.35)
    assert len(red.states) >= 3 and green.state is False
    led.close()
    assert not (red.state or green.state or blue.state)


def test_led_needs_exactly_one_of_pin_or_rgb(factory: SimPinFactory) -> None:
    with pytest.raises(ValueError):
        StatusLed(pin_factory=factory)
    with pytest.raises(ValueError):
        StatusLed(LED_PIN, rgb=RGB, pin_factory=factory)
