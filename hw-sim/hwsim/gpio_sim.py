"""Pin-level simulation of the wallbox's GPIO parts on top of gpiozero's MockFactory.

The real drivers in drivers/gpio run unchanged against these: each simulator
watches the output pins a driver drives and answers on the input pins, the way
the contactor, the RCM module, the lock and the emergency-stop button would.

How outputs are observed: MockPin has no change notification, so the pins are
ObservedPin, a MockPin that calls listeners when an output level, the pin
function or the pull changes. The pull matters: when a driver opens an input,
gpiozero sets the pull and MockPin drives the level to it; the simulator then
re-drives the level its part is producing, like a real contact overriding a
pull resistor. Use SimPinFactory (ObservedPin for every pin) and the order of
creating simulators and drivers does not matter; with a plain MockFactory an
existing plain MockPin is upgraded in place.

A released output (the driver closed the pin) counts as not driven: the board's
bias resistors hold every driver stage off, which is what the drivers rely on.

Delays run on daemon threading.Timers, not on the asyncio loop, because the
blocking ConnectorLock.lock() holds the loop while it waits for the feedback.
Inputs therefore change on a timer thread, like gpiozero's own callbacks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin

PinSpec = int | str
Listener = Callable[["ObservedPin"], None]


class ObservedPin(MockPin):
    """A MockPin that reports output-level, function and pull changes to listeners."""

    @property
    def listeners(self) -> list[Listener]:
        # Created lazily so a plain MockPin can be upgraded in place (see observe()).
        found: list[Listener] | None = self.__dict__.get("_sim_listeners")
        if found is None:
            found = []
            self.__dict__["_sim_listeners"] = found
        return found

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def _notify(self) -> None:
        for listener in list(self.listeners):
            listener(self)

    def _set_state(self, value: Any) -> None:
        before = self._state
        super()._set_state(value)
        if self._state != before:
            self._notify()

    def _set_function(self, value: str) -> None:
        super()._set_function(value)
        self._notify()

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)
        self._notify()


class SimPinFactory(MockFactory):
    """A MockFactory whose pins are all ObservedPin; pass it as pin_factory to the drivers."""

    def __init__(self, revision: str | None = None) -> None:
        super().__init__(revision=revision, pin_class=ObservedPin)


def observe(factory: MockFactory, name: PinSpec) -> ObservedPin:
    """The factory's pin `name` as an ObservedPin, creating or upgrading it."""
    try:
        pin = factory.pin(name, pin_class=ObservedPin)
    except ValueError as exc:  # already a PWM pin
        raise TypeError(f"pin {name} cannot be observed: {exc}; use SimPinFactory") from exc
    if isinstance(pin, ObservedPin):
        return pin
    if type(pin) is MockPin:  # created earlier by a driver: adds behaviour only, no state
        pin.__class__ = ObservedPin
        assert isinstance(pin, ObservedPin)
        return pin
    raise TypeError(f"pin {name} is a {type(pin).__name__}; use SimPinFactory")


def driven(pin: MockPin, active_high: bool = True) -> bool:
    """True if `pin` is an output driven to its active level (a released pin is not)."""
    return bool(pin.function == "output" and bool(pin.state) == active_high)


def drive_input(pin: MockPin, level: bool) -> None:
    """Drive an input pin's level; does nothing while the pin is an output."""
    if pin.function != "input":
        return
    if level:
        pin.drive_high()
    else:
        pin.drive_low()


