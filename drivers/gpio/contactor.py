"""Main contactor (and optional 1p/3p phase contactor) on GPIO, with mirror-contact weld check.

Hardware reference §3.1/§3.2: feedback from an auxiliary (mirror) contact is
compared with the command `settle_s` after every switch (Yeti reads it 100 ms
after switching) and then periodically, so a weld that appears later is still
caught. A contact that stays closed while commanded open is a weld: reported
as FaultKind.WELD and never cleared by the driver (the core latches it until
restart, and only a restart of the driver clears it here too). A contactor that
does not pull in is FaultKind.GENERIC and clears when a later check agrees.

Fail-safe limits (§4.4): the coil output starts OFF, stop()/close(), leaving a
`with` block (also on an exception), a failing constructor and interpreter exit
(atexit) all switch it OFF. What a Linux process cannot guarantee: SIGKILL, a
kernel panic, a hang or power brown-out leave the GPIO at its last level, and
plain SIGTERM skips atexit unless the daemon installs a handler (it should turn
SIGTERM into an orderly stop()). The board therefore needs pull-downs (or
pull-ups for active-low drives) that hold the coil driver off while the pin is
released, a hardware watchdog (drivers.gpio.watchdog), and ideally a coil
enable that needs a heartbeat and an RCM trip path that opens the coil directly.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
from typing import Any

from gpiozero import DigitalInputDevice, DigitalOutputDevice

from drivers.gpio._base import FaultReporter, PinSpec, make_input, output_off, raw_level
from drivers.interfaces import FaultCallback, FaultKind

log = logging.getLogger(__name__)


class _Feedback:
    """One auxiliary-contact input and the level that means "main poles closed"."""

    def __init__(
        self, pin: PinSpec, *, pull_up: bool | None, closed_high: bool, pin_factory: Any
    ) -> None:
        self.device: DigitalInputDevice = make_input(pin, pull_up=pull_up, pin_factory=pin_factory)
        self.closed_high = closed_high

    @property
    def closed(self) -> bool:
        return raw_level(self.device) == self.closed_high


class GpioContactor:
    """Contactor implementation for a coil on a GPIO, with optional mirror-contact feedback.

    `feedback_closed_high` is the input level that means the main poles are
    closed. The defaults (False, pull-down) fit an NC mirror contact that pulls
    the input high while the poles are open (IEC 60947-4-1 Annex F: it cannot
    close while a pole is welded); a broken feedback wire then reads "closed"
    and shows up as a fault instead of hiding a weld. The phase contactor is
    de-energised at start, so the station starts with 4 - phases_when_energised
    phases. Checks need the asyncio loop: they begin with start().
    """

    def __init__(
        self,
        coil_pin: PinSpec,
        *,
        active_high: bool = True,
        feedback_pin: PinSpec | None = None,
        feedback_pull_up: bool | None = False,
        feedback_closed_high: bool = False,
        phase_pin: PinSpec | None = None,
        phase_active_high: bool = True,
        phase_feedback_pin: PinSpec | None = None,
        phase_feedback_pull_up: bool | None = False,
        phase_feedback_closed_high: bool = False,
        phases_when_energised: int = 3,
        settle_s: float = 0.1,
        confirm_s: float = 0.02,
        check_interval_s: float = 1.0,
        pin_factory: Any = None,
        name: str = "contactor",
    ) -> None:
        if phases_when_energised not in (1, 3):
            raise ValueError("phases_when_energised must be 1 or 3")
        if settle_s < 0 or confirm_s < 0 or check_interval_s <= 0:
            raise ValueError("settle_s and confirm_s must be >= 0, check_interval_s > 0")
        self._name = name
        self._settle_s = settle_s
        self._confirm_s = confirm_s
        self._interval_s = check_interval_s
        self._phases_on = phases_when_energised
        self._faults = FaultReporter(name)
        self._closed = False
        self._phase_energised = False
        self._check_handle: asyncio.TimerHandle | None = None
        self._coil: DigitalOutputDevice | None = None
        self._phase: DigitalOutputDevice | None = None
        self._feedback: _Feedback | None = None
        self._phase_feedback: _Feedback | None = None
        self._closed_down = False
        try:
            self._coil = output_off(coil_pin, active_high, pin_factory)
            if phase_pin is not None:
                self._phase = output_off(phase_pin, phase_active_high, pin_factory)
            if feedback_pin is not None:
                self._feedback = _Feedback(
                    feedback_pin,
                    pull_up=feedback_pull_up,
                    closed_high=feedback_closed_high,
                    pin_factory=pin_factory,
                )
            if phase_feedback_pin is not None:
                if phase_pin is None:
                    raise ValueError("phase_feedback_pin needs phase_pin")
                self._phase_feedback = _Feedback(
                    phase_feedback_pin,
                    pull_up=phase_feedback_pull_up,
                    closed_high=phase_feedback_closed_high,
                    pin_factory=pin_factory,
                )
        except BaseException:
            self.close()
            raise
        atexit.register(self.close)

    # -- Contactor protocol -------------------------------------------------

    def set_closed(self, closed: bool) -> None:
        """Switch the main contactor. Closing is refused while a weld is latched."""
        if self._coil is None or self._closed_down:
            if closed:
                raise RuntimeError(f"{self._name} is closed")
            return
        if closed and FaultKind.WELD in self._faults.active:
            log.error("%s: refusing to close: weld latched", self._name)
            return
        if closed == self._closed:
            return
        try:
            self._closed = closed
            self._coil.value = closed
        except BaseException:
            self._force_off()
            raise
        self._schedule_check(self._settle_s)

    @property
    def closed(self) -> bool:
        """The commanded state."""
        return self._closed

    def on_fault(self, callback: FaultCallback) -> None:
        """Weld (latched) and did-not-close (GENERIC) faults, delivered on the loop."""
        self._faults.add(callback)

    # -- phase switching ----------------------------------------------------

    @property
    def phases(self) -> int | None:
        """Commanded phase count, None without a phase contactor."""
        if self._phase is None:
            return None
        return self._phases_on if self._phase_energised else 4 - self._phases_on

    def set_phases(self, n: int) -> bool:
        """Switch 1p/3p. Refused (False) unless the main contactor is open, and provably so.

        Some EVs are damaged by a phase change while charging (§3.1), so this
        also refuses while the main feedback still shows closed or a weld is
        latched. Wait for the next check (settle_s) before closing again if the
        phase contactor's own feedback matters to you.
        """
        if n not in (1, 3):
            raise ValueError("phases must be 1 or 3")
        if self._phase is None or self._closed_down:
            return False
        if n == self.phases:
            return True
        main_fb_closed = self._feedback is not None and self._feedback.closed
        if self._closed or main_fb_closed or FaultKind.WELD in self._faults.active:
            log.warning("%s: phase switch to %dp refused: main contactor not open", self._name, n)
            return False
        energise = n == self._phases_on
        try:
            self._phase_energised = energise
            self._phase.value = energise
        except BaseException:
            self._force_off()
            raise
        self._schedule_check(self._settle_s)
        return True

    # -- lifecycle ----------------------------------------------------------

    @property
    def active_faults(self) -> frozenset[FaultKind]:
        return self._faults.active

    async def start(self) -> None:
        """Begin checking feedback on the running loop; replays active faults."""
        self._faults.start(asyncio.get_running_loop())
        self._schedule_check(self._settle_s)

    async def stop(self) -> None:
        """Open everything and release the pins."""
        self.close()

    def close(self) -> None:
        """Open both contactors, stop checking and release the pins. Idempotent."""
        self._force_off()
        if self._check_handle is not None:
            self._check_handle.cancel()
            self._check_handle = None
        self._faults.stop()
        self._closed_down = True
        for part in (self._coil, self._phase):
            if part is not None:
                part.close()
        for fb in (self._feedback, self._phase_feedback):
            if fb is not None:
                fb.device.close()
        atexit.unregister(self.close)

    def __enter__(self) -> GpioContactor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _force_off(self) -> None:
        """Drive every output off, whatever fails on the way."""
        self._closed = False
        self._phase_energised = False
        for part in (self._coil, self._phase):
            if part is None or part.closed:
                continue
            try:
                part.off()
            except Exception:
                log.exception("%s: could not switch an output off", self._name)

    # -- feedback checks ----------------------------------------------------

    def _schedule_check(self, delay_s: float) -> None:
        """(Re)arm the one check timer; a switch restarts the settle time."""
        loop = self._faults.loop
        if loop is None or (self._feedback is None and self._phase_feedback is None):
            return  # not started (start() schedules the first check), or nothing to check
        if self._check_handle is not None:
            self._check_handle.cancel()
        self._check_handle = loop.call_later(delay_s, self._check)

    def _mismatches(self) -> tuple[bool, bool]:
        """(stuck closed while commanded open, not closed while commanded closed)."""
        stuck = missing = False
        pairs = ((self._feedback, self._closed), (self._phase_feedback, self._phase_energised))
        for fb, commanded in pairs:
            if fb is None:
                continue
            actual = fb.closed
            if actual and not commanded:
                stuck = True
            elif commanded and not actual:
                missing = True
        return stuck, missing

    def _check(self) -> None:
        self._check_handle = None
        stuck, missing = self._mismatches()
        if (stuck or missing) and self._confirm_s > 0:
            loop = self._faults.loop
            if loop is not None:  # one glitchy read must not latch a weld: read again
                self._check_handle = loop.call_later(self._confirm_s, self._confirm, stuck, missing)
            return
        self._apply(stuck, missing)

    def _confirm(self, stuck: bool, missing: bool) -> None:
        self._check_handle = None
        again_stuck, again_missing = self._mismatches()
        self._apply(stuck and again_stuck, missing and again_missing)

    def _apply(self, stuck: bool, missing: bool) -> None:
        if stuck:
            if FaultKind.WELD not in self._faults.active:
                log.critical("%s: feedback shows closed while commanded open: welded", self._name)
            self._faults.set(FaultKind.WELD, True)  # latched: never cleared here
        self._faults.set(FaultKind.GENERIC, missing)
        self._schedule_check(self._interval_s)
