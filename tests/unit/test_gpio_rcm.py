"""GpioRcm against gpiozero's MockFactory with a simulated RCM module (hwsim.gpio_sim)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from drivers.gpio import GpioRcm
from drivers.interfaces import FaultKind
from hwsim.gpio_sim import RcmSim, SimPinFactory, drive_input

FAULT, TEST = 5, 6
PULSE = 0.05

Events = list[tuple[FaultKind, bool]]


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


@pytest.fixture
def factory() -> Iterator[SimPinFactory]:
    f = SimPinFactory()
    yield f
    f.reset()


def make(factory: SimPinFactory, **kwargs: Any) -> tuple[GpioRcm, Events]:
    options: dict[str, Any] = dict(
        test_pulse_s=PULSE,
        assert_deadline_s=0.3,
        release_deadline_s=0.3,
        poll_s=0.05,
        pin_factory=factory,
    )
    options.update(kwargs)
    rcm = GpioRcm(FAULT, TEST, **options)
    events: Events = []
    rcm.on_fault(lambda kind, active: events.append((kind, active)))
    return rcm, events


def test_test_output_off_at_construction_and_close(factory: SimPinFactory) -> None:
    rcm, _ = make(factory)
    assert factory.pin(TEST).function == "output" and factory.pin(TEST).state is False
    rcm.close()
    assert factory.pin(TEST).state is False
    rcm.close()


@pytest.mark.parametrize("pulse", [0.01, 1.5])
def test_test_pulse_outside_valid_range_is_refused(factory: SimPinFactory, pulse: float) -> None:
    with pytest.raises(ValueError):
        GpioRcm(FAULT, TEST, test_pulse_s=pulse, pin_factory=factory)


def test_trip_reported_and_cleared(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = RcmSim(factory, FAULT, TEST)
        rcm, events = make(factory)
        await rcm.start()
        sim.trip()
        await asyncio.sleep(0.02)
        assert events == [(FaultKind.RCD, True)]
        sim.clear()
        await asyncio.sleep(0.02)
        assert events == [(FaultKind.RCD, True), (FaultKind.RCD, False)]
        rcm.close()

    run(scenario)


def test_trip_present_at_start_is_reported_by_start(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = RcmSim(factory, FAULT, TEST)
        sim.trip()
        rcm, events = make(factory)
        await rcm.start()
        await asyncio.sleep(0.01)
        assert events == [(FaultKind.RCD, True)]
        rcm.close()

    run(scenario)


def test_spikes_are_filtered(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = RcmSim(factory, FAULT, TEST)
        rcm, events = make(factory, filter_s=0.002)
        await rcm.start()
        sim.spike()  # asserted and released at once
        await asyncio.sleep(0.02)
        # Asserted long enough for the first sample, released before the re-read.
        drive_input(factory.pin(FAULT), True)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        drive_input(factory.pin(FAULT), False)
        await asyncio.sleep(0.1)  # also covers a periodic poll
        assert events == []
        rcm.close()

    run(scenario)


def test_self_test_passes_and_induced_trip_is_not_reported(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = RcmSim(factory, FAULT, TEST, trip_delay_s=0.02, release_delay_s=0.02)
        rcm, events = make(factory)
        await rcm.start()
        assert await rcm.self_test() is True
        assert sim.test_pulses == 1
        assert factory.pin(TEST).state is False
        await asyncio.sleep(0.08)
        assert events == []
        sim.trip()  # reporting works again after the test
        await asyncio.sleep(0.02)
        assert events == [(FaultKind.RCD, True)]
        rcm.close()

    run(scenario)


def test_self_test_fails_if_pulse_too_short_for_the_module(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        # A module that only trips once TEST has been active longer than the pulse:
        # the trip never comes, so the test fails.
        RcmSim(factory, FAULT, TEST, trip_delay_s=PULSE + 0.05)
        rcm, events = make(factory, assert_deadline_s=0.2)
        await rcm.start()
        assert await rcm.self_test() is False
        assert factory.pin(TEST).state is False
        assert events == []
        rcm.close()

    run(scenario)


def test_self_test_fails_with_broken_rcm(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = RcmSim(factory, FAULT, TEST)
        sim.broken = True
        rcm, events = make(factory, assert_deadline_s=0.15)
        await rcm.start()
        assert await rcm.self_test() is False
        assert sim.test_pulses == 1
        assert factory.pin(TEST).state is False
        await asyncio.sleep(0.05)
        assert events == []
        rcm.close()

    run(scenario)


def test_self_test_refused_while_tripped(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = RcmSim(factory, FAULT, TEST)
        rcm, events = make(factory)
        await rcm.start()
        sim.trip()
        await asyncio.sleep(0.02)
        assert await rcm.self_test() is False
        assert sim.test_pulses == 0
        assert events == [(FaultKind.RCD, True)]
        rcm.close()

    run(scenario)


def test_trip_that_does_not_release_fails_and_is_then_reported(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = RcmSim(factory, FAULT, TEST, trip_delay_s=0.01, release_delay_s=0.5)
        rcm, events = make(factory, release_deadline_s=0.1)
        await rcm.start()
        assert await rcm.self_test() is False
        await asyncio.sleep(0.02)
        assert events == [(FaultKind.RCD, True)]  # still asserted after the test
        await asyncio.sleep(0.5)
        assert not sim.asserted
        assert events == [(FaultKind.RCD, True), (FaultKind.RCD, False)]
        rcm.close()

    run(scenario)


def test_without_test_pin_self_test_fails(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        rcm = GpioRcm(FAULT, pin_factory=factory)
        await rcm.start()
        assert await rcm.self_test() is False
        rcm.close()

    run(scenario)


def test_active_low_fault_input(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = RcmSim(factory, FAULT, TEST, fault_active_high=False)
        rcm, events = make(factory, active_high=False, pull_up=True)
        await rcm.start()
        assert events == []
        sim.trip()
        await asyncio.sleep(0.02)
        assert events == [(FaultKind.RCD, True)]
        assert await rcm.self_test() is False  # refused while tripped
        sim.clear()
        await asyncio.sleep(0.02)
        assert await rcm.self_test() is True
        rcm.close()

    run(scenario)