class _Timers:
    """Named one-shot daemon timers: rescheduling a name replaces its pending timer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timers: dict[str, threading.Timer] = {}
        self._closed = False

    def after(self, name: str, delay_s: float, action: Callable[[], None]) -> None:
        with self._lock:
            old = self._timers.pop(name, None)
            if old is not None:
                old.cancel()
            if self._closed:
                return
            if delay_s > 0:
                timer = threading.Timer(delay_s, self._fire, (name, action))
                timer.daemon = True
                self._timers[name] = timer
                timer.start()
                return
        action()

    def cancel(self, name: str) -> None:
        with self._lock:
            old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()

    def _fire(self, name: str, action: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                return
            self._timers.pop(name, None)
        action()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            timers, self._timers = list(self._timers.values()), {}
        for timer in timers:
            timer.cancel()


class _PartSim:
    """Common bookkeeping: observed pins, listeners and timers, removed by close()."""

    def __init__(self) -> None:
        self._timers = _Timers()
        self._lock = threading.RLock()
        self._subscriptions: list[tuple[ObservedPin, Listener]] = []

    def _watch(self, pin: ObservedPin, listener: Listener) -> None:
        pin.add_listener(listener)
        self._subscriptions.append((pin, listener))

    def close(self) -> None:
        """Stop simulating: remove listeners and cancel pending transitions."""
        self._timers.close()
        for pin, listener in self._subscriptions:
            pin.remove_listener(listener)
        self._subscriptions.clear()


class ContactorSim(_PartSim):
    """A contactor whose mirror contact follows the coil `settle_s` after each change.

    `nc_mirror`: the auxiliary contact is normally closed (conducts while the
    main poles are open, IEC 60947-4-1 mirror contact); `contact_level` is the
    level the feedback input reads while that contact conducts. The defaults
    match GpioContactor's defaults (feedback_closed_high=False). `welded`
    keeps the poles closed whatever the coil does; `stuck_open` keeps them
    from pulling in. Reuse it for the 1p/3p phase contactor.
    """

    def __init__(
        self,
        factory: MockFactory,
        coil_pin: PinSpec,
        feedback_pin: PinSpec | None = None,
        *,
        settle_s: float = 0.03,
        nc_mirror: bool = True,
        coil_active_high: bool = True,
        contact_level: bool = True,
    ) -> None:
        super().__init__()
        self.settle_s = settle_s
        self.nc_mirror = nc_mirror
        self.coil_active_high = coil_active_high
        self.contact_level = contact_level
        self._closed = False
        self._welded = False
        self._stuck_open = False
        self.switch_count = 0  # mechanical transitions of the main poles
        self._coil = observe(factory, coil_pin)
        self._feedback = observe(factory, feedback_pin) if feedback_pin is not None else None
        self._watch(self._coil, lambda _pin: self._coil_changed())
        if self._feedback is not None:
            self._watch(self._feedback, lambda _pin: self._drive_feedback())
        self._drive_feedback()
        self._coil_changed()

    @property
    def energised(self) -> bool:
        return driven(self._coil, self.coil_active_high)

    @property
    def closed(self) -> bool:
        """The mechanical state of the main poles."""
        return self._closed

    @property
    def welded(self) -> bool:
        return self._welded

    @welded.setter
    def welded(self, value: bool) -> None:
        """A weld sticks the poles closed at once; clearing it lets them follow the coil."""
        with self._lock:
            self._welded = value
        self._move(0.0)

    @property
    def stuck_open(self) -> bool:
        return self._stuck_open

    @stuck_open.setter
    def stuck_open(self, value: bool) -> None:
        with self._lock:
            self._stuck_open = value
        self._move(0.0 if value else self.settle_s)

    def _target(self) -> bool:
        if self._welded:
            return True
        if self._stuck_open:
            return False
        return self.energised

    def _coil_changed(self) -> None:
        self._move(self.settle_s)

    def _move(self, delay_s: float) -> None:
        self._timers.after("move", delay_s, self._settle)

    def _settle(self) -> None:
        with self._lock:
            target = self._target()  # evaluated when the contacts move, not when scheduled
            if target == self._closed:
                return
            self._closed = target
            self.switch_count += 1
        self._drive_feedback()

    def feedback_level(self) -> bool:
        conducting = (not self._closed) if self.nc_mirror else self._closed
        return self.contact_level if conducting else not self.contact_level

    def _drive_feedback(self) -> None:
        if self._feedback is not None:
            drive_input(self._feedback, self.feedback_level())


class RcmSim(_PartSim):
    """An RCM module (e.g. RCM14-03): its fault output asserts while the TEST input
    is driven (after `trip_delay_s`) and releases `release_delay_s` after TEST ends.

    trip()/clear() simulate a real residual current; spike() a glitch shorter
    than any filter; `broken = True` makes it ignore TEST (a failed self-test).
    """

    def __init__(
        self,
        factory: MockFactory,
        fault_pin: PinSpec,
        test_pin: PinSpec | None = None,
        *,
        trip_delay_s: float = 0.02,
        release_delay_s: float = 0.02,
        fault_active_high: bool = True,
        test_active_high: bool = True,
    ) -> None:
        super().__init__()
        self.trip_delay_s = trip_delay_s
        self.release_delay_s = release_delay_s
        self.fault_active_high = fault_active_high
        self.test_active_high = test_active_high
        self.broken = False
        self.test_pulses = 0  # TEST activations seen
        self._residual = False  # a real (simulated) residual current
        self._test_trip = False  # trip induced by the test winding
        self._test_was_driven = False
        self._fault = observe(factory, fault_pin)
        self._test = observe(factory, test_pin) if test_pin is not None else None
        self._watch(self._fault, lambda _pin: self._drive_fault())
        if self._test is not None:
            self._watch(self._test, lambda _pin: self._test_changed())
        self._drive_fault()

    @property
    def asserted(self) -> bool:
        """True while the fault output signals a trip."""
        return self._residual or self._test_trip

    def trip(self) -> None:
        with self._lock:
            self._residual = True
        self._drive_fault()

    def clear(self) -> None:
        with self._lock:
            self._residual = False
        self._drive_fault()

    def spike(self) -> None:
        """Assert the output and release it at once (a glitch the driver must filter)."""
        drive_input(self._fault, self.fault_active_high)
        self._drive_fault()

    def _test_driven(self) -> bool:
        return self._test is not None and driven(self._test, self.test_active_high)

    def _test_changed(self) -> None:
        now = self._test_driven()
        with self._lock:
            if now == self._test_was_driven:
                return
            self._test_was_driven = now
            if now:
                self.test_pulses += 1
        if now and not self.broken:
            self._timers.after("test", self.trip_delay_s, self._test_trip_on)
        elif not now:
            self._timers.after("test", self.release_delay_s, self._test_trip_off)

    def _test_trip_on(self) -> None:
        with self._lock:
            if not self._test_driven() or self.broken:
                return
            self._test_trip = True
        self._drive_fault()

    def _test_trip_off(self) -> None:
        with self._lock:
            self._test_trip = False
        self._drive_fault()

    def _drive_fault(self) -> None:
        level = self.fault_active_high if self.asserted else not self.fault_active_high
        drive_input(self._fault, level)


class LockSim(_PartSim):
    """A socket lock whose feedback follows the actuator after `travel_s`.

    Held solenoid (no unlock_pin): locked while `lock_pin` is driven. Motor
    (with unlock_pin): a pulse on lock_pin/unlock_pin moves it to locked/unlocked
    `travel_s` after the pulse starts; both driven at once moves nothing and
    counts in `shoot_through`. `jammed` stops it moving; force() moves it by hand.
    """

    def __init__(
        self,
        factory: MockFactory,
        lock_pin: PinSpec,
        feedback_pin: PinSpec,
        unlock_pin: PinSpec | None = None,
        *,
        travel_s: float = 0.03,
        active_high: bool = True,
        feedback_locked_high: bool = True,
        jammed: bool = False,
        locked: bool = False,
    ) -> None:
        super().__init__()
        self.travel_s = travel_s
        self.active_high = active_high
        self.feedback_locked_high = feedback_locked_high
        self._jammed = jammed
        self.shoot_through = 0
        self._locked = locked
        self._lock_pin = observe(factory, lock_pin)
        self._unlock_pin = observe(factory, unlock_pin) if unlock_pin is not None else None
        self._feedback = observe(factory, feedback_pin)
        self._drives = (False, False)
        self._watch(self._lock_pin, lambda _pin: self._actuator_changed())
        if self._unlock_pin is not None:
            self._watch(self._unlock_pin, lambda _pin: self._actuator_changed())
        self._watch(self._feedback, lambda _pin: self._drive_feedback())
        self._drive_feedback()
        if self._unlock_pin is None:
            self._actuator_changed()

    @property
    def locked(self) -> bool:
        """The mechanical position."""
        return self._locked

    @property
    def jammed(self) -> bool:
        return self._jammed

    @jammed.setter
    def jammed(self, value: bool) -> None:
        """Freeing a held solenoid lets it move to where it is driven; a motor waits for a pulse."""
        self._jammed = value
        if not value and self._unlock_pin is None:
            self._actuator_changed()

    def force(self, locked: bool) -> None:
        """Move the lock by hand (or by a user prying it), ignoring the actuator."""
        with self._lock:
            self._locked = locked
        self._drive_feedback()

    def _actuator_changed(self) -> None:
        lock_on = driven(self._lock_pin, self.active_high)
        if self._unlock_pin is None:
            self._timers.after("move", self.travel_s, lambda: self._reach(lock_on))
            return
        unlock_on = driven(self._unlock_pin, self.active_high)
        with self._lock:
            before, self._drives = self._drives, (lock_on, unlock_on)
        if lock_on and unlock_on:
            self.shoot_through += 1
            self._timers.cancel("move")
        elif lock_on and not before[0]:
            self._timers.after("move", self.travel_s, lambda: self._reach(True))
        elif unlock_on and not before[1]:
            self._timers.after("move", self.travel_s, lambda: self._reach(False))

    def _reach(self, locked: bool) -> None:
        if self._jammed:
            return
        self.force(locked)

    def _drive_feedback(self) -> None:
        level = self.feedback_locked_high if self._locked else not self.feedback_locked_high
        drive_input(self._feedback, level)


class EStopSim(_PartSim):
    """An emergency-stop button: press()/release() drive the input level.

    `active_high` is the level while pressed; the default matches
    EmergencyStopInput (NC contact to GND with pull-up: pressed reads high).
    """

    def __init__(self, factory: MockFactory, pin: PinSpec, *, active_high: bool = True) -> None:
        super().__init__()
        self.active_high = active_high
        self._pressed = False
        self._pin = observe(factory, pin)
        self._watch(self._pin, lambda _pin: self._drive())
        self._drive()

    @property
    def pressed(self) -> bool:
        return self._pressed

    def press(self) -> None:
        self._pressed = True
        self._drive()

    def release(self) -> None:
        self._pressed = False
        self._drive()

    def _drive(self) -> None:
        drive_input(self._pin, self.active_high if self._pressed else not self.active_high)
