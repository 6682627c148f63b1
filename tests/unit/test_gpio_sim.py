"""The pin-level simulators in hwsim.gpio_sim: they must behave like the parts they stand for."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from gpiozero import DigitalInputDevice, DigitalOutputDevice
from gpiozero.pins.mock import MockFactory, MockPWMPin

from drivers.gpio import GpioContactor
from drivers.interfaces import FaultKind
from hwsim.gpio_sim import ContactorSim, ObservedPin, RcmSim, SimPinFactory, observe

COIL, FB = 17, 27


def wait(seconds: float) -> None:
    threading.Event().wait(seconds)


@pytest.fixture
def factory() -> Iterator[SimPinFactory]:
    f = SimPinFactory()
    yield f
    f.reset()


def test_mirror_contact_follows_coil_after_settle(factory: SimPinFactory) -> None:
    sim = ContactorSim(factory, COIL, FB, settle_s=0.03)
    coil = DigitalOutputDevice(COIL, pin_factory=factory)
    fb = DigitalInputDevice(FB, pull_up=False, pin_factory=factory)  # pull-down: sim re-drives
    assert fb.value == 1  # NC mirror conducts while open
    coil.on()
    assert fb.value == 1 and not sim.closed  # not before the settle time
    wait(0.08)
    assert sim.closed and fb.value == 0
    coil.off()
    wait(0.08)
    assert not sim.closed and fb.value == 1
    coil.on()
    coil.close()  # a released pin counts as off: the board's bias holds the driver off
    wait(0.08)
    assert not sim.closed
    sim.close()


def test_welded_and_no_mirror_inversion(factory: SimPinFactory) -> None:
    sim = ContactorSim(factory, COIL, FB, settle_s=0.0, nc_mirror=False)
    fb = DigitalInputDevice(FB, pull_up=None, active_state=True, pin_factory=factory)
    assert fb.value == 0  # NO contact open
    sim.welded = True
    assert sim.closed and fb.value == 1
    sim.welded = False
    assert not sim.closed and fb.value == 0


def test_plain_mock_factory_driver_first_is_upgraded() -> None:
    factory = MockFactory()
    contactor = GpioContactor(
        COIL, feedback_pin=FB, settle_s=0.05, check_interval_s=0.1, pin_factory=factory
    )
    sim = ContactorSim(factory, COIL, FB, settle_s=0.01)
    assert isinstance(factory.pin(COIL), ObservedPin)
    events: list[tuple[FaultKind, bool]] = []
    contactor.on_fault(lambda kind, active: events.append((kind, active)))

    async def scenario() -> None:
        await contactor.start()
        contactor.set_closed(True)
        await asyncio.sleep(0.1)
        assert sim.closed and events == []
        contactor.close()

    asyncio.run(scenario())
    factory.reset()


def test_pwm_pin_cannot_be_observed() -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    factory.pin(COIL)
    with pytest.raises(TypeError):
        observe(factory, COIL)
    factory.reset()


def test_rcm_sim_test_pulse_and_broken(factory: SimPinFactory) -> None:
    sim = RcmSim(factory, 5, 6, trip_delay_s=0.01, release_delay_s=0.01)
    test = DigitalOutputDevice(6, pin_factory=factory)
    fault = DigitalInputDevice(5, pull_up=None, active_state=True, pin_factory=factory)
    test.on()
    wait(0.04)
    assert fault.value == 1
    test.off()
    wait(0.04)
    assert fault.value == 0
    sim.broken = True
    test.on()
    wait(0.04)
    assert fault.value == 0 and sim.test_pulses == 2
    test.off()
    sim.trip()
    assert fault.value == 1
    sim.clear()
    assert fault.value == 0
    sim.close()
