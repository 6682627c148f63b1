"""Residual current monitor (RDC-DD, e.g. RCM14-03) trip input and self-test on GPIO.

Hardware reference §3.3/§3.4. The trip output is spike-filtered the way
SmartEVSE does it (re-read after ~1 ms) and reported as FaultKind.RCD while it
is asserted; the core holds the latch until unplug, so the driver simply
reports inactive once the input is back to normal. The software path is only
a report: the trip output should also open the coil in hardware (§4.4).

self_test() pulses TEST and expects the trip to assert and release within
deadlines (Tinkerforge: 250 ms pulse, 30 ms–1.2 s valid, trip seen by ~740 ms,
gone ~1.2 s later). The induced trip is not reported as RCD.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
from typing import Any

from gpiozero import DigitalOutputDevice

from drivers.gpio._base import FilteredInput, PinSpec, output_off
from drivers.interfaces import FaultKind

log = logging.getLogger(__name__)

TEST_PULSE_MIN_S = 0.03
TEST_PULSE_MAX_S = 1.2
_SAMPLE_S = 0.005  # self-test sampling period: two agreeing samples count


class GpioRcm(FilteredInput):
    """ResidualCurrentMonitor on a fault input and a TEST output.

    `active_high` is the fault input's level on a trip; the default pull-down
    makes a disconnected module read "no trip", which is why the self-test
    (it sees no trip either) matters. `test_pin` is optional: without it
    self_test() returns False. The TEST output starts off and is left off.
    """

    def __init__(
        self,
        fault_pin: PinSpec,
        test_pin: PinSpec | None = None,
        *,
        active_high: bool = True,
        pull_up: bool | None = False,
        test_active_high: bool = True,
        test_pulse_s: float = 0.25,
        assert_deadline_s: float = 1.0,
        release_deadline_s: float = 2.0,
        filter_s: float = 0.001,
        poll_s: float = 0.5,
        pin_factory: Any = None,
        name: str = "rcm",
    ) -> None:
        if not TEST_PULSE_MIN_S <= test_pulse_s <= TEST_PULSE_MAX_S:
            raise ValueError(
                f"test_pulse_s must be {TEST_PULSE_MIN_S}–{TEST_PULSE_MAX_S} s (hardware reference)"
            )
        if assert_deadline_s <= 0 or release_deadline_s <= 0:
            raise ValueError("deadlines must be > 0")
        super().__init__(
            fault_pin,
            active_high=active_high,
            pull_up=pull_up,
            filter_s=filter_s,
            poll_s=poll_s,
            pin_factory=pin_factory,
            name=name,
        )
        self._pulse_s = test_pulse_s
        self._assert_s = assert_deadline_s
        self._release_s = release_deadline_s
        self._testing = False
        self._test: DigitalOutputDevice | None = None
        if test_pin is not None:
            try:
                self._test = output_off(test_pin, test_active_high, pin_factory)
            except BaseException:
                super().close()
                raise
        atexit.register(self.close)

    @property
    def testing(self) -> bool:
        return self._testing

    def _stable(self) -> None:
        if not self._testing:
            self._faults.set(FaultKind.RCD, self._stable_active)

    async def self_test(self) -> bool:
        """Pulse TEST; True if the trip asserts within assert_deadline_s of the pulse
        start and releases within release_deadline_s of the later of the trip and the
        pulse end. The induced trip is not reported as RCD. Refuses (False) while a
        trip is already present, or when another test is running."""
        if self._test is None or self._testing:
            return False
        if self.input_active or FaultKind.RCD in self._faults.active:
            log.warning("%s: self-test not possible: trip input active", self._name)
            return False
        loop = asyncio.get_running_loop()
        self._testing = True
        passed = False
        try:
            start = loop.time()
            pulse_end = start + self._pulse_s
            self._test.on()
            tripped_at = await self._wait_level(True, start + self._assert_s, pulse_end)
            if tripped_at is None:
                log.error("%s: self-test failed: no trip within %.2f s", self._name, self._assert_s)
            else:
                if loop.time() < pulse_end:
                    await asyncio.sleep(pulse_end - loop.time())
                self._test.off()
                deadline = max(tripped_at, pulse_end) + self._release_s
                released = await self._wait_level(False, deadline, None)
                passed = released is not None
                if not passed:
                    log.error("%s: self-test failed: trip did not release", self._name)
        finally:
            self._safe_test_off()
            self._testing = False
            self._kick()  # reconcile: a trip that stays after the test is reported
        return passed

    async def _wait_level(
        self, active: bool, deadline: float, pulse_end: float | None
    ) -> float | None:
        """Poll for two agreeing samples at `active`; switch TEST off at pulse_end."""
        loop = asyncio.get_running_loop()
        previous = False
        while True:
            now = loop.time()
            if pulse_end is not None and now >= pulse_end:
                self._safe_test_off()
            hit = self.input_active == active
            if hit and previous:
                return now
            previous = hit
            if now >= deadline:
                return None
            await asyncio.sleep(_SAMPLE_S)

    def _safe_test_off(self) -> None:
        if self._test is not None and not self._test.closed:
            try:
                self._test.off()
            except Exception:
                log.exception("%s: could not switch TEST off", self._name)

    def close(self) -> None:
        """Stop watching, switch TEST off and release the pins. Idempotent."""
        self._safe_test_off()
        if self._test is not None:
            self._test.close()
        super().close()
        atexit.unregister(self.close)

    def __enter__(self) -> GpioRcm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
