"""Socket-outlet lock actuator on GPIO, confirmed by its feedback switch.

Two actuator kinds: a motor driven by a lock/unlock pulse pair (an H-bridge:
the driver never energises both inputs at once) or a solenoid held by one
output (energised = locked, so a released pin unlocks). The ConnectorLock
protocol is synchronous, so lock()/unlock() block the caller (the event loop)
until the feedback confirms or `timeout_s` passes; the timeout is capped at
0.5 s for that reason. lock_async()/unlock_async() do the same without
blocking the loop and are preferable where the caller can await.

A move that does not reach its position reports FaultKind.LOCK; after start()
the feedback is also watched, so a lock forced open later reports LOCK too,
and LOCK clears when the feedback agrees with the command again.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import time
from typing import Any

from gpiozero import DigitalOutputDevice

from drivers.gpio._base import FilteredInput, PinSpec, output_off
from drivers.interfaces import FaultKind

log = logging.getLogger(__name__)

MAX_BLOCKING_S = 0.5
_SAMPLE_S = 0.005


class GpioLock(FilteredInput):
    """ConnectorLock: `lock_pin` alone = held solenoid; with `unlock_pin` = motor pulses.

    `feedback_locked_high` is the feedback level that means locked; with the
    default pull-down a broken feedback wire reads "unlocked" and faults.
    """

    def __init__(
        self,
        lock_pin: PinSpec,
        feedback_pin: PinSpec,
        unlock_pin: PinSpec | None = None,
        *,
        active_high: bool = True,
        pulse_s: float = 0.2,
        timeout_s: float = 0.4,
        feedback_locked_high: bool = True,
        feedback_pull_up: bool | None = False,
        filter_s: float = 0.02,
        poll_s: float = 0.5,
        pin_factory: Any = None,
        name: str = "lock",
    ) -> None:
        if not 0 < timeout_s <= MAX_BLOCKING_S:
            raise ValueError(f"timeout_s must be in (0, {MAX_BLOCKING_S}] s: lock() blocks")
        if unlock_pin is not None and not 0 < pulse_s <= timeout_s:
            raise ValueError("pulse_s must be in (0, timeout_s]")
        super().__init__(
            feedback_pin,
            active_high=feedback_locked_high,
            pull_up=feedback_pull_up,
            filter_s=filter_s,
            poll_s=poll_s,
            pin_factory=pin_factory,
            name=name,
        )
        self._pulse_s = pulse_s
        self._timeout_s = timeout_s
        self._commanded: bool | None = None  # None: never commanded, nothing to watch
        self._moving = False
        self._lock_out: DigitalOutputDevice | None = None
        self._unlock_out: DigitalOutputDevice | None = None
        try:
            self._lock_out = output_off(lock_pin, active_high, pin_factory)
            if unlock_pin is not None:
                self._unlock_out = output_off(unlock_pin, active_high, pin_factory)
        except BaseException:
            self.close()
            raise
        atexit.register(self.close)

    @property
    def locked(self) -> bool:
        """What the feedback says now (unfiltered)."""
        return self.input_active

    @property
    def commanded(self) -> bool | None:
        """The last commanded position: True locked, False unlocked, None never commanded."""
        return self._commanded

    # -- ConnectorLock protocol (blocking) ----------------------------------

    def lock(self) -> bool:
        """Lock; True if the feedback confirms within timeout_s (blocks up to that)."""
        return self._move_blocking(True)

    def unlock(self) -> bool:
        """Unlock; True if the feedback confirms within timeout_s (blocks up to that)."""
        return self._move_blocking(False)

    # -- non-blocking variants ----------------------------------------------

    async def lock_async(self) -> bool:
        return await self._move_async(True)

    async def unlock_async(self) -> bool:
        return await self._move_async(False)

    # -- moves ----------------------------------------------------------------

    def _move_blocking(self, target: bool) -> bool:
        if not self._begin(target):
            return False
        start = time.monotonic()
        try:
            while (done := self._step(target, time.monotonic() - start)) is None:
                time.sleep(_SAMPLE_S)
        except BaseException:
            self._outputs_idle()
            raise
        finally:
            self._moving = False
        return self._finish(target, done)

    async def _move_async(self, target: bool) -> bool:
        if not self._begin(target):
            return False
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            while (done := self._step(target, loop.time() - start)) is None:
                await asyncio.sleep(_SAMPLE_S)
        except BaseException:
            self._outputs_idle()
            raise
        finally:
            self._moving = False
        return self._finish(target, done)

    def _begin(self, target: bool) -> bool:
        if self._lock_out is None or self._lock_out.closed:
            raise RuntimeError(f"{self._name} is closed")
        if self._moving:
            log.warning("%s: move refused: another move is under way", self._name)
            return False
        self._moving = True
        self._commanded = target
        if self._unlock_out is None:
            self._lock_out.value = target  # held solenoid
        else:
            idle, drive = (
                (self._unlock_out, self._lock_out) if target else (self._lock_out, self._unlock_out)
            )
            idle.off()  # never both H-bridge inputs at once
            drive.on()
        return True

    def _step(self, target: bool, elapsed: float) -> bool | None:
        """True: reached (and pulse over); False: timed out; None: keep waiting."""
        pulsing = self._unlock_out is not None and elapsed < self._pulse_s
        if not pulsing:
            self._outputs_idle()
        if not pulsing and self.input_active == target:
            return True
        if elapsed >= self._timeout_s:
            self._outputs_idle()
            return False
        return None

    def _outputs_idle(self) -> None:
        """End a motor pulse (a held solenoid keeps its state)."""
        if self._unlock_out is None or self._lock_out is None:
            return
        for out in (self._lock_out, self._unlock_out):
            if not out.closed:
                out.off()

    def _finish(self, target: bool, reached: bool) -> bool:
        if not reached:
            log.error(
                "%s: did not reach %s within %.2f s",
                self._name,
                "locked" if target else "unlocked",
                self._timeout_s,
            )
        self._faults.set(FaultKind.LOCK, not reached)
        self._kick()  # resynchronise the filtered feedback
        return reached

    def _stable(self) -> None:
        if self._moving or self._commanded is None:
            return
        self._faults.set(FaultKind.LOCK, self._stable_active != self._commanded)

    # -- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        """Switch every actuator output off (a held solenoid unlocks) and release the pins."""
        for out in (self._lock_out, self._unlock_out):
            if out is not None and not out.closed:
                try:
                    out.off()
                finally:
                    out.close()
        super().close()
        atexit.unregister(self.close)

    def __enter__(self) -> GpioLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
