"""GpioContactor against gpiozero's MockFactory with a simulated contactor (hwsim.gpio_sim)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

import drivers.gpio.contactor as contactor_module
from drivers.gpio import GpioContactor
from drivers.interfaces import FaultKind
from hwsim.gpio_sim import ContactorSim, SimPinFactory, driven

COIL, FB, PHASE, PHASE_FB = 17, 27, 22, 23
SETTLE = 0.05  # driver settle time in these tests
SIM_SETTLE = 0.02  # simulated contactor's pull-in / drop-out time
INTERVAL = 0.1  # periodic check while idle

Events = list[tuple[FaultKind, bool]]


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


@pytest.fixture
def factory() -> Iterator[SimPinFactory]:
    f = SimPinFactory()
    yield f
    f.reset()


def make(factory: SimPinFactory, **kwargs: Any) -> tuple[GpioContactor, Events]:
    options: dict[str, Any] = dict(
        feedback_pin=FB, settle_s=SETTLE, check_interval_s=INTERVAL, pin_factory=factory
    )
    options.update(kwargs)
    contactor = GpioContactor(COIL, **options)
    events: Events = []
    contactor.on_fault(lambda kind, active: events.append((kind, active)))
    return contactor, events


def test_outputs_off_at_construction_and_after_close(factory: SimPinFactory) -> None:
    contactor = GpioContactor(COIL, phase_pin=PHASE, pin_factory=factory)
    coil, phase = factory.pin(COIL), factory.pin(PHASE)
    assert coil.function == "output" and coil.state is False
    assert phase.function == "output" and phase.state is False
    contactor.set_closed(True)
    assert contactor.set_phases(3) is False  # refused: main contactor closed
    assert coil.state is True and contactor.closed
    contactor.close()
    assert coil.state is False and phase.state is False
    assert not contactor.closed
    contactor.close()  # idempotent
    contactor.set_closed(False)  # harmless after close
    with pytest.raises(RuntimeError):
        contactor.set_closed(True)


def test_active_low_coil_starts_and_ends_off(factory: SimPinFactory) -> None:
    contactor = GpioContactor(COIL, active_high=False, pin_factory=factory)
    coil = factory.pin(COIL)
    assert coil.state is True  # high = off for an active-low driver
    contactor.set_closed(True)
    assert coil.state is False
    contactor.close()
    assert coil.state is True


def test_exception_inside_with_block_leaves_outputs_off(factory: SimPinFactory) -> None:
    with (
        pytest.raises(ZeroDivisionError),
        GpioContactor(COIL, phase_pin=PHASE, pin_factory=factory) as c,
    ):
        assert c.set_phases(3)
        c.set_closed(True)
        assert driven(factory.pin(COIL)) and driven(factory.pin(PHASE))
        _ = 1 / 0
    assert factory.pin(COIL).state is False and factory.pin(PHASE).state is False


def test_failed_constructor_releases_and_switches_off(factory: SimPinFactory) -> None:
    with pytest.raises(Exception):  # noqa: B017 - gpiozero's pin-in-use error
        GpioContactor(COIL, feedback_pin=COIL, pin_factory=factory)
    contactor = GpioContactor(COIL, pin_factory=factory)  # the coil pin was released
    assert factory.pin(COIL).state is False
    contactor.close()


def test_atexit_hook_switches_off(factory: SimPinFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    hooks: list[Callable[[], None]] = []
    monkeypatch.setattr(contactor_module.atexit, "register", hooks.append)
    contactor = GpioContactor(COIL, pin_factory=factory)
    contactor.set_closed(True)
    assert factory.pin(COIL).state is True
    for hook in hooks:
        hook()
    assert factory.pin(COIL).state is False


def test_feedback_agrees_no_fault(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = ContactorSim(factory, COIL, FB, settle_s=SIM_SETTLE)
        contactor, events = make(factory)
        await contactor.start()
        contactor.set_closed(True)
        await asyncio.sleep(SETTLE + 0.05)
        assert sim.closed
        contactor.set_closed(False)
        await asyncio.sleep(SETTLE + INTERVAL + 0.05)
        assert not sim.closed
        assert events == [] and contactor.active_faults == frozenset()
        contactor.close()

    run(scenario)


def test_weld_detected_after_settle_and_latched(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = ContactorSim(factory, COIL, FB, settle_s=SIM_SETTLE)
        contactor, events = make(factory)
        await contactor.start()
        contactor.set_closed(True)
        await asyncio.sleep(SETTLE + 0.03)
        sim.welded = True
        contactor.set_closed(False)
        await asyncio.sleep(SETTLE / 2)
        assert events == []  # not judged before the settle time
        await asyncio.sleep(SETTLE + 0.05)
        assert events == [(FaultKind.WELD, True)]
        contactor.set_closed(True)  # refused while a weld is latched
        assert not contactor.closed and factory.pin(COIL).state is False
        sim.welded = False  # even if the feedback recovers, only a restart clears it
        await asyncio.sleep(2 * INTERVAL + 0.05)
        assert events == [(FaultKind.WELD, True)]
        assert FaultKind.WELD in contactor.active_faults
        contactor.close()

    run(scenario)


def test_weld_appearing_while_idle_is_caught(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = ContactorSim(factory, COIL, FB, settle_s=SIM_SETTLE)
        contactor, events = make(factory)
        await contactor.start()
        await asyncio.sleep(SETTLE + 0.02)
        sim.welded = True
        await asyncio.sleep(INTERVAL + 0.06)
        assert events == [(FaultKind.WELD, True)]
        contactor.close()

    run(scenario)


def test_did_not_close_is_generic_and_recovers(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = ContactorSim(factory, COIL, FB, settle_s=SIM_SETTLE)
        sim.stuck_open = True
        contactor, events = make(factory)
        await contactor.start()
        contactor.set_closed(True)
        await asyncio.sleep(SETTLE + 0.05)
        assert events == [(FaultKind.GENERIC, True)]
        sim.stuck_open = False
        await asyncio.sleep(INTERVAL + SIM_SETTLE + 0.05)
        assert events == [(FaultKind.GENERIC, True), (FaultKind.GENERIC, False)]
        assert contactor.active_faults == frozenset()
        contactor.close()

    run(scenario)


def test_phase_switching_only_while_open(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        ContactorSim(factory, COIL, FB, settle_s=SIM_SETTLE)
        phase_sim = ContactorSim(factory, PHASE, PHASE_FB, settle_s=SIM_SETTLE)
        contactor, events = make(factory, phase_pin=PHASE, phase_feedback_pin=PHASE_FB)
        await contactor.start()
        assert contactor.phases == 1  # phase contactor de-energised at start
        assert contactor.set_phases(3) is True
        assert driven(factory.pin(PHASE))
        contactor.set_closed(True)
        assert contactor.set_phases(1) is False
        assert contactor.phases == 3 and driven(factory.pin(PHASE))
        await asyncio.sleep(SETTLE + 0.03)
        contactor.set_closed(False)
        assert contactor.set_phases(1) is False  # the feedback still shows closed
        await asyncio.sleep(SIM_SETTLE + 0.03)
        assert contactor.set_phases(1) is True
        assert contactor.set_phases(1) is True  # already there
        with pytest.raises(ValueError):
            contactor.set_phases(2)
        await asyncio.sleep(SETTLE + 0.05)
        assert not phase_sim.closed
        assert events == []
        contactor.close()

    run(scenario)


def test_welded_phase_contactor_reports_weld(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        ContactorSim(factory, COIL, FB, settle_s=SIM_SETTLE)
        phase_sim = ContactorSim(factory, PHASE, PHASE_FB, settle_s=SIM_SETTLE)
        contactor, events = make(factory, phase_pin=PHASE, phase_feedback_pin=PHASE_FB)
        await contactor.start()
        assert contactor.set_phases(3)
        await asyncio.sleep(SETTLE + 0.03)
        phase_sim.welded = True
        assert contactor.set_phases(1)
        await asyncio.sleep(SETTLE + 0.05)
        assert events == [(FaultKind.WELD, True)]
        contactor.close()

    run(scenario)


def test_without_phase_contactor_set_phases_refuses(factory: SimPinFactory) -> None:
    contactor = GpioContactor(COIL, pin_factory=factory)
    assert contactor.phases is None
    assert contactor.set_phases(3) is False
    contactor.close()


def test_nothing_reported_before_start(factory: SimPinFactory) -> None:
    async def scenario() -> None:
        sim = ContactorSim(factory, COIL, FB, settle_s=SIM_SETTLE)
        sim.welded = True
        contactor, events = make(factory)
        await asyncio.sleep(SETTLE + 0.03)
        assert events == []  # no checks before start()
        await contactor.start()
        await asyncio.sleep(SETTLE + 0.05)
        assert events == [(FaultKind.WELD, True)]
        await contactor.stop()
        assert factory.pin(COIL).state is False

    run(scenario)
