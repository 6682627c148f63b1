"""Plumbing shared by the GPIO drivers: fault bookkeeping, loop hand-over, filtered inputs.

gpiozero calls edge callbacks from its own threads (or, with MockFactory, from
whichever thread drives the pin). Nothing in the drivers acts on them there:
every edge is handed to the asyncio loop with call_soon_threadsafe, and all
state lives on the loop. Reports are always delivered later on the loop, never
inside the call that caused them, like the simulated hardware in hwsim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from gpiozero import DigitalInputDevice, DigitalOutputDevice

from drivers.interfaces import FaultCallback, FaultKind

log = logging.getLogger(__name__)

PinSpec = int | str  # a gpiozero pin name: 17, "GPIO17", "BOARD11", ...


def output_off(pin: PinSpec, active_high: bool, pin_factory: Any) -> DigitalOutputDevice:
    """An output that starts off: no coil, actuator or test line is ever energised at start."""
    return DigitalOutputDevice(
        pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
    )


class FaultReporter:
    """Remembers which faults are active and reports changes only, on the loop.

    Nothing is delivered before start(): start() replays the active faults
    once, as Hardware.start() promises; after stop() nothing is delivered.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._callbacks: list[FaultCallback] = []
        self._active: set[FaultKind] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, callback: FaultCallback) -> None:
        self._callbacks.append(callback)

    @property
    def active(self) -> frozenset[FaultKind]:
        return frozenset(self._active)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for kind in sorted(self._active):
            self._deliver(kind, True)

    def stop(self) -> None:
        self._loop = None

    def set(self, kind: FaultKind, active: bool) -> None:
        if (kind in self._active) == active:
            return
        if active:
            self._active.add(kind)
            log.warning("%s: fault %s active", self._name, kind)
        else:
            self._active.discard(kind)
            log.info("%s: fault %s cleared", self._name, kind)
        self._deliver(kind, active)

    def _deliver(self, kind: FaultKind, active: bool) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop closed while shutting down
            loop.call_soon_threadsafe(self._call, kind, active)

    def _call(self, kind: FaultKind, active: bool) -> None:
        for callback in list(self._callbacks):
            try:
                callback(kind, active)
            except Exception:
                log.exception("%s: fault callback failed", self._name)


def make_input(pin: PinSpec, *, pull_up: bool | None, pin_factory: Any) -> DigitalInputDevice:
    """An input whose raw level the driver interprets itself.

    gpiozero ties the active level to the pull (pull-up means active low); the
    drivers take the pull and the meaning of the level as separate settings,
    so they read the raw level and only use gpiozero for edges.
    """
    return DigitalInputDevice(
        pin,
        pull_up=pull_up,
        active_state=True if pull_up is None else None,
        pin_factory=pin_factory,
    )


def raw_level(device: DigitalInputDevice) -> bool:
    return bool(device.pin.state)


class FilteredInput:
    """A digital input reported only after two agreeing samples `filter_s` apart.

    Edges (from gpiozero's threads) and a slow periodic poll both start a
    confirmation on the loop: read, wait `filter_s`, read again. Two equal
    samples set the stable level and call `_stable()`; differing samples start
    another round. The poll catches edges a real GPIO backend may have missed.
    Subclasses decide what the stable level means in `_stable()`, which is
    called after every agreeing confirmation (not only on changes) so it can
    reconcile its reports idempotently.
    """

    def __init__(
        self,
        pin: PinSpec,
        *,
        active_high: bool,
        pull_up: bool | None,
        filter_s: float,
        poll_s: float,
        pin_factory: Any,
        name: str,
    ) -> None:
        if filter_s < 0 or poll_s <= 0:
            raise ValueError("filter_s must be >= 0 and poll_s > 0")
        self._name = name
        self._active_high = active_high
        self._filter_s = filter_s
        self._poll_s = poll_s
        self._faults = FaultReporter(name)
        self._input = make_input(pin, pull_up=pull_up, pin_factory=pin_factory)
        self._stable_active = False
        self._confirm_handle: asyncio.TimerHandle | None = None
        self._poll_handle: asyncio.TimerHandle | None = None
        self._input.when_activated = self._edge
        self._input.when_deactivated = self._edge

    def on_fault(self, callback: FaultCallback) -> None:
        self._faults.add(callback)

    @property
    def active_faults(self) -> frozenset[FaultKind]:
        return self._faults.active

    @property
    def input_active(self) -> bool:
        """The raw, unfiltered input level, in the driver's meaning."""
        return raw_level(self._input) == self._active_high

    async def start(self) -> None:
        """Read the input (filtered) and start watching it; reports arrive on this loop."""
        loop = asyncio.get_running_loop()
        first = self.input_active
        await asyncio.sleep(self._filter_s)
        if self.input_active == first:
            self._stable_active = first
        self._stable()
        self._faults.start(loop)
        self._poll_handle = loop.call_later(self._poll_s, self._poll)

    async def stop(self) -> None:
        self._halt()

    def close(self) -> None:
        """Stop watching and release the pin. Idempotent."""
        self._halt()
        if self._input.closed:
            return
        self._input.when_activated = None
        self._input.when_deactivated = None
        self._input.close()

    def _halt(self) -> None:
        for handle in (self._confirm_handle, self._poll_handle):
            if handle is not None:
                handle.cancel()
        self._confirm_handle = self._poll_handle = None
        self._faults.stop()

    def _edge(self) -> None:
        loop = self._faults.loop  # gpiozero thread: only hand over
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._kick)

    def _poll(self) -> None:
        loop = self._faults.loop
        if loop is None:
            return
        self._kick()
        self._poll_handle = loop.call_later(self._poll_s, self._poll)

    def _kick(self) -> None:
        """Start a confirmation unless one is under way."""
        loop = self._faults.loop
        if loop is None or self._confirm_handle is not None:
            return
        first = self.input_active
        self._confirm_handle = loop.call_later(self._filter_s, self._confirm, first)

    def _confirm(self, first: bool) -> None:
        self._confirm_handle = None
        if self.input_active != first:  # a spike or a bounce: look again
            self._kick()
            return
        self._stable_active = first
        self._stable()

    def _stable(self) -> None:
        """Called on the loop with a confirmed `self._stable_active`."""
